package imagetransmit

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseMeta: an image-transmit meta file is untrusted input; parsing
// and converting it must fail cleanly, never panic.
func FuzzParseMeta(f *testing.F) {
	seeds, _ := filepath.Glob("../../testdata/imagetransmit/*/*_meta.yaml")
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("datafiles: {a.tar: 1}\nmanifests: {\"r.test/a/b:1\": \"{}\"}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		im, err := parseMeta(b)
		if err != nil {
			return
		}
		dir := t.TempDir()
		path := filepath.Join(dir, "x_meta.yaml")
		_ = os.WriteFile(path, b, 0o644)
		st, err := openStore(dir, im)
		if err != nil {
			return
		}
		_, _ = convert(path, im, st)
		_, _ = Format{}.Base(path)
	})
}
