package bundle

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
)

// BlobPath is the tar entry name of a blob: the OCI image layout path.
func BlobPath(d digest.Digest) string {
	return "blobs/" + d.Algorithm().String() + "/" + d.Encoded()
}

// PartialSuffix marks a part that is still being written.
const PartialSuffix = ".partial"

// asyncFile hashes and writes the part on a goroutine of its own, so that
// the part's sha256 runs on another core than the blob's digest check
// (which runs in the goroutine that reads the source). Write copies into
// 1 MiB buffers; at most two full buffers wait for the goroutine.
type asyncFile struct {
	n    int64  // bytes written (the part's size so far)
	cur  []byte // buffer being filled
	free chan []byte
	work chan []byte
	wg   sync.WaitGroup
	h    hash.Hash
	w    io.Writer
	mu   sync.Mutex
	err  error // the first write error of the goroutine
	// work is nil once closed
}

const asyncBuf = 512 << 10

// tarBlock is the tar block size: headers, padding and the end marker.
const tarBlock = 512

func newAsyncFile(w io.Writer) *asyncFile {
	a := &asyncFile{free: make(chan []byte, 3), work: make(chan []byte, 3), h: sha256.New(), w: w}
	a.cur = make([]byte, 0, asyncBuf)
	for range 2 {
		a.free <- make([]byte, 0, asyncBuf)
	}
	go a.run(a.work) // close sets a.work to nil: the goroutine keeps its own copy
	return a
}

func (a *asyncFile) run(work chan []byte) {
	for b := range work {
		if a.failed() == nil {
			a.h.Write(b)
			if _, err := a.w.Write(b); err != nil {
				a.mu.Lock()
				a.err = err
				a.mu.Unlock()
			}
		}
		a.free <- b[:0]
		a.wg.Done()
	}
}

func (a *asyncFile) failed() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

func (a *asyncFile) Write(p []byte) (int, error) {
	if err := a.failed(); err != nil {
		return 0, err
	}
	n := len(p)
	for len(p) > 0 {
		c := copy(a.cur[len(a.cur):cap(a.cur)], p)
		a.cur = a.cur[:len(a.cur)+c]
		p = p[c:]
		if len(a.cur) == cap(a.cur) {
			a.send()
		}
	}
	a.n += int64(n)
	return n, nil
}

func (a *asyncFile) send() {
	a.wg.Add(1)
	a.work <- a.cur
	a.cur = <-a.free
}

// flush waits until every byte written is hashed and written to the file.
func (a *asyncFile) flush() error {
	if len(a.cur) > 0 {
		a.send()
	}
	a.wg.Wait()
	return a.failed()
}

// close flushes and stops the goroutine; later calls do nothing.
func (a *asyncFile) close() error {
	if a.work == nil {
		return a.failed()
	}
	err := a.flush()
	close(a.work)
	a.work = nil
	return err
}

// reset restarts the hash from h and the count from n (after a rollback).
// The goroutine is idle (flushed).
func (a *asyncFile) reset(h hash.Hash, n int64) { a.h, a.n = h, n }

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

// partWriter writes one tar part: file <- bufio <- hash/count <- frame
// encoder <- tar. Every entry is one frame of the codec (the whole entry:
// tar header, data, padding) and its Location is recorded; the tar end
// marker is a last frame of its own.
type partWriter struct {
	path  string // final path, without PartialSuffix
	f     *os.File
	wb    *writebackFile
	af    *asyncFile
	fe    frameEncoder
	tw    *tar.Writer
	count int // entries
	seq   int // the part's number in its partial name (the resume journal's)
	mtime time.Time
	err   error // a failed write to the file: the part is unusable
}

func newPartWriter(path string, codec Codec, mtime time.Time) (*partWriter, error) {
	fe, err := codec.newFrameEncoder()
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path+PartialSuffix, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("creating part: %w", err)
	}
	pw := &partWriter{path: path, f: f, wb: &writebackFile{f: f}, fe: fe, mtime: mtime}
	pw.af = newAsyncFile(pw.wb)
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
	off := pw.af.n
	n, err := pw.entry(name, size, r)
	if err == nil && n != size {
		err = fmt.Errorf("%w: %d of %d bytes", oci.ErrSizeMismatch, n, size)
	}
	if err == nil {
		err = pw.fe.end()
	}
	if err != nil {
		if rerr := pw.rollback(off); rerr != nil {
			pw.err = fmt.Errorf("writing %s: %w (after %w)", filepath.Base(pw.path), rerr, err)
			return meta.Location{}, pw.err
		}
		return meta.Location{}, err
	}
	pw.count++
	return meta.Location{Offset: off, Length: pw.af.n - off}, nil
}

// entry writes the tar header, data and padding of one entry into a new
// frame.
func (pw *partWriter) entry(name string, size int64, r io.Reader) (int64, error) {
	if err := pw.fe.begin(pw.af, size+3*tarBlock); err != nil {
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
	_ = pw.fe.begin(io.Discard, 0)
	_ = pw.fe.end()
	pw.tw = tar.NewWriter(pw.fe)
	if err := pw.af.flush(); err != nil {
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
	pw.af.reset(h, off)
	pw.wb.n, pw.wb.kick = off, min(pw.wb.kick, off)
	return nil
}

// size is the bytes written to the part so far.
func (pw *partWriter) size() int64 { return pw.af.n }

// finish writes the tar end marker (its own frame), syncs the file and
// returns the part's size and sha256. The file keeps its partial name.
func (pw *partWriter) finish() (int64, string, error) {
	err := pw.err
	if err == nil {
		err = pw.fe.begin(pw.af, 2*tarBlock)
	}
	if err == nil {
		err = pw.tw.Close()
	}
	if err == nil {
		err = pw.fe.end()
	}
	if ferr := pw.af.close(); err == nil {
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
	return pw.af.n, hex.EncodeToString(pw.af.h.Sum(nil)), nil
}

// abort closes and removes the partial file.
func (pw *partWriter) abort() {
	_ = pw.af.close()
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
