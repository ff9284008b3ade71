package bundle

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// BlobPath is the tar entry name of a blob: the OCI image layout path.
func BlobPath(d digest.Digest) string {
	return "blobs/" + d.Algorithm().String() + "/" + d.Encoded()
}

// PartialSuffix marks a part that is still being written.
const PartialSuffix = ".partial"

// countHash counts and hashes what is written to the file.
type countHash struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (c *countHash) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}

// writebackFile kicks off asynchronous writeback every writebackChunk
// bytes written to the file.
type writebackFile struct {
	f       *os.File
	n, kick int64
}

const writebackChunk = 16 << 20

func (w *writebackFile) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.n += int64(n)
	if w.n-w.kick >= writebackChunk {
		startWriteback(w.f, w.kick, w.n-w.kick)
		w.kick = w.n
	}
	return n, err
}

// partWriter writes one tar part: file <- bufio <- hash/count <- codec <- tar.
type partWriter struct {
	path  string // final path, without PartialSuffix
	f     *os.File
	buf   *bufio.Writer
	ch    *countHash
	enc   io.WriteCloser
	tw    *tar.Writer
	raw   int64 // uncompressed bytes of entry data written
	count int   // entries
	mtime time.Time
}

func newPartWriter(path string, codec Codec, mtime time.Time) (*partWriter, error) {
	f, err := os.OpenFile(path+PartialSuffix, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("creating part: %w", err)
	}
	pw := &partWriter{path: path, f: f, buf: bufio.NewWriterSize(&writebackFile{f: f}, 1<<20), mtime: mtime}
	pw.ch = &countHash{w: pw.buf, h: sha256.New()}
	pw.enc, err = codec.NewEncoder(pw.ch)
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	pw.tw = tar.NewWriter(pw.enc)
	return pw, nil
}

// add writes one entry of exactly size bytes from r. When r fails, the
// entry is padded with zeros so that the tar stream stays well formed, and
// the error is returned: the entry must then not be listed anywhere.
func (pw *partWriter) add(name string, size int64, r io.Reader) error {
	hdr := &tar.Header{Name: name, Mode: 0o644, Size: size, ModTime: pw.mtime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
	if err := pw.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("writing %s: %w", pw.path, err)
	}
	n, err := io.Copy(pw.tw, r)
	pw.raw += n
	if err == nil && n != size {
		err = fmt.Errorf("%w: %d of %d bytes", ErrSizeMismatch, n, size)
	}
	if err != nil {
		if n < size {
			if _, perr := io.CopyN(pw.tw, zeroReader{}, size-n); perr != nil {
				return fmt.Errorf("writing %s: %w (after %w)", pw.path, perr, err)
			}
		}
		return err
	}
	pw.count++
	return nil
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// size is the bytes written to the file so far (after compression and
// buffering, so an estimate for split decisions).
func (pw *partWriter) size() int64 { return pw.ch.n + int64(pw.buf.Buffered()) }

// finish closes the tar and the encoder, syncs the file and returns the
// part's size and sha256. The file keeps its partial name.
func (pw *partWriter) finish() (int64, string, error) {
	err := pw.tw.Close()
	if err == nil {
		err = pw.enc.Close()
	}
	if err == nil {
		err = pw.buf.Flush()
	}
	if err == nil {
		err = pw.f.Sync()
	}
	if cerr := pw.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, "", fmt.Errorf("finishing part %s: %w", filepath.Base(pw.path), err)
	}
	return pw.ch.n, hex.EncodeToString(pw.ch.h.Sum(nil)), nil
}

// abort closes and removes the partial file.
func (pw *partWriter) abort() {
	pw.f.Close()
	os.Remove(pw.f.Name())
}

// partName is <prefix>_<type>_<ts>_<n>.tar<ext>.
func partName(id string, n int, codec Codec) string {
	return fmt.Sprintf("%s_%d.tar%s", id, n, codec.Ext())
}

// CodecFromName returns the codec implied by a part file name.
func CodecFromName(name string) Codec {
	for _, c := range Codecs {
		if c != CodecNone && strings.HasSuffix(name, ".tar"+c.Ext()) {
			return c
		}
	}
	return CodecNone
}
