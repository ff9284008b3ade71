package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/oci"
	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
)

// olaregWith starts an olareg holding the fixtures names and returns its
// host.
func olaregWith(t *testing.T, names ...string) string {
	t.Helper()
	host, stop := regtest.Olareg()
	t.Cleanup(stop)
	pushFixtures(t, host, regtest.DistributionOptions{}, names...)
	return host
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestExitCodes is the one table of exit codes and messages: 2 for usage
// and input errors (flags, arguments, cfg.yaml, lists, meta files, output
// directory), 1 for failures while working. Each message is said once.
func TestExitCodes(t *testing.T) {
	host := olaregWith(t, "team/app:1")
	dir := t.TempDir()
	write := func(name, content string) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	badCfg := write("bad.yaml", "platform: [linux/amd64]\nregistries:\n  - registry: a:5000\n    passwd: x\n")
	tlsCfg := write("tls.yaml", "registries:\n  - name: src\n    registry: "+host+"\n    tls: enabled\n")
	notMeta := write("x_meta.yaml", "hello: world\n")
	badList := write("bad.txt", "a:1 => b:1\n")
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	down := closedPort(t)
	bundleDir := t.TempDir()
	if code, _, stderr := ferry(t, "", "-q", "save", host+"/team/app:1", "-o", bundleDir); code != 0 {
		t.Fatalf("save: %s", stderr)
	}
	metas, _ := filepath.Glob(filepath.Join(bundleDir, "*_meta.yaml"))
	tests := []struct {
		name  string
		stdin string
		args  []string
		code  int
		msg   []string // in stderr, each exactly once
	}{
		{"unknown command", "", []string{"sav", "x"}, exitUsage, []string{`unknown command "sav" (did you mean save?)`}},
		{"unknown subcommand", "", []string{"config", "chek"}, exitUsage, []string{`did you mean check?`}},
		{"unknown flag", "", []string{"save", "--platfrom", "linux/amd64", "a:1"}, exitUsage, []string{"unknown flag --platfrom (did you mean --platform?)", "ferry save --help"}},
		{"unknown global flag", "", []string{"--verbos", "save"}, exitUsage, []string{"did you mean --verbose?"}},
		{"no images", "", []string{"save", "-o", out}, exitUsage, []string{"no images"}},
		{"bad codec", "", []string{"save", "--compress", "brotli", "a:1", "-o", out}, exitUsage, []string{"brotli"}},
		{"bad platform", "", []string{"save", "--platform", "linux/amd64/v9/x", "a:1", "-o", out}, exitUsage, []string{"platform"}},
		{"single and split", "", []string{"save", "--single", "--split-size", "1GiB", "a:1", "-o", out}, exitUsage, []string{"exclude"}},
		{"split size unit", "", []string{"save", "--split-size", "2XB", "a:1", "-o", out}, exitUsage, []string{`"2XB"`, "KiB, MiB, GiB"}},
		{"missing list", "", []string{"save", "--list", filepath.Join(dir, "nope.txt"), "-o", out}, exitUsage, []string{"nope.txt"}},
		{"list arrow", "", []string{"save", "--list", badList, "-o", out}, exitUsage, []string{"line 1", "SRC -> DST, not =>"}},
		{"list stdin empty target", "a:1 -> \n", []string{"save", "--list", "-", "-o", out}, exitUsage, []string{"no target after ->"}},
		{"uppercase repository", "", []string{"save", "Team/App:1", "-o", out}, exitUsage, []string{"argument 1", "lowercase"}},
		{"space for colon", "", []string{"save", "alpine 3.19", "-o", out}, exitUsage, []string{"a tag follows a colon"}},
		{"http url image", "", []string{"save", "http://" + host + "/team/nope:1", "-o", out}, exitFailure, []string{"team/nope:1: repository not found"}}, // http:// is plain HTTP (issue 18)
		{"missing output dir", "", []string{"save", host + "/team/app:1", "-o", filepath.Join(dir, "unmounted", "usb")}, exitUsage, []string{"does not exist", "--mkdir"}},
		{"verify no arg", "", []string{"verify"}, exitUsage, []string{"one meta file"}},
		{"verify missing meta", "", []string{"verify", filepath.Join(dir, "nope_meta.yaml")}, exitUsage, []string{"no such file"}},
		{"inspect not a meta", "", []string{"inspect", notMeta}, exitUsage, []string{"x_meta.yaml"}},
		{"upload missing meta", "", []string{"upload", filepath.Join(dir, "nope_meta.yaml"), "--target", host}, exitUsage, []string{"no such file"}},
		{"upload http target", "", []string{"upload", notMeta, "--target", "http://" + host}, exitUsage, []string{"x_meta.yaml"}},
		{"config missing", "", []string{"--config", filepath.Join(dir, "nope.yaml"), "inspect", "x"}, exitUsage, []string{"nope.yaml"}},
		{"config check unknown field", "", []string{"config", "check", badCfg}, exitUsage, []string{`unknown field "platform" (did you mean platforms?)`, `unknown field "passwd" in a registries entry (did you mean pass?)`}},
		{"config flag unknown field", "", []string{"--config", badCfg, "save", "a:1"}, exitUsage, []string{`unknown field "platform"`}},
		{"config flag after command", "", []string{"save", "a:1", "--config", badCfg}, exitUsage, []string{`unknown field "platform"`}},
		{"upload no target", "", []string{"upload", metas[0]}, exitUsage, []string{"upload needs --target"}},
		{"upload bad namespace", "", []string{"upload", metas[0], "--target", host + "/Mirror"}, exitUsage, []string{"not a repository path"}},
		{"upload target down", "", []string{"upload", metas[0], "--target", down + "/m"}, exitFailure, []string{"registry " + down + ": connection refused"}},
		{"upload tls on plain http", "", []string{"--config", tlsCfg, "upload", metas[0], "--target", "src"}, exitFailure, []string{`set "tls: disabled"`}},
		{"completion unknown shell", "", []string{"completion", "tcsh"}, exitUsage, []string{"bash, zsh or fish"}},
		{"registry down", "", []string{"save", "--retries", "3", down + "/team/app:1", "-o", out}, exitFailure, []string{"registry " + down + ": connection refused"}},
		{"keep going past a registry that is down", "", []string{"save", "--keep-going", down + "/team/other:1", host + "/team/app:1", "-o", out, "--prefix", "kg"}, exitFailure, []string{down + "/team/other:1: registry " + down + ": connection refused", "PARTIAL"}},
		{"tls on plain http", "", []string{"--config", tlsCfg, "save", host + "/team/app:1", "-o", out}, exitFailure, []string{"registry " + host + ": TLS handshake failed", `set "tls: disabled"`}},
		{"resume and fresh", "", []string{"save", "--resume", out, "--fresh", host + "/team/app:1"}, exitUsage, []string{"--resume and --fresh exclude each other"}},
		{"resume into another directory", "", []string{"save", "--resume", out, "-o", out + "/x", host + "/team/app:1"}, exitUsage, []string{"is the output directory; -o names another"}},
		{"nothing to resume", "", []string{"save", "--resume", out, host + "/team/app:1"}, exitUsage, []string{"no interrupted save of these images and options to resume in " + out}},
		{"missing tag", "", []string{"save", host + "/team/app:9", "-o", out}, exitFailure, []string{"team/app:9: tag not found in " + host + "/team/app (tags: 1)"}},
		{"missing repository", "", []string{"save", host + "/team/ap:1", "-o", out}, exitFailure, []string{"team/ap:1: repository not found: " + host + "/team/ap"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			code, stdout, stderr := ferry(t, tt.stdin, append([]string{"--no-progress"}, tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			for _, m := range tt.msg {
				if n := strings.Count(stderr, m); n != 1 {
					t.Errorf("stderr has %q %d times, want once:\n%s", m, n, stderr)
				}
			}
			if code != exitOK && stdout != "" {
				t.Errorf("stdout of a failure: %q", stdout)
			}
			if el := time.Since(start); el > 5*time.Second {
				t.Errorf("took %s: an error that cannot heal must fail at once", el)
			}
			if files, _ := os.ReadDir(out); len(files) != 0 && !strings.Contains(tt.name, "keep going") {
				t.Errorf("files left in the output directory: %v", files)
			}
			if strings.Contains(tt.name, "keep going") {
				os.RemoveAll(out)
				_ = os.Mkdir(out, 0o755)
			}
		})
	}
}

// TestFlagPositions: global flags work before and after the command, and
// command flags before and after arguments.
func TestFlagPositions(t *testing.T) {
	host := olaregWith(t, "team/app:1")
	for _, args := range [][]string{
		{"--no-progress", "-q", "save", host + "/team/app:1", "-o", "OUT"},
		{"save", "--no-progress", "-q", host + "/team/app:1", "-o", "OUT"},
		{"save", host + "/team/app:1", "-o", "OUT", "-q", "--no-progress"},
		{"save", "-o", "OUT", host + "/team/app:1", "-v", "--no-progress"},
	} {
		out := t.TempDir()
		for i := range args {
			if args[i] == "OUT" {
				args[i] = out
			}
		}
		code, stdout, stderr := ferry(t, "", args...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, stderr)
		}
		// stdout is exactly the meta path
		metas, _ := filepath.Glob(filepath.Join(out, "*_meta.yaml"))
		if len(metas) != 1 || stdout != metas[0]+"\n" {
			t.Fatalf("%v: stdout %q, metas %v", args, stdout, metas)
		}
		quiet := strings.Contains(strings.Join(args, " "), "-q")
		if quiet && stderr != "" {
			t.Errorf("%v: -q still logs info:\n%s", args, stderr)
		}
		if !quiet && !strings.Contains(stderr, "level=DEBUG") {
			t.Errorf("%v: -v gave no debug lines", args)
		}
	}
}

// TestHelpDefaults: every flag shows one default, and the right one.
func TestHelpDefaults(t *testing.T) {
	twoDefaults := regexp.MustCompile(`default.*default`)
	want := map[string][]string{
		"save":   {"--jobs value, -j value", "(default: 4)", "--retries value", "(default: 3)", `(default: "none")`, `(default: ".")`, `(default: "ferry")`},
		"upload": {"(default: 4)", "(default: 3)", "(default: docker: this host's; containerd: all)", `(default: "k8s.io")`},
		"verify": {"(default: 4)"},
	}
	for _, cmd := range []string{"save", "upload", "verify", "inspect", "config", "completion"} {
		code, out, _ := ferry(t, "", cmd, "--help")
		if code != 0 {
			t.Fatalf("%s --help: exit %d", cmd, code)
		}
		for _, line := range strings.Split(out, "\n") {
			if twoDefaults.MatchString(line) {
				t.Errorf("%s --help: two defaults: %s", cmd, line)
			}
			if strings.Contains(line, "(default: 0)") {
				t.Errorf("%s --help: default 0: %s", cmd, line)
			}
		}
		for _, w := range want[cmd] {
			if !strings.Contains(out, w) {
				t.Errorf("%s --help lacks %q:\n%s", cmd, w, out)
			}
		}
	}
}

// TestFlagsOverrideConfig: cfg.yaml values apply unless a flag is given,
// and flag defaults apply when neither is.
func TestFlagsOverrideConfig(t *testing.T) {
	host := olaregWith(t, "team/app:1")
	dir := t.TempDir()
	out := filepath.Join(dir, "cfgout")
	cfg := filepath.Join(dir, "cfg.yaml")
	_ = os.WriteFile(cfg, []byte("output: {dir: "+out+", prefix: nightly, mkdir: true}\njobs: 2\n"), 0o644)
	code, stdout, stderr := ferry(t, "", "--no-progress", "--config", cfg, "save", host+"/team/app:1")
	if code != 0 || !strings.HasPrefix(stdout, filepath.Join(out, "nightly_full_")) || !strings.Contains(stderr, "jobs=2") {
		t.Fatalf("cfg values: %d %q\n%s", code, stdout, stderr)
	}
	out2 := t.TempDir()
	code, stdout, stderr = ferry(t, "", "--no-progress", "--config", cfg, "save", host+"/team/app:1", "-o", out2, "--prefix", "x", "-j", "3")
	if code != 0 || !strings.HasPrefix(stdout, filepath.Join(out2, "x_full_")) || !strings.Contains(stderr, "jobs=3") {
		t.Fatalf("flags over cfg: %d %q\n%s", code, stdout, stderr)
	}
}

// TestCompletion runs the bash script in bash and the fish script in fish:
// codecs after --compress, only meta files as upload's argument.
func TestCompletion(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "ferry")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	for _, f := range []string{"ferry_full_1_meta.yaml", "ferry_full_1_1.tar", "notes.txt"} {
		_ = os.WriteFile(filepath.Join(dir, f), nil, 0o644)
	}
	path := filepath.Dir(bin) + ":" + os.Getenv("PATH")
	bash := regtest.Need(t, "bash")
	tests := []struct{ words, want, not string }{
		{`ferry save --compress ""`, "gzip lz4 none xz zstd", ""},
		{`ferry save -p linux/a`, "linux/amd64 linux/arm/v7 linux/arm64", "windows"},
		{`ferry upload ""`, "ferry_full_1_meta.yaml", "notes.txt"},
		{`ferry save --inc ""`, "ferry_full_1_meta.yaml", "ferry_full_1_1.tar"},
		{`ferry sa`, "save", "upload"},
		{`ferry save --plat`, "--platform", "--jobs"},
	}
	for _, tt := range tests {
		script := `source <(ferry completion bash); COMP_WORDS=(` + tt.words + `); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _ferry_complete; printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' '`
		cmd := exec.Command(bash, "-c", script)
		cmd.Dir, cmd.Env = dir, append(os.Environ(), "PATH="+path)
		out, err := cmd.CombinedOutput()
		got := strings.TrimSpace(string(out))
		if err != nil || !strings.Contains(got, tt.want) || (tt.not != "" && strings.Contains(got, tt.not)) {
			t.Errorf("bash %s: %q (%v), want %q without %q", tt.words, got, err, tt.want, tt.not)
		}
	}
	// asking for completions never runs the command
	for _, args := range [][]string{{"verify", "nope_meta.yaml"}, {"save", "a:1", "-o", dir}, {"upload", "x_meta.yaml", "--target", "docker"}} {
		code, out, stderr := ferry(t, "", append(args, "--generate-bash-completion")...)
		if code != 0 || stderr != "" {
			t.Errorf("%v completion: exit %d, %q %q", args, code, out, stderr)
		}
	}
	fish := regtest.Need(t, "fish")
	for _, tt := range []struct{ line, want, not string }{
		{"ferry save --compress ", "zstd", "notes.txt"},
		{"ferry verify ", "ferry_full_1_meta.yaml", "notes.txt"},
		{"ferry ", "upload", ""},
	} {
		cmd := exec.Command(fish, "--no-config", "-c", "ferry completion fish | source; complete -C '"+tt.line+"'")
		cmd.Dir, cmd.Env = dir, append(os.Environ(), "PATH="+path)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), tt.want) || (tt.not != "" && strings.Contains(string(out), tt.not)) {
			t.Errorf("fish %q: %v\n%s", tt.line, err, out)
		}
	}
}

// TestInspectCounts: blobs are counted per image (not per repository),
// base blobs are marked, and the platforms column says what was recorded.
func TestInspectCounts(t *testing.T) {
	host := olaregWith(t, "team/app:1", "library/multi:1")
	reg, _ := registry.New(registry.Options{Registries: []string{host}})
	v2 := regtest.NewImage("linux/amd64", regtest.RootfsLayer("base", nil), regtest.RootfsLayer("app", nil), regtest.RootfsLayer("app", map[string]string{"extra.txt": "2\n"}))
	r, _ := ref.New(host + "/team/app:2")
	if err := regtest.Push(context.Background(), reg, r, v2); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	_, full, stderr := ferry(t, "", "--no-progress", "save", host+"/team/app:1", host+"/library/multi:1", "-o", out)
	full = strings.TrimSpace(full)
	if !strings.HasSuffix(full, "_meta.yaml") {
		t.Fatalf("save: %q %s", full, stderr)
	}
	if !regexp.MustCompile(`msg=resolved image=\S+/library/multi:1 .* blobs=7\n`).MatchString(stderr) {
		t.Errorf("save log does not count multi:1's 7 distinct blobs:\n%s", stderr)
	}
	_, incr, stderr := ferry(t, "", "-q", "save", host+"/team/app:1", host+"/team/app:2", "--inc", full, "-o", out, "--prefix", "day2")
	incr = strings.TrimSpace(incr)
	if !strings.HasSuffix(incr, "_meta.yaml") {
		t.Fatalf("incremental save: %q %s", incr, stderr)
	}
	row := func(out, image string) []string {
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[0] == host+"/"+image {
				return f
			}
		}
		t.Fatalf("no row for %s:\n%s", image, out)
		return nil
	}
	_, fullOut, _ := ferry(t, "", "inspect", full)
	_, incrOut, _ := ferry(t, "", "inspect", incr)
	tests := []struct {
		out, image, plats, blobs string
	}{
		{fullOut, "team/app:1", "-", "3"},
		{fullOut, "library/multi:1", "linux/amd64,linux/arm64,linux/arm/v7", "7"}, // base layer shared, an app layer and a config per platform
		{incrOut, "team/app:1", "-", "3 (3 in base)"},
		{incrOut, "team/app:2", "-", "4 (2 in base)"},
	}
	for _, tt := range tests {
		f := row(tt.out, tt.image)
		if got := strings.Join(f[4:len(f)-2], " "); f[3] != tt.plats || got != tt.blobs {
			t.Errorf("%s: platforms %q blobs %q, want %q %q:\n%s", tt.image, f[3], got, tt.plats, tt.blobs, tt.out)
		}
	}
}

// TestHTTPSURLs: a registry URL pasted as an image or a target works.
func TestHTTPSURLs(t *testing.T) {
	host := olaregWith(t, "team/app:1")
	dst := olaregWith(t)
	out := t.TempDir()
	code, metaPath, stderr := ferry(t, "", "-q", "save", "https://"+host+"/team/app:1", "-o", out)
	if code != 0 {
		t.Fatalf("save https://: %d %s", code, stderr)
	}
	code, _, stderr = ferry(t, "", "-q", "upload", strings.TrimSpace(metaPath), "--target", "https://"+dst+"/mirror")
	if code != 0 {
		t.Fatalf("upload --target https://: %d %s", code, stderr)
	}
	reg, _ := registry.New(registry.Options{Registries: []string{dst}})
	r, _ := ref.New(dst + "/mirror/team/app:1")
	if _, err := reg.ManifestGet(context.Background(), r); err != nil {
		t.Fatalf("not at the target: %v", err)
	}
}

// TestSmallBlobs reads several configs from a bundle's parts in one call.
func TestSmallBlobs(t *testing.T) {
	host := olaregWith(t, "team/app:1", "team/tools:1", "library/multi:1")
	out := t.TempDir()
	_, metaPath, stderr := ferry(t, "", "-q", "save", host+"/team/app:1", host+"/team/tools:1", host+"/library/multi:1", "-o", out, "--compress", "zstd", "-j", "2")
	bd, err := bundle.Open(strings.TrimSpace(metaPath))
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	var ds []descriptor.Descriptor
	for _, b := range bd.Meta.Blobs {
		if b.Size < 4096 { // configs and the tiny layers
			ds = append(ds, descriptor.Descriptor{Digest: b.Digest, Size: b.Size, MediaType: b.MediaType})
		}
	}
	got, err := smallBlobs(bd)(context.Background(), ds)
	if err != nil || len(got) != len(ds) || len(ds) < 4 {
		t.Fatalf("%d of %d blobs: %v", len(got), len(ds), err)
	}
	for _, d := range ds {
		if digest.FromBytes(got[d.Digest]) != d.Digest {
			t.Errorf("%s: wrong bytes", d.Digest)
		}
	}
}

// TestLabelSourceReferrers: the progress wrapper keeps the source's
// referrers visible to save.
func TestLabelSourceReferrers(t *testing.T) {
	reg, _ := registry.New(registry.Options{})
	var _ oci.ReferrerSource = reg // the registry lists referrers
	if _, ok := oci.Source(labelSource{reg, newLabeler()}).(oci.ReferrerSource); !ok {
		t.Fatal("labelSource hides Referrers")
	}
}
