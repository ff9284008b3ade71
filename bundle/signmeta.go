package bundle

import (
	"fmt"
	"os"

	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/meta/sign"
)

// writeMeta writes the meta file last, each file through a temp file and a
// rename. With WriterOptions.SignMeta the signature of the exact bytes is
// written first, so that a signed bundle never shows a meta file without
// its signature; if the meta file cannot be written, the signature is
// removed again.
func (w *Writer) writeMeta(m *meta.Meta) error {
	if w.opts.SignMeta == nil {
		return meta.Write(w.MetaPath(), m)
	}
	b, err := meta.Marshal(m)
	if err != nil {
		return err
	}
	sig, err := w.opts.SignMeta(b)
	if err != nil {
		return fmt.Errorf("signing: %w", err)
	}
	sigPath := sign.SigPath(w.MetaPath())
	if err := meta.WriteFileAtomic(sigPath, sig); err != nil {
		return fmt.Errorf("writing signature: %w", err)
	}
	if err := meta.WriteFileAtomic(w.MetaPath(), b); err != nil {
		_ = os.Remove(sigPath)
		return err
	}
	return nil
}
