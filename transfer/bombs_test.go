package transfer_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"strings"
	"testing"

	"github.com/regclient/regclient/types/ref"
	"github.com/ulikunitz/xz"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/transfer"
)

// xzWideDict encodes entry as one xz stream and rewrites its block
// header's LZMA2 dictionary byte to dict (40: 4 GiB), fixing the header's
// CRC32: a legal stream whose decoder allocates that dictionary.
func xzWideDict(t *testing.T, entry []byte, dict byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := xz.WriterConfig{DictCap: 4096}.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(entry)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	h := b[12:] // the block header, after the stream header
	size := (int(h[0]) + 1) * 4
	if h[1]&0xc0 != 0 || h[2] != 0x21 || h[3] != 1 {
		t.Fatalf("unexpected block header % x", h[:size])
	}
	h[4] = dict
	binary.LittleEndian.PutUint32(h[size-4:], crc32.ChecksumIEEE(h[:size-4]))
	return b
}

// zstdWideWindow stores entry as one zstd frame of raw blocks whose header
// asks for a 64 MiB window (legal: the decoder keeps that much history).
func zstdWideWindow(entry []byte) []byte {
	b := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x80} // magic; no FCS, no checksum; window 2^(10+16)
	for len(entry) > 0 || len(b) == 6 {
		n := min(len(entry), 128<<10)
		hdr := uint32(n) << 3 // raw block
		if n == len(entry) {
			hdr |= 1 // last
		}
		b = append(b, byte(hdr), byte(hdr>>8), byte(hdr>>16))
		b = append(b, entry[:n]...)
		entry = entry[n:]
	}
	return b
}

// tarEntry is a blob's tar entry as ferry writes it (header, data,
// padding), uncompressed.
func tarEntry(t *testing.T, name string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Size: int64(len(data)), Mode: 0o644, Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write(data)
	tw.Flush()
	return buf.Bytes()
}

// TestDecoderBombs: an xz part whose blocks ask for a 4 GiB (or 128 MiB)
// dictionary, and a zstd part whose frames ask for a 64 MiB window, are
// refused by verify, OpenBlob (serve, export) and upload before a decoder
// allocates it: every decoder ferry makes holds at most 8 MiB of history.
func TestDecoderBombs(t *testing.T) {
	e := seeded(t)
	tests := []struct {
		name  string
		codec bundle.Codec
		wide  func(t *testing.T, entry []byte) []byte
		want  string
	}{
		{"xz dictionary 4 GiB", bundle.CodecXz, func(t *testing.T, b []byte) []byte { return xzWideDict(t, b, 40) }, "dictionary"},
		{"xz dictionary 128 MiB", bundle.CodecXz, func(t *testing.T, b []byte) []byte { return xzWideDict(t, b, 30) }, "dictionary"},
		{"zstd window 64 MiB", bundle.CodecZstd, func(_ *testing.T, b []byte) []byte { return zstdWideWindow(b) }, "window"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := save(t, e.reg, e.specs(t, "team/app:1"), t.TempDir(), saveCase{codec: tt.codec, single: true})
			if err != nil {
				t.Fatal(err)
			}
			var big meta.Blob
			for _, b := range res.Meta.Blobs {
				if b.Size > big.Size {
					big = b
				}
			}
			bd, err := bundle.Open(res.MetaPath)
			if err != nil {
				t.Fatal(err)
			}
			rc, err := bd.OpenBlob(context.Background(), big.Digest)
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			rewritePart(t, res.MetaPath, big.Offset, big.Offset+big.Length, tt.wide(t, tarEntry(t, bundle.BlobPath(big.Digest), data)))
			if bd, err = bundle.Open(res.MetaPath); err != nil {
				t.Fatal(err)
			}
			refused := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, bundle.ErrPartCorrupt) || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("%s: %v; want ErrPartCorrupt naming the %s", what, err, tt.want)
				}
			}
			refused("verify", bd.Verify(context.Background(), 1, nil))
			rc, err = bd.OpenBlob(context.Background(), big.Digest)
			if err == nil {
				_, err = io.Copy(io.Discard, rc)
				rc.Close()
			}
			refused("OpenBlob", err)
			sink := &countSink{}
			target := func(repo string) (ref.Ref, error) { return ref.New("target.test/" + repo) }
			_, err = transfer.Upload(context.Background(), bd, sink, transfer.UploadOptions{Target: target, Jobs: 1})
			refused("upload", err)
		})
	}
}
