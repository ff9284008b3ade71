// Package cache is an on-disk, content-addressed blob cache for ferry save.
//
// Layout: <dir>/blobs/sha256/<hex> for entries, <dir>/tmp for entries
// being filled. A blob enters the cache only after the upstream stream
// reached EOF with a verified size and digest (temp file, fsync, rename).
// A hit is read through bundle.VerifyReader: a corrupt entry is detected,
// removed and never makes it into a bundle; the next read goes upstream.
// Entries are pruned by age (keepDays) and total size (keepSize), least
// recently used first; a hit refreshes the entry's modification time.
//
// A cache error is never fatal: it is logged and the upstream bytes are
// served as if there were no cache.
package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/bundle"
)

// ErrCorrupt marks a cache entry whose bytes did not match its digest.
var ErrCorrupt = errors.New("corrupt cache entry")

// Options configure a Cache.
type Options struct {
	Dir      string
	KeepDays int   // prune entries unused for longer; 0: no age limit
	KeepSize int64 // prune LRU entries above this total; 0: no size limit
	Log      *slog.Logger
	Now      func() time.Time
}

// Cache is a blob cache directory.
type Cache struct {
	opts         Options
	hits, misses atomic.Int64
}

// Open prepares the cache directory.
func Open(opts Options) (*Cache, error) {
	if opts.Dir == "" {
		return nil, errors.New("cache: no directory")
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Cache{opts: opts}
	for _, d := range []string{c.blobDir(), c.tmpDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			// not fatal: every put will fail and be logged
			opts.Log.Warn("cache directory unusable; continuing without cache", "dir", opts.Dir, "err", err)
		}
	}
	return c, nil
}

func (c *Cache) blobDir() string { return filepath.Join(c.opts.Dir, "blobs", "sha256") }
func (c *Cache) tmpDir() string  { return filepath.Join(c.opts.Dir, "tmp") }

func (c *Cache) path(d digest.Digest) (string, bool) {
	if d.Validate() != nil || d.Algorithm() != digest.SHA256 {
		return "", false
	}
	return filepath.Join(c.blobDir(), d.Encoded()), true
}

// Counts returns cache hits and misses since Open.
func (c *Cache) Counts() (hits, misses int64) { return c.hits.Load(), c.misses.Load() }

// Source wraps upstream: blobs come from the cache when present, and fill
// it when not. Manifests always come from upstream (tags move).
func (c *Cache) Source(upstream bundle.Source) bundle.Source {
	return &source{c: c, up: upstream}
}

type source struct {
	c  *Cache
	up bundle.Source
}

func (s *source) ManifestGet(ctx context.Context, r ref.Ref) (manifest.Manifest, error) {
	return s.up.ManifestGet(ctx, r)
}

func (s *source) BlobGet(ctx context.Context, r ref.Ref, d descriptor.Descriptor) (io.ReadCloser, error) {
	c := s.c
	p, ok := c.path(d.Digest)
	if !ok {
		return s.up.BlobGet(ctx, r, d)
	}
	if f, err := c.openVerified(ctx, p, d); err == nil {
		now := c.opts.Now()
		_ = os.Chtimes(p, now, now) // last used
		c.hits.Add(1)
		return &hit{c: c, f: f, path: p, r: bundle.VerifyReader(f, d)}, nil
	} else if errors.Is(err, ErrCorrupt) {
		c.opts.Log.Warn("corrupt cache entry dropped; fetching it again", "blob", d.Digest, "err", err)
		_ = os.Remove(p)
	} else if !errors.Is(err, fs.ErrNotExist) {
		c.opts.Log.Warn("cache entry unreadable; fetching upstream", "blob", d.Digest, "err", err)
	}
	c.misses.Add(1)
	rc, err := s.up.BlobGet(ctx, r, d)
	if err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(c.tmpDir(), d.Digest.Encoded()+".*")
	if err != nil {
		c.opts.Log.Warn("cache not filled", "blob", d.Digest, "err", err)
		return rc, nil
	}
	return &fill{c: c, rc: rc, r: bundle.VerifyReader(rc, d), tmp: tmp, path: p, d: d}, nil
}

// openVerified opens an entry after checking its size and digest, so that
// a corrupt entry is dropped before a single byte of it is served (a
// stream into a bundle cannot take bytes back).
func (c *Cache) openVerified(ctx context.Context, p string, d descriptor.Descriptor) (*os.File, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil && st.Size() != d.Size {
		err = fmt.Errorf("%w: size %d, want %d", ErrCorrupt, st.Size(), d.Size)
	}
	if err == nil {
		_, err = io.Copy(io.Discard, bundle.VerifyReader(bundle.ContextReader(ctx, f), d))
		if err != nil && ctx.Err() == nil {
			err = fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// hit reads a cache entry; on a digest mismatch the entry is removed.
type hit struct {
	c    *Cache
	f    *os.File
	path string
	r    io.Reader
}

func (h *hit) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if err != nil && err != io.EOF {
		h.c.opts.Log.Warn("corrupt cache entry dropped", "path", h.path, "err", err)
		_ = os.Remove(h.path)
		return n, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return n, err
}

func (h *hit) Close() error { return h.f.Close() }

// fill tees upstream bytes into a temp file and renames it into place at
// a verified EOF. Cache write errors only stop the filling.
type fill struct {
	c    *Cache
	rc   io.ReadCloser
	r    io.Reader
	tmp  *os.File
	path string
	d    descriptor.Descriptor
}

func (f *fill) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if n > 0 && f.tmp != nil {
		if _, werr := f.tmp.Write(p[:n]); werr != nil {
			f.c.opts.Log.Warn("cache write failed; blob not cached", "blob", f.d.Digest, "err", werr)
			f.discard()
		}
	}
	if err == io.EOF && f.tmp != nil {
		f.commit()
	}
	return n, err
}

func (f *fill) commit() {
	tmp := f.tmp
	f.tmp = nil
	err := tmp.Sync()
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), f.path)
	}
	if err != nil {
		f.c.opts.Log.Warn("cache entry not kept", "blob", f.d.Digest, "err", err)
		_ = os.Remove(tmp.Name())
	}
}

func (f *fill) discard() {
	if f.tmp != nil {
		f.tmp.Close()
		_ = os.Remove(f.tmp.Name())
		f.tmp = nil
	}
}

func (f *fill) Close() error {
	f.discard() // closed before a verified EOF: keep nothing
	return f.rc.Close()
}

type entry struct {
	path  string
	size  int64
	mtime time.Time
}

// Stats counts the entries and their bytes.
func (c *Cache) Stats() (entries int, bytes int64, err error) {
	list, err := c.entries()
	for _, e := range list {
		bytes += e.size
	}
	return len(list), bytes, err
}

func (c *Cache) entries() ([]entry, error) {
	des, err := os.ReadDir(c.blobDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []entry
	for _, de := range des {
		info, err := de.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		out = append(out, entry{path: filepath.Join(c.blobDir(), de.Name()), size: info.Size(), mtime: info.ModTime()})
	}
	return out, nil
}

// Prune removes entries unused for more than KeepDays, then the least
// recently used ones until the total is at most KeepSize, and temp files
// older than a day.
func (c *Cache) Prune() (removed int, freed int64, err error) {
	now := c.opts.Now()
	if tmps, terr := os.ReadDir(c.tmpDir()); terr == nil {
		for _, t := range tmps {
			if info, ierr := t.Info(); ierr == nil && now.Sub(info.ModTime()) > 24*time.Hour {
				_ = os.Remove(filepath.Join(c.tmpDir(), t.Name()))
			}
		}
	}
	list, err := c.entries()
	if err != nil {
		return 0, 0, err
	}
	sort.Slice(list, func(i, j int) bool { return list[i].mtime.Before(list[j].mtime) })
	var total int64
	for _, e := range list {
		total += e.size
	}
	for _, e := range list {
		old := c.opts.KeepDays > 0 && now.Sub(e.mtime) > time.Duration(c.opts.KeepDays)*24*time.Hour
		big := c.opts.KeepSize > 0 && total > c.opts.KeepSize
		if !old && !big {
			continue
		}
		if rerr := os.Remove(e.path); rerr != nil {
			err = errors.Join(err, rerr)
			continue
		}
		removed++
		freed += e.size
		total -= e.size
	}
	return removed, freed, err
}
