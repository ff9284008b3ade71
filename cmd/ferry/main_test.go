package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
)

// ferry runs the command in-process and returns exit code, stdout, stderr.
func ferry(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), append([]string{"ferry"}, args...), strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestHelpAndVersion(t *testing.T) {
	code, out, _ := ferry(t, "", "--version")
	if code != 0 || !strings.Contains(out, version) {
		t.Fatalf("--version: %d %q", code, out)
	}
	for _, cmd := range []string{"save", "upload", "verify", "inspect", "completion"} {
		code, out, _ := ferry(t, "", cmd, "--help")
		if code != 0 || !strings.Contains(out, "Example") {
			t.Errorf("%s --help: exit %d, no example:\n%s", cmd, code, out)
		}
	}
	code, out, _ = ferry(t, "", "completion", "bash")
	if code != 0 || !strings.Contains(out, "complete -o default -F _ferry_complete ferry") {
		t.Errorf("completion bash: %d\n%s", code, out)
	}
	code, out, _ = ferry(t, "", "save", "--generate-bash-completion")
	if code != 0 {
		t.Errorf("completion candidates: exit %d", code)
	}
	_ = out
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	example, err := os.ReadFile(filepath.Join("..", "..", "cfg.yaml.example"))
	if err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(good, example, 0o644)
	t.Setenv("FERRY_PROD_PASS", "x") // the example takes its password from there
	if code, out, errOut := ferry(t, "", "config", "check", good); code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("example config: %d %s %s", code, out, errOut)
	}
	tests := []struct {
		name, yaml, msg string
	}{
		{"unknown field", "jobs: 2\nregistries:\n  - registry: a:5000\n    passwd: x\n", `line 4: unknown field "passwd" in a registries entry (did you mean pass?)`},
		{"bad tls", "registries:\n  - registry: a:5000\n    tls: maybe\n", "tls \"maybe\""},
		{"wrong type", "output: [a]\njobs: many\n", "line 1: a list where cfg.yaml wants the output section; line 2: text `many` where cfg.yaml wants a number"},
		{"bad size", "splitSize: lots\n", "splitSize"},
		{"dup name", "registries:\n  - {name: a, registry: x:1}\n  - {name: a, registry: y:1}\n", "used twice"},
		{"bad image", "images:\n  - 'a:1 -> BAD/Name'\n", "BAD/Name"},
		{"missing list", "list: /nonexistent/list.txt\n", "list.txt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(dir, tt.name+".yaml")
			_ = os.WriteFile(f, []byte(tt.yaml), 0o644)
			code, _, stderr := ferry(t, "", "config", "check", f)
			if code != exitUsage || !strings.Contains(stderr, tt.msg) {
				t.Fatalf("exit %d, stderr %q, want mention of %q", code, stderr, tt.msg)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := map[string]int64{"": 0, "1024": 1024, "2GiB": 2 << 30, "1.5GB": 1500000000, "512MiB": 512 << 20, "10M": 10 << 20, "7B": 7}
	for in, want := range tests {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"x", "-1", "1XB"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("registries:\n  - name: a\n    registry: a:5000\njobs: 2\n"))
	f.Add([]byte("splitSize: 2GiB\ncache: {dir: /tmp/x, keepSize: 1G}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			return
		}
		if c.Jobs < 0 {
			t.Fatal("negative jobs accepted")
		}
	})
}

// TestEndToEnd drives the binary's commands against two docker-registry
// instances with basic auth: save (list on stdin, a rename), inspect,
// verify, upload, and checks the digests at the target with skopeo.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs docker-registry")
	}
	auth := regtest.DistributionOptions{User: "ferry", Pass: "e2e-Secret-99"}
	src := regtest.StartDistribution(t, auth)
	dst := regtest.StartDistribution(t, auth)
	sreg, err := registry.New(registry.Options{Hosts: []registry.Host{{Registry: src.Host, User: auth.User, Pass: auth.Pass}}})
	if err != nil {
		t.Fatal(err)
	}
	imgs := regtest.Fixtures()
	for _, n := range []string{"library/multi:1", "team/app:1"} {
		r, _ := ref.New(src.Host + "/" + n)
		if err := regtest.Push(context.Background(), sreg, r, imgs[n]); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	t.Setenv("E2E_PASS", auth.Pass)
	cfg := filepath.Join(dir, "cfg.yaml")
	_ = os.WriteFile(cfg, []byte(`registries:
  - name: src
    registry: `+src.Host+`
    user: ferry
    pass: ${E2E_PASS}
  - name: dst
    registry: `+dst.Host+`
    namespace: mirror
    user: ferry
    pass: ${E2E_PASS}
dockerConfig: false
`), 0o644)
	out := filepath.Join(dir, "out")
	list := src.Host + "/library/multi:1\n" + src.Host + "/team/app:1 -> apps/app:v1\n"
	code, stdout, stderr := ferry(t, list, "--config", cfg, "--no-progress", "save", "--list", "-", "--platform", "linux/amd64,linux/arm64", "--compress", "zstd", "-o", out, "--mkdir")
	if code != 0 {
		t.Fatalf("save: %d\n%s\n%s", code, stdout, stderr)
	}
	if strings.Contains(stderr+stdout, auth.Pass) {
		t.Fatal("password in the output")
	}
	metas, _ := filepath.Glob(filepath.Join(out, "*_meta.yaml"))
	if len(metas) != 1 {
		t.Fatalf("meta files: %v", metas)
	}
	raw, _ := os.ReadFile(metas[0])
	if bytes.Contains(raw, []byte(auth.Pass)) {
		t.Fatal("password in meta.yaml")
	}
	m, err := meta.Load(metas[0])
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, _ = ferry(t, "", "inspect", metas[0])
	if code != 0 || !strings.Contains(stdout, "apps/app:v1") || !strings.Contains(stdout, "linux/amd64,linux/arm64") {
		t.Fatalf("inspect: %d\n%s", code, stdout)
	}
	code, stdout, stderr = ferry(t, "", "verify", metas[0])
	if code != 0 || !strings.Contains(stdout, "OK") {
		t.Fatalf("verify: %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = ferry(t, "", "--config", cfg, "--no-progress", "-v", "upload", metas[0], "--target", "dst")
	if code != 0 {
		t.Fatalf("upload: %d\n%s\n%s", code, stdout, stderr)
	}
	if strings.Contains(stderr+stdout, auth.Pass) {
		t.Fatal("password in the output")
	}
	skopeo := regtest.Need(t, "skopeo")
	for _, img := range m.Images {
		name := "docker://" + dst.Host + "/mirror/" + img.Repository + ":" + img.Tag
		cmd := exec.Command(skopeo, "inspect", "--raw", "--tls-verify=false", "--creds", auth.User+":"+auth.Pass, name)
		rawM, err := cmd.Output()
		if err != nil {
			t.Fatalf("skopeo inspect %s: %v", name, err)
		}
		if got := digestOf(rawM); got != img.Digest.String() {
			t.Errorf("%s: skopeo sees %s, meta says %s", name, got, img.Digest)
		}
		var parsed map[string]any
		if err := json.Unmarshal(rawM, &parsed); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// No credentials for the target: one line naming it, at once.
	start := time.Now()
	code, _, stderr = ferry(t, "", "--no-progress", "upload", metas[0], "--target", dst.Host+"/nocreds")
	if code != exitFailure || strings.Count(stderr, "registry "+dst.Host+": authentication failed (HTTP 401)") != 1 || time.Since(start) > 5*time.Second {
		t.Fatalf("upload without credentials: exit %d after %s\n%s", code, time.Since(start), stderr)
	}
	// A corrupted part: verify and upload fail with exit 1 and name the part.
	part := filepath.Join(out, m.Parts[0].Name)
	b, _ := os.ReadFile(part)
	b[len(b)/2] ^= 0xff
	_ = os.WriteFile(part, b, 0o644)
	code, _, stderr = ferry(t, "", "verify", metas[0])
	if code != exitFailure || !strings.Contains(stderr, m.Parts[0].Name) {
		t.Fatalf("verify of a corrupt bundle: exit %d\n%s", code, stderr)
	}
	// A failed image: exit 1, a summary naming it, no meta file.
	out2 := filepath.Join(dir, "out2")
	code, _, stderr = ferry(t, "", "--config", cfg, "--no-progress", "save", "--mkdir", "-o", out2, src.Host+"/team/app:1", src.Host+"/no/such:1")
	if code != exitFailure || !strings.Contains(stderr, "no/such:1: repository not found: "+src.Host+"/no/such\n") || !strings.Contains(stderr, "no bundle was written") {
		t.Fatalf("failed save: exit %d\n%s", code, stderr)
	}
	if files, _ := os.ReadDir(out2); len(files) != 0 {
		t.Fatalf("files left by a failed save: %v", files)
	}
}

func digestOf(b []byte) string {
	return "sha256:" + sha256hex(b)
}

func TestProgressSummary(t *testing.T) {
	p := &progress{start: time.Now().Add(-10 * time.Second), stop: make(chan struct{}), active: map[*tracker]bool{}}
	p.SetTotal(1000<<20, 4)
	p.start = time.Now().Add(-10 * time.Second)
	tr := p.Begin("abc", 500<<20)
	tr.Add(100 << 20)
	s := p.summary()
	// 100 MiB in 10 s: 10 MiB/s, 900 MiB left: ETA about 1m30s
	if !strings.Contains(s, "100.0 MiB / 1000.0 MiB") || !strings.Contains(s, "ETA 1m30s") {
		t.Fatalf("summary %q", s)
	}
	tr.Done(errors.New("x"))
	if p.done.Load() != 0 {
		t.Errorf("a failed transfer's bytes still count: %d", p.done.Load())
	}
}

// TestUploadDocker loads a bundle into a real dockerd through the CLI.
func TestUploadDocker(t *testing.T) {
	if testing.Short() {
		t.Skip("starts dockerd")
	}
	d := regtest.StartDockerd(t)
	host, stop := regtest.Olareg()
	defer stop()
	reg, _ := registry.New(registry.Options{Registries: []string{host}})
	imgs := regtest.Fixtures()
	r, _ := ref.New(host + "/library/multi:1")
	if err := regtest.Push(context.Background(), reg, r, imgs["library/multi:1"]); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if code, _, stderr := ferry(t, "", "--no-progress", "save", host+"/library/multi:1", "-o", out); code != 0 {
		t.Fatalf("save: %s", stderr)
	}
	metas, _ := filepath.Glob(filepath.Join(out, "*_meta.yaml"))
	code, stdout, stderr := ferry(t, "", "--no-progress", "upload", metas[0], "--target", "docker://"+d.Socket, "--platform", "linux/arm/v7")
	if code != 0 {
		t.Fatalf("upload: %d\n%s\n%s", code, stdout, stderr)
	}
	// the log names the engine, not Docker Hub
	if strings.Contains(stderr, "docker.io") || !strings.Contains(stderr, `target="library/multi:1 (docker engine `+d.Socket+`)"`) {
		t.Errorf("docker target log:\n%s", stderr)
	}
	resp, err := d.Client().Get("http://docker/images/multi:1/json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var info struct{ Architecture, Variant string }
	_ = json.NewDecoder(resp.Body).Decode(&info)
	if info.Architecture != "arm" || info.Variant != "v7" {
		t.Fatalf("loaded %+v, want arm/v7", info)
	}
	code, _, stderr = ferry(t, "", "--no-progress", "upload", metas[0], "--target", "docker://"+d.Socket, "--platform", "linux/s390x")
	if code != exitFailure || !strings.Contains(stderr, "s390x") {
		t.Fatalf("missing platform: %d %s", code, stderr)
	}

	// an increment: refused alone, loaded after its full bundle
	v2 := regtest.NewImage("linux/amd64", regtest.RootfsLayer("base", nil), regtest.RootfsLayer("app", nil), regtest.RootfsLayer("app", map[string]string{"v2": "2\n"}))
	for name, img := range map[string]*regtest.Image{"team/app:1": imgs["team/app:1"], "team/app:2": v2} {
		r, _ := ref.New(host + "/" + name)
		if err := regtest.Push(context.Background(), reg, r, img); err != nil {
			t.Fatal(err)
		}
	}
	_, full, _ := ferry(t, "", "-q", "save", host+"/team/app:1", "-o", out, "--prefix", "full")
	_, incr, _ := ferry(t, "", "-q", "save", host+"/team/app:2", "--inc", strings.TrimSpace(full), "-o", out, "--prefix", "incr")
	full, incr = strings.TrimSpace(full), strings.TrimSpace(incr)
	code, _, stderr = ferry(t, "", "-q", "upload", incr, "--target", "docker://"+d.Socket)
	if code != exitFailure || !strings.Contains(stderr, "load full_full_") {
		t.Fatalf("increment alone: exit %d\n%s", code, stderr)
	}
	for _, m := range []string{full, incr} {
		if code, _, stderr := ferry(t, "", "-q", "upload", m, "--target", "docker://"+d.Socket); code != 0 {
			t.Fatalf("upload %s: %s", m, stderr)
		}
	}
	if resp, err := d.Client().Get("http://docker/images/team/app:2/json"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("team/app:2 not in the engine: %v %v", err, resp)
	}
}

// TestSaveWithCache: the second save of the same images reads every blob
// from the cache.
func TestSaveWithCache(t *testing.T) {
	host, stop := regtest.Olareg()
	defer stop()
	reg, _ := registry.New(registry.Options{Registries: []string{host}})
	imgs := regtest.Fixtures()
	r, _ := ref.New(host + "/team/app:1")
	if err := regtest.Push(context.Background(), reg, r, imgs["team/app:1"]); err != nil {
		t.Fatal(err)
	}
	cacheDir := filepath.Join(t.TempDir(), "cache")
	for i, want := range []string{"0 hit(s), 3 miss(es)", "3 hit(s), 0 miss(es)"} {
		out := t.TempDir()
		code, stdout, stderr := ferry(t, "", "--no-progress", "save", host+"/team/app:1", "-o", out, "--cache", cacheDir)
		if code != 0 || !strings.Contains(stderr, want) {
			t.Fatalf("save %d: exit %d, want %q:\n%s\n%s", i, code, want, stdout, stderr)
		}
	}
}

// TestImageTransmitFlags: the ancestor's single-dash flags work.
func TestImageTransmitFlags(t *testing.T) {
	host, stop := regtest.Olareg()
	defer stop()
	reg, _ := registry.New(registry.Options{Registries: []string{host}})
	imgs := regtest.Fixtures()
	for _, n := range []string{"team/app:1", "library/base:1"} {
		r, _ := ref.New(host + "/" + n)
		if err := regtest.Push(context.Background(), reg, r, imgs[n]); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	list := filepath.Join(dir, "list.txt")
	_ = os.WriteFile(list, []byte("library/base:1\n"), 0o644)
	out := filepath.Join(dir, "out")
	code, stdout, stderr := ferry(t, "", "--no-progress", "save", "-src", host, "-lst", list, "-img", "team/app:1", "-out", out, "-mkdir")
	if code != 0 || !strings.Contains(stderr, "saved 2 image(s)") {
		t.Fatalf("save: %d\n%s\n%s", code, stdout, stderr)
	}
	metas, _ := filepath.Glob(filepath.Join(out, "*_meta.yaml"))
	dst, stop2 := regtest.Olareg()
	defer stop2()
	if code, stdout, stderr := ferry(t, "", "--no-progress", "upload", metas[0], "-dst", dst+"/x"); code != 0 {
		t.Fatalf("upload: %d\n%s\n%s", code, stdout, stderr)
	}
}

// TestLogLinesAboveBars: a log line written while bars are drawn lands
// above them, and the bars are drawn again below it.
func TestLogLinesAboveBars(t *testing.T) {
	var out syncBuffer
	p := newProgress(&out, slog.New(slog.DiscardHandler), nil)
	lw := &logWriter{w: &out}
	lw.setProgress(p)
	p.SetTotal(100, 1)
	tr := p.Begin("blob", 100)
	tr.Add(50)
	time.Sleep(400 * time.Millisecond) // a frame or two
	_, _ = lw.Write([]byte("level=INFO msg=hello\n"))
	time.Sleep(400 * time.Millisecond)
	tr.Add(50)
	tr.Done(nil)
	p.Stop()
	got := out.String()
	hello := strings.Index(got, "msg=hello")
	if hello < 0 || strings.LastIndex(got, "total") < hello || strings.Index(got, "total") > hello {
		t.Fatalf("log line not between frames:\n%q", got)
	}
	if !strings.Contains(got, "total [==================] 100 B / 100 B") {
		t.Errorf("last frame lacks the count:\n%q", got)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
