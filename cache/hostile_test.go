package cache_test

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-oss/ferry/cache"
)

// TestPruneTouchesOnlyItsOwn (issue 25, item 3): the cache touches only
// regular files it wrote, under the cache directory it opened, named by
// their digest. Replacing blobs/sha256 or tmp with a symlink to another
// directory, planting a symlink, a file of another name or of another
// owner among the entries, or swapping the cache directory itself for a
// symlink after Open: a save with keepDays then removes none of those
// files, changes none of their times, and writes nothing there.
func TestPruneTouchesOnlyItsOwn(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	old := now.Add(-30 * 24 * time.Hour)
	hexName := digest.FromString("victim").Encoded()
	b, d := blob(t, 1000)
	tests := []struct {
		name  string
		plant func(t *testing.T, dir, victim string) // after Open
		root  bool                                   // needs root (chown)
	}{
		{"blobs dir is a symlink", func(t *testing.T, dir, victim string) {
			swap(t, filepath.Join(dir, "blobs", "sha256"), victim)
		}, false},
		{"tmp dir is a symlink", func(t *testing.T, dir, victim string) {
			swap(t, filepath.Join(dir, "tmp"), victim)
		}, false},
		{"blobs parent is a symlink", func(t *testing.T, dir, victim string) {
			if err := os.MkdirAll(filepath.Join(victim, "sha256"), 0o755); err != nil {
				t.Fatal(err)
			}
			swap(t, filepath.Join(dir, "blobs"), victim)
		}, false},
		{"cache dir swapped after open", func(t *testing.T, dir, victim string) {
			if err := os.Rename(dir, dir+".moved"); err != nil {
				t.Fatal(err)
			}
			for _, sub := range []string{"blobs/sha256", "tmp"} {
				if err := os.MkdirAll(filepath.Join(victim, sub), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Symlink(victim, dir); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"an entry is a symlink", func(t *testing.T, dir, victim string) {
			if err := os.Symlink(filepath.Join(victim, hexName), filepath.Join(dir, "blobs", "sha256", hexName)); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join(victim, hexName), filepath.Join(dir, "tmp", hexName+".1234")); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"files of other names and owners", func(t *testing.T, dir, victim string) {
			for _, sub := range []string{"blobs/sha256", "tmp"} {
				for _, name := range []string{"notes.txt", hexName, hexName + ".1234"} {
					p := filepath.Join(dir, sub, name)
					if err := os.WriteFile(p, []byte("not ferry's"), 0o644); err != nil {
						t.Fatal(err)
					}
					if name != "notes.txt" {
						if err := os.Chown(p, 65534, 65534); err != nil {
							t.Fatal(err)
						}
					}
					_ = os.Chtimes(p, old, old)
				}
			}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root && (runtime.GOOS == "windows" || os.Geteuid() != 0) {
				t.Skip("needs root to plant files of another owner")
			}
			dir := filepath.Join(t.TempDir(), "cache")
			victim := filepath.Join(t.TempDir(), "victim")
			if err := os.MkdirAll(victim, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"precious.db", hexName, hexName + ".1234"} {
				p := filepath.Join(victim, name)
				if err := os.WriteFile(p, []byte("precious"), 0o644); err != nil {
					t.Fatal(err)
				}
				_ = os.Chtimes(p, old, old)
			}
			c, up, src := setup(t, cache.Options{Dir: dir, KeepDays: 7, Now: func() time.Time { return now }}, b)
			tt.plant(t, dir, victim)
			watched := []string{victim}
			if tt.root { // the planted files themselves
				for _, sub := range []string{"blobs/sha256", "tmp"} {
					watched = append(watched, filepath.Join(dir, sub, "notes.txt"), filepath.Join(dir, sub, hexName), filepath.Join(dir, sub, hexName+".1234"))
				}
			}
			before := snapshot(t, watched...)
			for i := range 2 { // a miss (a fill), then a hit or another miss
				if got, err := read(src, d); err != nil || !bytes.Equal(got, b) {
					t.Fatalf("read %d: %v", i, err)
				}
			}
			_, _, _ = c.Prune()
			_, _, _ = c.Stats()
			if after := snapshot(t, watched...); after != before {
				t.Errorf("the cache touched files outside its own:\nbefore %s\nafter  %s", before, after)
			}
			if up.Calls() == 0 {
				t.Error("no upstream call: the blob came from a planted file")
			}
		})
	}
}

// swap replaces the directory p with a symlink to target.
func swap(t *testing.T, p, target string) {
	t.Helper()
	if err := os.RemoveAll(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

// snapshot lists every file under paths with its mode and time.
func snapshot(t *testing.T, paths ...string) string {
	t.Helper()
	var sb strings.Builder
	for _, root := range paths {
		err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			sb.WriteString(p + " " + info.Mode().String() + " " + info.ModTime().UTC().Format(time.RFC3339Nano) + "; ")
			return nil
		})
		if err != nil {
			sb.WriteString(err.Error() + "; ")
		}
	}
	return sb.String()
}

// TestForeignEntryServedNotTouched: an entry of another user (a cache
// shared with root's runs) is served when it verifies, but its time is
// not changed and, corrupt, it is not removed: the blob then comes from
// upstream and is not cached over it.
func TestForeignEntryServedNotTouched(t *testing.T) {
	if runtime.GOOS == "windows" || os.Geteuid() != 0 {
		t.Skip("needs root to plant files of another owner")
	}
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	old := now.Add(-30 * 24 * time.Hour)
	for _, corrupt := range []bool{false, true} {
		t.Run(map[bool]string{false: "valid", true: "corrupt"}[corrupt], func(t *testing.T) {
			b, d := blob(t, 1000)
			dir := t.TempDir()
			_, up, src := setup(t, cache.Options{Dir: dir, KeepDays: 7, Now: func() time.Time { return now }}, b)
			p := entryPath(dir, d)
			content := bytes.Clone(b)
			if corrupt {
				content[0] ^= 1
			}
			if err := os.WriteFile(p, content, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(p, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			_ = os.Chtimes(p, old, old)
			before := snapshot(t, p)
			if got, err := read(src, d); err != nil || !bytes.Equal(got, b) {
				t.Fatalf("read: %v", err)
			}
			if after := snapshot(t, p); after != before {
				t.Errorf("the entry of another user was touched:\nbefore %s\nafter  %s", before, after)
			}
			if want := map[bool]int{false: 0, true: 1}[corrupt]; up.Calls() != want {
				t.Errorf("upstream calls %d, want %d", up.Calls(), want)
			}
		})
	}
}
