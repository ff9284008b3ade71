package meta_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-oss/ferry/meta"
)

// TestLoadNotRegular: a meta path that is a directory, a FIFO or a device
// is refused at once (a FIFO must not block, /dev/zero must not be read).
func TestLoadNotRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo_meta.yaml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, path string }{
		{"directory", dir},
		{"fifo", fifo},
		{"device", "/dev/zero"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				_, err := meta.Load(tt.path)
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, meta.ErrNotRegular) {
					t.Fatalf("err %v, want ErrNotRegular", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Load blocked")
			}
			if _, err := meta.FileSHA256(tt.path); !errors.Is(err, meta.ErrNotRegular) {
				t.Errorf("FileSHA256: %v", err)
			}
		})
	}
	if _, err := meta.Load(filepath.Join(dir, "missing_meta.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// TestLoadHostile: a meta file over the size limit is refused before it is
// parsed; a YAML alias bomb, a manifest whose raw bytes do not match its
// digest and an image that points at no manifest are refused.
func TestLoadHostile(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big_meta.yaml")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(200 << 20); err != nil { // 200 MB, sparse
		t.Fatal(err)
	}
	f.Close()
	start := time.Now()
	if _, err := meta.Load(big); !errors.Is(err, meta.ErrMetaTooBig) {
		t.Fatalf("200 MB meta: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v to refuse", d)
	}

	bomb := "schemaVersion: 2\nkind: ferry-bundle\n" +
		"a: &a [x, x, x, x, x, x, x, x, x, x]\n" +
		"b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n" +
		"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n" +
		"d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n" +
		"e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n" +
		"f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n" +
		"g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n" +
		"h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n" +
		"images: [*h]\n"
	done := make(chan error, 1)
	go func() {
		_, err := meta.Parse([]byte(bomb))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, meta.ErrInvalid) {
			t.Errorf("alias bomb: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an alias bomb took more than 10 s")
	}
}
