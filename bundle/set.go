package bundle

import (
	"archive/tar"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
)

// ErrBaseNotGiven is returned by NewSet when an increment needs a blob that
// none of the bundles of the set stores.
var ErrBaseNotGiven = errors.New("base bundle not given")

// Set is bundles read together, typically an increment with its base
// bundles: a blob the increment skipped is read from the base bundle of the
// set that stores it. A Set is a Source; its methods are safe for
// concurrent use.
type Set struct {
	// Bundles are ordered oldest first (by creation time).
	Bundles   []*Bundle
	blobs     map[digest.Digest]setBlob
	manifests map[digest.Digest]*meta.Manifest
}

type setBlob struct {
	bd *Bundle
	b  *meta.Blob
}

var _ oci.Source = (*Set)(nil)

// OpenSet opens the bundles of the meta files and makes a Set of them.
func OpenSet(metaPaths ...string) (*Set, error) {
	var bds []*Bundle
	for _, p := range metaPaths {
		bd, err := Open(p)
		if err != nil {
			return nil, err
		}
		bds = append(bds, bd)
	}
	return NewSet(bds...)
}

// NewSet checks that the parts of every bundle are present with their
// sizes and that every base blob of an increment is stored in one of the
// bundles (same size); otherwise it fails with ErrBaseNotGiven naming the
// base bundles to add.
func NewSet(bds ...*Bundle) (*Set, error) {
	if len(bds) == 0 {
		return nil, errors.New("no bundle given")
	}
	s := &Set{Bundles: slices.Clone(bds), blobs: map[digest.Digest]setBlob{}, manifests: map[digest.Digest]*meta.Manifest{}}
	slices.SortStableFunc(s.Bundles, func(a, b *Bundle) int { return a.Meta.Created.Compare(b.Meta.Created) })
	ids := map[string]bool{}
	var errs []error
	for _, bd := range s.Bundles {
		if ids[bd.Meta.ID] {
			return nil, fmt.Errorf("bundle %s given twice", bd.Meta.ID)
		}
		ids[bd.Meta.ID] = true
		if err := bd.CheckParts(); err != nil {
			errs = append(errs, fmt.Errorf("bundle %s: %w", bd.Meta.ID, err))
		}
		for i := range bd.Meta.Blobs {
			b := &bd.Meta.Blobs[i]
			if _, ok := s.blobs[b.Digest]; !ok {
				s.blobs[b.Digest] = setBlob{bd, b}
			}
		}
		for i := range bd.Meta.Manifests {
			m := &bd.Meta.Manifests[i]
			if _, ok := s.manifests[m.Digest]; !ok {
				s.manifests[m.Digest] = m
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for _, bd := range s.Bundles {
		missing := map[string]int{}
		for _, bb := range bd.Meta.BaseBlobs {
			sb, ok := s.blobs[bb.Digest]
			switch {
			case !ok:
				missing[bb.Base]++
			case sb.b.Size != bb.Size:
				return nil, fmt.Errorf("bundle %s: base blob %s: %w: %d bytes, bundle %s stores %d", bd.Meta.ID, bb.Digest, oci.ErrSizeMismatch, bb.Size, sb.bd.Meta.ID, sb.b.Size)
			}
		}
		if len(missing) == 0 {
			continue
		}
		var n int
		var names []string
		for _, b := range bd.Meta.Bases {
			if missing[b.ID] > 0 {
				n += missing[b.ID]
				names = append(names, fmt.Sprintf("%s (%s)", b.ID, b.Meta))
			}
		}
		slices.Sort(names)
		return nil, fmt.Errorf("bundle %s: %w: %d blob(s) it skipped are in none of the given bundles; give its base bundle(s) too: %s", bd.Meta.ID, ErrBaseNotGiven, n, strings.Join(names, ", "))
	}
	return s, nil
}

// Blob returns the meta entry of a blob stored in a bundle of the set.
func (s *Set) Blob(d digest.Digest) (*meta.Blob, bool) {
	sb, ok := s.blobs[d]
	return sb.b, ok
}

// Stored returns the bundle of the set that stores blob d and its record.
func (s *Set) Stored(d digest.Digest) (*Bundle, *meta.Blob, bool) {
	sb, ok := s.blobs[d]
	return sb.bd, sb.b, ok
}

// Files lists the files the set reads: every bundle's meta file, its
// signature and its parts.
func (s *Set) Files() []string {
	var out []string
	for _, bd := range s.Bundles {
		out = append(out, bd.MetaPath, bd.MetaPath+".sig")
		for _, p := range bd.Meta.Parts {
			out = append(out, filepath.Join(bd.Dir, p.Name))
		}
	}
	return out
}

// Manifest returns a manifest stored in a bundle of the set, or nil.
func (s *Set) Manifest(d digest.Digest) *meta.Manifest { return s.manifests[d] }

// Images lists the images of every bundle, oldest bundle first; an image
// whose repository and tag a newer bundle also has is left out.
func (s *Set) Images() []meta.Image {
	var out []meta.Image
	for i, bd := range s.Bundles {
		for _, img := range bd.Meta.Images {
			if img.Tag != "" && slices.ContainsFunc(s.Bundles[i+1:], func(nb *Bundle) bool {
				return slices.ContainsFunc(nb.Meta.Images, func(o meta.Image) bool { return o.Repository == img.Repository && o.Tag == img.Tag })
			}) {
				continue
			}
			out = append(out, img)
		}
	}
	return out
}

// ManifestGet returns a manifest by digest, or by the tag of an image of
// r's repository (the newest bundle's when several have it).
func (s *Set) ManifestGet(_ context.Context, r ref.Ref) (manifest.Manifest, error) {
	dg := digest.Digest(r.Digest)
	if dg == "" {
		for _, img := range s.Images() {
			if img.Repository == r.Repository && img.Tag == r.Tag {
				dg = img.Digest
			}
		}
	}
	mf := s.manifests[dg]
	if mf == nil {
		return nil, fmt.Errorf("manifest %s: %w", r.CommonName(), ErrBlobMissing)
	}
	return ParseManifest(*mf)
}

// BlobGet opens blob d from the bundle of the set that stores it; the
// reader fails at EOF when the bytes do not match d's digest and size.
func (s *Set) BlobGet(ctx context.Context, r ref.Ref, d descriptor.Descriptor) (io.ReadCloser, error) {
	sb, ok := s.blobs[d.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", d.Digest, ErrBlobMissing)
	}
	d = descriptor.Descriptor{MediaType: cmp.Or(d.MediaType, sb.b.MediaType), Digest: sb.b.Digest, Size: sb.b.Size}
	if Codec(sb.bd.Meta.Compression) == CodecNone && sb.bd.Meta.SchemaVersion < 2 {
		return seekBlob(ctx, sb.bd, sb.b, d)
	}
	return sb.bd.BlobGet(ctx, r, d)
}

// OpenBlobFrom is Bundle.OpenBlobFrom on the bundle of the set that
// stores blob d: from byte start on, its digest not checked.
func (s *Set) OpenBlobFrom(ctx context.Context, d digest.Digest, start int64) (io.ReadCloser, error) {
	sb, ok := s.blobs[d]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", d, ErrBlobMissing)
	}
	return sb.bd.OpenBlobFrom(ctx, d, start)
}

// seekBlob finds a blob in an uncompressed part of a schema 1 bundle (no
// recorded offsets) reading only the tar headers before it: archive/tar
// seeks over entry data when it reads from a file.
func seekBlob(ctx context.Context, bd *Bundle, b *meta.Blob, d descriptor.Descriptor) (io.ReadCloser, error) {
	f, err := meta.OpenRegular(filepath.Join(bd.Dir, b.Part))
	if err != nil {
		return nil, fmt.Errorf("blob %s: part %s: %w: %v", d.Digest, b.Part, ErrPartMissing, err)
	}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err != nil {
			f.Close()
			if err == io.EOF {
				return nil, fmt.Errorf("blob %s: %w in part %s", d.Digest, ErrBlobMissing, b.Part)
			}
			return nil, fmt.Errorf("blob %s: part %s: %w: %v", d.Digest, b.Part, ErrPartCorrupt, err)
		}
		if dg, ok := digestFromPath(hdr.Name); ok && dg == b.Digest {
			return readCloser{oci.VerifyReader(oci.ContextReader(ctx, tr), d), f.Close}, nil
		}
	}
}
