package codec

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// MaxXzDict is the largest LZMA2 dictionary an xz part may ask for: 8 MiB,
// what ferry's writer (and the xz library's default, and xz's own default
// preset -6) never exceeds. The xz decoder allocates the whole dictionary a
// block header names, up to 4 GiB, before it decodes a byte; a part that
// asks for more is refused before any decoder is made, so that every xz
// entry decoded costs at most this much memory.
const MaxXzDict = 8 << 20

var xzMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}

// checkXzDicts walks the xz container framing of the n bytes of ra at off
// (xz streams, one after the other, with stream padding between them)
// without decoding any LZMA2 data: stream headers, block headers, LZMA2
// chunk headers (to find a block's end), checks, indexes and footers. It
// refuses a block whose LZMA2 dictionary is larger than MaxXzDict, and
// framing it cannot follow (which the decoder would refuse as well). It
// reads only headers: a few bytes per 64 KiB of compressed data.
func checkXzDicts(ra io.ReaderAt, off, n int64) error {
	w := &xzWalk{r: ra, pos: off, end: off + n}
	for w.pos < w.end {
		if err := w.stream(); err != nil {
			return fmt.Errorf("%w: xz at offset %d: %v", ErrCorrupt, w.pos, err)
		}
	}
	return nil
}

type xzWalk struct {
	r        io.ReaderAt
	pos, end int64
	buf      [1024]byte
}

func (w *xzWalk) read(n int) ([]byte, error) {
	if int64(n) > w.end-w.pos {
		return nil, io.ErrUnexpectedEOF
	}
	b := w.buf[:n]
	if _, err := w.r.ReadAt(b, w.pos); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	w.pos += int64(n)
	return b, nil
}

func (w *xzWalk) byte() (byte, error) {
	b, err := w.read(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (w *xzWalk) skip(n int64) error {
	if n < 0 || n > w.end-w.pos {
		return io.ErrUnexpectedEOF
	}
	w.pos += n
	return nil
}

// stream walks stream padding (zero bytes, four at a time) and, when
// bytes are left, one stream.
func (w *xzWalk) stream() error {
	for w.pos < w.end {
		b, err := w.read(4)
		if err != nil {
			return err
		}
		if !bytes.Equal(b, []byte{0, 0, 0, 0}) {
			w.pos -= 4
			break
		}
	}
	if w.pos >= w.end {
		return nil
	}
	hdr, err := w.read(12)
	if err != nil {
		return err
	}
	if !bytes.Equal(hdr[:6], xzMagic) || hdr[6] != 0 || hdr[7] > 0x0f {
		return fmt.Errorf("not an xz stream header")
	}
	check := xzCheckSize(hdr[7])
	for {
		size, err := w.byte()
		if err != nil {
			return err
		}
		if size == 0 { // the index, then the footer
			return w.index()
		}
		if err := w.block(int(size), check); err != nil {
			return err
		}
	}
}

func xzCheckSize(t byte) int64 {
	if t == 0 {
		return 0
	}
	return 4 << ((t - 1) / 3)
}

// block walks one block whose header size byte was size.
func (w *xzWalk) block(size int, check int64) error {
	start := w.pos - 1
	h, err := w.read(int(size)*4 + 3) // the rest of the header
	if err != nil {
		return err
	}
	if err := xzBlockDict(h); err != nil {
		return err
	}
	for { // LZMA2 chunks
		c, err := w.byte()
		if err != nil {
			return err
		}
		switch {
		case c == 0:
			pad := (4 - (w.pos-start)%4) % 4
			return w.skip(pad + check)
		case c == 1 || c == 2:
			b, err := w.read(2)
			if err != nil {
				return err
			}
			if err := w.skip(int64(binary.BigEndian.Uint16(b)) + 1); err != nil {
				return err
			}
		case c >= 0x80:
			n := 4
			if c >= 0xc0 {
				n = 5 // a properties byte
			}
			b, err := w.read(n)
			if err != nil {
				return err
			}
			if err := w.skip(int64(binary.BigEndian.Uint16(b[2:4])) + 1); err != nil {
				return err
			}
		default:
			return fmt.Errorf("LZMA2 control byte %#x", c)
		}
	}
}

// xzBlockDict reads a block header (after its size byte: flags, optional
// sizes, filter flags, padding, CRC32) and refuses an LZMA2 dictionary
// larger than MaxXzDict.
func xzBlockDict(h []byte) error {
	flags, p := h[0], 1
	if flags&0x3c != 0 {
		return fmt.Errorf("block header flags %#x", flags)
	}
	for _, present := range []bool{flags&0x40 != 0, flags&0x80 != 0} { // compressed, uncompressed size
		if present {
			_, n := binary.Uvarint(h[p:])
			if n <= 0 {
				return fmt.Errorf("block header size field")
			}
			p += n
		}
	}
	for range int(flags&3) + 1 {
		id, n := binary.Uvarint(h[p:])
		if n <= 0 {
			return fmt.Errorf("block header filter id")
		}
		p += n
		plen, n := binary.Uvarint(h[p:])
		if n <= 0 || plen > uint64(len(h)-p-n) {
			return fmt.Errorf("block header filter properties")
		}
		p += n
		props := h[p : p+int(plen)]
		p += int(plen)
		if id != 0x21 {
			continue // not LZMA2: the decoder refuses what it does not know
		}
		if len(props) != 1 || props[0] > 40 {
			return fmt.Errorf("LZMA2 properties %x", props)
		}
		if d := xzDictSize(props[0]); d > MaxXzDict {
			return fmt.Errorf("LZMA2 dictionary of %d bytes (at most %d: ferry writes 8 MiB or less)", d, MaxXzDict)
		}
	}
	return nil
}

// xzDictSize decodes the LZMA2 dictionary size byte (at most 40).
func xzDictSize(b byte) int64 {
	if b == 40 {
		return 1<<32 - 1
	}
	return int64(2|b&1) << (b/2 + 11)
}

// index walks an index (its indicator byte was read) and the stream
// footer.
func (w *xzWalk) index() error {
	start := w.pos - 1
	count, err := w.uvarint()
	if err != nil {
		return err
	}
	if count > uint64(w.end-w.pos)/2 {
		return fmt.Errorf("index of %d records", count)
	}
	for range 2 * count {
		if _, err := w.uvarint(); err != nil {
			return err
		}
	}
	pad := (4 - (w.pos-start)%4) % 4
	if err := w.skip(pad + 4); err != nil { // padding, CRC32
		return err
	}
	f, err := w.read(12)
	if err != nil {
		return err
	}
	if f[10] != 'Y' || f[11] != 'Z' {
		return fmt.Errorf("no xz stream footer")
	}
	return nil
}

func (w *xzWalk) uvarint() (uint64, error) {
	var x uint64
	for i := range 9 {
		c, err := w.byte()
		if err != nil {
			return 0, err
		}
		x |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return x, nil
		}
	}
	return 0, fmt.Errorf("varint too long")
}

// CheckFrames refuses, before any decoder is made, compressed data of
// codec c in the n bytes of ra at off that would make a decoder allocate
// more than its bound: an xz dictionary above MaxXzDict. (zstd's window is
// bounded by the decoder itself, lz4's and gzip's by their formats.)
func (c Codec) CheckFrames(ra io.ReaderAt, off, n int64) error {
	if c != Xz {
		return nil
	}
	return checkXzDicts(ra, off, n)
}
