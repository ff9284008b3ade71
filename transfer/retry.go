package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/errs"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/oci"
)

// retryable reports whether err may go away on a retry.
func retryable(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	for _, perm := range []error{oci.ErrLimit, oci.ErrDigestMismatch, oci.ErrSizeMismatch, bundle.ErrPartCorrupt, bundle.ErrPartMissing, bundle.ErrBlobMissing, bundle.ErrBaseMissing, oci.ErrUnsupported, bundle.ErrCodec, errs.ErrDigestMismatch, errs.ErrNotRetryable, errs.ErrSizeLimitExceeded, errs.ErrNotFound, errs.ErrHTTPUnauthorized, errs.ErrInvalidReference, errs.ErrUnsupportedMediaType, errs.ErrParsingFailed, oci.ErrPlatformMismatch, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, perm) {
			return false
		}
	}
	return true
}

func retry(ctx context.Context, retries int, delay time.Duration, log *slog.Logger, what string, fn func() error) error {
	for attempt := 0; ; attempt++ {
		err := fn()
		if err == nil || attempt >= retries || !retryable(ctx, err) {
			return err
		}
		log.Warn("retrying", "what", what, "attempt", attempt+1, "err", err)
		select {
		case <-time.After(delay << attempt):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// blobReader reads blob d of repository r from src: each open is retried
// (retries, delay doubled each time) and a stream that breaks, or waits
// longer than idle for a byte, is resumed where it broke off.
func blobReader(ctx context.Context, src oci.Source, r ref.Ref, d descriptor.Descriptor, retries int, delay, idle time.Duration, log *slog.Logger) *resumeReader {
	return &resumeReader{ctx: ctx, idle: idle, open: func(actx context.Context) (io.ReadCloser, error) {
		var rc io.ReadCloser
		err := retry(actx, retries, delay, log, "blob "+d.Digest.String(), func() error {
			var err error
			rc, err = src.BlobGet(actx, r, d)
			return err
		})
		return rc, err
	}, retries: retries, delay: delay, log: log, name: d.Digest.String()}
}

// resumeReader reads a blob; when the stream breaks it reopens the source,
// discards what was already delivered and goes on. With idle set, an
// attempt that waits longer than idle for a byte (opening included) is
// ended with ErrIdleTimeout and retried like a broken stream.
type resumeReader struct {
	ctx     context.Context
	open    func(ctx context.Context) (io.ReadCloser, error)
	idle    time.Duration
	rc      io.ReadCloser
	off     int64
	retries int
	tries   int
	delay   time.Duration
	log     *slog.Logger
	name    string

	actx   context.Context // the current attempt's
	cancel context.CancelCauseFunc
	timer  *time.Timer
}

// attempt starts an attempt context, watched by the idle timer.
func (r *resumeReader) attempt() {
	r.endAttempt()
	r.actx, r.cancel = context.WithCancelCause(r.ctx)
	if r.idle > 0 {
		cancel := r.cancel
		r.timer = time.AfterFunc(r.idle, func() { cancel(ErrIdleTimeout) })
	}
}

func (r *resumeReader) endAttempt() {
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	if r.cancel != nil {
		r.cancel(nil)
		r.cancel = nil
	}
}

// watch runs fn with the idle timer armed, and names an idle timeout as
// such (the read itself only saw a canceled context).
func (r *resumeReader) watch(fn func() error) error {
	if r.timer != nil {
		r.timer.Reset(r.idle)
	}
	err := fn()
	if r.timer != nil {
		r.timer.Stop()
	}
	if err != nil && err != io.EOF && errors.Is(context.Cause(r.actx), ErrIdleTimeout) && r.ctx.Err() == nil {
		err = fmt.Errorf("%w: no data for %v", ErrIdleTimeout, r.idle)
	}
	return err
}

func (r *resumeReader) Read(p []byte) (int, error) {
	for {
		if r.rc == nil {
			r.attempt()
			var rc io.ReadCloser
			err := r.watch(func() error {
				var err error
				rc, err = r.open(r.actx)
				if err == nil && r.off > 0 {
					if _, err = io.CopyN(io.Discard, rc, r.off); err != nil {
						rc.Close()
					}
				}
				return err
			})
			if err != nil {
				if r.off > 0 && r.again(err) {
					continue
				}
				if errors.Is(err, ErrIdleTimeout) && r.again(err) {
					continue
				}
				r.endAttempt()
				return 0, err
			}
			r.rc = rc
		}
		var n int
		err := r.watch(func() error {
			var err error
			n, err = r.rc.Read(p)
			return err
		})
		r.off += int64(n)
		if err == nil || err == io.EOF || n > 0 {
			if err != nil && err != io.EOF && n > 0 {
				// deliver n now; the error comes back on the next read
				err = nil
			}
			return n, err
		}
		r.rc.Close()
		r.rc = nil
		if !r.again(err) {
			r.endAttempt()
			return 0, err
		}
	}
}

func (r *resumeReader) again(err error) bool {
	if r.tries >= r.retries || !retryable(r.ctx, err) {
		return false
	}
	r.tries++
	r.log.Warn("resuming blob", "blob", r.name, "offset", r.off, "attempt", r.tries, "err", err)
	select {
	case <-time.After(r.delay << (r.tries - 1)):
		return true
	case <-r.ctx.Done():
		return false
	}
}

func (r *resumeReader) Close() error {
	defer r.endAttempt()
	if r.rc != nil {
		return r.rc.Close()
	}
	return nil
}
