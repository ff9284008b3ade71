package containerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/containerd/containerd/content"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/namespaces"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/regclient/regclient/types/descriptor"

	"github.com/ferry-oss/ferry/oci"
)

// outcome says how a content write ended.
type outcome int

const (
	present outcome = iota // the namespace had it: nothing written
	shared                 // containerd held the bytes (for another namespace): committed without sending them
	sent                   // streamed and committed
)

// write puts d into the content store, read from rdr, committed with
// labels: unless the namespace has it, by committing the bytes containerd
// holds for another namespace, else by streaming rdr. A write that fails
// is aborted: containerd keeps no part of it.
func (s *Store) write(ctx context.Context, d descriptor.Descriptor, rdr io.Reader, labels map[string]string) (outcome, error) {
	wctx, err := s.writeCtx(ctx)
	if err != nil {
		return present, err
	}
	ingest := "ferry-" + d.Digest.String()
	for attempt := 0; ; attempt++ {
		w, err := content.OpenWriter(wctx, s.content, content.WithRef(ingest),
			content.WithDescriptor(ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}))
		if errdefs.IsAlreadyExists(err) {
			return present, nil // committed in this namespace since BlobExists asked
		} else if err != nil {
			return present, fmt.Errorf("%w: opening a writer: %v", ErrContainerd, err)
		}
		st, err := w.Status()
		if err != nil {
			w.Close()
			return present, fmt.Errorf("%w: writer status: %v", ErrContainerd, err)
		}
		if st.Offset == d.Size && d.Size > 0 && attempt == 0 {
			// all the bytes are there (shared with another namespace, or
			// an ingest an earlier upload completed): containerd checks
			// their digest when they are committed
			err := w.Commit(wctx, d.Size, d.Digest, content.WithLabels(labels))
			w.Close()
			if err == nil || errdefs.IsAlreadyExists(err) {
				return shared, nil
			}
			s.abort(ctx, ingest) // bytes that do not match: start again
			continue
		}
		err = s.stream(wctx, w, d, rdr, labels, st.Offset)
		w.Close()
		if err != nil {
			s.abort(ctx, ingest)
			return present, err
		}
		return sent, nil
	}
}

// abort drops ingest, with a context of its own: the upload's may be
// what ended.
func (s *Store) abort(ctx context.Context, ingest string) {
	actx, cancel := context.WithTimeout(namespaces.WithNamespace(context.WithoutCancel(ctx), s.ns), 10*time.Second)
	defer cancel()
	_ = s.content.Abort(actx, ingest)
}

// stream copies rdr into w in chunks and commits it with d's size and
// digest. An ingest an earlier upload left part way (offset) is started
// again from zero.
func (s *Store) stream(ctx context.Context, w content.Writer, d descriptor.Descriptor, rdr io.Reader, labels map[string]string, offset int64) error {
	if offset > 0 {
		if err := w.Truncate(0); err != nil {
			return fmt.Errorf("%w: restarting an ingest: %v", ErrContainerd, err)
		}
	}
	n, err := copyChunks(w, rdr)
	if err != nil {
		return err
	}
	if n != d.Size {
		return fmt.Errorf("%w: %d of %d bytes", oci.ErrSizeMismatch, n, d.Size)
	}
	if err := w.Commit(ctx, d.Size, d.Digest, content.WithLabels(labels)); err != nil && !errdefs.IsAlreadyExists(err) {
		return fmt.Errorf("%w: commit: %v", ErrContainerd, err)
	}
	return nil
}

var chunks = sync.Pool{New: func() any { b := make([]byte, chunk); return &b }}

// copyChunks copies r to w in writes of a full chunk (one gRPC message
// each), the last one shorter.
func copyChunks(w io.Writer, r io.Reader) (int64, error) {
	bp := chunks.Get().(*[]byte)
	defer chunks.Put(bp)
	var n int64
	for {
		k, err := io.ReadFull(r, *bp)
		if k > 0 {
			if _, werr := w.Write((*bp)[:k]); werr != nil {
				return n, fmt.Errorf("%w: write: %v", ErrContainerd, werr)
			}
			n += int64(k)
		}
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return n, nil
		case err != nil:
			return n, err
		}
	}
}

// count adds a write's outcome to the Store's stats: n bytes sent to
// *what (Blobs or Manifests), or one more shared.
func (s *Store) count(how outcome, n int64, what *int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch how {
	case sent:
		*what++
		s.stats.Bytes += n
	case shared:
		s.stats.Shared++
	}
}
