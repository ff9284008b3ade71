// Package cache is an on-disk, content-addressed blob cache for ferry save.
//
// Layout: <Dir>/blobs/sha256/<hex> for entries, <Dir>/tmp for entries
// being filled. A blob enters the cache only after the upstream stream
// reached EOF with a verified size and digest (temp file, fsync, rename),
// so an entry is either complete or absent; concurrent fills of one digest
// use their own temp files and the last rename wins (both are identical).
//
// A hit is checked before its first byte is served: an entry of the wrong
// size or digest is removed and the blob is fetched upstream instead, so a
// corrupt entry costs a download, never a failed save. (ferry save cannot
// take bytes back: its retries resume at an offset and treat a digest
// mismatch as permanent.) The bytes served are checked again with
// oci.VerifyReader; should the entry change while it is read, the read
// fails with an error wrapping both ErrCorrupt and oci.ErrDigestMismatch
// (or oci.ErrSizeMismatch) and the entry is removed.
//
// Entries are pruned by age (KeepDays) and total size (KeepSize), least
// recently used first; a hit refreshes the entry's modification time, which
// is its "last used" time. Prune also removes temp files older than a day.
//
// The cache touches only what it wrote: every operation goes through the
// cache directory opened once by Open (an os.Root: nothing outside it is
// reached, whatever symlinks say), blobs/sha256 and tmp must be real
// directories, not symlinks, and Prune removes only regular files of this
// user named by a digest (<hex>, or <hex>.<random> for temp files). An
// entry of another user is served when it verifies, never touched.
//
// A cache error is never fatal: it is logged and the upstream bytes are
// served as if there were no cache. Blobs are streamed, never buffered.
package cache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/oci"
)

// ErrCorrupt marks a cache entry whose bytes did not match its descriptor.
var ErrCorrupt = errors.New("corrupt cache entry")

// staleTemp is the age above which Prune removes a temp file: a fill that
// old was left behind by a crashed or killed process.
const staleTemp = 24 * time.Hour

// Options configure a Cache.
type Options struct {
	Dir      string           // cache root: Dir/blobs/sha256/<hex>, temp files in Dir/tmp
	KeepDays int              // Prune removes entries unused for more days; 0: no age limit
	KeepSize int64            // Prune removes LRU entries above this many bytes; 0: no size limit
	Log      *slog.Logger     // nil: no logging
	Now      func() time.Time // nil: time.Now
}

// Cache is a blob cache directory. Its methods are safe for concurrent use.
type Cache struct {
	opts         Options
	root         *os.Root // opts.Dir, opened once; nil: not usable
	hits, misses atomic.Int64
	warned       atomic.Bool // a write failure was logged at Warn level
	mkdir        sync.Mutex
}

// Open prepares the cache directory. Only an empty Dir is an error: a
// directory that cannot be created or written is logged, and the cache
// then passes every blob through from upstream.
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
	err := os.MkdirAll(opts.Dir, 0o755)
	if err == nil {
		c.root, err = os.OpenRoot(opts.Dir)
	}
	if err == nil {
		err = c.makeDirs()
	}
	if err != nil {
		c.writeFailed("cache directory unusable; continuing without caching", "dir", opts.Dir, "err", err)
	}
	return c, nil
}

// Close releases the cache directory.
func (c *Cache) Close() error {
	if c.root == nil {
		return nil
	}
	return c.root.Close()
}

// The cache's directories, relative to its root.
const (
	blobDir = "blobs/sha256"
	tmpDir  = "tmp"
)

// ErrNotOwnDir marks a cache directory that is a symlink (or not a
// directory): the cache does not use it.
var ErrNotOwnDir = errors.New("not a directory of the cache's own")

func (c *Cache) makeDirs() error {
	c.mkdir.Lock()
	defer c.mkdir.Unlock()
	if c.root == nil {
		return ErrNotOwnDir
	}
	return errors.Join(c.root.MkdirAll(blobDir, 0o755), c.root.MkdirAll(tmpDir, 0o755), c.ownDir(blobDir), c.ownDir(tmpDir))
}

// ownDir checks that each component of dir (relative to the cache root)
// is a real directory, not a symlink.
func (c *Cache) ownDir(dir string) error {
	if c.root == nil {
		return ErrNotOwnDir
	}
	for p := dir; p != "."; p = path.Dir(p) {
		fi, err := c.root.Lstat(p)
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s: %w", filepath.Join(c.opts.Dir, p), ErrNotOwnDir)
		}
	}
	return nil
}

// entry is the name of d's entry (relative to the cache root); only valid
// sha256 digests are cached.
func (c *Cache) entry(d digest.Digest) (string, bool) {
	if c.root == nil || d.Validate() != nil || d.Algorithm() != digest.SHA256 {
		return "", false
	}
	return blobDir + "/" + d.Encoded(), true
}

// writeFailed logs a failure to fill the cache: the first at Warn level,
// the others (usually the same cause, once per blob) at Debug level.
func (c *Cache) writeFailed(msg string, args ...any) {
	if c.warned.CompareAndSwap(false, true) {
		c.opts.Log.Warn(msg, args...)
		return
	}
	c.opts.Log.Debug(msg, args...)
}

// Counts returns the cache hits and misses of BlobGet since Open.
func (c *Cache) Counts() (hits, misses int64) { return c.hits.Load(), c.misses.Load() }

// Source wraps upstream: blobs come from the cache when present, and fill
// it when not. Manifests always come from upstream (tags move).
func (c *Cache) Source(upstream oci.Source) oci.Source {
	return &source{c: c, up: upstream}
}

type source struct {
	c  *Cache
	up oci.Source
}

func (s *source) ManifestGet(ctx context.Context, r ref.Ref) (manifest.Manifest, error) {
	return s.up.ManifestGet(ctx, r)
}

func (s *source) BlobGet(ctx context.Context, r ref.Ref, d descriptor.Descriptor) (io.ReadCloser, error) {
	c := s.c
	p, ok := c.entry(d.Digest)
	if !ok {
		return s.up.BlobGet(ctx, r, d)
	}
	f, owned, err := c.openVerified(ctx, p, d)
	switch {
	case err == nil:
		if owned {
			now := c.opts.Now()
			_ = c.root.Chtimes(p, now, now) // last used, for Prune
		}
		c.hits.Add(1)
		return &hit{c: c, f: f, path: p, d: d, r: oci.VerifyReader(f, d), owned: owned}, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, errNotOurs) || (errors.Is(err, ErrCorrupt) && !owned):
		c.opts.Log.Warn("a file the cache did not write is where a cache entry belongs; not caching this blob", "blob", d.Digest, "err", err)
		return s.up.BlobGet(ctx, r, d)
	case errors.Is(err, ErrCorrupt):
		c.opts.Log.Warn("corrupt cache entry dropped; fetching the blob again", "blob", d.Digest, "err", err)
		_ = c.root.Remove(p)
	case !errors.Is(err, fs.ErrNotExist):
		c.opts.Log.Warn("cache entry unreadable; fetching the blob", "blob", d.Digest, "err", err)
	}
	c.misses.Add(1)
	rc, err := s.up.BlobGet(ctx, r, d)
	if err != nil {
		return nil, err
	}
	tmp, tmpName, err := c.createTemp(d)
	if err != nil {
		c.writeFailed("cache not filled", "blob", d.Digest, "err", err)
		return rc, nil // upstream checks its own bytes (Source contract)
	}
	return &fill{c: c, rc: rc, r: oci.VerifyReader(rc, d), tmp: tmp, tmpName: tmpName, path: p, d: d}, nil
}

// createTemp creates a temp file for d (tmp/<hex>.<random>, never an
// existing one), recreating the directories once if they went away since
// Open. It returns the file and its name relative to the cache root.
func (c *Cache) createTemp(d descriptor.Descriptor) (*os.File, string, error) {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	name := tmpDir + "/" + d.Digest.Encoded() + "." + hex.EncodeToString(rnd[:])
	create := func() (*os.File, error) { return c.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) }
	tmp, err := create()
	if errors.Is(err, fs.ErrNotExist) {
		if err = c.makeDirs(); err == nil {
			tmp, err = create()
		}
	}
	return tmp, name, err
}

// openVerified opens an entry after checking its size and digest, so that
// a corrupt entry is dropped before a single byte of it is served. The
// entry is read twice (once here, once by the caller); the second read
// usually comes from the page cache.
//
// An entry must be a regular file (never a symlink); one of another user
// (owned false) is served when it verifies, but never touched.
func (c *Cache) openVerified(ctx context.Context, p string, d descriptor.Descriptor) (_ *os.File, owned bool, _ error) {
	info, err := c.root.Lstat(p)
	if err != nil {
		return nil, false, err
	}
	if !info.Mode().IsRegular() {
		return nil, false, fmt.Errorf("%s: %w", filepath.Join(c.opts.Dir, p), errNotOurs)
	}
	owned = ownedByUs(info)
	f, err := c.root.Open(p)
	if err != nil {
		return nil, owned, err
	}
	st, err := f.Stat()
	if err == nil && !os.SameFile(info, st) { // swapped since the Lstat
		err = fmt.Errorf("%s: %w", filepath.Join(c.opts.Dir, p), errNotOurs)
	}
	if err == nil && st.Size() != d.Size {
		err = fmt.Errorf("%w: %w: size %d, want %d", ErrCorrupt, oci.ErrSizeMismatch, st.Size(), d.Size)
	}
	if err == nil {
		_, err = io.Copy(io.Discard, oci.VerifyReader(oci.ContextReader(ctx, f), d))
		if corruption(err) {
			err = fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, owned, err
	}
	return f, owned, nil
}

// corruption reports whether err is a VerifyReader failure (as opposed to
// an I/O error or a cancellation).
func corruption(err error) bool {
	return errors.Is(err, oci.ErrDigestMismatch) || errors.Is(err, oci.ErrSizeMismatch)
}

// hit reads a cache entry. The entry was verified when it was opened; if
// it changes while it is read, the read fails and the entry is removed.
type hit struct {
	c       *Cache
	f       *os.File
	path    string
	d       descriptor.Descriptor
	r       io.Reader
	owned   bool // the cache may remove it
	dropped bool
}

func (h *hit) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if corruption(err) {
		if !h.dropped && h.owned {
			h.dropped = true
			h.c.opts.Log.Warn("corrupt cache entry dropped", "blob", h.d.Digest, "err", err)
			_ = h.c.root.Remove(h.path)
		}
		err = fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return n, err
}

func (h *hit) Close() error { return h.f.Close() }

// fill tees upstream bytes into a temp file and renames it into place at a
// verified EOF. A cache write error only stops the filling; any other
// error, or Close before EOF, removes the temp file.
type fill struct {
	c       *Cache
	rc      io.ReadCloser
	r       io.Reader // VerifyReader of rc
	tmp     *os.File  // nil once committed or discarded
	tmpName string    // relative to the cache root, as path
	path    string
	d       descriptor.Descriptor
}

func (f *fill) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if n > 0 && f.tmp != nil {
		if _, werr := f.tmp.Write(p[:n]); werr != nil {
			f.c.writeFailed("cache write failed; blob not cached", "blob", f.d.Digest, "err", werr)
			f.discard()
		}
	}
	switch {
	case err == io.EOF:
		f.commit() // VerifyReader returns EOF only after size and digest matched
	case err != nil:
		f.discard()
	}
	return n, err
}

func (f *fill) commit() {
	tmp := f.tmp
	if tmp == nil {
		return
	}
	f.tmp = nil
	err := tmp.Sync()
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = f.c.root.Rename(f.tmpName, f.path)
	}
	if err != nil {
		f.c.writeFailed("cache entry not kept", "blob", f.d.Digest, "err", err)
		_ = f.c.root.Remove(f.tmpName)
		return
	}
	now := f.c.opts.Now()
	_ = f.c.root.Chtimes(f.path, now, now)
	if dir, err := f.c.root.Open(blobDir); err == nil { // make the rename durable
		_ = dir.Sync()
		dir.Close()
	}
}

func (f *fill) discard() {
	if f.tmp != nil {
		f.tmp.Close()
		_ = f.c.root.Remove(f.tmpName)
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

// entries lists the cache's own entries: regular files of this user in
// blobs/sha256 named by a sha256 hex digest.
func (c *Cache) entries() ([]entry, error) {
	names, err := c.ownFiles(blobDir, isEntryName)
	var out []entry
	for _, name := range names {
		if info, ierr := c.own(name); ierr == nil {
			out = append(out, entry{path: name, size: info.Size(), mtime: info.ModTime()})
		}
	}
	return out, err
}

// ownFiles lists the names (relative to the cache root) in dir, one of the
// cache's own directories, that named says the cache may have written.
func (c *Cache) ownFiles(dir string, named func(string) bool) ([]string, error) {
	if c.root == nil {
		return nil, nil // unusable since Open, which said so
	}
	if err := c.ownDir(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	f, err := c.root.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	des, err := f.ReadDir(-1)
	var out []string
	for _, de := range des {
		if named(de.Name()) {
			out = append(out, dir+"/"+de.Name())
		}
	}
	return out, err
}

// errNotOurs marks a file the cache did not write: not a regular file (a
// symlink, a directory) or another user's.
var errNotOurs = errors.New("not a file the cache wrote")

// own returns the file info of name (relative to the cache root, never
// following a symlink), or errNotOurs.
func (c *Cache) own(name string) (fs.FileInfo, error) {
	info, err := c.root.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() || !ownedByUs(info) {
		return nil, fmt.Errorf("%s: %w", filepath.Join(c.opts.Dir, name), errNotOurs)
	}
	return info, nil
}

// isEntryName: a sha256 digest in hex.
func isEntryName(name string) bool {
	return len(name) == 64 && strings.Trim(name, "0123456789abcdef") == ""
}

// isTempName: <hex>.<suffix>, as createTemp (and os.CreateTemp before it)
// names temp files.
func isTempName(name string) bool {
	hex, suffix, ok := strings.Cut(name, ".")
	return ok && isEntryName(hex) && suffix != "" && !strings.ContainsAny(suffix, "./")
}

// Prune removes temp files older than a day, then entries unused for more
// than KeepDays, then the least recently used entries until the total is
// at most KeepSize. It returns the entries removed and their bytes (temp
// files are not counted). It removes only the cache's own files (own,
// isEntryName, isTempName).
func (c *Cache) Prune() (removed int, freed int64, err error) {
	now := c.opts.Now()
	tmps, _ := c.ownFiles(tmpDir, isTempName)
	for _, name := range tmps {
		if info, ierr := c.own(name); ierr == nil && now.Sub(info.ModTime()) > staleTemp {
			_ = c.root.Remove(name)
		}
	}
	list, err := c.entries()
	if err != nil {
		return 0, 0, err
	}
	sort.SliceStable(list, func(i, j int) bool { return list[i].mtime.Before(list[j].mtime) })
	var total int64
	for _, e := range list {
		total += e.size
	}
	maxAge := time.Duration(c.opts.KeepDays) * 24 * time.Hour
	// Oldest first: the entries over the age limit come first, so one pass
	// prunes by age, then by size.
	for _, e := range list {
		old := c.opts.KeepDays > 0 && now.Sub(e.mtime) > maxAge
		big := c.opts.KeepSize > 0 && total > c.opts.KeepSize
		if !old && !big {
			break
		}
		switch rerr := c.root.Remove(e.path); {
		case rerr == nil:
			removed++
			freed += e.size
			total -= e.size
		case errors.Is(rerr, fs.ErrNotExist): // removed meanwhile (a corrupt hit)
			total -= e.size
		default:
			err = errors.Join(err, rerr)
		}
	}
	return removed, freed, err
}
