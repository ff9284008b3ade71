// Package spool keeps records in an append-only temporary file, so that
// memory holds an offset per record instead of the record: the bundle
// Writer spools manifest bytes, the transfer engines resolved image plans.
package spool

import (
	"fmt"
	"os"
	"runtime"
	"sync"
)

// Spool is an append-only temporary file of records.
type Spool struct {
	mu  sync.Mutex
	f   *os.File
	end int64
}

// Loc is where a record is in a Spool.
type Loc struct{ off, n int64 }

// New creates a spool in dir (the system's temporary directory when dir
// is ""). The file is unlinked at once where the system allows it (it
// vanishes with the process, even on kill -9) and removed by Close
// elsewhere.
func New(dir string) (*Spool, error) {
	f, err := os.CreateTemp(dir, ".ferry-spool-*")
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if runtime.GOOS != "windows" {
		_ = os.Remove(f.Name())
	}
	return &Spool{f: f}, nil
}

// Write appends b and returns where it is.
func (s *Spool) Write(b []byte) (Loc, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.f.WriteAt(b, s.end); err != nil {
		return Loc{}, fmt.Errorf("spool: %w", err)
	}
	loc := Loc{s.end, int64(len(b))}
	s.end += int64(len(b))
	return loc, nil
}

// Read returns the record at loc.
func (s *Spool) Read(loc Loc) ([]byte, error) {
	b := make([]byte, loc.n)
	if _, err := s.f.ReadAt(b, loc.off); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	return b, nil
}

// Close removes the spool.
func (s *Spool) Close() {
	s.f.Close()
	_ = os.Remove(s.f.Name())
}
