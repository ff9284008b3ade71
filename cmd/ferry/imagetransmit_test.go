package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
)

// hostsEntry maps names to 127.0.0.1 in /etc/hosts until the test ends: a
// registry that is not on a loopback name, yet on this machine. Needs
// root (skipped without, failed under CI).
func hostsEntry(t *testing.T, names ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("an /etc/hosts entry needs root")
		}
		t.Skip("an /etc/hosts entry needs root")
	}
	var lines []string
	for _, n := range names {
		lines = append(lines, "127.0.0.1 "+n+" # ferry test "+t.Name())
	}
	f, err := os.OpenFile("/etc/hosts", os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("\n" + strings.Join(lines, "\n") + "\n")
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	// Go keeps /etc/hosts for 5 s: wait until the names resolve
	for _, n := range names {
		deadline := time.Now().Add(30 * time.Second)
		for addrs, _ := net.LookupHost(n); len(addrs) == 0; addrs, _ = net.LookupHost(n) {
			if time.Now().After(deadline) {
				t.Fatalf("%s does not resolve after it was added to /etc/hosts", n)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	t.Cleanup(func() {
		b, err := os.ReadFile("/etc/hosts")
		if err != nil {
			return
		}
		var kept []string
		for _, l := range strings.Split(string(b), "\n") {
			if !strings.Contains(l, "# ferry test "+t.Name()) {
				kept = append(kept, l)
			}
		}
		_ = os.WriteFile("/etc/hosts", []byte(strings.TrimRight(strings.Join(kept, "\n"), "\n")+"\n"), 0o644)
	})
}

// dingTalk is a DingTalk robot endpoint that checks the signature.
type dingTalk struct {
	mu       sync.Mutex
	messages []string
	bad      int
}

func (d *dingTalk) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	mac := hmac.New(sha256.New, []byte("SEC-it"))
	mac.Write([]byte(q.Get("timestamp") + "\n" + "SEC-it"))
	var body struct {
		Markdown struct{ Title, Text string }
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	d.mu.Lock()
	defer d.mu.Unlock()
	if r.URL.Path != "/robot/send" || q.Get("access_token") != "TOK-it" || q.Get("sign") != base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
		d.bad++
		_, _ = io.WriteString(w, `{"errcode":310000,"errmsg":"sign not match"}`)
		return
	}
	d.messages = append(d.messages, body.Markdown.Text)
	_, _ = io.WriteString(w, `{"errcode":0,"errmsg":"ok"}`)
}

// TestImageTransmitSite drives the seed workflow the way an
// image-transmit site runs it: its cfg.yaml in the working directory,
// registries written http://NAME:PORT (names that /etc/hosts maps to
// loopback, so nothing but the scheme says plain HTTP), its command lines
// as its README writes them, and its own bundles uploaded next to ferry's.
func TestImageTransmitSite(t *testing.T) {
	src := regtest.StartDistribution(t, regtest.DistributionOptions{})
	dst := regtest.StartDistribution(t, regtest.DistributionOptions{})
	srcName, dstName := fmt.Sprintf("it-src-%d.ferry.test", os.Getpid()), fmt.Sprintf("it-dst-%d.ferry.test", os.Getpid())
	hostsEntry(t, srcName, dstName)
	srcHost := srcName + ":" + strings.Split(src.Host, ":")[1]
	dstHost := dstName + ":" + strings.Split(dst.Host, ":")[1]
	seed(t, src.Host)
	robot := &dingTalk{}
	hook := httptest.NewServer(robot)
	defer hook.Close()
	t.Setenv("FERRY_DINGTALK_URL", hook.URL)

	home := t.TempDir()
	t.Chdir(home)
	cfg := fmt.Sprintf(`source:
- registry: "http://%s"
  user:
  password:
  name: nj
target:
- registry: "http://%s"
  user:
  password:
  repository: yyyy
  name: gz
platform: linux/amd64
maxconn: 2
retries: 2
compressor: zstd
lang: en_US
dingtalk:
- token: TOK-it
  secret: SEC-it
`, srcHost, dstHost)
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(home, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("cfg.yaml", cfg)
	write("img.lst", "it/base:1\nit/app:1\nit/multi:1\n")
	write("incr.lst", "it/app:2\n")

	run := func(stdin string, args ...string) string {
		t.Helper()
		code, stdout, stderr := ferry(t, stdin, append([]string{"--no-progress"}, args...)...)
		if code != 0 {
			t.Fatalf("ferry %s: exit %d\n%s\n%s", strings.Join(args, " "), code, stdout, stderr)
		}
		for _, secret := range []string{"TOK-it", "SEC-it"} {
			if strings.Contains(stdout+stderr, secret) {
				t.Fatalf("ferry %s printed a notify secret", strings.Join(args, " "))
			}
		}
		return strings.TrimSpace(stdout)
	}
	check := run("", "config", "check", "cfg.yaml")
	for _, want := range []string{"image-transmit's cfg.yaml", "registry " + dstHost + " over plain HTTP", "yyyy/image:tag", "DingTalk robot (signed"} {
		if !strings.Contains(check, want) {
			t.Errorf("config check does not say %q:\n%s", want, check)
		}
	}

	full := run("", "save", "-src=nj", "-lst=img.lst")
	incr := run("", "save", "-src=nj", "-lst=incr.lst", "-inc="+full)
	stdinMeta := run("it/oci:1\n", "save", "-src=nj")
	for _, m := range []string{full, incr, stdinMeta} {
		run("", "upload", "-dst=gz", "-img="+m)
	}
	want := map[string]digest.Digest{}
	for name, img := range regtest.ImageTransmitFixtures() {
		want[name] = img.Digest()
		if len(img.Children) > 0 {
			want[name] = img.Children[0].Digest() // platform: linux/amd64 keeps the child, as image-transmit
		}
	}
	targetHas(t, dst.Host, want, "it/base:1", "it/app:1", "it/app:2", "it/multi:1", "it/oci:1")

	// image-transmit's own bundles, uploaded by ferry to a fresh target
	dst2 := regtest.StartDistribution(t, regtest.DistributionOptions{})
	dst2Host := dstName + ":" + strings.Split(dst2.Host, ":")[1]
	write("cfg.yaml", strings.Replace(cfg, dstHost, dst2Host, 1))
	for _, v := range []string{"squashfs", "gui-lz4", "zstd"} {
		files, _ := filepath.Glob(filepath.Join(regtest.TestdataDir(), "imagetransmit", v, "*_full_*_meta.yaml"))
		run("", "upload", "-dst=gz", "-img="+files[0])
	}
	files, _ := filepath.Glob(filepath.Join(regtest.TestdataDir(), "imagetransmit", "tar", "*_incr_*_meta.yaml"))
	run("", "upload", "-dst=gz", "-img="+files[0])
	targetHas(t, dst2.Host, want, "it/base:1", "it/app:1", "it/app:2", "it/multi:1", "it/oci:1")

	// transmit mode (image-transmit -src=nj -lst=img.lst -dst=gz): sync
	dst3 := regtest.StartDistribution(t, regtest.DistributionOptions{})
	write("cfg.yaml", strings.Replace(cfg, dstHost, dstName+":"+strings.Split(dst3.Host, ":")[1], 1))
	run("", "sync", "-src=nj", "-lst=img.lst", "-dst=gz")
	targetHas(t, dst3.Host, want, "it/base:1", "it/app:1")

	robot.mu.Lock()
	defer robot.mu.Unlock()
	if robot.bad > 0 || len(robot.messages) != 3+3+4+1 {
		t.Fatalf("dingtalk: %d messages, %d badly signed; want 11 signed", len(robot.messages), robot.bad)
	}
	if !strings.Contains(robot.messages[0], "meta: "+full) || !strings.Contains(robot.messages[3], "uploaded") {
		t.Errorf("messages do not say what moved:\n%s\n%s", robot.messages[0], robot.messages[3])
	}
}

// seed pushes the image-transmit fixtures into a registry.
func seed(t *testing.T, host string) {
	t.Helper()
	reg, err := registry.New(registry.Options{Registries: []string{host}})
	if err != nil {
		t.Fatal(err)
	}
	for name, img := range regtest.ImageTransmitFixtures() {
		r, _ := ref.New(host + "/" + name)
		if err := regtest.Push(context.Background(), reg, r, img); err != nil {
			t.Fatal(err)
		}
	}
}

// targetHas checks each image's digest at host under yyyy/ (image-transmit's
// repository: yyyy replaced the namespace it/).
func targetHas(t *testing.T, host string, want map[string]digest.Digest, names ...string) {
	t.Helper()
	reg, _ := registry.New(registry.Options{Registries: []string{host}})
	for _, n := range names {
		r, _ := ref.New(host + "/yyyy/" + strings.TrimPrefix(n, "it/"))
		m, err := reg.ManifestGet(context.Background(), r)
		if err != nil {
			t.Errorf("%s: %v", r.CommonName(), err)
			continue
		}
		got := m.GetDescriptor().Digest
		if ix, ok := m.(manifest.Indexer); ok && got != want[n] {
			// ferry's --platform keeps an index of that child (a filtered
			// index); image-transmit puts the child under the tag
			if ds, _ := ix.GetManifestList(); len(ds) == 1 {
				got = ds[0].Digest
			}
		}
		if got != want[n] {
			t.Errorf("%s: %s, the source has %s", r.CommonName(), got, want[n])
		}
	}
}

// TestPlainHTTPRegistries: http:// and --plain-http reach a plain-HTTP
// registry on a name that is not loopback; without either, the first
// request fails at once, in one line naming the registry, the cause and
// the fix; --insecure never breaks plain HTTP.
func TestPlainHTTPRegistries(t *testing.T) {
	src := regtest.StartDistribution(t, regtest.DistributionOptions{})
	name := fmt.Sprintf("plain-%d.ferry.test", os.Getpid())
	hostsEntry(t, name)
	host := name + ":" + strings.Split(src.Host, ":")[1]
	seed(t, src.Host)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "cfg.yaml")
	for _, tc := range []struct {
		name string
		args []string
		cfg  string
	}{
		{"url image", []string{"save", "http://" + host + "/it/base:1"}, ""},
		{"cfg registry url", []string{"save", host + "/it/base:1"}, "registries:\n  - registry: \"http://" + host + "\"\n"},
		{"src url", []string{"save", "--src", "http://" + host, "it/base:1"}, ""},
		{"list line", []string{"save", "--list", "-"}, ""},
		{"plain-http flag", []string{"--plain-http", "save", host + "/it/base:1"}, ""},
		{"insecure", []string{"save", "--insecure", host + "/it/base:1"}, ""},
		{"sync target url", []string{"sync", "--target", "http://" + host + "/copy", "http://" + host + "/it/base:1"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--no-progress"}, tc.args...)
			if tc.cfg != "" {
				_ = os.WriteFile(cfgFile, []byte(tc.cfg), 0o644)
				args = append([]string{"--config", cfgFile}, args...)
			}
			if tc.args[0] == "save" || tc.args[1] == "save" {
				args = append(args, "-o", t.TempDir())
			}
			code, stdout, stderr := ferry(t, "http://"+host+"/it/base:1\n", args...)
			if code != 0 {
				t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
			}
		})
	}
	// without the scheme: TLS, refused at the first request, no retries
	start := time.Now()
	code, _, stderr := ferry(t, "", "save", host+"/it/base:1", "-o", t.TempDir())
	took := time.Since(start)
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if code != exitFailure || !strings.Contains(lines[0], "registry "+host+": TLS handshake failed: it speaks plain HTTP") || !strings.Contains(lines[0], "http://") {
		t.Fatalf("exit %d, %v:\n%s", code, took, stderr)
	}
	if took > 5*time.Second { // a retry would take seconds; the ping takes milliseconds
		t.Errorf("took %v to fail", took)
	}
	t.Logf("failed in %v: %s", took, lines[0])
}

// TestImageTransmitToDocker: `ferry upload -dst=docker -img=META` loads an
// image-transmit bundle into a Docker engine; each image's id is its
// config digest.
func TestImageTransmitToDocker(t *testing.T) {
	d := regtest.StartDockerd(t)
	t.Setenv("DOCKER_HOST", "unix://"+d.Socket)
	for _, v := range []string{"tar", "squashfs"} {
		files, _ := filepath.Glob(filepath.Join(regtest.TestdataDir(), "imagetransmit", v, "*_full_*_meta.yaml"))
		if code, stdout, stderr := ferry(t, "", "--no-progress", "upload", "-dst=docker", "-img="+files[0], "--platform", "linux/amd64"); code != 0 {
			t.Fatalf("%s: exit %d\n%s\n%s", v, code, stdout, stderr)
		}
	}
	resp, err := d.Client().Get("http://docker/images/json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var imgs []struct {
		ID       string `json:"Id"`
		RepoTags []string
	}
	_ = json.NewDecoder(resp.Body).Decode(&imgs)
	ids := map[string]string{}
	for _, im := range imgs {
		for _, tag := range im.RepoTags {
			ids[tag] = im.ID
		}
	}
	for name, img := range regtest.ImageTransmitFixtures() {
		if name == "it/app:2" {
			continue // only in the increment
		}
		if len(img.Children) > 0 {
			img = img.Children[0]
		}
		if want := img.Blobs[0].Desc.Digest.String(); ids[name] != want {
			t.Errorf("%s in the engine: id %q, want its config %s (engine has %v)", name, ids[name], want, ids)
		}
	}
	// what the engine's docker save writes, uploaded by ferry: a new
	// manifest over the same config (its layers as docker keeps them)
	saved := filepath.Join(t.TempDir(), "saved.tar")
	dockerSave(t, d, saved, "it/base:1", "it/app:1")
	host, stop := regtest.Olareg()
	defer stop()
	if code, stdout, stderr := ferry(t, "", "--no-progress", "upload", saved, "--target", host+"/mirror"); code != 0 {
		t.Fatalf("upload of docker save's archive: %d\n%s\n%s", code, stdout, stderr)
	}
	for _, name := range []string{"it/base:1", "it/app:1"} {
		m := manifestAt(t, host, "mirror/"+name)
		c, _ := m.(manifest.Imager).GetConfig()
		if want := regtest.ImageTransmitFixtures()[name].Blobs[0].Desc.Digest; c.Digest != want {
			t.Errorf("%s from docker save: config %s, want %s", name, c.Digest, want)
		}
	}
}
