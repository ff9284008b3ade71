package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
)

// olaregPair starts two in-memory registries, src with team/app:1.
func olaregPair(t *testing.T) (src, dst string, img *regtest.Image) {
	t.Helper()
	src, stop := regtest.Olareg()
	t.Cleanup(stop)
	dst, stop = regtest.Olareg()
	t.Cleanup(stop)
	reg, err := registry.New(registry.Options{Registries: []string{src, dst}})
	if err != nil {
		t.Fatal(err)
	}
	img = regtest.Fixtures()["team/app:1"]
	r, _ := ref.New(src + "/team/app:1")
	if err := regtest.Push(context.Background(), reg, r, img); err != nil {
		t.Fatal(err)
	}
	return src, dst, img
}

// TestJSONResults: with --json, stdout is exactly one JSON object.
func TestJSONResults(t *testing.T) {
	src, dst, img := olaregPair(t)
	decode := func(what, stdout string, v any) {
		t.Helper()
		if err := json.Unmarshal([]byte(stdout), v); err != nil {
			t.Fatalf("%s: stdout is not one JSON object: %v\n%s", what, err, stdout)
		}
	}
	code, stdout, stderr := ferry(t, "", "--no-progress", "save", "--json", src+"/team/app:1", "-o", t.TempDir())
	if code != 0 {
		t.Fatalf("save: %d %s", code, stderr)
	}
	var s saveJSON
	decode("save", stdout, &s)
	if !s.OK || s.Meta == "" || s.Images != 1 || s.Blobs != 3 || len(s.Failures) != 0 {
		t.Errorf("save: %+v", s)
	}
	code, stdout, _ = ferry(t, "", "verify", "--json", s.Meta)
	var v verifyJSON
	decode("verify", stdout, &v)
	if code != 0 || !v.OK || v.Blobs != 3 || v.ID != s.ID {
		t.Errorf("verify: %d %+v", code, v)
	}
	code, stdout, _ = ferry(t, "", "inspect", "--json", s.Meta)
	var in inspectJSON
	decode("inspect", stdout, &in)
	if code != 0 || len(in.Images) != 1 || in.Images[0].Digest != img.Digest().String() || len(in.Parts) == 0 {
		t.Errorf("inspect: %d %+v", code, in)
	}
	code, stdout, stderr = ferry(t, "", "--no-progress", "upload", "--json", s.Meta, "--target", dst+"/m")
	var u uploadJSON
	decode("upload", stdout, &u)
	if code != 0 || !u.OK || u.Pushed != 3 || u.Images != 1 {
		t.Errorf("upload: %d %+v\n%s", code, u, stderr)
	}
	// a failed save still prints its object
	code, stdout, _ = ferry(t, "", "--no-progress", "save", "--json", "--retries", "0", src+"/team/nope:1", "-o", t.TempDir())
	var f saveJSON
	decode("failed save", stdout, &f)
	if code != exitFailure || f.OK || len(f.Failures) != 1 {
		t.Errorf("failed save: %d %+v", code, f)
	}
}

// TestSaveWatch: round 1 is a full bundle, a round without changes leaves
// no bundle, a round after a changed image is an increment of its new
// blobs only.
func TestSaveWatch(t *testing.T) {
	src, stop := regtest.Olareg()
	defer stop()
	reg, err := registry.New(registry.Options{Registries: []string{src}})
	if err != nil {
		t.Fatal(err)
	}
	fx := regtest.Fixtures()
	r, _ := ref.New(src + "/team/app:1")
	if err := regtest.Push(context.Background(), reg, r, fx["team/app:1"]); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(dir, "rounds.jsonl")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var stderr strings.Builder
	go func() {
		done <- run(ctx, []string{"ferry", "--no-progress", "save", "--watch", "1s", "--report", report, "-o", out, src + "/team/app:1"}, strings.NewReader(""), io.Discard, &stderr)
	}()
	rounds := func() []saveRound {
		b, _ := os.ReadFile(report)
		var rs []saveRound
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var r saveRound
			if json.Unmarshal([]byte(l), &r) == nil {
				rs = append(rs, r)
			}
		}
		return rs
	}
	wait := func(ok func([]saveRound) bool) []saveRound {
		deadline := time.Now().Add(30 * time.Second)
		for {
			if rs := rounds(); ok(rs) {
				return rs
			}
			if time.Now().After(deadline) {
				t.Fatalf("report %v; stderr:\n%s", rounds(), stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	rs := wait(func(rs []saveRound) bool { return len(rs) >= 2 })
	if !strings.Contains(rs[0].ID, "_full_") || rs[0].Blobs != 3 || !rs[1].Unchanged {
		t.Fatalf("rounds %+v", rs)
	}
	changed := regtest.NewImage("linux/amd64", regtest.RootfsLayer("base", nil), regtest.Layer(map[string]string{"new.txt": "x"}))
	if err := regtest.Push(context.Background(), reg, r, changed); err != nil {
		t.Fatal(err)
	}
	rs = wait(func(rs []saveRound) bool { return len(rs) > 0 && rs[len(rs)-1].Blobs > 0 && len(rs) > 2 })
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	inc := rs[len(rs)-1]
	if !strings.Contains(inc.ID, "_incr_") || inc.Blobs != 2 || inc.Skipped != 1 {
		t.Errorf("increment round %+v", inc)
	}
	metas, _ := filepath.Glob(filepath.Join(out, "*_meta.yaml"))
	if len(metas) != 2 {
		t.Errorf("meta files %v: want the full and one increment", metas)
	}
}

// TestSaveTagSelection: save expands a semver selection with --latest.
func TestSaveTagSelection(t *testing.T) {
	src, stop := regtest.Olareg()
	defer stop()
	reg, err := registry.New(registry.Options{Registries: []string{src}})
	if err != nil {
		t.Fatal(err)
	}
	for tag, img := range regtest.Versioned() {
		r, _ := ref.New(src + "/team/versions:" + tag)
		if err := regtest.Push(context.Background(), reg, r, img); err != nil {
			t.Fatal(err)
		}
	}
	code, stdout, stderr := ferry(t, "", "--no-progress", "save", "--json", "--latest", "2", src+"/team/versions:>=1.0.0 -> mirror/v", "-o", t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var s saveJSON
	if err := json.Unmarshal([]byte(stdout), &s); err != nil {
		t.Fatal(err)
	}
	m, err := meta.Load(s.Meta)
	if err != nil {
		t.Fatal(err)
	}
	var tags []string
	for _, img := range m.Images {
		tags = append(tags, img.Repository+":"+img.Tag)
	}
	slices.Sort(tags)
	if strings.Join(tags, " ") != "mirror/v:v1.10.0 mirror/v:v1.2.0" {
		t.Errorf("saved %v", tags)
	}
}
