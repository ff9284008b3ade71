// Package asyncfile writes a file from a goroutine of its own, hashing
// it as it goes, and asks the kernel to start writing back what was
// written every few MiB: the bundle Writer's parts.
package asyncfile

import (
	"crypto/sha256"
	"hash"
	"io"
	"os"
	"sync"
)

// Writer hashes and writes a file on a goroutine of its own, so that
// the file's sha256 runs on another core than the blob's digest check
// (which runs in the goroutine that reads the source). Write copies into
// 1 MiB buffers; at most two full buffers wait for the goroutine.
type Writer struct {
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

// New starts a Writer that hashes (sha256) and writes to w.
func New(w io.Writer) *Writer {
	a := &Writer{free: make(chan []byte, 3), work: make(chan []byte, 3), h: sha256.New(), w: w}
	a.cur = make([]byte, 0, asyncBuf)
	for range 2 {
		a.free <- make([]byte, 0, asyncBuf)
	}
	go a.run(a.work) // close sets a.work to nil: the goroutine keeps its own copy
	return a
}

func (a *Writer) run(work chan []byte) {
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

func (a *Writer) failed() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

func (a *Writer) Write(p []byte) (int, error) {
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

func (a *Writer) send() {
	a.wg.Add(1)
	a.work <- a.cur
	a.cur = <-a.free
}

// Flush waits until every byte written is hashed and written to the file.
func (a *Writer) Flush() error {
	if len(a.cur) > 0 {
		a.send()
	}
	a.wg.Wait()
	return a.failed()
}

// Close flushes and stops the goroutine; later calls do nothing.
func (a *Writer) Close() error {
	if a.work == nil {
		return a.failed()
	}
	err := a.Flush()
	close(a.work)
	a.work = nil
	return err
}

// Reset restarts the hash from h and the count from n (after a rollback).
// The goroutine is idle (flushed).
func (a *Writer) Reset(h hash.Hash, n int64) { a.h, a.n = h, n }

// Writeback is a file that kicks off asynchronous writeback every writebackChunk
// bytes written to the file.
type Writeback struct {
	f       *os.File
	n, kick int64
}

// NewWriteback writes to f from offset n on.
func NewWriteback(f *os.File, n int64) *Writeback { return &Writeback{f: f, n: n, kick: n} }

// Rewind goes back to offset off (after a truncation).
func (w *Writeback) Rewind(off int64) { w.n, w.kick = off, min(w.kick, off) }

const writebackChunk = 16 << 20

func (w *Writeback) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.n += int64(n)
	if w.n-w.kick >= writebackChunk {
		startWriteback(w.f, w.kick, w.n-w.kick)
		w.kick = w.n
	}
	return n, err
}

// N is the bytes written so far.
func (a *Writer) N() int64 { return a.n }

// Sum is the sha256 of the bytes written (call it after Flush or Close).
func (a *Writer) Sum() []byte { return a.h.Sum(nil) }
