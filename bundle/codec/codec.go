// Package codec is the compression of ferry's bundle parts: whole-stream
// and per-entry (frame) encoders and decoders for none, zstd, gzip, xz and
// lz4, and the checks that refuse decoder bombs before a decoder is made.
package codec

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
)

// Sentinel errors; bundle re-exports them as ErrCodec and ErrPartCorrupt.
var (
	ErrUnknown = errors.New("unknown compression")
	ErrCorrupt = errors.New("part corrupt")
)

// Codec names the compression of tar parts. Schema 2 parts compress every
// entry as its own frame (see FrameEncoder); schema 1 parts are one stream.
// NewDecoder reads both: concatenated frames are one valid stream.
type Codec string

// Supported codecs.
const (
	None Codec = "none"
	Zstd Codec = "zstd"
	Gzip Codec = "gzip"
	Xz   Codec = "xz"
	Lz4  Codec = "lz4"
)

// All lists every supported codec.
var All = []Codec{None, Zstd, Gzip, Xz, Lz4}

// Parse parses a codec name; the empty string means none.
func Parse(s string) (Codec, error) {
	if s == "" {
		return None, nil
	}
	for _, c := range All {
		if strings.EqualFold(s, string(c)) {
			return c, nil
		}
	}
	return "", fmt.Errorf("%w: %q (want none, zstd, gzip, xz or lz4)", ErrUnknown, s)
}

// Ext is the file name extension a part gets after ".tar".
func (c Codec) Ext() string {
	switch c {
	case Zstd:
		return ".zst"
	case Gzip:
		return ".gz"
	case Xz:
		return ".xz"
	case Lz4:
		return ".lz4"
	}
	return ""
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// NewEncoder wraps w with the codec's encoder. Closing the encoder flushes
// it but does not close w.
func (c Codec) NewEncoder(w io.Writer) (io.WriteCloser, error) {
	switch c {
	case None, "":
		return nopWriteCloser{w}, nil
	case Zstd:
		return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	case Gzip:
		return kgzip.NewWriterLevel(w, kgzip.BestSpeed)
	case Xz:
		return xz.NewWriter(w)
	case Lz4:
		zw := lz4.NewWriter(w)
		return zw, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknown, c)
}

// FrameEncoder compresses a part entry by entry: every Begin..End is one
// complete compressed frame (zstd frame, gzip member, xz stream, lz4
// frame), so that frames concatenated are one valid stream and each frame
// decodes alone. For None it passes bytes through.
type FrameEncoder interface {
	io.Writer
	// Begin starts a frame of about size bytes (before compression)
	// written to w.
	Begin(w io.Writer, size int64) error
	// End finishes the frame: every byte of it has been written to w.
	End() error
}

type passFrames struct{ w io.Writer }

func (p *passFrames) Begin(w io.Writer, _ int64) error { p.w = w; return nil }
func (p *passFrames) Write(b []byte) (int, error)      { return p.w.Write(b) }
func (p *passFrames) End() error                       { return nil }

// resetter is an encoder that starts a new stream on Reset.
type resetter interface {
	io.WriteCloser
	Reset(io.Writer)
}

type resetFrames struct{ enc resetter }

func (r *resetFrames) Begin(w io.Writer, _ int64) error { r.enc.Reset(w); return nil }
func (r *resetFrames) Write(b []byte) (int, error)      { return r.enc.Write(b) }
func (r *resetFrames) End() error                       { return r.enc.Close() }

// xzFrames opens a new xz stream per frame (the xz writer has no Reset),
// its dictionary no larger than the frame (the encoder's memory grows with
// it: 8 MiB by default for every small entry would be wasted).
type xzFrames struct{ enc *xz.Writer }

func (x *xzFrames) Begin(w io.Writer, size int64) error {
	dict := int(min(max(size, 4096), 8<<20))
	enc, err := xz.WriterConfig{DictCap: dict}.NewWriter(w)
	x.enc = enc
	return err
}
func (x *xzFrames) Write(b []byte) (int, error) { return x.enc.Write(b) }
func (x *xzFrames) End() error                  { return x.enc.Close() }

// zstdReset adapts zstd.Encoder's Reset.
type zstdReset struct{ *zstd.Encoder }

func (z zstdReset) Reset(w io.Writer) { z.Encoder.Reset(w) }

// NewFrameEncoder returns the codec's frame encoder, with the same
// settings as NewEncoder.
func (c Codec) NewFrameEncoder() (FrameEncoder, error) {
	switch c {
	case None, "":
		return &passFrames{}, nil
	case Zstd:
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
		if err != nil {
			return nil, err
		}
		return &resetFrames{zstdReset{enc}}, nil
	case Gzip:
		enc, err := kgzip.NewWriterLevel(nil, kgzip.BestSpeed)
		if err != nil {
			return nil, err
		}
		return &resetFrames{enc}, nil
	case Xz:
		return &xzFrames{}, nil
	case Lz4:
		return &resetFrames{lz4.NewWriter(nil)}, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknown, c)
}

// MaxZstdWindow is the largest zstd window a part may ask for: 8 MiB, the
// size RFC 8878 asks every decoder to support and twice what ferry's
// writer uses (4 MiB). A zstd decoder keeps a window of history, so a
// frame asking for 64 MiB (legal) would cost 64 MiB per entry being read;
// the decoder refuses a larger window before it allocates it.
const MaxZstdWindow = 8 << 20

// DecoderMemory is about the most memory one decoder of c holds while it
// decodes a part entry, with the limits above: a zstd window, an xz
// dictionary, lz4's largest block (4 MiB, twice), gzip's 32 KiB window.
func (c Codec) DecoderMemory() int64 {
	switch c {
	case Zstd:
		return MaxZstdWindow + 512<<10
	case Xz:
		return MaxXzDict + 512<<10
	case Lz4:
		return 8 << 20
	case Gzip:
		return 64 << 10
	}
	return 0
}

type decoder struct {
	io.Reader
	close func()
}

func (d decoder) Close() error {
	if d.close != nil {
		d.close()
	}
	return nil
}

// once makes a release function safe to call twice: a pooled decoder must
// go back to its pool only once.
func once(f func()) func() {
	var o sync.Once
	return func() { o.Do(f) }
}

// Pools for decoding one frame per entry: a blob read from its offset or
// an entry of a part being verified gets a buffered reader and (zstd) a
// decoder from a pool instead of allocating its own.
var (
	frameBufs = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}
	zstdDecs  = sync.Pool{New: func() any {
		zr, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(MaxZstdWindow))
		if err != nil {
			return err
		}
		return zr
	}}
)

// NewFrameDecoder decodes the entry stored in r (one frame, or the entry
// as it is for None). Close returns the decoder to its pool.
func (c Codec) NewFrameDecoder(r io.Reader) (io.ReadCloser, error) {
	if c == None || c == "" {
		return decoder{Reader: r}, nil
	}
	br := frameBufs.Get().(*bufio.Reader)
	br.Reset(r)
	release := func() { br.Reset(nil); frameBufs.Put(br) }
	if c != Zstd {
		dec, err := c.NewDecoder(br)
		if err != nil {
			release()
			return nil, err
		}
		return decoder{Reader: dec, close: once(func() { _ = dec.Close(); release() })}, nil
	}
	got := zstdDecs.Get()
	zr, ok := got.(*zstd.Decoder)
	if !ok {
		release()
		return nil, got.(error)
	}
	if err := zr.Reset(br); err != nil {
		zstdDecs.Put(zr)
		release()
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return decoder{Reader: zr, close: once(func() {
		_ = zr.Reset(nil)
		zstdDecs.Put(zr)
		release()
	})}, nil
}

// NewDecoder wraps r with the codec's decoder.
func (c Codec) NewDecoder(r io.Reader) (io.ReadCloser, error) {
	switch c {
	case None, "":
		return decoder{Reader: r}, nil
	case Zstd:
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(MaxZstdWindow))
		if err != nil {
			return nil, err
		}
		return decoder{Reader: zr, close: zr.Close}, nil
	case Gzip:
		zr, err := kgzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		return decoder{Reader: zr, close: func() { _ = zr.Close() }}, nil
	case Xz:
		zr, err := xz.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		return decoder{Reader: zr}, nil
	case Lz4:
		return decoder{Reader: lz4.NewReader(r)}, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknown, c)
}
