package main

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
)

// buildFerry builds the ferry binary for tests that need a real process.
func buildFerry(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ferry")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// targetClient is a registry client for a loopback registry.
func targetClient(t *testing.T, host string) *registry.Registry {
	t.Helper()
	reg, err := registry.New(registry.Options{Registries: []string{host}})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// interrupted runs the binary and sends sig after delay; it returns the
// exit code (0 when the command finished first).
func interrupted(t *testing.T, bin string, sig syscall.Signal, delay time.Duration, args ...string) int {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(delay)
	_ = cmd.Process.Signal(sig)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("ferry %v did not stop within 30 s of %v", args, sig)
	}
	return cmd.ProcessState.ExitCode()
}

// TestInterrupts sends SIGINT or SIGTERM at random moments of a save and
// of an upload (10 times each): nothing that looks complete is left (no
// meta file, no part without .partial, .partial parts only next to their
// resume journal), an upload leaves no tag whose image is incomplete, and
// a re-run finishes with the source's digests.
func TestInterrupts(t *testing.T) {
	if testing.Short() {
		t.Skip("needs docker-registry")
	}
	bin := buildFerry(t)
	src := regtest.StartDistribution(t, regtest.DistributionOptions{})
	reg := targetClient(t, src.Host)
	img := regtest.NewBigImage(42, 4, 6<<20) // 24 MiB in 4 layers
	sref, _ := ref.New(src.Host + "/big/img:1")
	if err := regtest.Push(context.Background(), reg, sref, img); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	// --fresh: every save starts over (resuming is TestKillResume's)
	save := []string{"--no-progress", "-q", "save", "--fresh", "--compress", "zstd", "-o", out, sref.CommonName()}

	// how long a whole save takes here, to spread the signals over it
	start := time.Now()
	if code := interrupted(t, bin, syscall.SIGCONT, 0, save...); code != 0 {
		t.Fatalf("clean save: exit %d", code)
	}
	span := time.Since(start)
	_ = os.RemoveAll(out)
	_ = os.Mkdir(out, 0o755)

	rnd := rand.New(rand.NewPCG(1, 2))
	sigs := []syscall.Signal{syscall.SIGINT, syscall.SIGTERM}
	cut := 0
	for i := range 10 {
		delay := time.Duration(rnd.Int64N(int64(span)))
		code := interrupted(t, bin, sigs[i%2], delay, save...)
		if code != 0 {
			cut++
		}
		metas, _ := filepath.Glob(filepath.Join(out, "*_meta.yaml"))
		parts, _ := filepath.Glob(filepath.Join(out, "*.tar*"))
		partial, _ := filepath.Glob(filepath.Join(out, "*.tar*.partial"))
		journals, _ := filepath.Glob(filepath.Join(out, ".*.resume"))
		if code != 0 && (len(metas) != 0 || len(parts) != len(partial) || (len(partial) > 0 && len(journals) != 1)) {
			t.Fatalf("save %d (%v after %v, exit %d) left %v %v %v", i, sigs[i%2], delay, code, metas, parts, journals)
		}
		if code == 0 {
			// it finished before the signal: a complete bundle
			if c, _, stderr := ferry(t, "", "verify", metas[0]); c != 0 {
				t.Fatalf("save %d finished but does not verify: %s", i, stderr)
			}
			_ = os.RemoveAll(out)
			_ = os.Mkdir(out, 0o755)
		}
	}
	t.Logf("%d of 10 saves interrupted (a save takes %v here)", cut, span)
	if cut < 3 {
		t.Fatalf("only %d of 10 saves were interrupted: the test did not test", cut)
	}
	if code := interrupted(t, bin, syscall.SIGCONT, 0, save...); code != 0 {
		t.Fatalf("save after the interrupts: exit %d", code)
	}
	metas, _ := filepath.Glob(filepath.Join(out, "*_meta.yaml"))
	if len(metas) != 1 {
		t.Fatalf("meta files %v", metas)
	}

	upload := func(host string) []string {
		return []string{"--no-progress", "-q", "upload", metas[0], "--target", host + "/m"}
	}
	clean := regtest.StartDistribution(t, regtest.DistributionOptions{})
	start = time.Now()
	if code := interrupted(t, bin, syscall.SIGCONT, 0, upload(clean.Host)...); code != 0 {
		t.Fatalf("clean upload: exit %d", code)
	}
	span = time.Since(start)
	cut = 0
	var last *regtest.Distribution
	for i := range 10 {
		// a fresh target each time, so that every upload has all to do
		last = regtest.StartDistribution(t, regtest.DistributionOptions{})
		treg := targetClient(t, last.Host)
		tgt, _ := ref.New(last.Host + "/m/big/img:1")
		delay := time.Duration(rnd.Int64N(int64(span)))
		code := interrupted(t, bin, sigs[i%2], delay, upload(last.Host)...)
		if code != 0 {
			cut++
		}
		// a tag at the target must point at a complete image
		if m, err := treg.ManifestGet(context.Background(), tgt); err == nil {
			if m.GetDescriptor().Digest != img.Digest() {
				t.Fatalf("upload %d: tag points at %s, want %s", i, m.GetDescriptor().Digest, img.Digest())
			}
			for _, b := range img.Big {
				if ok, err := treg.BlobExists(context.Background(), tgt, b.Desc); err != nil || !ok {
					t.Fatalf("upload %d (exit %d): tagged image lacks blob %s", i, code, b.Desc.Digest)
				}
			}
		} else if code == 0 {
			t.Fatalf("upload %d exited 0 but the tag is missing: %v", i, err)
		}
		if i < 9 {
			last.Stop()
		}
	}
	t.Logf("%d of 10 uploads interrupted (an upload takes %v here)", cut, span)
	if cut < 3 {
		t.Fatalf("only %d of 10 uploads were interrupted: the test did not test", cut)
	}
	// the re-run into the last, interrupted target finishes the job
	code, stdout, stderr := ferry(t, "", "--no-progress", "upload", metas[0], "--target", last.Host+"/m")
	if code != 0 {
		t.Fatalf("upload after the interrupts: %d\n%s\n%s", code, stdout, stderr)
	}
	tgt, _ := ref.New(last.Host + "/m/big/img:1")
	m, err := targetClient(t, last.Host).ManifestGet(context.Background(), tgt)
	if err != nil || m.GetDescriptor().Digest != img.Digest() {
		t.Fatalf("target has %v (%v), want %s", m, err, img.Digest())
	}
	if strings.Contains(stdout+stderr, "panic") {
		t.Fatal(stdout + stderr)
	}
}
