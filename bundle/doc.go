// Package bundle is ferry's on-disk format: tar parts (optionally
// compressed, one frame per entry) and a meta.yaml written last. It writes
// them (Writer), reads and verifies them (Bundle, Set), and keeps the locks.
package bundle

import (
	"errors"

	"github.com/ferry-oss/ferry/bundle/codec"
)

// Sentinel errors of the format; test them with errors.Is.
var (
	ErrCodec       = codec.ErrUnknown
	ErrPartMissing = errors.New("part missing")
	ErrPartCorrupt = codec.ErrCorrupt
	ErrBlobMissing = errors.New("blob missing from bundle")
	ErrBaseMissing = errors.New("base blobs missing at target")
)

// Codec names the compression of tar parts (package codec).
type Codec = codec.Codec

// Supported codecs, as package codec names them.
const (
	CodecNone = codec.None
	CodecZstd = codec.Zstd
	CodecGzip = codec.Gzip
	CodecXz   = codec.Xz
	CodecLz4  = codec.Lz4
)

// Codecs lists every supported codec.
var Codecs = codec.All

// ParseCodec parses a codec name; the empty string means none.
func ParseCodec(s string) (Codec, error) { return codec.Parse(s) }
