package cache_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/cache"
)

// upstream is a Source of blobs held in memory; corrupt flips a byte of
// what it serves (its reader does not check, to test that the cache does).
type upstream struct {
	mu      sync.Mutex
	blobs   map[digest.Digest][]byte
	calls   int
	corrupt bool
}

func (u *upstream) ManifestGet(context.Context, ref.Ref) (manifest.Manifest, error) {
	return nil, errors.New("no manifests")
}

func (u *upstream) BlobGet(_ context.Context, _ ref.Ref, d descriptor.Descriptor) (io.ReadCloser, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.calls++
	b, ok := u.blobs[d.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s: not found", d.Digest)
	}
	b = bytes.Clone(b)
	if u.corrupt {
		b[len(b)/2] ^= 1
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func blob(t testing.TB, n int) ([]byte, descriptor.Descriptor) {
	t.Helper()
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b, descriptor.Descriptor{Digest: digest.FromBytes(b), Size: int64(n)}
}

func setup(t testing.TB, opts cache.Options, blobs ...[]byte) (*cache.Cache, *upstream, bundle.Source) {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	c, err := cache.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	up := &upstream{blobs: map[digest.Digest][]byte{}}
	for _, b := range blobs {
		up.blobs[digest.FromBytes(b)] = b
	}
	return c, up, c.Source(up)
}

func read(src bundle.Source, d descriptor.Descriptor) ([]byte, error) {
	rc, err := src.BlobGet(context.Background(), ref.Ref{}, d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func entryPath(dir string, d descriptor.Descriptor) string {
	return filepath.Join(dir, "blobs", "sha256", d.Digest.Encoded())
}

func TestMissThenHit(t *testing.T) {
	b, d := blob(t, 100000)
	dir := t.TempDir()
	c, up, src := setup(t, cache.Options{Dir: dir}, b)
	for i := range 3 {
		got, err := read(src, d)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("read %d: %v", i, err)
		}
	}
	if up.calls != 1 {
		t.Errorf("upstream called %d times, want 1", up.calls)
	}
	if hits, misses := c.Counts(); hits != 2 || misses != 1 {
		t.Errorf("hits %d misses %d", hits, misses)
	}
	if n, size, _ := c.Stats(); n != 1 || size != int64(len(b)) {
		t.Errorf("stats %d %d", n, size)
	}
}

func TestCorruption(t *testing.T) {
	b, d := blob(t, 5000)
	tests := []struct {
		name   string
		damage func(path string)
	}{
		{"flipped byte", func(p string) {
			x, _ := os.ReadFile(p)
			x[100] ^= 0xff
			_ = os.WriteFile(p, x, 0o644)
		}},
		{"truncated", func(p string) { _ = os.Truncate(p, 10) }},
		{"same size, other bytes", func(p string) { _ = os.WriteFile(p, make([]byte, len(b)), 0o644) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			_, up, src := setup(t, cache.Options{Dir: dir}, b)
			if _, err := read(src, d); err != nil {
				t.Fatal(err)
			}
			tt.damage(entryPath(dir, d))
			got, err := read(src, d)
			if err != nil || !bytes.Equal(got, b) {
				t.Fatalf("read after damage: %v (corrupt bytes served?)", err)
			}
			if up.calls != 2 {
				t.Errorf("upstream called %d times: the corrupt entry was not re-fetched", up.calls)
			}
			x, _ := os.ReadFile(entryPath(dir, d))
			if !bytes.Equal(x, b) {
				t.Error("the entry was not replaced by good bytes")
			}
		})
	}
}

func TestCorruptUpstreamNotCached(t *testing.T) {
	b, d := blob(t, 5000)
	dir := t.TempDir()
	_, up, src := setup(t, cache.Options{Dir: dir}, b)
	up.corrupt = true
	if _, err := read(src, d); !errors.Is(err, bundle.ErrDigestMismatch) {
		t.Fatalf("err %v, want digest mismatch", err)
	}
	if _, err := os.Stat(entryPath(dir, d)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("corrupt upstream bytes were cached")
	}
	if tmps, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmps) != 0 {
		t.Errorf("temp files left: %v", tmps)
	}
}

func TestCloseBeforeEOF(t *testing.T) {
	b, d := blob(t, 50000)
	dir := t.TempDir()
	_, _, src := setup(t, cache.Options{Dir: dir}, b)
	rc, err := src.BlobGet(context.Background(), ref.Ref{}, d)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.CopyN(io.Discard, rc, 100)
	rc.Close()
	if _, err := os.Stat(entryPath(dir, d)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a partial read was cached")
	}
	if tmps, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmps) != 0 {
		t.Errorf("temp files left: %v", tmps)
	}
}

func TestUnwritableCache(t *testing.T) {
	b, d := blob(t, 5000)
	dir := t.TempDir()
	// a file where the temp directory should be: every fill fails
	_ = os.WriteFile(filepath.Join(dir, "tmp"), []byte("x"), 0o644)
	_, up, src := setup(t, cache.Options{Dir: dir}, b)
	for range 2 {
		got, err := read(src, d)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("read: %v", err)
		}
	}
	if up.calls != 2 {
		t.Errorf("upstream calls %d", up.calls)
	}
}

func TestPrune(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	clock := now
	dir := t.TempDir()
	var blobs [][]byte
	var descs []descriptor.Descriptor
	for range 4 {
		b, d := blob(t, 1000)
		blobs, descs = append(blobs, b), append(descs, d)
	}
	tests := []struct {
		name     string
		keepDays int
		keepSize int64
		ages     []time.Duration // per blob: time since last use
		left     []bool
	}{
		{"by age", 7, 0, []time.Duration{10 * 24 * time.Hour, time.Hour, 8 * 24 * time.Hour, 0}, []bool{false, true, false, true}},
		{"by size, LRU first", 0, 2500, []time.Duration{3 * time.Hour, time.Hour, 4 * time.Hour, 2 * time.Hour}, []bool{false, true, false, true}},
		{"no limits", 0, 0, []time.Duration{1000 * time.Hour, 0, 0, 0}, []bool{true, true, true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub := filepath.Join(dir, tt.name)
			c, _, src := setup(t, cache.Options{Dir: sub, KeepDays: tt.keepDays, KeepSize: tt.keepSize, Now: func() time.Time { return clock }}, blobs...)
			for i, d := range descs {
				if _, err := read(src, d); err != nil {
					t.Fatal(err)
				}
				at := now.Add(-tt.ages[i])
				_ = os.Chtimes(entryPath(sub, d), at, at)
			}
			if _, _, err := c.Prune(); err != nil {
				t.Fatal(err)
			}
			for i, d := range descs {
				_, err := os.Stat(entryPath(sub, d))
				if (err == nil) != tt.left[i] {
					t.Errorf("blob %d: present=%v, want %v", i, err == nil, tt.left[i])
				}
			}
		})
	}
}

// BenchmarkWarmVsCold reads a 64 MiB blob through the cache: cold fills
// it from upstream, warm verifies and serves the entry.
func BenchmarkWarmVsCold(b *testing.B) {
	data, d := blob(b, 64<<20)
	b.Run("cold", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			_, _, src := setup(b, cache.Options{}, data)
			if _, err := read(src, d); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("warm", func(b *testing.B) {
		_, _, src := setup(b, cache.Options{}, data)
		if _, err := read(src, d); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := read(src, d); err != nil {
				b.Fatal(err)
			}
		}
	})
}
