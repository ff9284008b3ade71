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
