package bundle_test

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
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
)

func TestCodecsRoundTrip(t *testing.T) {
	payload := bytes.Repeat([]byte("ferry moves images "), 50000)
	for _, c := range bundle.Codecs {
		t.Run(string(c), func(t *testing.T) {
			var buf bytes.Buffer
			enc, err := c.NewEncoder(&buf)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := enc.Write(payload); err != nil {
				t.Fatal(err)
			}
			if err := enc.Close(); err != nil {
				t.Fatal(err)
			}
			if c != bundle.CodecNone && buf.Len() >= len(payload) {
				t.Errorf("%s did not compress: %d bytes", c, buf.Len())
			}
			dec, err := c.NewDecoder(&buf)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(dec)
			if err != nil || !bytes.Equal(got, payload) {
				t.Fatalf("round trip: %v", err)
			}
			if bundle.CodecFromName("x.tar"+c.Ext()) != c {
				t.Errorf("CodecFromName(%q)", "x.tar"+c.Ext())
			}
		})
	}
	if _, err := bundle.ParseCodec("brotli"); !errors.Is(err, bundle.ErrCodec) {
		t.Errorf("brotli: %v", err)
	}
}

// TestGoldenMeta saves the fixtures deterministically (one part, fixed
// clock) and compares meta.yaml with testdata/golden.
// FuzzReadPart feeds arbitrary bytes as a part: ReadPart must never panic,
// and must only succeed when the part holds the listed blob intact.
func FuzzReadPart(f *testing.F) {
	blob := []byte("the only blob")
	d := digest.FromBytes(blob)
	var good bytes.Buffer
	tw := tar.NewWriter(&good)
	_ = tw.WriteHeader(&tar.Header{Name: bundle.BlobPath(d), Size: int64(len(blob)), Mode: 0o644, Typeflag: tar.TypeReg})
	_, _ = tw.Write(blob)
	_ = tw.Close()
	f.Add(good.Bytes())
	f.Add([]byte{})
	f.Add(good.Bytes()[:700])
	f.Fuzz(fuzzBody)
}

func fuzzBody(t *testing.T, part []byte) {
	blob := []byte("the only blob")
	d := digest.FromBytes(blob)
	{
		dir := t.TempDir()
		name := "f_full_20260101T000000Z_1.tar"
		if err := os.WriteFile(filepath.Join(dir, name), part, 0o644); err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(part)
		p := meta.Part{Name: name, Size: int64(len(part)), SHA256: hex.EncodeToString(h[:])}
		bd := &bundle.Bundle{Dir: dir, Meta: &meta.Meta{Compression: "none", Parts: []meta.Part{p},
			Blobs: []meta.Blob{{Digest: d, Size: int64(len(blob)), Part: name}}}}
		var got []byte
		err := bd.ReadPart(context.Background(), p, func(_ *meta.Blob, r io.Reader) error {
			var err error
			got, err = io.ReadAll(r)
			return err
		})
		if err == nil && !bytes.Equal(got, blob) {
			t.Fatalf("ReadPart succeeded with blob %q", got)
		}
		if err == nil && !bytes.Contains(part, blob) {
			t.Fatal("ReadPart succeeded on a part without the blob")
		}
	}
}

func TestReadPartRejects(t *testing.T) {
	blob := []byte("the only blob")
	d := digest.FromBytes(blob)
	mk := func(name string, data []byte, size int64) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		_ = tw.WriteHeader(&tar.Header{Name: name, Size: size, Mode: 0o644, Typeflag: tar.TypeReg})
		_, _ = tw.Write(data)
		_ = tw.Close()
		return b.Bytes()
	}
	tests := []struct {
		name string
		part []byte
		sha  string // "" = the part's own
		err  error
	}{
		{"ok", mk(bundle.BlobPath(d), blob, int64(len(blob))), "", nil},
		{"wrong content", mk(bundle.BlobPath(d), []byte("the only blub"), int64(len(blob))), "", oci.ErrDigestMismatch},
		{"missing blob, an unlisted one instead", mk("blobs/sha256/"+strings.Repeat("0", 64), blob, int64(len(blob))), "", bundle.ErrUnlisted},
		{"missing blob", mk("oci-layout", []byte("{}"), 2), "", bundle.ErrBlobMissing},
		{"sha mismatch", mk(bundle.BlobPath(d), blob, int64(len(blob))), strings.Repeat("ab", 32), bundle.ErrPartCorrupt},
		{"garbage", []byte(strings.Repeat("garbage!", 100)), "", bundle.ErrPartCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			name := "f_full_20260101T000000Z_1.tar"
			_ = os.WriteFile(filepath.Join(dir, name), tt.part, 0o644)
			h := sha256.Sum256(tt.part)
			sha := hex.EncodeToString(h[:])
			if tt.sha != "" {
				sha = tt.sha
			}
			p := meta.Part{Name: name, Size: int64(len(tt.part)), SHA256: sha}
			bd := &bundle.Bundle{Dir: dir, Meta: &meta.Meta{Compression: "none", Parts: []meta.Part{p},
				Blobs: []meta.Blob{{Digest: d, Size: int64(len(blob)), Part: name}}}}
			err := bd.ReadPart(context.Background(), p, func(*meta.Blob, io.Reader) error { return nil })
			if !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
		})
	}
}

// FuzzOpenBlob feeds arbitrary part bytes and locations of a schema 2
// bundle (what meta.Validate lets through): OpenBlob and ReadPart must
// never panic and only succeed with the blob's exact bytes.
func FuzzOpenBlob(f *testing.F) {
	blob := []byte("the only blob")
	d := digest.FromBytes(blob)
	for _, c := range []bundle.Codec{bundle.CodecNone, bundle.CodecZstd, bundle.CodecGzip} {
		var part bytes.Buffer
		enc, _ := c.NewEncoder(&part)
		tw := tar.NewWriter(enc)
		_ = tw.WriteHeader(&tar.Header{Name: bundle.BlobPath(d), Size: int64(len(blob)), Mode: 0o644, Typeflag: tar.TypeReg})
		_, _ = tw.Write(blob)
		_ = tw.Flush()
		_ = enc.Close()
		n := int64(part.Len())
		_ = tw.Close()
		f.Add(part.Bytes(), string(c), int64(0), n)
		f.Add(part.Bytes(), string(c), int64(1), n-1)
	}
	f.Fuzz(func(t *testing.T, part []byte, codec string, off, length int64) {
		c, err := bundle.ParseCodec(codec)
		if err != nil {
			return
		}
		dir := t.TempDir()
		name := "f_full_20260101T000000Z_1.tar" + c.Ext()
		if err := os.WriteFile(filepath.Join(dir, name), part, 0o644); err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(part)
		p := meta.Part{Name: name, Size: int64(len(part)), SHA256: hex.EncodeToString(h[:])}
		m := &meta.Meta{SchemaVersion: 2, Kind: meta.Kind, ID: "f", Type: meta.TypeFull, Compression: string(c), Parts: []meta.Part{p},
			Blobs: []meta.Blob{{Digest: d, Size: int64(len(blob)), Part: name, Location: meta.Location{Offset: off, Length: length}}}}
		if m.Validate() != nil {
			return
		}
		bd := &bundle.Bundle{Dir: dir, Meta: m}
		if rc, err := bd.OpenBlob(context.Background(), d); err == nil {
			got, err := io.ReadAll(rc)
			rc.Close()
			if err == nil && !bytes.Equal(got, blob) {
				t.Fatalf("OpenBlob succeeded with %q", got)
			}
		}
		err = bd.ReadPart(context.Background(), p, func(_ *meta.Blob, r io.Reader) error {
			got, err := io.ReadAll(r)
			if err == nil && !bytes.Equal(got, blob) {
				t.Fatalf("ReadPart succeeded with %q", got)
			}
			return err
		})
		_ = err
	})
}
