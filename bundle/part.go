package bundle

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-oss/ferry/bundle/codec"
	"github.com/ferry-oss/ferry/internal/asyncfile"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
)

// BlobPath is the tar entry name of a blob: the OCI image layout path.
func BlobPath(d digest.Digest) string {
	return "blobs/" + d.Algorithm().String() + "/" + d.Encoded()
}

// PartialSuffix marks a part that is still being written.
const PartialSuffix = ".partial"

// tarBlock is the tar block size: headers, padding and the end marker.
const tarBlock = 512

// partWriter writes one tar part: file <- bufio <- hash/count <- frame
// encoder <- tar. Every entry is one frame of the codec (the whole entry:
// tar header, data, padding) and its Location is recorded; the tar end
// marker is a last frame of its own.
type partWriter struct {
	path  string // final path, without PartialSuffix
	f     *os.File
	wb    *asyncfile.Writeback
	af    *asyncfile.Writer
	fe    codec.FrameEncoder
	tw    *tar.Writer
	count int // entries
	seq   int // the part's number in its partial name (the resume journal's)
	mtime time.Time
	err   error // a failed write to the file: the part is unusable
}

func newPartWriter(path string, codec Codec, mtime time.Time) (*partWriter, error) {
	fe, err := codec.NewFrameEncoder()
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path+PartialSuffix, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("creating part: %w", err)
	}
	pw := &partWriter{path: path, f: f, wb: asyncfile.NewWriteback(f, 0), fe: fe, mtime: mtime}
	pw.af = asyncfile.New(pw.wb)
	pw.tw = tar.NewWriter(fe)
	return pw, nil
}

// add writes one entry of exactly size bytes from r as one frame and
// returns where it lies in the part. When r fails, the part is rolled back
// to where the entry began (file truncated, hash state restored), so a
// failed entry leaves no trace, and the error is returned.
func (pw *partWriter) add(name string, size int64, r io.Reader) (meta.Location, error) {
	if pw.err != nil {
		return meta.Location{}, pw.err
	}
	off := pw.af.N()
	n, err := pw.entry(name, size, r)
	if err == nil && n != size {
		err = fmt.Errorf("%w: %d of %d bytes", oci.ErrSizeMismatch, n, size)
	}
	if err == nil {
		err = pw.fe.End()
	}
	if err != nil {
		if rerr := pw.rollback(off); rerr != nil {
			pw.err = fmt.Errorf("writing %s: %w (after %w)", filepath.Base(pw.path), rerr, err)
			return meta.Location{}, pw.err
		}
		return meta.Location{}, err
	}
	pw.count++
	return meta.Location{Offset: off, Length: pw.af.N() - off}, nil
}

// entry writes the tar header, data and padding of one entry into a new
// frame.
func (pw *partWriter) entry(name string, size int64, r io.Reader) (int64, error) {
	if err := pw.fe.Begin(pw.af, size+3*tarBlock); err != nil {
		return 0, err
	}
	hdr := &tar.Header{Name: name, Mode: 0o644, Size: size, ModTime: pw.mtime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
	if err := pw.tw.WriteHeader(hdr); err != nil {
		return 0, fmt.Errorf("writing %s: %w", filepath.Base(pw.path), err)
	}
	n, err := io.Copy(pw.tw, r)
	if err != nil {
		return n, err
	}
	if n == size {
		err = pw.tw.Flush() // the padding, inside this frame
	}
	return n, err
}

// rollback drops everything written from off on: the file is truncated
// and the part's hash recomputed from its first off bytes (a failed entry
// is rare; the common path keeps no hash snapshots).
func (pw *partWriter) rollback(off int64) error {
	// The encoder may hold a broken frame: start over on a sink that
	// discards it; the tar writer's state is dropped with it.
	_ = pw.fe.Begin(io.Discard, 0)
	_ = pw.fe.End()
	pw.tw = tar.NewWriter(pw.fe)
	if err := pw.af.Flush(); err != nil {
		return err
	}
	if err := pw.f.Truncate(off); err != nil {
		return err
	}
	if _, err := pw.f.Seek(off, io.SeekStart); err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(pw.f, 0, off)); err != nil {
		return err
	}
	pw.af.Reset(h, off)
	pw.wb.Rewind(off)
	return nil
}

// size is the bytes written to the part so far.
func (pw *partWriter) size() int64 { return pw.af.N() }

// finish writes the tar end marker (its own frame), syncs the file and
// returns the part's size and sha256. The file keeps its partial name.
func (pw *partWriter) finish() (int64, string, error) {
	err := pw.err
	if err == nil {
		err = pw.fe.Begin(pw.af, 2*tarBlock)
	}
	if err == nil {
		err = pw.tw.Close()
	}
	if err == nil {
		err = pw.fe.End()
	}
	if ferr := pw.af.Close(); err == nil {
		err = ferr
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
	return pw.af.N(), hex.EncodeToString(pw.af.Sum()), nil
}

// abort closes and removes the partial file.
func (pw *partWriter) abort() {
	_ = pw.af.Close()
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
