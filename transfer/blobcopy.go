package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/oci"
)

// blobNeed is one blob and, per target, the repositories that need it.
type blobNeed struct {
	desc  descriptor.Descriptor
	src   ref.Ref
	repos map[int][]ref.Ref
}

// syncDest is one repository a blob is pushed into.
type syncDest struct {
	tgt  int
	repo ref.Ref
}

// blobCopy copies one blob into every target that needs it.
type blobCopy struct {
	src     oci.Source
	n       *blobNeed
	targets []SyncTarget
	opts    SyncOptions
	prog    oci.Progress
	read    *atomic.Int64
	down    *downSet
	counts  map[int]*TargetResult
}

// sameSink reports whether a and b are the same sink (false when the
// sinks cannot be compared).
func sameSink(a, b oci.Sink) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
}

// downSet remembers targets found unreachable, so that the blobs after
// the first failure do not each wait for the client's backoff.
type downSet struct {
	mu sync.Mutex
	m  map[int]error
}

func (d *downSet) get(t int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.m[t]
}

// sourceError is a failure of the source while copying to a target: it
// says nothing about the target.
type sourceError struct{ error }

func (e sourceError) Unwrap() error { return e.error }

// note records err for target t when it says the target is unreachable.
func (d *downSet) note(t int, err error) {
	var se sourceError
	if !unreachable(err) || errors.As(err, &se) {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m[t] == nil {
		d.m[t] = err
	}
}

// run checks each target (HEAD per repository), tees one source read into
// every target that has the blob nowhere, then mounts it into the other
// repositories of each target. It returns the error per failed target.
func (c *blobCopy) run(ctx context.Context) map[int]error {
	d := c.n.desc
	failed := map[int]error{}
	c.counts = map[int]*TargetResult{}
	type plan struct {
		from  ref.Ref   // a repository that has it (after the push)
		mount []ref.Ref // repositories to mount it into
	}
	plans := map[int]*plan{}
	var dests []syncDest
	tgts := make([]int, 0, len(c.n.repos))
	for t := range c.n.repos {
		tgts = append(tgts, t)
	}
	sort.Ints(tgts)
	for _, t := range tgts {
		c.counts[t] = &TargetResult{}
		if err := c.down.get(t); err != nil {
			failed[t] = err
			continue
		}
		sink := c.targets[t].Sink
		p := &plan{}
		var have *ref.Ref
		var err error
		for _, r := range c.n.repos[t] {
			var ok bool
			err = retry(ctx, c.opts.Retries, c.opts.RetryDelay, c.opts.Log, "blob "+d.Digest.String(), func() error {
				var err error
				ok, err = sink.BlobExists(ctx, r, d)
				return err
			})
			if err != nil {
				break
			}
			if ok && have == nil {
				have = &r
			} else if !ok {
				p.mount = append(p.mount, r)
			}
		}
		if err != nil {
			c.down.note(t, err)
			failed[t] = fmt.Errorf("checking blob %s at %s: %w", d.Digest, c.targets[t].Name, err)
			continue
		}
		if have != nil {
			c.counts[t].BlobsSkipped++
			p.from = *have
		} else {
			p.from = p.mount[0]
			p.mount = p.mount[1:]
			dests = append(dests, syncDest{tgt: t, repo: p.from})
		}
		plans[t] = p
	}
	// Targets on one registry (the same sink and host: two namespaces, say)
	// share the blob by mount: one of them gets the bytes, or none when
	// one of them has it already.
	var teeDests []syncDest
	via := map[int]int{} // target -> the target on its registry it mounts from
	inTee := map[int]bool{}
	for _, ds := range dests {
		t, from := ds.tgt, -1
		for _, u := range tgts {
			pu := plans[u]
			if u == t || pu == nil || pu.from.Registry != ds.repo.Registry || !sameSink(c.targets[u].Sink, c.targets[t].Sink) {
				continue
			}
			if inTee[u] || !slices.ContainsFunc(dests, func(x syncDest) bool { return x.tgt == u }) {
				from = u
				break
			}
		}
		if from < 0 {
			teeDests = append(teeDests, ds)
			inTee[t] = true
			continue
		}
		via[t] = from
		plans[t].mount = append([]ref.Ref{plans[t].from}, plans[t].mount...)
	}
	if len(teeDests) > 0 {
		for i, err := range c.tee(ctx, teeDests) {
			t := teeDests[i].tgt
			if err != nil {
				c.down.note(t, err)
				failed[t] = fmt.Errorf("pushing blob %s to %s: %w", d.Digest, teeDests[i].repo.CommonName(), err)
				delete(plans, t)
				continue
			}
			c.counts[t].BlobsPushed++
			c.counts[t].BytesPushed += d.Size
		}
	}
	for t, u := range via {
		if pu := plans[u]; pu != nil {
			plans[t].from = pu.from
			continue
		}
		// the target it was to mount from failed: it gets its own copy
		p := plans[t]
		p.from, p.mount = p.mount[0], p.mount[1:]
		if errs := c.tee(ctx, []syncDest{{tgt: t, repo: p.from}}); errs[0] != nil {
			failed[t] = fmt.Errorf("pushing blob %s to %s: %w", d.Digest, p.from.CommonName(), errs[0])
			delete(plans, t)
			continue
		}
		c.counts[t].BlobsPushed++
		c.counts[t].BytesPushed += d.Size
	}
	for t, p := range plans {
		sink := c.targets[t].Sink
		for _, r := range p.mount {
			err := sink.BlobMount(ctx, p.from, r, d)
			if err != nil {
				// a registry that does not mount gets the bytes again
				c.opts.Log.Debug("mount failed, pushing", "blob", d.Digest, "repo", r.CommonName(), "err", err)
				if errs := c.tee(ctx, []syncDest{{tgt: t, repo: r}}); errs[0] != nil {
					failed[t] = fmt.Errorf("pushing blob %s to %s: %w", d.Digest, r.CommonName(), errs[0])
					break
				}
				c.counts[t].BytesPushed += d.Size
				c.counts[t].BlobsPushed++
				continue
			}
			c.counts[t].BlobsMounted++
		}
	}
	return failed
}

// tee streams the blob from one source read into every dest, retrying the
// dests that failed for a transient reason (each retry reads the source
// again, for those dests only). It returns one error per dest.
func (c *blobCopy) tee(ctx context.Context, dests []syncDest) []error {
	out := make([]error, len(dests))
	pending := make([]int, len(dests))
	for i := range dests {
		pending[i] = i
	}
	for attempt := 0; ; attempt++ {
		sub := make([]syncDest, len(pending))
		for k, i := range pending {
			sub[k] = dests[i]
		}
		errs := c.teeOnce(ctx, sub)
		var again []int
		for k, i := range pending {
			out[i] = errs[k]
			if errs[k] != nil && attempt < c.opts.Retries && retryable(ctx, errs[k]) {
				again = append(again, i)
			}
		}
		if len(again) == 0 {
			return out
		}
		c.opts.Log.Warn("retrying blob push", "blob", c.n.desc.Digest, "targets", len(again), "attempt", attempt+1, "err", out[again[0]])
		select {
		case <-time.After(c.opts.RetryDelay << attempt):
		case <-ctx.Done():
			return out
		}
		pending = again
	}
}

// teeOnce reads the source once and feeds every dest through its own pipe;
// a dest that fails drops out, the others go on. A source that fails
// (including its digest check at EOF) fails every dest, so no target
// commits a blob that did not verify.
func (c *blobCopy) teeOnce(ctx context.Context, dests []syncDest) []error {
	d := c.n.desc
	t := c.prog.Begin(d.Digest.Encoded()[:12], d.Size)
	rr := &resumeReader{ctx: ctx, idle: c.opts.IdleTimeout, open: func(actx context.Context) (io.ReadCloser, error) {
		var rc io.ReadCloser
		err := retry(actx, c.opts.Retries, c.opts.RetryDelay, c.opts.Log, "blob "+d.Digest.String(), func() error {
			var err error
			rc, err = c.src.BlobGet(actx, c.n.src, d)
			return err
		})
		return rc, err
	}, retries: c.opts.Retries, delay: c.opts.RetryDelay, log: c.opts.Log, name: d.Digest.String()}
	defer rr.Close()
	errs := make([]error, len(dests))
	if len(dests) == 1 {
		// no tee: the sink reads the source directly
		cr := &countReader{r: oci.TrackReader(rr, t), n: c.read}
		errs[0] = c.targets[dests[0].tgt].Sink.BlobPut(ctx, dests[0].repo, d, cr)
		if cr.err != nil {
			errs[0] = sourceError{fmt.Errorf("reading blob %s from the source: %w", d.Digest, cr.err)}
		}
		t.Done(errs[0])
		return errs
	}
	pws := make([]*io.PipeWriter, len(dests))
	prs := make([]*io.PipeReader, len(dests))
	var wg sync.WaitGroup
	for i, ds := range dests {
		pr, pw := io.Pipe()
		pws[i], prs[i] = pw, pr
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.targets[ds.tgt].Sink.BlobPut(ctx, ds.repo, d, pr)
			if err == nil {
				// a sink that returned early must not leave the tee blocked
				err = drained(pr)
			}
			errs[i] = err
			pr.CloseWithError(errOr(err, io.ErrClosedPipe))
		}()
	}
	live := make([]bool, len(dests))
	for i := range live {
		live[i] = true
	}
	buf := make([]byte, 256<<10)
	src := &countReader{r: oci.TrackReader(rr, t), n: c.read}
	var srcErr error // the source failed: the cause at every dest
	for {
		n, err := src.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			var cw sync.WaitGroup
			any := false
			for i := range dests {
				if !live[i] {
					continue
				}
				any = true
				cw.Add(1)
				go func() {
					defer cw.Done()
					// a target that stops reading drops out instead of
					// holding up the others
					var timer *time.Timer
					if idle := c.opts.IdleTimeout; idle > 0 {
						timer = time.AfterFunc(idle, func() {
							prs[i].CloseWithError(fmt.Errorf("%w: %s read nothing for %v", ErrIdleTimeout, dests[i].repo.CommonName(), idle))
						})
					}
					_, werr := pws[i].Write(chunk)
					if timer != nil {
						timer.Stop()
					}
					if werr != nil {
						live[i] = false
					}
				}()
			}
			cw.Wait()
			if !any {
				break // every target failed: their errors say why
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			srcErr = sourceError{fmt.Errorf("reading blob %s from the source: %w", d.Digest, err)}
			break
		}
	}
	for _, pw := range pws {
		if srcErr != nil {
			pw.CloseWithError(srcErr)
		} else {
			pw.Close()
		}
	}
	wg.Wait()
	if srcErr != nil {
		for i := range errs {
			errs[i] = srcErr
		}
	}
	t.Done(errors.Join(errs...))
	return errs
}

// drained reads what a sink left of its stream; a sink that returned
// success before EOF did not store the whole blob.
func drained(r io.Reader) error {
	n, err := io.Copy(io.Discard, r)
	if err == nil && n > 0 {
		err = fmt.Errorf("%w: the target stopped reading %d bytes before the end", oci.ErrSizeMismatch, n)
	}
	return err
}

func errOr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

// countReader adds the bytes read to n and keeps the first read error
// (other than EOF).
type countReader struct {
	r   io.Reader
	n   *atomic.Int64
	err error
}

func (c *countReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n.Add(int64(k))
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return k, err
}
