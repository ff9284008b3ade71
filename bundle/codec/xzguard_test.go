package codec

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/ulikunitz/xz"
)

// xzStreams is what an xz part looks like: streams of several sizes and
// dictionaries one after the other, with stream padding between two.
func xzStreams(tb testing.TB) []byte {
	var out bytes.Buffer
	for i, n := range []int{0, 100, 70 << 10, 3 << 20} {
		data := make([]byte, n)
		rand.Read(data[:n/2]) // half random, half zeros: LZMA and uncompressed chunks
		w, err := xz.WriterConfig{DictCap: max(4096, n), NoCheckSum: i == 0, CheckSum: []byte{xz.CRC32, xz.CRC32, xz.CRC64, xz.SHA256}[i]}.NewWriter(&out)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			tb.Fatal(err)
		}
		if err := w.Close(); err != nil {
			tb.Fatal(err)
		}
		if i == 1 {
			out.Write(make([]byte, 8)) // stream padding
		}
	}
	return out.Bytes()
}

// TestCheckXzDicts: the framing walk accepts what the xz writer makes
// (every check type, stream padding, LZMA and uncompressed chunks, an
// empty stream) and the 8 MiB dictionary ferry writes at most; it refuses
// a larger dictionary, a cut stream and garbage.
func TestCheckXzDicts(t *testing.T) {
	good := xzStreams(t)
	var dict8 bytes.Buffer
	w, _ := xz.WriterConfig{DictCap: 8 << 20}.NewWriter(&dict8)
	w.Write([]byte("ferry"))
	w.Close()
	var dict9 bytes.Buffer
	w, _ = xz.WriterConfig{DictCap: 12 << 20}.NewWriter(&dict9)
	w.Write([]byte("ferry"))
	w.Close()
	tests := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"streams", good, true},
		{"8 MiB dictionary", dict8.Bytes(), true},
		{"12 MiB dictionary", dict9.Bytes(), false},
		{"cut", good[:len(good)-7], false},
		{"garbage", []byte("not xz at all"), false},
		{"nothing", nil, true},
	}
	for _, tt := range tests {
		err := checkXzDicts(bytes.NewReader(tt.in), 0, int64(len(tt.in)))
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrCorrupt)) {
			t.Errorf("%s: %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

// FuzzCheckXzDicts: the framing walk of hostile bytes ends (it only moves
// forward) without panicking; what it accepts still goes to the decoder,
// which checks everything else.
func FuzzCheckXzDicts(f *testing.F) {
	f.Add(xzStreams(f)[:4096])
	var small bytes.Buffer
	w, _ := xz.NewWriter(&small)
	w.Write([]byte("ferry ferry ferry"))
	w.Close()
	f.Add(small.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = checkXzDicts(bytes.NewReader(b), 0, int64(len(b)))
	})
}
