package bundle

import (
	"io"
	"os"
	"sync/atomic"
)

// CountReads makes bd count every byte it reads from its part files, for
// tests that check what an upload or a read of the bundle reads.
func CountReads(bd *Bundle) *atomic.Int64 {
	n := new(atomic.Int64)
	bd.openPart = func(path string) (partFile, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		return &countedFile{f: f, n: n}, nil
	}
	return n
}

type countedFile struct {
	f *os.File
	n *atomic.Int64
}

func (c *countedFile) Read(p []byte) (int, error) {
	n, err := c.f.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countedFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.f.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

func (c *countedFile) Close() error { return c.f.Close() }

var _ io.ReaderAt = (*countedFile)(nil)
