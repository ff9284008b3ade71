// Package bundle is ferry's on-disk format: tar parts (optionally
// compressed, one frame per entry) and a meta.yaml written last. It writes
// them (Writer), reads and verifies them (Bundle, Set), and keeps the locks.
package bundle

import "errors"

// Sentinel errors of the format; test them with errors.Is.
var (
	ErrCodec       = errors.New("unknown compression")
	ErrPartMissing = errors.New("part missing")
	ErrPartCorrupt = errors.New("part corrupt")
	ErrBlobMissing = errors.New("blob missing from bundle")
	ErrBaseMissing = errors.New("base blobs missing at target")
)
