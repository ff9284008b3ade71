package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/registry/regtest"
)

// content is what a resumed and a clean save must share: images, stored
// manifests and blobs with their sizes, media types and repositories.
func content(t *testing.T, metaPath string) string {
	t.Helper()
	m, err := meta.Load(metaPath)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, img := range m.Images {
		lines = append(lines, fmt.Sprintf("image %s %s %s", img.Source, img.Repository+":"+img.Tag, img.Digest))
	}
	for _, mf := range m.Manifests {
		lines = append(lines, fmt.Sprintf("manifest %s %s %d %v %s", mf.Digest, mf.MediaType, mf.Size, mf.Repos, mf.Platform))
	}
	for _, b := range m.Blobs {
		lines = append(lines, fmt.Sprintf("blob %s %s %d %v", b.Digest, b.MediaType, b.Size, b.Repos))
	}
	lines = append(lines, fmt.Sprintf("type %s partial %v failed %v bases %v compression %s", m.Type, m.Partial, m.Failed, m.Bases, m.Compression))
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// killed runs the binary and kills it (SIGKILL) after delay unless it
// finished before (interrupted always waits the delay out); it reports
// whether it was killed.
func killed(t *testing.T, bin string, delay time.Duration, args ...string) bool {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ferry %v: %v", args, err)
		}
		return false
	case <-time.After(delay):
		_ = cmd.Process.Kill()
		<-done
		return true
	}
}

// TestKillResume kills a save (kill -9) at random moments, checks that
// nothing looks complete, then runs the same save again: it resumes, asks
// the source (through a counting proxy) only for the blobs it lacks, each
// once, verifies, and carries what a clean save carries.
func TestKillResume(t *testing.T) {
	if testing.Short() {
		t.Skip("needs docker-registry")
	}
	bin := buildFerry(t)
	src := regtest.StartDistribution(t, regtest.DistributionOptions{})
	reg := targetClient(t, src.Host)
	var images []string
	for i := range 3 {
		r, _ := ref.New(fmt.Sprintf("%s/big/img%d:1", src.Host, i))
		if err := regtest.Push(context.Background(), reg, r, regtest.NewBigImage(uint64(100+10*i), 6, 1<<20)); err != nil {
			t.Fatal(err)
		}
	}
	proxy := regtest.StartFaultProxy(t, src.Host)
	for i := range 3 {
		images = append(images, fmt.Sprintf("%s/big/img%d:1", proxy.Host, i))
	}
	dir := t.TempDir()
	save := func(out string, extra ...string) []string {
		return append(append([]string{"--no-progress", "save", "--compress", "zstd", "--jobs", "2", "--mkdir", "-o", out}, extra...), images...)
	}
	blobGets := func() map[string]int {
		n := map[string]int{}
		for _, r := range proxy.Requests(`/blobs/sha256:`) {
			if r.Method == "GET" {
				n[r.Path[strings.LastIndex(r.Path, "/")+1:]]++
			}
		}
		return n
	}

	cleanOut := filepath.Join(dir, "clean")
	start := time.Now()
	code, stdout, stderr := ferry(t, "", save(cleanOut)...)
	if code != 0 {
		t.Fatalf("clean save: %d\n%s", code, stderr)
	}
	span := time.Since(start)
	clean := strings.TrimSpace(stdout)
	total := len(blobGets())
	// how long the binary takes for the whole save, to spread the kills
	start = time.Now()
	if killed(t, bin, time.Minute, save(filepath.Join(dir, "timing"))...) {
		t.Fatal("a save took a minute")
	}
	span = time.Since(start)
	t.Logf("a clean save of %d blobs takes %v", total, span)

	// Nothing to resume: --resume fails with exit 2.
	code, _, stderr = ferry(t, "", "--no-progress", "save", "--resume", filepath.Join(dir, "clean"), images[0])
	if code != exitUsage || !strings.Contains(stderr, "no interrupted save") {
		t.Fatalf("--resume with nothing to resume: exit %d\n%s", code, stderr)
	}

	rnd := rand.New(rand.NewPCG(3, 4))
	keptRe := regexp.MustCompile(`resuming (\S+): (\d+) blobs kept`)
	resumedSome := 0
	lastResumed := ""
	for i := 0; resumedSome < 3 && i < 12; i++ {
		out := filepath.Join(dir, fmt.Sprintf("out%d", i))
		var kills int
		for range 1 + i%2 { // one kill, or two in a row
			delay := span/10 + time.Duration(rnd.Int64N(int64(span*8/10)))
			if !killed(t, bin, delay, save(out)...) {
				_ = os.RemoveAll(out) // it finished first: start over
				kills = 0
				continue
			}
			metas, _ := filepath.Glob(filepath.Join(out, "*_meta.yaml"))
			if len(metas) > 0 { // killed after its meta file was written: complete
				if code, _, stderr := ferry(t, "", "verify", metas[0]); code != 0 {
					t.Fatalf("run %d: a killed save left a meta file that does not verify: %s", i, stderr)
				}
				_ = os.RemoveAll(out)
				kills = 0
				continue
			}
			kills++
			// parts have final names only while the commit renames them
			// (the journal records it: a resume names them back)
			parts, _ := filepath.Glob(filepath.Join(out, "*.tar*"))
			partial, _ := filepath.Glob(filepath.Join(out, "*.partial"))
			if len(parts) != len(partial) {
				t.Logf("run %d: killed while committing: %v", i, parts)
			}
		}
		if kills == 0 {
			t.Logf("run %d finished before the kill", i)
			continue
		}
		journals, _ := filepath.Glob(filepath.Join(out, ".*.resume"))
		if partial, _ := filepath.Glob(filepath.Join(out, "*.partial")); len(journals) > 1 || (len(partial) > 0 && len(journals) == 0) {
			t.Fatalf("run %d: journals %v, parts %v", i, journals, partial)
		}
		if len(journals) == 1 {
			if code, _, stderr := ferry(t, "", "verify", journals[0]); code == 0 {
				t.Fatalf("verify accepts the journal:\n%s", stderr)
			}
		}
		files, _ := os.ReadDir(out)
		t.Logf("run %d: after %d kill(s): %d files", i, kills, len(files))
		proxy.Reset()
		code, stdout, stderr := ferry(t, "", save(out)...)
		if code != 0 {
			t.Fatalf("run %d: resumed save: exit %d\n%s", i, code, stderr)
		}
		kept := 0
		if m := keptRe.FindStringSubmatch(stderr); m != nil {
			kept, _ = strconv.Atoi(m[2])
			resumedSome++
		}
		gets := blobGets()
		for d, n := range gets {
			if n != 1 {
				t.Errorf("run %d: blob %s fetched %d times", i, d, n)
			}
		}
		if len(gets)+kept != total {
			t.Errorf("run %d: %d blobs fetched + %d kept, a clean save fetches %d\n%s", i, len(gets), kept, total, stderr)
		}
		metaPath := strings.TrimSpace(stdout)
		if kept > 0 {
			lastResumed = metaPath
		}
		if code, _, stderr := ferry(t, "", "verify", metaPath); code != 0 {
			t.Fatalf("run %d: verify: %s", i, stderr)
		}
		if a, b := content(t, clean), content(t, metaPath); a != b {
			t.Errorf("run %d: resumed bundle differs from a clean one:\n%s\n---\n%s", i, a, b)
		}
		if left, _ := filepath.Glob(filepath.Join(out, ".*")); len(left) > 0 {
			t.Errorf("run %d: left %v", i, left)
		}
		t.Logf("run %d: %d kill(s), %d blobs kept, %d fetched", i, kills, kept, len(gets))
	}
	if resumedSome == 0 {
		t.Fatal("no killed save had kept a blob: the test did not test")
	}

	// Judged from outside: the resumed bundle uploaded, crane finds the
	// source's digests at the target.
	crane := regtest.NeedGoBinary(t, "crane", "github.com/google/go-containerregistry/cmd/crane@v0.22.1")
	dst := regtest.StartDistribution(t, regtest.DistributionOptions{})
	if code, _, stderr := ferry(t, "", "--no-progress", "upload", lastResumed, "--target", dst.Host+"/m"); code != 0 {
		t.Fatalf("upload of a resumed bundle: %s", stderr)
	}
	for i := range images {
		digestOf := func(r string) string {
			cmd := exec.Command(crane, "digest", "--insecure", r)
			cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("crane digest %s: %v\n%s", r, err, out)
			}
			return strings.TrimSpace(string(out))
		}
		want := digestOf(fmt.Sprintf("%s/big/img%d:1", src.Host, i))
		if got := digestOf(fmt.Sprintf("%s/m/big/img%d:1", dst.Host, i)); got != want {
			t.Errorf("image %d at the target: %s, want %s", i, got, want)
		}
	}

	// An interrupted save of other images is not resumed: --resume refuses
	// naming it, a plain save starts a new bundle and leaves it alone.
	out := filepath.Join(dir, "other")
	for !killed(t, bin, span/2, save(out)...) {
		_ = os.RemoveAll(out)
	}
	code, _, stderr = ferry(t, "", "--no-progress", "save", "--resume", out, "--compress", "zstd", "--jobs", "2", images[0])
	if code != exitUsage || !strings.Contains(stderr, "other images or options") {
		t.Fatalf("--resume with other images: exit %d\n%s", code, stderr)
	}
	code, _, stderr = ferry(t, "", "--no-progress", "save", "-o", out, "--compress", "zstd", "--jobs", "2", images[0])
	if code != 0 || strings.Contains(stderr, "resuming") {
		t.Fatalf("a save of other images: exit %d\n%s", code, stderr)
	}
	if journals, _ := filepath.Glob(filepath.Join(out, ".*.resume")); len(journals) != 1 {
		t.Fatalf("the other save's journal: %v", journals)
	}
	// --fresh discards it.
	code, _, stderr = ferry(t, "", append(save(out), "--fresh")...)
	if code != 0 || strings.Contains(stderr, "resuming") {
		t.Fatalf("--fresh: exit %d\n%s", code, stderr)
	}
	if left, _ := filepath.Glob(filepath.Join(out, ".*")); len(left) > 0 {
		t.Errorf("--fresh left %v", left)
	}
}
