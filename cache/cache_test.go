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

	"github.com/ferry-oss/ferry/cache"
	"github.com/ferry-oss/ferry/oci"
)

// upstream is a Source of blobs held in memory. Its reader does not check
// digests, so that the tests see whether the cache does; corrupt flips a
// byte of what it serves.
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
	if u.corrupt {
		b = bytes.Clone(b)
		b[len(b)/2] ^= 1
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (u *upstream) Calls() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.calls
}

func blob(t testing.TB, n int) ([]byte, descriptor.Descriptor) {
	t.Helper()
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b, descriptor.Descriptor{Digest: digest.FromBytes(b), Size: int64(n)}
}

func setup(t testing.TB, opts cache.Options, blobs ...[]byte) (*cache.Cache, *upstream, oci.Source) {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	c, err := cache.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	up := &upstream{blobs: map[digest.Digest][]byte{}}
	for _, b := range blobs {
		up.blobs[digest.FromBytes(b)] = b
	}
	return c, up, c.Source(up)
}

func read(src oci.Source, d descriptor.Descriptor) ([]byte, error) {
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

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func noTemps(t *testing.T, dir string) {
	t.Helper()
	if tmps, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmps) != 0 {
		t.Errorf("temp files left: %v", tmps)
	}
}

func TestOpenNoDir(t *testing.T) {
	if _, err := cache.Open(cache.Options{}); err == nil {
		t.Fatal("Open without Dir: no error")
	}
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
	if up.Calls() != 1 {
		t.Errorf("upstream called %d times, want 1", up.Calls())
	}
	if hits, misses := c.Counts(); hits != 2 || misses != 1 {
		t.Errorf("hits %d misses %d, want 2 1", hits, misses)
	}
	if n, size, err := c.Stats(); err != nil || n != 1 || size != int64(len(b)) {
		t.Errorf("stats %d %d %v", n, size, err)
	}
	noTemps(t, dir)
}

// TestHitTouches: a hit refreshes the entry's mtime ("last used") to Now.
func TestHitTouches(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	b, d := blob(t, 1000)
	dir := t.TempDir()
	_, _, src := setup(t, cache.Options{Dir: dir, Now: func() time.Time { return now }}, b)
	if _, err := read(src, d); err != nil {
		t.Fatal(err)
	}
	old := now.Add(-100 * 24 * time.Hour)
	_ = os.Chtimes(entryPath(dir, d), old, old)
	if _, err := read(src, d); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(entryPath(dir, d))
	if err != nil || !st.ModTime().Equal(now) {
		t.Fatalf("mtime after hit: %v %v, want %v", st.ModTime(), err, now)
	}
}

// TestCorruptEntry: an entry damaged at rest is found before any of its
// bytes are served, dropped, and the blob is fetched upstream again.
func TestCorruptEntry(t *testing.T) {
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
		{"empty", func(p string) { _ = os.Truncate(p, 0) }},
		{"too long", func(p string) {
			f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			_, _ = f.Write([]byte("x"))
			f.Close()
		}},
		{"same size, other bytes", func(p string) { _ = os.WriteFile(p, make([]byte, len(b)), 0o644) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			c, up, src := setup(t, cache.Options{Dir: dir}, b)
			if _, err := read(src, d); err != nil {
				t.Fatal(err)
			}
			tt.damage(entryPath(dir, d))
			got, err := read(src, d)
			if err != nil || !bytes.Equal(got, b) {
				t.Fatalf("read after damage: %v (corrupt bytes served?)", err)
			}
			if up.Calls() != 2 {
				t.Errorf("upstream called %d times: the corrupt entry was not re-fetched", up.Calls())
			}
			if hits, misses := c.Counts(); hits != 0 || misses != 2 {
				t.Errorf("hits %d misses %d, want 0 2", hits, misses)
			}
			if x, _ := os.ReadFile(entryPath(dir, d)); !bytes.Equal(x, b) {
				t.Error("the entry was not replaced by good bytes")
			}
			noTemps(t, dir)
		})
	}
}

// TestEntryChangesWhileRead: an entry damaged after it was opened fails
// the read at EOF with ErrCorrupt and bundle's mismatch error, and is
// removed; the next get goes upstream.
func TestEntryChangesWhileRead(t *testing.T) {
	b, d := blob(t, 5000)
	tests := []struct {
		name   string
		damage func(f *os.File)
		want   error
	}{
		{"flipped byte", func(f *os.File) { _, _ = f.WriteAt([]byte{^b[4000]}, 4000) }, oci.ErrDigestMismatch},
		{"truncated", func(f *os.File) { _ = f.Truncate(3000) }, oci.ErrSizeMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			_, up, src := setup(t, cache.Options{Dir: dir}, b)
			if _, err := read(src, d); err != nil {
				t.Fatal(err)
			}
			rc, err := src.BlobGet(context.Background(), ref.Ref{}, d)
			if err != nil {
				t.Fatal(err)
			}
			// same inode: the open reader sees the damage
			f, err := os.OpenFile(entryPath(dir, d), os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			tt.damage(f)
			f.Close()
			_, err = io.ReadAll(rc)
			rc.Close()
			if !errors.Is(err, cache.ErrCorrupt) || !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want ErrCorrupt and %v", err, tt.want)
			}
			if exists(entryPath(dir, d)) {
				t.Fatal("corrupt entry kept")
			}
			if got, err := read(src, d); err != nil || !bytes.Equal(got, b) {
				t.Fatalf("read after drop: %v", err)
			}
			if up.Calls() != 2 {
				t.Errorf("upstream calls %d, want 2", up.Calls())
			}
		})
	}
}

func TestCorruptUpstreamNotCached(t *testing.T) {
	b, d := blob(t, 5000)
	dir := t.TempDir()
	_, up, src := setup(t, cache.Options{Dir: dir}, b)
	up.corrupt = true
	if _, err := read(src, d); !errors.Is(err, oci.ErrDigestMismatch) {
		t.Fatalf("err %v, want digest mismatch", err)
	}
	if exists(entryPath(dir, d)) {
		t.Fatal("corrupt upstream bytes were cached")
	}
	noTemps(t, dir)
	// Fixed upstream: fetched again and cached.
	up.corrupt = false
	if got, err := read(src, d); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("read: %v", err)
	}
	if !exists(entryPath(dir, d)) || up.Calls() != 2 {
		t.Errorf("good bytes not cached (calls %d)", up.Calls())
	}
}

func TestUpstreamError(t *testing.T) {
	_, d := blob(t, 100)
	dir := t.TempDir()
	_, _, src := setup(t, cache.Options{Dir: dir}) // upstream has nothing
	if _, err := read(src, d); err == nil {
		t.Fatal("no error")
	}
	noTemps(t, dir)
}

func TestCloseBeforeEOF(t *testing.T) {
	b, d := blob(t, 50000)
	tests := []struct {
		name string
		n    int64
	}{{"nothing read", 0}, {"part read", 100}, {"all bytes, no EOF", 50000}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			_, _, src := setup(t, cache.Options{Dir: dir}, b)
			rc, err := src.BlobGet(context.Background(), ref.Ref{}, d)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(rc, make([]byte, tt.n)); err != nil {
				t.Fatal(err)
			}
			rc.Close()
			if exists(entryPath(dir, d)) {
				t.Fatal("an unverified read was cached")
			}
			noTemps(t, dir)
		})
	}
}

// TestUnwritableCache: tests run as root, so chmod does not stop writes;
// a regular file where a directory should be does.
func TestUnwritableCache(t *testing.T) {
	b, d := blob(t, 5000)
	tests := []struct {
		name  string
		block string // made a regular file
	}{
		{"tmp is a file", "tmp"},
		{"blobs dir is a file", "blobs/sha256"},
		{"cache dir is a file", "."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "cache")
			blocked := filepath.Join(dir, tt.block)
			if err := os.MkdirAll(filepath.Dir(blocked), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(blocked, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			c, up, src := setup(t, cache.Options{Dir: dir}, b)
			for i := range 2 {
				got, err := read(src, d)
				if err != nil || !bytes.Equal(got, b) {
					t.Fatalf("read %d: %v", i, err)
				}
			}
			if up.Calls() != 2 {
				t.Errorf("upstream calls %d, want 2", up.Calls())
			}
			if tt.block != "tmp" {
				noTemps(t, dir)
			}
			if n, _, _ := c.Stats(); n != 0 {
				t.Errorf("%d entries", n)
			}
			if _, _, err := c.Prune(); err != nil && tt.block == "tmp" {
				t.Errorf("prune: %v", err)
			}
		})
	}
}

// TestConcurrentFill: readers of one digest race to fill the entry; all
// get the right bytes and one complete entry is left.
func TestConcurrentFill(t *testing.T) {
	b, d := blob(t, 1<<20)
	dir := t.TempDir()
	c, _, src := setup(t, cache.Options{Dir: dir}, b)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			got, err := read(src, d)
			if err == nil && !bytes.Equal(got, b) {
				err = errors.New("wrong bytes")
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if x, _ := os.ReadFile(entryPath(dir, d)); !bytes.Equal(x, b) {
		t.Error("entry is not the blob")
	}
	if hits, misses := c.Counts(); hits+misses != 16 {
		t.Errorf("hits %d + misses %d != 16", hits, misses)
	}
	noTemps(t, dir)
}

func TestNonSHA256PassThrough(t *testing.T) {
	b := []byte("hello")
	d := descriptor.Descriptor{Digest: digest.SHA512.FromBytes(b), Size: int64(len(b))}
	dir := t.TempDir()
	_, up, src := setup(t, cache.Options{Dir: dir})
	up.blobs[d.Digest] = b
	for range 2 {
		if got, err := read(src, d); err != nil || !bytes.Equal(got, b) {
			t.Fatalf("read: %v", err)
		}
	}
	if up.Calls() != 2 {
		t.Errorf("upstream calls %d", up.Calls())
	}
}

func TestPrune(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	const day = 24 * time.Hour
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
		freed    int64
	}{
		{"by age", 7, 0, []time.Duration{10 * day, time.Hour, 8 * day, 7 * day}, []bool{false, true, false, true}, 2000},
		{"by size, LRU first", 0, 2500, []time.Duration{3 * time.Hour, time.Hour, 4 * time.Hour, 2 * time.Hour}, []bool{false, true, false, true}, 2000},
		{"size exactly at limit", 0, 4000, []time.Duration{1, 2, 3, 4}, []bool{true, true, true, true}, 0},
		{"age then size", 5, 1500, []time.Duration{6 * day, time.Hour, 2 * time.Hour, 3 * time.Hour}, []bool{false, true, false, false}, 3000},
		{"no limits", 0, 0, []time.Duration{1000 * day, 0, 0, 0}, []bool{true, true, true, true}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			c, _, src := setup(t, cache.Options{Dir: dir, KeepDays: tt.keepDays, KeepSize: tt.keepSize, Now: func() time.Time { return now }}, blobs...)
			for i, d := range descs {
				if _, err := read(src, d); err != nil {
					t.Fatal(err)
				}
				at := now.Add(-tt.ages[i])
				_ = os.Chtimes(entryPath(dir, d), at, at)
			}
			removed, freed, err := c.Prune()
			if err != nil {
				t.Fatal(err)
			}
			want := 0
			for i, d := range descs {
				if exists(entryPath(dir, d)) != tt.left[i] {
					t.Errorf("blob %d: present=%v, want %v", i, !tt.left[i], tt.left[i])
				}
				if !tt.left[i] {
					want++
				}
			}
			if removed != want || freed != tt.freed {
				t.Errorf("removed %d freed %d, want %d %d", removed, freed, want, tt.freed)
			}
			if n, size, _ := c.Stats(); n != 4-want || size != int64(4-want)*1000 {
				t.Errorf("stats after prune: %d %d", n, size)
			}
		})
	}
}

// TestPruneHitProtects: a hit makes an old entry the most recently used.
func TestPruneHitProtects(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	clock := now
	a, da := blob(t, 1000)
	b, db := blob(t, 1000)
	dir := t.TempDir()
	c, _, src := setup(t, cache.Options{Dir: dir, KeepSize: 1000, Now: func() time.Time { return clock }}, a, b)
	for _, d := range []descriptor.Descriptor{da, db} { // a filled first
		clock = clock.Add(time.Hour)
		if _, err := read(src, d); err != nil {
			t.Fatal(err)
		}
	}
	clock = clock.Add(time.Hour)
	if _, err := read(src, da); err != nil { // a used last
		t.Fatal(err)
	}
	if removed, _, err := c.Prune(); err != nil || removed != 1 {
		t.Fatalf("prune: %d %v", removed, err)
	}
	if !exists(entryPath(dir, da)) || exists(entryPath(dir, db)) {
		t.Error("prune did not remove the least recently used entry")
	}
}

// TestPruneStaleTemps: a temp file (named <hex>.<random>, as the cache
// names them) older than a day is removed, a fresh one (a fill in
// progress) is kept, and so is any file of another name, however old.
func TestPruneStaleTemps(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	c, _, _ := setup(t, cache.Options{Dir: dir, Now: func() time.Time { return now }})
	tmp := filepath.Join(dir, "tmp")
	hex := digest.FromString("x").Encoded()
	files := map[string]time.Duration{hex + ".stale": 25 * time.Hour, hex + ".fresh": time.Hour, "notes.txt": 100 * time.Hour}
	for name, age := range files {
		p := filepath.Join(tmp, name)
		_ = os.WriteFile(p, []byte("partial"), 0o644)
		at := now.Add(-age)
		_ = os.Chtimes(p, at, at)
	}
	if removed, _, err := c.Prune(); err != nil || removed != 0 {
		t.Fatalf("prune: %d %v (temp files are not entries)", removed, err)
	}
	if exists(filepath.Join(tmp, hex+".stale")) || !exists(filepath.Join(tmp, hex+".fresh")) || !exists(filepath.Join(tmp, "notes.txt")) {
		t.Error("want the stale temp file removed, the fresh one (a fill in progress) and notes.txt kept")
	}
}

// BenchmarkWarmVsCold reads a 64 MiB blob through the cache: cold fetches
// it from (in-memory) upstream and fills the entry (write, fsync, rename);
// warm verifies the entry and serves it, verified again.
func BenchmarkWarmVsCold(b *testing.B) {
	data, d := blob(b, 64<<20)
	b.Run("cold", func(b *testing.B) {
		dir := b.TempDir()
		_, _, src := setup(b, cache.Options{Dir: dir}, data)
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if err := drain(src, d); err != nil {
				b.Fatal(err)
			}
			if err := os.Remove(entryPath(dir, d)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("warm", func(b *testing.B) {
		c, _, src := setup(b, cache.Options{}, data)
		if err := drain(src, d); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if err := drain(src, d); err != nil {
				b.Fatal(err)
			}
		}
		if _, misses := c.Counts(); misses != 1 {
			b.Fatalf("%d misses", misses)
		}
	})
}

// drain reads a blob without keeping it, as a save streams it.
func drain(src oci.Source, d descriptor.Descriptor) error {
	rc, err := src.BlobGet(context.Background(), ref.Ref{}, d)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}
