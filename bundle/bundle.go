// Package bundle moves container images between a Source and a Sink and
// reads and writes ferry bundles: tar parts (optionally compressed) whose
// entries are blobs/sha256/<hex>, plus a meta.yaml (package meta) written
// last.
//
// The three sides of ferry meet here:
//   - Save copies images from a Source (a registry) into a Writer, the
//     bundle's Sink. The Writer compresses every entry as its own frame and
//     records its offset and length in the part (meta schema 2).
//   - Upload pushes a bundle into a Sink (a registry or a Docker engine):
//     the blobs the target lacks, each read from its offset, largest first,
//     Jobs at a time, every blob's digest checked as it streams.
//   - Bundle (Open) is the bundle as a Source and gives random access:
//     Stat and Entries say where each stored blob and manifest lies and
//     which repositories need it, OpenBlob reads one blob from its offset
//     (schema 1 bundles: by reading its part from the start).
//
// Every byte read is checked: VerifyReader enforces a descriptor's size and
// digest at EOF, and no blob is buffered whole in memory.
package bundle

import (
	"context"
	"errors"
	"io"

	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/ref"
)

// Sentinel errors of this package; test them with errors.Is.
var (
	ErrCodec            = errors.New("unknown compression")
	ErrDigestMismatch   = errors.New("digest mismatch")
	ErrSizeMismatch     = errors.New("size mismatch")
	ErrPartMissing      = errors.New("part missing")
	ErrPartCorrupt      = errors.New("part corrupt")
	ErrBlobMissing      = errors.New("blob missing from bundle")
	ErrBaseMissing      = errors.New("base blobs missing at target")
	ErrPlatformMismatch = errors.New("no matching platform")
	ErrImagesFailed     = errors.New("images failed")
	ErrUnsupported      = errors.New("unsupported")
	ErrBadList          = errors.New("bad image list")
	ErrLimit            = errors.New("limit exceeded")
	ErrIdleTimeout      = errors.New("idle timeout")
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
func orNop(p Progress) Progress {
	if p == nil {
		return nopProgress{}
	}
	return p
}

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
