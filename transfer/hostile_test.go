package transfer_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
	"github.com/ferry-oss/ferry/transfer"
)

// frame encodes one tar entry (no end marker) as a frame of codec c.
func frame(t *testing.T, c bundle.Codec, hdr *tar.Header, body io.Reader) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc, err := c.NewEncoder(&buf)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(enc)
	if err := tw.WriteHeader(hdr); err != nil {
		t.Fatal(err)
	}
	if body != nil {
		if _, err := io.Copy(tw, body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rewritePart replaces bytes [from, to) of the bundle's only part with b
// and updates the meta file the way an attacker would (part size and
// sha256; the located entry at from gets b's length when it is replaced,
// the entries behind it move).
func rewritePart(t *testing.T, metaPath string, from, to int64, b []byte) {
	t.Helper()
	m, err := meta.Load(metaPath)
	if err != nil {
		t.Fatal(err)
	}
	p := &m.Parts[0]
	path := filepath.Join(filepath.Dir(metaPath), p.Name)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := append(append(append([]byte{}, data[:from]...), b...), data[to:]...)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(out)
	p.Size, p.SHA256 = int64(len(out)), hex.EncodeToString(sum[:])
	delta := int64(len(b)) - (to - from)
	for i := range m.Blobs {
		switch l := &m.Blobs[i].Location; {
		case l.Offset == from && to > from:
			l.Length = int64(len(b))
		case l.Offset >= to && to > from:
			l.Offset += delta
		}
	}
	for i := range m.Manifests {
		if l := &m.Manifests[i].Location; l.Offset >= to && to > from {
			l.Offset += delta
		}
	}
	if err := meta.Write(metaPath, m); err != nil {
		t.Fatal(err)
	}
}

// lastEntry is the located entry with the highest offset of m's only part.
func lastEntry(m *meta.Meta) (meta.Blob, int64) {
	var last meta.Blob
	end := int64(0)
	for _, b := range m.Blobs {
		if b.Offset+b.Length > end {
			last, end = b, b.Offset+b.Length
		}
	}
	for _, mf := range m.Manifests {
		if mf.Offset+mf.Length > end {
			last, end = meta.Blob{}, mf.Offset+mf.Length
		}
	}
	return last, end
}

// countSink counts what reaches it and accepts everything.
type countSink struct{ blobs, manifests atomic.Int64 }

func (s *countSink) BlobExists(context.Context, ref.Ref, descriptor.Descriptor) (bool, error) {
	return false, nil
}
func (s *countSink) BlobMount(context.Context, ref.Ref, ref.Ref, descriptor.Descriptor) error {
	return oci.ErrUnsupported
}
func (s *countSink) BlobPut(_ context.Context, _ ref.Ref, _ descriptor.Descriptor, r io.Reader) error {
	s.blobs.Add(1)
	_, err := io.Copy(io.Discard, r)
	return err
}
func (s *countSink) ManifestPut(context.Context, ref.Ref, manifest.Manifest) error {
	s.manifests.Add(1)
	return nil
}
func (s *countSink) Commit(context.Context) error { return nil }

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestHostileParts: a part (and a meta file rewritten to match its size
// and sha256, as an attacker would) that holds an entry no meta record
// names, a path out of the directory, a link, a device, a decompression
// bomb or data behind the archive's end is refused by verify and by
// upload, naming what it found, before anything is pushed; an entry hidden
// in a blob's own frame is refused by verify. Every codec.
func TestHostileParts(t *testing.T) {
	e := seeded(t)
	hidden := "blobs/sha256/" + strings.Repeat("ab", 32)
	type inject func(t *testing.T, c bundle.Codec, m *meta.Meta, metaPath string)
	after := func(hdr *tar.Header, body func() io.Reader) inject {
		return func(t *testing.T, c bundle.Codec, m *meta.Meta, metaPath string) {
			_, end := lastEntry(m)
			var r io.Reader
			if body != nil {
				r = body()
			}
			rewritePart(t, metaPath, end, end, frame(t, c, hdr, r))
		}
	}
	tests := []struct {
		name     string
		inject   inject
		want     string
		inUpload bool // upload refuses it too (it reads no frame of a blob)
	}{
		{"unlisted entry", after(&tar.Header{Name: hidden, Size: 1 << 20, Mode: 0o644, Typeflag: tar.TypeReg}, func() io.Reader { return io.LimitReader(zeros{}, 1<<20) }), hidden, true},
		{"path out of the directory", after(&tar.Header{Name: "../../etc/cron.d/x", Size: 5, Mode: 0o644, Typeflag: tar.TypeReg}, func() io.Reader { return strings.NewReader("evil\n") }), "../../etc/cron.d/x", true},
		{"absolute path", after(&tar.Header{Name: "/etc/passwd", Size: 5, Mode: 0o644, Typeflag: tar.TypeReg}, func() io.Reader { return strings.NewReader("evil\n") }), "/etc/passwd", true},
		{"symlink", after(&tar.Header{Name: "index.json", Linkname: "/etc/shadow", Typeflag: tar.TypeSymlink}, nil), "index.json", true},
		{"device", after(&tar.Header{Name: "oci-layout", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}, nil), "oci-layout", true},
		{"decompression bomb", after(&tar.Header{Name: "index.json", Size: 200 << 20, Mode: 0o644, Typeflag: tar.TypeReg}, func() io.Reader { return io.LimitReader(zeros{}, 200<<20) }), "index.json", true},
		{"data after the end", func(t *testing.T, c bundle.Codec, m *meta.Meta, metaPath string) {
			var buf bytes.Buffer
			enc, _ := c.NewEncoder(&buf)
			_, _ = enc.Write([]byte("not zeros after the tar end"))
			_ = enc.Close()
			rewritePart(t, metaPath, m.Parts[0].Size, m.Parts[0].Size, buf.Bytes())
		}, "after the end", true},
		{"entry hidden in a blob's frame", func(t *testing.T, c bundle.Codec, m *meta.Meta, metaPath string) {
			var b meta.Blob
			for _, x := range m.Blobs { // the blob stored last
				if x.Offset > b.Offset || b.Digest == "" {
					b = x
				}
			}
			bd, _ := bundle.Open(metaPath)
			rc, err := bd.OpenBlob(context.Background(), b.Digest)
			if err != nil {
				t.Fatal(err)
			}
			content, _ := io.ReadAll(rc)
			rc.Close()
			var buf bytes.Buffer
			enc, _ := c.NewEncoder(&buf)
			tw := tar.NewWriter(enc)
			_ = tw.WriteHeader(&tar.Header{Name: "blobs/" + b.Digest.Algorithm().String() + "/" + b.Digest.Encoded(), Size: b.Size, Mode: 0o644, Typeflag: tar.TypeReg})
			_, _ = tw.Write(content)
			_ = tw.WriteHeader(&tar.Header{Name: hidden, Size: 4, Mode: 0o644, Typeflag: tar.TypeReg})
			_, _ = tw.Write([]byte("evil"))
			_ = tw.Flush()
			_ = enc.Close()
			rewritePart(t, metaPath, b.Offset, b.Offset+b.Length, buf.Bytes())
		}, hidden, false},
	}
	for _, c := range []bundle.Codec{bundle.CodecNone, bundle.CodecZstd, bundle.CodecGzip, bundle.CodecXz, bundle.CodecLz4} {
		for _, tt := range tests {
			if c == bundle.CodecNone && tt.name == "decompression bomb" {
				continue // 200 MB on disk: the same check as index.json's size limit below
			}
			t.Run(string(c)+"/"+tt.name, func(t *testing.T) {
				dir := t.TempDir()
				res, err := save(t, e.reg, e.specs(t, "team/app:1"), dir, saveCase{codec: c, single: true})
				if err != nil {
					t.Fatal(err)
				}
				tt.inject(t, c, res.Meta, res.MetaPath)
				bd, err := bundle.Open(res.MetaPath)
				if err != nil {
					t.Fatalf("the rewritten meta file is refused already: %v", err)
				}
				err = bd.Verify(context.Background(), 1, nil)
				if !errors.Is(err, bundle.ErrUnlisted) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("verify: %v; want ErrUnlisted naming %q", err, tt.want)
				}
				sink := &countSink{}
				target := func(repo string) (ref.Ref, error) { return ref.New("target.test/" + repo) }
				_, err = transfer.Upload(context.Background(), bd, sink, transfer.UploadOptions{Target: target, Jobs: 1})
				if tt.inUpload {
					if !errors.Is(err, bundle.ErrUnlisted) || !strings.Contains(err.Error(), tt.want) {
						t.Fatalf("upload: %v; want ErrUnlisted naming %q", err, tt.want)
					}
					if n, m := sink.blobs.Load(), sink.manifests.Load(); n+m != 0 {
						t.Errorf("upload sent %d blobs and %d manifests before refusing", n, m)
					}
				}
			})
		}
	}
}

// TestManifestRefersToMissingBlob: a meta file whose manifest references a
// blob that neither the bundle nor a base bundle carries is refused by
// verify and by upload before anything is pushed.
func TestManifestRefersToMissingBlob(t *testing.T) {
	e := seeded(t)
	res, err := save(t, e.reg, e.specs(t, "team/app:1"), t.TempDir(), saveCase{single: true})
	if err != nil {
		t.Fatal(err)
	}
	m := res.Meta
	gone := m.Blobs[len(m.Blobs)-1]
	m.Blobs = m.Blobs[:len(m.Blobs)-1] // the entry stays in the part: now unlisted too
	if err := meta.Write(res.MetaPath, m); err != nil {
		t.Fatal(err)
	}
	bd, err := bundle.Open(res.MetaPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := bd.Verify(context.Background(), 1, nil); !errors.Is(err, bundle.ErrBlobMissing) || !strings.Contains(err.Error(), gone.Digest.String()) {
		t.Fatalf("verify: %v; want ErrBlobMissing naming %s", err, gone.Digest)
	}
	sink := &countSink{}
	target := func(repo string) (ref.Ref, error) { return ref.New("target.test/" + repo) }
	if _, err := transfer.Upload(context.Background(), bd, sink, transfer.UploadOptions{Target: target, Jobs: 1}); !errors.Is(err, bundle.ErrBlobMissing) || !strings.Contains(err.Error(), gone.Digest.String()) {
		t.Fatalf("upload: %v; want ErrBlobMissing naming %s", err, gone.Digest)
	}
	if n, mm := sink.blobs.Load(), sink.manifests.Load(); n+mm != 0 {
		t.Errorf("upload sent %d blobs and %d manifests before refusing", n, mm)
	}
}
