package bundle

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/meta/sign"
)

// errMetaWriteFailed ends a signer still reading when the meta file could
// not be written.
var errMetaWriteFailed = errors.New("the meta file could not be written")

// writeMeta writes the meta file last, encoded straight into a temp file
// and renamed. With WriterOptions.SignMeta the signer reads the very
// bytes as they are written (through a pipe, nothing is buffered) and
// its signature is written (temp file and rename) once the temp file is
// synced and before it is renamed, so that a signed bundle never shows a
// meta file without its signature; if the meta file cannot be renamed,
// the signature is removed again.
func (w *Writer) writeMeta(m *meta.Meta) error {
	if w.opts.SignMeta == nil {
		return meta.WriteWith(w.MetaPath(), m, meta.WriteOptions{Raw: w.manifestRaw})
	}
	pr, pw := io.Pipe()
	type result struct {
		sig []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		sig, err := w.opts.SignMeta(pr)
		pr.CloseWithError(errMetaWriteFailed) // a signer that stops early fails the write
		done <- result{sig, err}
	}()
	sigPath := sign.SigPath(w.MetaPath())
	var signed *result
	wait := func(cause error) result {
		if signed == nil {
			pw.CloseWithError(cause)
			r := <-done
			signed = &r
		}
		return *signed
	}
	err := meta.WriteWith(w.MetaPath(), m, meta.WriteOptions{Tee: pw, Raw: w.manifestRaw, BeforeRename: func() error {
		r := wait(nil) // EOF: the signer has all the bytes
		if r.err != nil {
			return fmt.Errorf("signing: %w", r.err)
		}
		if err := meta.WriteFileAtomic(sigPath, r.sig); err != nil {
			return fmt.Errorf("writing signature: %w", err)
		}
		return nil
	}})
	if err != nil {
		if r := wait(errMetaWriteFailed); r.err != nil && errors.Is(err, errMetaWriteFailed) {
			err = fmt.Errorf("signing: %w", r.err) // the signer stopped reading: its reason
		}
		_ = os.Remove(sigPath)
		return err
	}
	return nil
}
