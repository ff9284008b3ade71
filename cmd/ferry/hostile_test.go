package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ferry-oss/ferry/registry/regtest"
)

// TestForeignRealmCLI (issue 25, item 1): save, sync and resolve of an
// image on a registry whose /v2/ asks for Basic auth but whose repository
// names a token service on another host (127.0.0.2, plain HTTP): each
// fails with one line naming the realm and trustedRealms, and the token
// service never sees the password.
func TestForeignRealmCLI(t *testing.T) {
	sr := regtest.StartSwitchRealm(t, false)
	target := olaregWith(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "cfg.yaml")
	yaml := "registries:\n  - registry: " + sr.Host() + "\n    user: " + sr.User + "\n    pass: " + sr.Pass + "\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	img := sr.Host() + "/realm2/app:v1"
	for _, args := range [][]string{
		{"save", "--retries", "0", "-o", dir, img},
		{"sync", "--retries", "0", "--target", target, img},
		{"resolve", "--retries", "0", sr.Host() + "/realm2/app:*"},
	} {
		t.Run(args[0], func(t *testing.T) {
			code, stdout, stderr := ferry(t, "", append([]string{"--config", cfg, "--no-progress"}, args...)...)
			if code != 1 || !strings.Contains(stderr, "untrusted token realm") || !strings.Contains(stderr, "trustedRealms") {
				t.Errorf("exit %d, want 1 naming the untrusted realm and the fix\n%s\n%s", code, stdout, stderr)
			}
			if strings.Contains(stdout+stderr, sr.Pass) {
				t.Errorf("the password is in the output")
			}
			if got := sr.Sent(); len(got) != 0 {
				t.Errorf("the foreign token service received %q", got)
			}
		})
	}
}

// TestConfigCredentials (issue 25, item 6): config check names every
// ${VAR} of a credential that is not set (exit 2, before a bare 401 at
// work time), $$ writes a literal $, and a cfg.yaml holding a password
// that others can read gets a warning, as ssh warns about a readable key;
// so does every command that uses the registries.
func TestConfigCredentials(t *testing.T) {
	dir := t.TempDir()
	write := func(name, yaml string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(yaml), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // whatever the umask
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("FERRY_TEST_PASS", "from-env")
	t.Run("unset variables", func(t *testing.T) {
		cfg := write("unset.yaml", "registries:\n  - registry: a:5000\n    user: ${FERRY_TEST_NO_USER}\n    pass: x$FERRY_TEST_NO_PASS\n  - registry: b:5000\n    pass: ${FERRY_TEST_PASS}\n", 0o600)
		code, stdout, stderr := ferry(t, "", "config", "check", cfg)
		if code != exitUsage || !strings.Contains(stderr, "FERRY_TEST_NO_USER") || !strings.Contains(stderr, "FERRY_TEST_NO_PASS") ||
			!strings.Contains(stderr, "a:5000") || strings.Contains(stderr, "FERRY_TEST_PASS ") {
			t.Errorf("exit %d, want 2 naming both unset variables and their registry\n%s%s", code, stdout, stderr)
		}
	})
	t.Run("dollar escape", func(t *testing.T) {
		c, err := ParseConfig([]byte("registries:\n  - registry: a:5000\n    user: u$$er\n    pass: 'pa$$word${FERRY_TEST_PASS}$$'\n"))
		if err != nil {
			t.Fatal(err)
		}
		if h := c.Hosts()[0]; h.User != "u$er" || h.Pass != "pa$wordfrom-env$" {
			t.Errorf("user %q pass %q, want u$er and pa$wordfrom-env$", h.User, h.Pass)
		}
		if unset, readable := c.credentialIssues(); len(unset) != 0 || readable != "" {
			t.Errorf("issues %q %q", unset, readable)
		}
	})
	readable := "registries:\n  - registry: %s\n    pass: s3cret\n"
	fromEnv := "registries:\n  - registry: %s\n    pass: ${FERRY_TEST_PASS}\n"
	host := olaregWith(t, "team/app:1")
	for _, tt := range []struct {
		name, yaml string
		mode       os.FileMode
		warn       bool
	}{
		{"world-readable with a password", readable, 0o644, true},
		{"group-readable with a password", readable, 0o640, true},
		{"private with a password", readable, 0o600, false},
		{"world-readable, password from the environment", fromEnv, 0o644, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := write(strings.ReplaceAll(tt.name, " ", "_")+".yaml", strings.ReplaceAll(tt.yaml, "%s", host), tt.mode)
			code, stdout, stderr := ferry(t, "", "config", "check", cfg)
			warned := strings.Contains(stderr, "chmod 600")
			if code != 0 || warned != tt.warn {
				t.Errorf("config check: exit %d, warned %v, want 0 and %v\n%s%s", code, warned, tt.warn, stdout, stderr)
			}
			code, stdout, stderr = ferry(t, "", "--config", cfg, "resolve", host+"/team/app:1")
			warned = strings.Contains(stderr, "chmod 600")
			if code != 0 || warned != tt.warn {
				t.Errorf("resolve: exit %d, warned %v, want 0 and %v\n%s%s", code, warned, tt.warn, stdout, stderr)
			}
			if strings.Contains(stdout+stderr, "s3cret") {
				t.Error("the password is in the output")
			}
		})
	}
}

// TestHangingRegistryCLI (issue 23, item 5): save, sync, resolve and
// upload against a registry that accepts TCP and never answers end with
// exit 1 and a line naming the timeout, instead of hanging forever (with
// cfg.yaml's headerTimeout and timeout short here).
func TestHangingRegistryCLI(t *testing.T) {
	hole := regtest.BlackHole(t)
	good := olaregWith(t, "team/app:1")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "cfg.yaml")
	if err := os.WriteFile(cfg, []byte("headerTimeout: 300ms\ntimeout: 300ms\nretries: 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := ferry(t, "", "--config", cfg, "--no-progress", "save", "--json", "-o", dir, good+"/team/app:1")
	if code != 0 {
		t.Fatalf("save: exit %d\n%s%s", code, stdout, stderr)
	}
	metas, _ := filepath.Glob(filepath.Join(dir, "*_meta.yaml"))
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"save", []string{"save", "-o", t.TempDir(), hole + "/team/app:1"}},
		{"sync from it", []string{"sync", "--target", good + "/copy", hole + "/team/app:1"}},
		{"sync to it", []string{"sync", "--target", hole, good + "/team/app:1"}},
		{"resolve", []string{"resolve", hole + "/team/app:*"}},
		{"upload", []string{"upload", "--target", hole, metas[0]}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			code, stdout, stderr := ferry(t, "", append([]string{"--config", cfg, "--no-progress"}, tt.args...)...)
			took := time.Since(start)
			if code != 1 || !strings.Contains(stderr, "registry too slow") {
				t.Errorf("exit %d after %v, want 1 naming the timeout\n%s%s", code, took, stdout, stderr)
			}
			if took > 30*time.Second {
				t.Errorf("took %v", took)
			}
		})
	}
}

// TestNetworkBounds: the command's --timeout (else cfg.yaml timeout) is
// the idle bound of every registry request; headerTimeout and minRate come
// from cfg.yaml; 0 turns a bound off.
func TestNetworkBounds(t *testing.T) {
	e := &env{cfg: &Config{Timeout: "9s", HeaderTimeout: "0", MinRate: "2KiB"}}
	if n := e.network(); n.Idle != 9*time.Second || n.Header >= 0 || n.MinRate != 2048 {
		t.Errorf("from cfg.yaml: %+v", n)
	}
	var seen *time.Duration
	app := &cli.App{Commands: []*cli.Command{{
		Name:   "save",
		Flags:  []cli.Flag{&cli.DurationFlag{Name: "timeout", Value: time.Minute}},
		Action: func(*cli.Context) error { seen = e.idle; return nil },
	}}}
	e.noteTimeouts(app.Commands)
	for _, tt := range []struct {
		args []string
		want time.Duration // Net.Idle
	}{
		{[]string{"ferry", "save", "--timeout", "5s"}, 5 * time.Second},
		{[]string{"ferry", "save", "--timeout", "0"}, -1},
		{[]string{"ferry", "save"}, 9 * time.Second}, // cfg.yaml's, as --timeout's default
	} {
		if err := app.Run(tt.args); err != nil {
			t.Fatal(err)
		}
		if seen == nil || e.network().Idle != tt.want {
			t.Errorf("%v: idle %v, want %v", tt.args, e.network().Idle, tt.want)
		}
	}
}
