package oci

import (
	"context"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
)

// VerifyReader returns a reader of r that fails with ErrSizeMismatch when r
// holds more or fewer than d.Size bytes, and with ErrDigestMismatch at EOF
// when the bytes do not hash to d.Digest. Nothing past d.Size is read.
func VerifyReader(r io.Reader, d descriptor.Descriptor) io.Reader {
	return &verifyReader{r: r, d: d, v: d.Digest.Verifier(), remain: d.Size}
}

// Verified marks r as a reader that already fails at EOF when its bytes do
// not match the descriptor's digest, as every Source's blob reader must.
// A Writer then checks only the size instead of hashing the bytes twice.
func Verified(r io.Reader) io.Reader { return verified{r} }

type verified struct{ io.Reader }

// Checked returns a reader of r that stops with ctx's error once ctx is
// done and fails unless the bytes match d: VerifyReader, or a size check
// only when r was marked Verified.
func Checked(ctx context.Context, r io.Reader, d descriptor.Descriptor) io.Reader {
	return checkedReader(ctxReaderOf(ctx, r), d)
}

// checkedReader is VerifyReader, or a size-only check for a Verified reader.
func checkedReader(r io.Reader, d descriptor.Descriptor) io.Reader {
	if v, ok := r.(verified); ok {
		return &verifyReader{r: v.Reader, d: d, remain: d.Size}
	}
	return VerifyReader(r, d)
}

// ctxReaderOf wraps r in a ctxReader, keeping a Verified mark.
func ctxReaderOf(ctx context.Context, r io.Reader) io.Reader {
	if v, ok := r.(verified); ok {
		return verified{ctxReader{ctx, v.Reader}}
	}
	return ctxReader{ctx, r}
}

// ContextReader returns a reader of r that fails with ctx's error once ctx
// is done, so that a long copy stops on cancellation.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

// ctxReader stops reading when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

type verifyReader struct {
	r      io.Reader
	d      descriptor.Descriptor
	v      digest.Verifier // nil: size only
	remain int64
	err    error
}

func (vr *verifyReader) Read(p []byte) (int, error) {
	if vr.err != nil {
		return 0, vr.err
	}
	if vr.remain <= 0 {
		// Expect EOF: probe one byte to catch an oversize stream.
		var one [1]byte
		n, err := io.ReadFull(vr.r, one[:])
		if n > 0 {
			vr.err = fmt.Errorf("blob %s: %w: more than %d bytes", vr.d.Digest, ErrSizeMismatch, vr.d.Size)
			return 0, vr.err
		}
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			vr.err = err
			return 0, err
		}
		if vr.v != nil && !vr.v.Verified() {
			vr.err = fmt.Errorf("blob %s: %w", vr.d.Digest, ErrDigestMismatch)
			return 0, vr.err
		}
		vr.err = io.EOF
		return 0, io.EOF
	}
	if int64(len(p)) > vr.remain {
		p = p[:vr.remain]
	}
	n, err := vr.r.Read(p)
	if n > 0 {
		if vr.v != nil {
			_, _ = vr.v.Write(p[:n])
		}
		vr.remain -= int64(n)
	}
	if err == io.EOF {
		if vr.remain > 0 {
			vr.err = fmt.Errorf("blob %s: %w: %d bytes short of %d", vr.d.Digest, ErrSizeMismatch, vr.remain, vr.d.Size)
			return n, vr.err
		}
		err = nil // checked on the next call
	}
	if err != nil {
		vr.err = err
	}
	return n, err
}
