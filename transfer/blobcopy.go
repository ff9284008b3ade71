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
	failed := map[int]error{}
	c.counts = map[int]*TargetResult{}
	tgts := make([]int, 0, len(c.n.repos))
	for t := range c.n.repos {
		tgts = append(tgts, t)
	}
	sort.Ints(tgts)
	plans, dests := c.check(ctx, tgts, failed)
	teeDests, via := c.shareByMount(tgts, plans, dests)
	c.push(ctx, teeDests, plans, failed)
	c.pushVia(ctx, via, plans, failed)
	c.mountRest(ctx, plans, failed)
	return failed
}

// copyPlan is how the blob gets into the repositories of one target.
type copyPlan struct {
	from  ref.Ref   // a repository that has it (after the push)
	mount []ref.Ref // repositories to mount it into
}

// check asks each target whether its repositories have the blob: a
// target that has it somewhere mounts it from there, one that has it
// nowhere gets it pushed into its first repository (dests) and mounts it
// from there.
func (c *blobCopy) check(ctx context.Context, tgts []int, failed map[int]error) (map[int]*copyPlan, []syncDest) {
	d := c.n.desc
	plans := map[int]*copyPlan{}
	var dests []syncDest
	for _, t := range tgts {
		c.counts[t] = &TargetResult{}
		if err := c.down.get(t); err != nil {
			failed[t] = err
			continue
		}
		p, have, err := c.checkTarget(ctx, t)
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
	return plans, dests
}

// checkTarget asks target t (HEAD) which of its repositories have the
// blob: the first that has it, and the others that lack it to mount.
func (c *blobCopy) checkTarget(ctx context.Context, t int) (*copyPlan, *ref.Ref, error) {
	d := c.n.desc
	sink := c.targets[t].Sink
	p := &copyPlan{}
	var have *ref.Ref
	for _, r := range c.n.repos[t] {
		var ok bool
		err := retry(ctx, c.opts.Retries, c.opts.RetryDelay, c.opts.Log, "blob "+d.Digest.String(), func() error {
			var err error
			ok, err = sink.BlobExists(ctx, r, d)
			return err
		})
		if err != nil {
			return nil, nil, err
		}
		if ok && have == nil {
			have = &r
		} else if !ok {
			p.mount = append(p.mount, r)
		}
	}
	return p, have, nil
}

// shareByMount lets targets on one registry (the same sink and host: two
// namespaces, say) share the blob by mount: one of them gets the bytes, or
// none when one of them has it already. It returns the dests that get the
// bytes and, for each other target, the target it mounts from (via).
func (c *blobCopy) shareByMount(tgts []int, plans map[int]*copyPlan, dests []syncDest) ([]syncDest, map[int]int) {
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
	return teeDests, via
}

// push tees one source read into dests; a target whose push failed drops
// its plan.
func (c *blobCopy) push(ctx context.Context, dests []syncDest, plans map[int]*copyPlan, failed map[int]error) {
	if len(dests) == 0 {
		return
	}
	d := c.n.desc
	for i, err := range c.tee(ctx, dests) {
		t := dests[i].tgt
		if err != nil {
			c.down.note(t, err)
			failed[t] = fmt.Errorf("pushing blob %s to %s: %w", d.Digest, dests[i].repo.CommonName(), err)
			delete(plans, t)
			continue
		}
		c.counts[t].BlobsPushed++
		c.counts[t].BytesPushed += d.Size
	}
}

// pushVia points each target of via at the repository it mounts from; a
// target whose source of mounts failed gets its own copy.
func (c *blobCopy) pushVia(ctx context.Context, via map[int]int, plans map[int]*copyPlan, failed map[int]error) {
	d := c.n.desc
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
}

// mountRest mounts the blob into the other repositories of each target; a
// registry that does not mount gets the bytes again.
func (c *blobCopy) mountRest(ctx context.Context, plans map[int]*copyPlan, failed map[int]error) {
	d := c.n.desc
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
	rr := blobReader(ctx, c.src, c.n.src, d, c.opts.Retries, c.opts.RetryDelay, c.opts.IdleTimeout, c.opts.Log)
	defer rr.Close()
	src := &countReader{r: oci.TrackReader(rr, t), n: c.read}
	if len(dests) == 1 {
		errs := []error{c.putDirect(ctx, dests[0], src)}
		t.Done(errs[0])
		return errs
	}
	errs := c.fanOut(ctx, dests, src)
	t.Done(errors.Join(errs...))
	return errs
}

// putDirect has the sink of ds read the source itself (one dest: no tee).
func (c *blobCopy) putDirect(ctx context.Context, ds syncDest, src *countReader) error {
	err := c.targets[ds.tgt].Sink.BlobPut(ctx, ds.repo, c.n.desc, src)
	if src.err != nil {
		err = sourceError{fmt.Errorf("reading blob %s from the source: %w", c.n.desc.Digest, src.err)}
	}
	return err
}

// fanOut feeds every dest through its own pipe from one read of src and
// returns one error per dest; a failure of the source is every dest's.
func (c *blobCopy) fanOut(ctx context.Context, dests []syncDest, src io.Reader) []error {
	errs := make([]error, len(dests))
	prs, pws, wait := c.startPuts(ctx, dests, errs)
	srcErr := c.pump(src, dests, prs, pws) // the source failed: the cause at every dest
	for _, pw := range pws {
		if srcErr != nil {
			pw.CloseWithError(srcErr)
		} else {
			pw.Close()
		}
	}
	wait()
	if srcErr != nil {
		for i := range errs {
			errs[i] = srcErr
		}
	}
	return errs
}

// startPuts starts, per dest, a BlobPut that reads its own pipe; errs[i]
// is dest i's result once wait returns.
func (c *blobCopy) startPuts(ctx context.Context, dests []syncDest, errs []error) ([]*io.PipeReader, []*io.PipeWriter, func()) {
	pws := make([]*io.PipeWriter, len(dests))
	prs := make([]*io.PipeReader, len(dests))
	var wg sync.WaitGroup
	for i, ds := range dests {
		pr, pw := io.Pipe()
		pws[i], prs[i] = pw, pr
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.targets[ds.tgt].Sink.BlobPut(ctx, ds.repo, c.n.desc, pr)
			if err == nil {
				// a sink that returned early must not leave the tee blocked
				err = drained(pr)
			}
			errs[i] = err
			pr.CloseWithError(errOr(err, io.ErrClosedPipe))
		}()
	}
	return prs, pws, wg.Wait
}

// pump reads src to its end and writes each chunk into every pipe whose
// dest is still live; it returns the failure of the source.
func (c *blobCopy) pump(src io.Reader, dests []syncDest, prs []*io.PipeReader, pws []*io.PipeWriter) error {
	live := make([]bool, len(dests))
	for i := range live {
		live[i] = true
	}
	buf := make([]byte, 256<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !c.writeChunk(buf[:n], dests, prs, pws, live) {
			return nil // every target failed: their errors say why
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return sourceError{fmt.Errorf("reading blob %s from the source: %w", c.n.desc.Digest, err)}
		}
	}
}

// writeChunk writes chunk into the pipe of every live dest at once and
// reports whether any was live; a dest whose write fails drops out, and
// a target that stops reading (IdleTimeout) drops out instead of holding
// up the others.
func (c *blobCopy) writeChunk(chunk []byte, dests []syncDest, prs []*io.PipeReader, pws []*io.PipeWriter, live []bool) bool {
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
	return any
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
