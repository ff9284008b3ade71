package imagearchive

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
)

// store reads an archive's blobs (bundle.Store).
type store struct {
	fs    files
	paths map[digest.Digest]string
	m     *meta.Meta
}

// OpenBlob opens a blob of the archive, size and digest checked at EOF.
func (s *store) OpenBlob(ctx context.Context, e bundle.Entry) (io.ReadCloser, error) {
	name, ok := s.paths[e.Descriptor.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", e.Descriptor.Digest, bundle.ErrBlobMissing)
	}
	rc, err := s.fs.open(name)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", e.Descriptor.Digest, err)
	}
	return readCloser{oci.VerifyReader(oci.ContextReader(ctx, rc), e.Descriptor), rc.Close}, nil
}

// ReadPart reads every file of a part: the blobs the meta stores there go
// to fn, every other blobs/<alg>/<hex> file is checked against its name.
func (s *store) ReadPart(ctx context.Context, p meta.Part, fn bundle.BlobFunc) error {
	stored := map[string]*meta.Blob{}
	for i := range s.m.Blobs {
		if b := &s.m.Blobs[i]; b.Part == p.Name {
			stored[s.paths[b.Digest]] = b
		}
	}
	for _, name := range s.fs.names() {
		if s.fs.part(name) != p.Name {
			continue
		}
		b, ok := stored[name]
		if ok {
			delete(stored, name)
		} else if dg, named := namedBlob(name); named {
			b = &meta.Blob{Digest: dg, Size: s.fs.size(name)}
		} else {
			continue // index.json, manifest.json, oci-layout, repositories: read when opened
		}
		if err := s.readOne(ctx, name, b, ok, fn); err != nil {
			return fmt.Errorf("%s: %w", p.Name, err)
		}
	}
	if len(stored) > 0 {
		var missing []string
		for n := range stored {
			missing = append(missing, n)
		}
		sort.Strings(missing)
		return fmt.Errorf("%s: %w: %s", p.Name, bundle.ErrBlobMissing, strings.Join(missing, ", "))
	}
	return nil
}

func (s *store) readOne(ctx context.Context, name string, b *meta.Blob, give bool, fn bundle.BlobFunc) error {
	rc, err := s.fs.open(name)
	if err != nil {
		return err
	}
	defer rc.Close()
	r := oci.VerifyReader(oci.ContextReader(ctx, rc), descriptor.Descriptor{Digest: b.Digest, Size: b.Size})
	if give {
		if err := fn(b, r); err != nil {
			return err
		}
	}
	_, err = io.Copy(io.Discard, r)
	return err
}

// namedBlob is the digest a blobs/sha256/<hex> file is named after.
func namedBlob(name string) (digest.Digest, bool) {
	hex, ok := strings.CutPrefix(name, "blobs/sha256/")
	d := digest.NewDigestFromEncoded(digest.SHA256, hex)
	return d, ok && d.Validate() == nil
}
