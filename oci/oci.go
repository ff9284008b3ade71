// Package oci holds the contracts that the bundle format, the transfer
// engines, the registry client, the cache and the Docker sink share:
// Source, Sink, Progress, the shared sentinel errors and limits.
package oci

import (
	"context"
	"errors"
	"io"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/ref"
)

// Sentinel errors that every side shares; test them with errors.Is.
var (
	ErrDigestMismatch   = errors.New("digest mismatch")
	ErrSizeMismatch     = errors.New("size mismatch")
	ErrPlatformMismatch = errors.New("no matching platform")
	ErrImagesFailed     = errors.New("images failed")
	ErrUnsupported      = errors.New("unsupported")
	ErrLimit            = errors.New("limit exceeded")
)

// Limits on what a source may hand to save and sync: beyond them a
// manifest is refused (ErrLimit) before anything it lists is fetched.
// Manifest bytes are limited by the registry client (8 MiB).
const (
	MaxChildren  = 1000 // manifests in one index
	MaxLayers    = 1000 // layers of one image
	MaxReferrers = 1000 // referrers of one manifest
)

// Source is where images are read from: a registry, or a bundle.
//
// Implementations must check what they return: a manifest's digest matches
// the digest in the reference when one is given, and a blob reader fails
// with an error at EOF when the bytes do not match d's size and digest.
type Source interface {
	// ManifestGet returns the manifest at r (a tag or a digest).
	ManifestGet(ctx context.Context, r ref.Ref) (manifest.Manifest, error)
	// BlobGet opens blob d of the repository r. The caller closes it.
	BlobGet(ctx context.Context, r ref.Ref, d descriptor.Descriptor) (io.ReadCloser, error)
}

// Sink is where images are written: a registry, a Docker engine, or a
// bundle Writer.
//
// Call order: all blobs of an image (BlobExists, BlobMount, BlobPut), then
// its manifests, children before the indexes that list them, tags last
// (ManifestPut), and finally Commit once for the whole transfer. A Sink may
// assume that every blob a manifest references was put before the manifest.
// Nothing a Sink receives before Commit is promised to be visible; a Sink
// that fails, or whose context is canceled, before Commit must leave nothing
// that looks complete.
type Sink interface {
	// BlobExists reports whether repository r already has blob d.
	BlobExists(ctx context.Context, r ref.Ref, d descriptor.Descriptor) (bool, error)
	// BlobMount makes blob d of repository from available in repository r
	// without sending its bytes. It returns an error wrapping ErrUnsupported
	// when the sink cannot mount.
	BlobMount(ctx context.Context, from, r ref.Ref, d descriptor.Descriptor) error
	// BlobPut stores blob d read from rdr into repository r. The sink must
	// reject the blob if rdr fails, including at EOF.
	BlobPut(ctx context.Context, r ref.Ref, d descriptor.Descriptor, rdr io.Reader) error
	// ManifestPut stores m in repository r under r's tag or digest.
	ManifestPut(ctx context.Context, r ref.Ref, m manifest.Manifest) error
	// Commit finishes the transfer.
	Commit(ctx context.Context) error
}

// ManifestHeader is an optional Sink (and Source) method: the digest of
// the manifest at r (a tag or a digest), "" when there is none. Sync uses
// it to leave images the target already has alone.
type ManifestHeader interface {
	ManifestDigest(ctx context.Context, r ref.Ref) (digest.Digest, error)
}

// TagLister is a Source that can list a repository's tags (for tag
// selections such as repo:*, repo:/REGEX/ and semver ranges).
type TagLister interface {
	TagList(ctx context.Context, r ref.Ref) ([]string, error)
}

// Progress receives transfer progress. cmd renders it as bars on a terminal
// or as log lines. A nil Progress is allowed everywhere and means none.
type Progress interface {
	// SetTotal announces the bytes and item count of the whole job.
	SetTotal(bytes int64, items int)
	// Begin starts tracking one transfer of size bytes.
	Begin(name string, size int64) Tracker
}

// Tracker tracks one transfer.
type Tracker interface {
	// Add records n more bytes transferred.
	Add(n int64)
	// Done ends the transfer; err is nil on success.
	Done(err error)
}

type nopProgress struct{}
type nopTracker struct{}

func (nopProgress) SetTotal(int64, int)         {}
func (nopProgress) Begin(string, int64) Tracker { return nopTracker{} }
func (nopTracker) Add(int64)                    {}
func (nopTracker) Done(error)                   {}

// OrNop is p, or a Progress that does nothing when p is nil.
func OrNop(p Progress) Progress {
	if p == nil {
		return nopProgress{}
	}
	return p
}

// TrackReader returns a reader of r that counts the bytes read into t.
func TrackReader(r io.Reader, t Tracker) io.Reader { return &trackReader{r: r, t: t} }

// trackReader counts bytes read into a Tracker.
type trackReader struct {
	r io.Reader
	t Tracker
}

func (tr *trackReader) Read(p []byte) (int, error) {
	n, err := tr.r.Read(p)
	if n > 0 {
		tr.t.Add(int64(n))
	}
	return n, err
}
