package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/registry/regtest"
)

// TestServeAndExport runs ferry serve and ferry export as a user would.
func TestServeAndExport(t *testing.T) {
	src := regtest.NewSource(t)
	dir := t.TempDir()
	full := src.Save(t, dir, bundle.CodecNone, nil, "library/base:1")
	incr := src.Save(t, dir, bundle.CodecZstd, []string{full}, "team/app:1")

	// serve: an increment alone is refused, naming its base
	code, _, stderr := ferry(t, "", "serve", incr, "--addr", "127.0.0.1:0")
	if code != exitFailure || !strings.Contains(stderr, filepath.Base(full)) {
		t.Fatalf("serve of an increment alone: %d %s", code, stderr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr, done := startServe(t, ctx, incr, full, "--namespace", "mirror")
	get(t, http.DefaultClient, "http://"+addr+"/v2/mirror/team/app/manifests/1", src.Images["team/app:1"].Digest().String())
	cancel() // SIGINT/SIGTERM in main
	stopped(t, done)

	// HTTPS
	cert, key, err := regtest.SelfSigned(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pem, _ := os.ReadFile(cert)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	ctx, cancel = context.WithCancel(context.Background())
	addr, done = startServe(t, ctx, full, "--tls-cert", cert, "--tls-key", key)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	get(t, client, "https://"+addr+"/v2/library/base/manifests/1", src.Images["library/base:1"].Digest().String())
	cancel()
	stopped(t, done)

	// export
	out := filepath.Join(t.TempDir(), "app.tar")
	code, stdout, stderr := ferry(t, "", "--no-progress", "export", full, incr, src.Host+"/team/app:1", "--format", "docker-archive", "-o", out)
	if code != exitOK || !strings.Contains(stdout, "exported 1 image(s)") {
		t.Fatalf("export: %d\n%s\n%s", code, stdout, stderr)
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*.partial")); len(left) > 0 {
		t.Fatalf("left %v", left)
	}
	// to stdout: the same bytes
	code, stdout, _ = ferry(t, "", "-q", "export", full, incr, src.Host+"/team/app:1", "-o", "-")
	if b, _ := os.ReadFile(out); code != exitOK || stdout != string(b) {
		t.Fatalf("export to stdout: %d, %d bytes (file: %d)", code, len(stdout), len(b))
	}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"export", full, "library/base:1"}, exitUsage, "--out"},
		{[]string{"export", full, "-o", out}, exitUsage, "--all"},
		{[]string{"export", full, "nope:1", "-o", out}, exitUsage, "no such image"},
		{[]string{"export", full, "--all", "--format", "zip", "-o", out}, exitUsage, "unknown export format"},
		{[]string{"export", incr, "--all", "-o", out}, exitFailure, "base bundle"},
		{[]string{"serve"}, exitUsage, "meta file"},
		{[]string{"serve", full, "--tls-cert", out}, exitUsage, "go together"},
		{[]string{"serve", full, "--namespace", "Bad//NS"}, exitUsage, "invalid namespace"},
	} {
		code, _, stderr := ferry(t, "", tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.msg) {
			t.Errorf("%v: %d %s", tc.args, code, stderr)
		}
	}
}

// startServe runs ferry serve on a free port until ctx ends; it returns
// the address serve printed and its exit code's channel.
func startServe(t *testing.T, ctx context.Context, args ...string) (string, chan int) {
	t.Helper()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"ferry", "-q", "serve", "--addr", "127.0.0.1:0"}, args...), strings.NewReader(""), pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	_, addr, ok := strings.Cut(strings.TrimSpace(line), "://")
	addr, _, _ = strings.Cut(addr, " ")
	if !ok {
		t.Fatalf("serve said %q", line)
	}
	return addr, done
}

func get(t *testing.T, c *http.Client, url, wantDigest string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Docker-Content-Digest") != wantDigest {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, resp.Header)
	}
}

func stopped(t *testing.T, done chan int) {
	t.Helper()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("serve exited %d after a graceful stop", code)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
}
