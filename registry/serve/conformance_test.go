package serve_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/registry/regtest"
)

// TestConformance runs the pull workflow of the OCI distribution-spec
// conformance suite (github.com/opencontainers/distribution-spec/conformance,
// pinned in testdata/conformance/go.mod, fetched through the Go module
// proxy) against ferry serve, with read-only data seeded from a bundle: a
// repository with an index, its children and an image under two tags.
func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the conformance suite")
	}
	goBin := regtest.Need(t, "go")
	bin := filepath.Join(t.TempDir(), "conformance")
	build := exec.Command(goBin, "build", "-o", bin, "github.com/opencontainers/distribution-spec/conformance")
	build.Dir = filepath.Join(regtest.TestdataDir(), "conformance")
	if out, err := build.CombinedOutput(); err != nil {
		if os.Getenv("CI") != "true" && strings.Contains(string(out), "dial tcp") {
			t.Skipf("conformance suite not fetchable: %s", out)
		}
		t.Fatalf("building the conformance suite: %v\n%s", err, out)
	}

	src := regtest.NewSource(t)
	dir := t.TempDir()
	mp := src.Save(t, dir, bundle.CodecZstd, nil, "library/multi:1", "library/base:1 -> library/multi:base", "team/app:1")
	m, _ := meta.Load(mp)
	host := start(t, "", mp)
	var tags, manifests, blobs []string
	seen := map[string]bool{}
	for _, img := range m.Images {
		if img.Repository != "library/multi" {
			continue
		}
		tags = append(tags, img.Tag)
	}
	for _, mf := range m.Manifests {
		if hasRepo(mf.Repos, "library/multi") {
			manifests = append(manifests, mf.Digest.String())
		}
	}
	for _, b := range m.Blobs {
		if hasRepo(b.Repos, "library/multi") && !seen[b.Digest.String()] {
			seen[b.Digest.String()] = true
			blobs = append(blobs, b.Digest.String())
		}
	}
	if len(tags) != 2 || len(manifests) != 5 || len(blobs) < 5 {
		t.Fatalf("seed data: %d tags, %d manifests, %d blobs", len(tags), len(manifests), len(blobs))
	}
	results := t.TempDir()
	cmd := exec.Command(bin)
	cmd.Dir = results
	cmd.Env = append(os.Environ(),
		"OCI_REGISTRY="+host, "OCI_TLS=disabled", "OCI_VERSION=1.1",
		"OCI_REPO1=library/multi", "OCI_REPO2=team/app",
		"OCI_RESULTS_DIR="+results, "OCI_LOG=warn",
		"OCI_API_PULL=true", "OCI_API_PUSH=false",
		"OCI_API_BLOBS_DELETE=false", "OCI_API_MANIFESTS_DELETE=false", "OCI_API_TAGS_DELETE=false",
		// With read-only data the suite does not keep the manifest response
		// it checks for Docker-Content-Digest (it always finds none), so
		// that check stays off; TestAPI checks the header.
		"OCI_API_BLOBS_DIGEST_HEADER=true", "OCI_API_MANIFESTS_DIGEST_HEADER=false",
		"OCI_API_TAGS_LIST=true", "OCI_API_REFERRER=true",
		"OCI_RO_DATA_TAGS="+strings.Join(tags, " "),
		"OCI_RO_DATA_MANIFESTS="+strings.Join(manifests, " "),
		"OCI_RO_DATA_BLOBS="+strings.Join(blobs, " "),
		"OCI_RO_DATA_REFERRERS="+manifests[0],
	)
	out, err := cmd.CombinedOutput()
	passed := strings.Contains(string(out), "OCI Conformance Result: Pass") && !strings.Contains(string(out), ": FAIL")
	switch {
	case err == nil && passed:
	case passed && strings.Contains(string(out), "ReportResultsYAML"):
		// The suite (this version) panics writing results.yaml when push is
		// disabled (a skipped data set has no entry); its summary, printed
		// before, is what counts.
		t.Log("conformance summary: Pass (the suite then panicked writing results.yaml, an upstream bug in read-only mode)")
	default:
		t.Fatalf("conformance: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Manifest get by tag...........:       Pass") || !strings.Contains(string(out), "Blob get......................:       Pass") {
		t.Fatalf("pull tests did not run:\n%s", out)
	}
}

func hasRepo(repos []string, r string) bool {
	for _, x := range repos {
		if x == r {
			return true
		}
	}
	return false
}
