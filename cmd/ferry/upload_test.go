package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/registry/regtest"
)

// TestUploadKeepGoingCLI: a target (docker-registry behind a FaultProxy)
// refuses the push of one blob that only team/tools needs. With
// --keep-going the other images land with their tags, team/tools gets
// none, and upload exits 1 listing it with the cause (also in --json);
// without it the upload stops, with no tag pushed.
func TestUploadKeepGoingCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("needs docker-registry")
	}
	names := []string{"team/app:1", "team/tools:1", "library/base:1"}
	src := olaregWith(t, names...)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "cfg.yaml")
	_ = os.WriteFile(cfg, []byte("dockerConfig: false\n"), 0o644)
	var args []string
	for _, n := range names {
		args = append(args, src+"/"+n)
	}
	code, stdout, stderr := ferry(t, "", append([]string{"--config", cfg, "--no-progress", "save", "-o", dir}, args...)...)
	if code != 0 {
		t.Fatalf("save: %d\n%s", code, stderr)
	}
	metaPath := strings.TrimSpace(stdout)
	m, err := meta.Load(metaPath)
	if err != nil {
		t.Fatal(err)
	}
	var victim meta.Blob
	for _, b := range m.Blobs {
		if slices.Equal(b.Repos, []string{"team/tools"}) {
			victim = b
		}
	}
	if victim.Digest == "" {
		t.Fatal("no blob only team/tools needs")
	}
	failBlob := regtest.Fault{Method: http.MethodPut, Path: "/blobs/uploads/", Action: func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if strings.Contains(r.URL.RawQuery, victim.Digest.Encoded()) {
			regtest.Status(500, "")(w, r, next)
			return
		}
		next.ServeHTTP(w, r)
	}}

	t.Run("keep going", func(t *testing.T) {
		dst := regtest.StartDistribution(t, regtest.DistributionOptions{})
		p := regtest.StartFaultProxy(t, dst.Host)
		p.Add(failBlob)
		code, stdout, stderr := ferry(t, "", "--config", cfg, "--no-progress", "upload", metaPath, "--target", p.Host, "--retries", "0", "--keep-going", "--json")
		if code != 1 {
			t.Fatalf("exit %d, want 1\n%s", code, stderr)
		}
		var j uploadJSON
		if err := json.Unmarshal([]byte(stdout), &j); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, stdout)
		}
		if j.OK || j.Images != 2 || len(j.Failures) != 1 || j.Failures[0].Image != src+"/team/tools:1" || !strings.Contains(j.Failures[0].Error, victim.Digest.String()) {
			t.Errorf("JSON %+v, want 2 images pushed and team/tools failed naming %s", j, victim.Digest)
		}
		if !strings.Contains(stderr, "FAILED: 1 of 3 image(s), not tagged:\n  "+src+"/team/tools:1: ") || !strings.Contains(stderr, "uploaded the other 2 image(s)") {
			t.Errorf("stderr lacks the summary:\n%s", stderr)
		}
		for _, n := range names {
			repo, tag, _ := strings.Cut(n, ":")
			tags := regtest.Tags(t, dst, repo)
			switch {
			case repo == "team/tools" && len(tags) != 0:
				t.Errorf("%s failed but has tags %v", repo, tags)
			case repo != "team/tools" && !slices.Equal(tags, []string{tag}):
				t.Errorf("%s: tags %v, want [%s]", repo, tags, tag)
			}
		}
	})

	t.Run("stops without keep-going", func(t *testing.T) {
		dst := regtest.StartDistribution(t, regtest.DistributionOptions{})
		p := regtest.StartFaultProxy(t, dst.Host)
		p.Add(failBlob)
		code, _, stderr := ferry(t, "", "--config", cfg, "--no-progress", "upload", metaPath, "--target", p.Host, "--retries", "0")
		if code != 1 || !strings.Contains(stderr, victim.Digest.String()) || strings.Contains(stderr, "FAILED:") {
			t.Fatalf("exit %d, want 1 with the first failure only\n%s", code, stderr)
		}
		for _, n := range names {
			repo, _, _ := strings.Cut(n, ":")
			if tags := regtest.Tags(t, dst, repo); len(tags) != 0 {
				t.Errorf("%s: tags %v after an upload that stopped", repo, tags)
			}
		}
	})
}
