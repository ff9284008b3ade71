// Package transfer holds the engines that move images: Save (a Source
// into a bundle Writer), Upload (a bundle into a Sink) and Sync (a Source
// into registries), each a pipeline of named stages over a shared plan.
package transfer

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ferry-oss/ferry/oci"
	"github.com/ferry-oss/ferry/selection"
)

// ErrIdleTimeout: a read or a write waited longer than the idle timeout
// for a byte.
var ErrIdleTimeout = errors.New("idle timeout")

// ImageError is the failure of one image.
type ImageError struct {
	Image string
	Err   error
}

func (e ImageError) Error() string { return e.Image + ": " + e.Err.Error() }

func (e ImageError) Unwrap() error { return e.Err }

// FailedError lists every image that failed; it wraps ErrImagesFailed.
type FailedError struct{ Images []ImageError }

func (e *FailedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d image(s) failed:", len(e.Images))
	for _, f := range e.Images {
		b.WriteString("\n  ")
		b.WriteString(f.Error())
	}
	return b.String()
}

func (e *FailedError) Unwrap() []error {
	out := []error{oci.ErrImagesFailed}
	for _, f := range e.Images {
		out = append(out, f.Err)
	}
	return out
}

func failedErr(images []selection.ImageSpec, failures map[int]error) *FailedError {
	if len(failures) == 0 {
		return nil
	}
	fe := &FailedError{}
	for i := range images {
		if err, ok := failures[i]; ok {
			fe.Images = append(fe.Images, ImageError{Image: images[i].String(), Err: err})
		}
	}
	return fe
}

// defaults fills the options Save, Sync and Upload share when unset: 4
// jobs, 1 s before the first retry, a logger that discards.
func defaults(jobs *int, retryDelay *time.Duration, log **slog.Logger) {
	if *jobs < 1 {
		*jobs = 4
	}
	if *retryDelay <= 0 {
		*retryDelay = time.Second
	}
	if *log == nil {
		*log = slog.New(slog.DiscardHandler)
	}
}
