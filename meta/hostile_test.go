package meta

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestHostileShapesBounded: meta files that yaml.v3 would inflate (a
// valid meta file plus an unknown key holding a long flow list; the same
// after a leading comment, which the streaming decoder does not follow; a
// long top-level list; tiny list items whose structs are larger than
// their lines) are refused with a bounded heap: at most 64 MiB for a 4 MB
// file, where yaml.v3's tree of the whole document takes about 95 times
// the file.
func TestHostileShapesBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 4 MB meta files")
	}
	good, err := Marshal(synthetic(10))
	if err != nil {
		t.Fatal(err)
	}
	const size = 4 << 20
	flow := "junk: [" + strings.Repeat("a,", size/2) + "a]\n"
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"unknown key with a flow list", append(bytes.Clone(good), flow...), `"junk"`},
		{"leading comment, unknown key", append([]byte("# comment\n"+string(good)), flow...), "comment"},
		{"leading comment, long valid file", append([]byte("# comment\n"), mustMarshal(t, synthetic(1300))...), "comment"},
		{"top-level list of platforms", []byte(strings.Replace(string(good), "compression:", "platforms:\n"+strings.Repeat("  - linux/amd64\n", size/16)+"compression:", 1)), "lines"},
		{"tiny images", []byte(strings.Replace(string(good), "images:\n", "images:\n"+strings.Repeat("  - source: a\n", size/14), 1)), "decoded"},
		{"tiny failed items", append(bytes.Clone(good), ("failed:\n" + strings.Repeat("  - source: a\n    error: b\n", size/30))...), "decoded"},
	}
	old := maxMetaSize
	maxMetaSize = size + 64<<10 // the rule at a smaller scale: decoded no larger than the file limit
	defer func() { maxMetaSize = old }()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var perr error
			peak, _ := heapPeak(func() any {
				_, perr = Parse(tt.b)
				return nil
			})
			t.Logf("%d bytes: peak heap %d MB: %v", len(tt.b), peak>>20, perr)
			if !errors.Is(perr, ErrInvalid) && !errors.Is(perr, ErrMetaTooBig) {
				t.Errorf("accepted, or not refused as invalid: %v", perr)
			} else if !strings.Contains(perr.Error(), tt.want) {
				t.Errorf("the error does not say %s: %v", tt.want, perr)
			}
			if peak > 64<<20 {
				t.Errorf("peak heap %d MB for a %d-byte file", peak>>20, len(tt.b))
			}
		})
	}
}

func mustMarshal(t *testing.T, m *Meta) []byte {
	t.Helper()
	b, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWriteRefusesUnreadable: the writer never leaves a meta file larger
// than the readers take (one limit for both): it fails and leaves no file.
func TestWriteRefusesUnreadable(t *testing.T) {
	old := maxMetaSize
	maxMetaSize = 64 << 10
	defer func() { maxMetaSize = old }()
	dir := t.TempDir()
	file := filepath.Join(dir, "big_meta.yaml")
	if err := Write(file, synthetic(100)); !errors.Is(err, ErrMetaTooBig) {
		t.Fatalf("Write of a meta file over the limit: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
	if err := Write(file, synthetic(3)); err != nil {
		t.Fatal(err)
	}
}

// TestWriteFollowsUmask: the meta file and a file written with
// WriteFileAtomic (META.sig) get 0644 less the umask, as parts do.
func TestWriteFollowsUmask(t *testing.T) {
	dir := t.TempDir()
	for _, mask := range []int{0o022, 0o077, 0o027} {
		old := syscall.Umask(mask)
		a, b := filepath.Join(dir, "a_meta.yaml"), filepath.Join(dir, "a_meta.yaml.sig")
		err := Write(a, synthetic(1))
		if err == nil {
			err = WriteFileAtomic(b, []byte("sig"))
		}
		syscall.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{a, b} {
			st, err := os.Stat(f)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := st.Mode().Perm(), os.FileMode(0o644&^mask); got != want {
				t.Errorf("umask %#o: %s has mode %#o, want %#o", mask, filepath.Base(f), got, want)
			}
		}
	}
}
