package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-oss/ferry/registry/regtest"
)

// TestOldBundlesInspect: inspect and verify read the schema 1 bundles of
// testdata/bundles (written by an earlier ferry, never regenerated).
func TestOldBundlesInspect(t *testing.T) {
	for _, dir := range []string{"v1-none", "v1-zstd"} {
		for id, images := range map[string][]string{
			"ferry_full_20261101T020000Z": {"library/base:1", "library/multi:1"},
			"ferry_incr_20261102T020000Z": {"team/app:1", "team/tools:1"},
		} {
			metaFile := filepath.Join(regtest.TestdataDir(), "bundles", dir, id+"_meta.yaml")
			code, stdout, stderr := ferry(t, "", "inspect", metaFile)
			if code != 0 {
				t.Fatalf("inspect %s/%s: exit %d\n%s", dir, id, code, stderr)
			}
			for _, img := range images {
				if !strings.Contains(stdout, img) {
					t.Errorf("inspect %s/%s does not show %s:\n%s", dir, id, img, stdout)
				}
			}
			if code, _, stderr := ferry(t, "", "verify", metaFile); code != 0 {
				t.Errorf("verify %s/%s: exit %d\n%s", dir, id, code, stderr)
			}
		}
	}
}
