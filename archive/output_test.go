package archive_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferry-oss/ferry/archive"
)

// TestExportOutputSafety: export -o writes its temporary output
// exclusively beside the target: a symlink planted at PATH.partial is
// neither followed nor removed, a directory there is not removed, and an
// output that is one of the bundles' own files (meta file, part) is
// refused before anything is written.
func TestExportOutputSafety(t *testing.T) {
	_, set, dir := fixture(t)
	imgs, err := archive.Select(set, []string{"team/app:1"}, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []archive.Format{archive.DockerArchive, archive.OCIArchive, archive.OCILayout} {
		t.Run(string(f), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			victim := filepath.Join(t.TempDir(), "shadow")
			if err := os.WriteFile(victim, []byte("root:secret\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(victim, out+".partial"); err != nil {
				t.Fatal(err)
			}
			if _, err := archive.ExportFile(context.Background(), set, imgs, out, f, archive.Options{}); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(victim); string(b) != "root:secret\n" {
				t.Errorf("the file a planted PATH.partial link points to was written: %q", b)
			}
			if fi, err := os.Lstat(out + ".partial"); err != nil || fi.Mode()&os.ModeSymlink == 0 {
				t.Errorf("the planted link was removed or replaced: %v", err)
			}
			// a directory at PATH.partial, with something in it
			out2 := filepath.Join(t.TempDir(), "out")
			if err := os.MkdirAll(filepath.Join(out2+".partial", "keep"), 0o755); err != nil {
				t.Fatal(err)
			}
			if _, err := archive.ExportFile(context.Background(), set, imgs, out2, f, archive.Options{}); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(out2+".partial", "keep")); err != nil {
				t.Errorf("a directory at PATH.partial was removed: %v", err)
			}
		})
	}
	metas, _ := filepath.Glob(filepath.Join(dir, "*_meta.yaml"))
	parts, _ := filepath.Glob(filepath.Join(dir, "*.tar*"))
	for _, in := range []string{metas[0], parts[0]} {
		before, _ := os.ReadFile(in)
		_, err := archive.ExportFile(context.Background(), set, imgs, in, archive.DockerArchive, archive.Options{})
		if !errors.Is(err, archive.ErrOutputIsInput) {
			t.Errorf("-o %s: %v, want ErrOutputIsInput", filepath.Base(in), err)
		}
		if after, _ := os.ReadFile(in); string(after) != string(before) {
			t.Errorf("%s was changed", filepath.Base(in))
		}
	}
}
