package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ferryCtx is ferry with a deadline (a serve that starts would run on).
func ferryCtx(t *testing.T, d time.Duration, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var out, errOut bytes.Buffer
	code := run(ctx, append([]string{"ferry"}, args...), strings.NewReader(""), &out, &errOut)
	return code, errOut.String()
}

// TestServeExportCheckSignatures: serve and export check meta signatures
// as verify and upload do, every meta file given (an increment's bases
// too): with --key, or cfg verifyKey and requireSignature, an unsigned
// base and a meta file edited after signing (a tag renamed) are refused
// with exit 1 before anything is served or written.
func TestServeExportCheckSignatures(t *testing.T) {
	dir := t.TempDir()
	key, pub := sshKey(t, dir, "ferry")
	host := olaregWith(t, "library/base:1", "team/app:1")
	out := filepath.Join(dir, "out")
	code, stdout, stderr := ferry(t, "", "--no-progress", "save", "--mkdir", "-o", out, host+"/library/base:1")
	if code != 0 {
		t.Fatalf("save: %d\n%s", code, stderr)
	}
	base := strings.TrimSpace(stdout) // unsigned
	code, stdout, stderr = ferry(t, "", "--no-progress", "save", "-o", out, "--prefix", "day2", "--sign-key", key, "--inc", base, host+"/team/app:1")
	if code != 0 {
		t.Fatalf("save: %d\n%s", code, stderr)
	}
	incr := strings.TrimSpace(stdout) // signed
	cfg := filepath.Join(dir, "cfg.yaml")
	_ = os.WriteFile(cfg, []byte("verifyKey: "+pub+"\nrequireSignature: true\n"), 0o644)

	refused := func(what string, args ...string) {
		t.Helper()
		o := filepath.Join(t.TempDir(), "x.tar")
		args = append(args, incr, base)
		for i, a := range args {
			if a == "OUT" {
				args[i] = o
			}
		}
		code, stderr := ferryCtx(t, 30*time.Second, args...)
		if code != exitFailure || !strings.Contains(stderr, "signature") {
			t.Errorf("%s: exit %d, want 1 naming the signature:\n%s", what, code, stderr)
		}
		if _, err := os.Stat(o); err == nil {
			t.Errorf("%s: a refused export wrote its output", what)
		}
	}
	refused("export --key, unsigned base", "--no-progress", "export", "--key", pub, "--all", "-o", "OUT")
	refused("serve --key, unsigned base", "--no-progress", "serve", "--key", pub, "--addr", "127.0.0.1:0")
	refused("export with cfg, unsigned base", "--no-progress", "--config", cfg, "export", "--all", "-o", "OUT")
	refused("serve with cfg, unsigned base", "--no-progress", "--config", cfg, "serve", "--addr", "127.0.0.1:0")

	// both signed; then the increment edited after signing
	if code, _, stderr := ferry(t, "", "--no-progress", "save", "-o", out, "--prefix", "base2", "--sign-key", key, host+"/library/base:1"); code != 0 {
		t.Fatalf("save: %s", stderr)
	}
	bases, _ := filepath.Glob(filepath.Join(out, "base2_*_meta.yaml"))
	base = bases[0]
	code, stdout, stderr = ferry(t, "", "--no-progress", "save", "-o", out, "--prefix", "day3", "--sign-key", key, "--inc", base, host+"/team/app:1")
	if code != 0 {
		t.Fatalf("save: %d\n%s", code, stderr)
	}
	incr = strings.TrimSpace(stdout)
	if code, stderr := ferryCtx(t, time.Minute, "--no-progress", "export", "--key", pub, "--all", "-o", filepath.Join(t.TempDir(), "ok.tar"), incr, base); code != 0 {
		t.Fatalf("export of signed bundles: %d\n%s", code, stderr)
	}
	raw, _ := os.ReadFile(incr)
	edited := strings.Replace(string(raw), "tag: \"1\"", "tag: evil-tag", 1)
	if edited == string(raw) {
		t.Fatal("no tag to rename in the meta file")
	}
	_ = os.WriteFile(incr, []byte(edited), 0o644)
	refused("export --key, edited meta", "--no-progress", "export", "--key", pub, "--all", "-o", "OUT")
	refused("serve with cfg, edited meta", "--no-progress", "--config", cfg, "serve", "--addr", "127.0.0.1:0")
}
