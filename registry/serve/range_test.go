package serve

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestParseRange(t *testing.T) {
	for _, tc := range []struct {
		h             string
		size          int64
		start, length int64
		ok            bool
	}{
		{"bytes=0-0", 10, 0, 1, true},
		{"bytes=0-9", 10, 0, 10, true},
		{"bytes=0-99", 10, 0, 10, true},
		{"bytes=3-", 10, 3, 7, true},
		{"bytes=-3", 10, 7, 3, true},
		{"bytes=-30", 10, 0, 10, true},
		{"bytes=10-", 10, 0, 0, false},
		{"bytes=5-4", 10, 0, 0, false},
		{"bytes=-0", 10, 0, 0, false},
		{"bytes=x-1", 10, 0, 0, false},
		{"bytes=1", 10, 0, 0, false},
		{"bytes=0-", 0, 0, 0, false},
		{"bytes=0-1,3-4", 10, -1, 0, true}, // several ranges: the whole blob
		{"items=0-1", 10, -1, 0, true},
	} {
		s, l, ok := parseRange(tc.h, tc.size)
		if s != tc.start || l != tc.length || ok != tc.ok {
			t.Errorf("parseRange(%q, %d) = %d, %d, %v; want %d, %d, %v", tc.h, tc.size, s, l, ok, tc.start, tc.length, tc.ok)
		}
	}
}

// FuzzParseRange: a satisfiable range always lies inside the blob.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-9", "bytes=-5", "bytes=7-", "bytes=9223372036854775807-", "bytes=-9223372036854775808"} {
		f.Add(s, int64(100))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			return
		}
		s, l, ok := parseRange(h, size)
		if ok && s >= 0 && (l <= 0 || s+l > size || s+l < s) {
			t.Fatalf("parseRange(%q, %d) = %d, %d outside the blob", h, size, s, l)
		}
	})
}

type failAtEOF struct{ r io.Reader }

func (f failAtEOF) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errors.New("digest mismatch")
	}
	return n, err
}

// TestCopyVerifiedHoldsBack: nothing of the last chunk is written when the
// reader fails at EOF, everything when it ends cleanly.
func TestCopyVerifiedHoldsBack(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 3*chunk+100)
	for _, tc := range []struct {
		start, length int64
	}{{0, int64(len(data))}, {10, 2 * chunk}, {int64(len(data)) - 5, 5}, {0, 0}} {
		var out bytes.Buffer
		if err := copyVerified(&out, bytes.NewReader(data), tc.start, tc.length); err != nil || !bytes.Equal(out.Bytes(), data[tc.start:tc.start+tc.length]) {
			t.Errorf("clean %d+%d: %v, %d bytes", tc.start, tc.length, err, out.Len())
		}
		out.Reset()
		err := copyVerified(&out, failAtEOF{bytes.NewReader(data)}, tc.start, tc.length)
		if err == nil || int64(out.Len()) >= tc.length && tc.length > 0 {
			t.Errorf("failing %d+%d: %v, %d of %d bytes written", tc.start, tc.length, err, out.Len(), tc.length)
		}
	}
}
