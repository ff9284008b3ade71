package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/platform"
	"github.com/regclient/regclient/types/ref"
	"golang.org/x/sync/errgroup"

	"github.com/ferry-oss/ferry/oci"
	"github.com/ferry-oss/ferry/selection"
)

// ErrStopped is returned by Sync when SyncOptions.Stop was closed: the
// blobs in flight finished, nothing more was pushed.
var ErrStopped = errors.New("stopped")

// SyncTarget is one destination of Sync.
type SyncTarget struct {
	// Name names the target in messages (host[/namespace]).
	Name string
	Sink oci.Sink
	// Repo maps an image's target repository (ImageSpec.Repository) to the
	// repository at this sink (no tag or digest).
	Repo func(repo string) (ref.Ref, error)
}

// SyncImage is one image to copy and the targets it goes to.
type SyncImage struct {
	Spec selection.ImageSpec
	// Targets are indexes into Sync's targets; empty means every target.
	Targets []int
}

// SyncOptions configure Sync.
type SyncOptions struct {
	// Platforms filters multi-platform indexes exactly as Save does.
	Platforms []platform.Platform
	// Jobs bounds concurrent manifest fetches, blob copies and manifest
	// pushes (default 4).
	Jobs int
	// Retries is how often a failed fetch or push is retried (default 0).
	Retries    int
	RetryDelay time.Duration
	// Referrers also copies what refers to each image (SBOMs, signatures:
	// OCI referrers and cosign tags), as Save does; ArtifactTypes keeps
	// only these artifact types.
	Referrers     bool
	ArtifactTypes []string
	// IdleTimeout ends a source read that waits longer than this for a
	// byte and resumes it, as in Save; 0: no limit.
	IdleTimeout time.Duration
	// Stop, when closed, makes Sync start no new blob and push no
	// manifest: it returns ErrStopped once the blobs in flight landed.
	Stop     <-chan struct{}
	Log      *slog.Logger
	Progress oci.Progress
}

// TargetResult counts what Sync did at one target.
type TargetResult struct {
	Name         string `json:"name"`
	Images       int    `json:"images"`   // copies that are complete at the target
	UpToDate     int    `json:"upToDate"` // of those, already there: nothing pushed
	Failed       int    `json:"failed"`
	Manifests    int    `json:"manifestsPushed"`
	BlobsPushed  int    `json:"blobsPushed"`
	BlobsSkipped int    `json:"blobsSkipped"`
	BlobsMounted int    `json:"blobsMounted"`
	BytesPushed  int64  `json:"bytesPushed"`
}

// SyncResult summarizes a Sync; it is returned also when images failed.
type SyncResult struct {
	Images    int   // distinct source images resolved
	BytesRead int64 // blob bytes read from the source (each blob once for all targets)
	Targets   []TargetResult
	Failed    []ImageError
	Duration  time.Duration
}

// Total adds up the per-target counts (Name is empty).
func (r *SyncResult) Total() TargetResult {
	var t TargetResult
	for _, x := range r.Targets {
		t.Images += x.Images
		t.UpToDate += x.UpToDate
		t.Failed += x.Failed
		t.Manifests += x.Manifests
		t.BlobsPushed += x.BlobsPushed
		t.BlobsSkipped += x.BlobsSkipped
		t.BlobsMounted += x.BlobsMounted
		t.BytesPushed += x.BytesPushed
	}
	return t
}

// syncJob is one image going to one target.
type syncJob struct {
	img, tgt int
	repo     ref.Ref // at the target
	plan     int     // spool key of the image's plan
	upToDate bool
	err      error
}

func (j *syncJob) name(images []SyncImage) string {
	s := images[j.img].Spec
	r := j.repo
	if s.Tag != "" {
		r = r.SetTag(s.Tag)
	}
	return s.String() + " -> " + r.CommonName()
}

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

// Sync copies images from src straight into every target: it resolves each
// source image once (filtering indexes as Save does), leaves alone images a
// target already has (same digest under the tag), then copies each blob
// that some target lacks from one read of the source into every target
// that lacks it (a tee; blobs are mounted across repositories of one
// target), and then pushes manifests, children first and tags last. A
// failure at one target never stops the others; the result is returned
// with a *FailedError listing every image copy that failed.
func Sync(ctx context.Context, src oci.Source, targets []SyncTarget, images []SyncImage, opts SyncOptions) (*SyncResult, error) {
	start := time.Now()
	defaults(&opts.Jobs, &opts.RetryDelay, &opts.Log)
	prog := oci.OrNop(opts.Progress)
	if len(images) == 0 {
		return nil, fmt.Errorf("%w: no images to sync", selection.ErrBadList)
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("%w: no targets", selection.ErrBadList)
	}
	jobs, err := syncJobs(targets, images)
	if err != nil {
		return nil, err
	}
	res := &SyncResult{Targets: make([]TargetResult, len(targets))}
	for i, t := range targets {
		res.Targets[i].Name = t.Name
	}
	stopped := func() bool {
		select {
		case <-opts.Stop:
			return true
		default:
			return false
		}
	}

	// Plans are spooled to a temporary file: memory holds a key per
	// image, not every image's manifests.
	spool, err := newPlanSpool("")
	if err != nil {
		return nil, err
	}
	defer spool.Close()
	plan := func(key int) (*imagePlan, error) { return spool.get(key, images[key].Spec) }

	// 1. Resolve each source image once (under the index of its first
	// entry).
	plans := map[string]int{}
	planErr := map[string]error{}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Jobs)
	popts := SaveOptions{Platforms: opts.Platforms, Retries: opts.Retries, RetryDelay: opts.RetryDelay, IdleTimeout: opts.IdleTimeout, Referrers: opts.Referrers, ArtifactTypes: opts.ArtifactTypes, Log: opts.Log}
	for i, im := range images {
		key := im.Spec.String()
		if _, dup := plans[key]; dup {
			continue
		}
		plans[key] = i
		g.Go(func() error {
			p, err := planImage(gctx, src, im.Spec, popts)
			if err == nil {
				err = spool.put(i, p)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				planErr[key] = err
				opts.Log.Warn("image failed", "image", key, "err", err)
				return nil
			}
			res.Images++
			opts.Log.Info("resolved", "image", key, "digest", p.top.GetDescriptor().Digest, "manifests", len(p.manifests), "blobs", len(p.blobs))
			return nil
		})
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// 2. Which targets already have the image (tag or digest points at the
	// same manifest)? One copy per target is checked first: a target that
	// cannot be reached fails all its copies at once (a registry client
	// backs off from a dead host, so asking for each would take minutes).
	var check [2][]*syncJob // first copy per target, the others
	probed := map[int]bool{}
	for _, j := range jobs {
		key := images[j.img].Spec.String()
		if err := planErr[key]; err != nil {
			j.err = err
			continue
		}
		j.plan = plans[key]
		if _, ok := targets[j.tgt].Sink.(oci.ManifestHeader); !ok {
			continue
		}
		k := 1
		if !probed[j.tgt] {
			probed[j.tgt], k = true, 0
		}
		check[k] = append(check[k], j)
	}
	down := map[int]error{}
	for k, js := range check {
		g, gctx = errgroup.WithContext(ctx)
		g.SetLimit(opts.Jobs)
		for _, j := range js {
			if err := down[j.tgt]; err != nil {
				j.err = err
				continue
			}
			mh := targets[j.tgt].Sink.(oci.ManifestHeader)
			g.Go(func() error {
				p, err := plan(j.plan)
				if err != nil {
					return err
				}
				j.upToDate, j.err = present(gctx, mh, j.repo, images[j.img].Spec.Tag, p, opts)
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for _, j := range js {
			if k == 0 && unreachable(j.err) {
				down[j.tgt] = fmt.Errorf("target %s unreachable: %w", targets[j.tgt].Name, j.err)
				j.err = down[j.tgt]
			}
		}
	}

	// 3. Blobs: every blob a pending copy needs, once per target, each
	// read once from the source for all targets that lack it. A need is
	// kept compact (the jobs that need it) until its copy starts.
	type needRec struct {
		d    planDesc
		img  int     // an image that has it at the source
		jobs []int32 // indexes into jobs
	}
	needs := map[digest.Digest]*needRec{}
	var order []*needRec
	for ji, j := range jobs {
		if j.err != nil || j.upToDate {
			continue
		}
		p, err := plan(j.plan)
		if err != nil {
			return nil, err
		}
		for _, b := range p.blobs {
			n := needs[b.desc.Digest]
			if n == nil {
				n = &needRec{d: planDescOf(b.desc), img: j.plan}
				needs[b.desc.Digest] = n
				order = append(order, n)
			}
			if len(n.jobs) == 0 || n.jobs[len(n.jobs)-1] != int32(ji) {
				n.jobs = append(n.jobs, int32(ji))
			}
		}
	}
	needs = nil
	need := func(n *needRec) *blobNeed {
		bn := &blobNeed{desc: n.d.desc(), src: images[n.img].Spec.Source, repos: map[int][]ref.Ref{}}
		for _, ji := range n.jobs {
			j := jobs[ji]
			if !containsRepo(bn.repos[j.tgt], j.repo) {
				bn.repos[j.tgt] = append(bn.repos[j.tgt], j.repo)
			}
		}
		return bn
	}
	sort.SliceStable(order, func(a, b int) bool { return order[a].d.Size > order[b].d.Size })
	var total int64
	for _, n := range order {
		total += n.d.Size
	}
	prog.SetTotal(total, len(order))
	opts.Log.Info("copying blobs", "blobs", len(order), "bytes", total, "targets", len(targets))

	// blobErr[target][digest]: the blob did not land at that target
	blobErr := make([]map[digest.Digest]error, len(targets))
	for i := range blobErr {
		blobErr[i] = map[digest.Digest]error{}
	}
	var read atomic.Int64
	blobDown := &downSet{m: map[int]error{}}
	var wasStoppedLate atomic.Bool
	wasStopped := false
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(opts.Jobs)
	for _, nr := range order {
		if stopped() {
			wasStopped = true
			break
		}
		g.Go(func() error {
			if stopped() {
				wasStoppedLate.Store(true)
				return nil
			}
			n := need(nr)
			c := &blobCopy{src: src, n: n, targets: targets, opts: opts, prog: prog, read: &read, down: blobDown}
			failed := c.run(gctx)
			mu.Lock()
			defer mu.Unlock()
			for t, err := range failed {
				blobErr[t][n.desc.Digest] = err
			}
			for t, tr := range c.counts {
				res.Targets[t].BlobsPushed += tr.BlobsPushed
				res.Targets[t].BlobsSkipped += tr.BlobsSkipped
				res.Targets[t].BlobsMounted += tr.BlobsMounted
				res.Targets[t].BytesPushed += tr.BytesPushed
			}
			return nil
		})
	}
	_ = g.Wait()
	order = nil
	res.BytesRead = read.Load()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if wasStopped || wasStoppedLate.Load() || stopped() {
		res.Duration = time.Since(start)
		return res, ErrStopped
	}
	for _, j := range jobs {
		if j.err != nil || j.upToDate || len(blobErr[j.tgt]) == 0 {
			continue
		}
		p, err := plan(j.plan)
		if err != nil {
			return nil, err
		}
		for _, b := range p.blobs {
			if err := blobErr[j.tgt][b.desc.Digest]; err != nil {
				j.err = err
				break
			}
		}
	}

	// 4. Manifests: per copy, children first, then the tag.
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(opts.Jobs)
	for _, j := range jobs {
		if j.err != nil || j.upToDate {
			continue
		}
		g.Go(func() error {
			p, err := plan(j.plan)
			if err != nil {
				mu.Lock()
				j.err = err
				mu.Unlock()
				return nil
			}
			n, err := pushManifests(gctx, targets[j.tgt].Sink, j.repo, images[j.img].Spec.Tag, p, opts)
			mu.Lock()
			defer mu.Unlock()
			res.Targets[j.tgt].Manifests += n
			if err != nil {
				j.err = err
				return nil
			}
			opts.Log.Info("synced", "image", j.name(images), "digest", p.top.GetDescriptor().Digest)
			return nil
		})
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	used := map[int]bool{}
	for _, j := range jobs {
		used[j.tgt] = true
	}
	var commitErr []error
	for t := range targets {
		if !used[t] {
			continue
		}
		if err := targets[t].Sink.Commit(ctx); err != nil {
			commitErr = append(commitErr, fmt.Errorf("%s: %w", targets[t].Name, err))
			for _, j := range jobs {
				if j.tgt == t && j.err == nil {
					j.err = err
				}
			}
		}
	}

	fe := &FailedError{}
	for _, j := range jobs {
		tr := &res.Targets[j.tgt]
		switch {
		case j.err != nil:
			tr.Failed++
			fe.Images = append(fe.Images, ImageError{Image: j.name(images), Err: j.err})
		case j.upToDate:
			tr.Images++
			tr.UpToDate++
		default:
			tr.Images++
		}
	}
	res.Duration = time.Since(start)
	if len(fe.Images) > 0 {
		res.Failed = fe.Images
		return res, fe
	}
	return res, nil
}

// unreachable reports whether err says a host could not be reached at all
// (connection refused, no route, DNS, TLS handshake) rather than that it
// answered with an error.
func unreachable(err error) bool {
	var ne net.Error
	return err != nil && errors.As(err, &ne) && !errors.Is(err, context.Canceled)
}

// present reports whether the target already has the image: its tag (or
// top digest) points at the planned top manifest and, with referrers,
// every referrer manifest and cosign tag is there too.
func present(ctx context.Context, mh oci.ManifestHeader, repo ref.Ref, tag string, p *imagePlan, opts SyncOptions) (bool, error) {
	top := p.top.GetDescriptor().Digest
	want := map[string]digest.Digest{}
	if tag != "" {
		want[tag] = top
	} else {
		want["@"+top.String()] = top
	}
	if opts.Referrers {
		for _, m := range p.manifests {
			dg := m.GetDescriptor().Digest
			want["@"+dg.String()] = dg
		}
		for _, tr := range p.tagged {
			want[tr.tag] = tr.desc.Digest
		}
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		r := repo.SetTag(k)
		if strings.HasPrefix(k, "@") {
			r = repo.SetDigest(k[1:])
		}
		var have digest.Digest
		err := retry(ctx, opts.Retries, opts.RetryDelay, opts.Log, "manifest "+r.CommonName(), func() error {
			var err error
			have, err = mh.ManifestDigest(ctx, r)
			return err
		})
		if err != nil {
			return false, fmt.Errorf("checking %s: %w", r.CommonName(), err)
		}
		if have != want[k] {
			return false, nil
		}
	}
	return true, nil
}

// syncJobs expands images × targets and checks that no two sources land on
// the same repository and tag of one target.
func syncJobs(targets []SyncTarget, images []SyncImage) ([]*syncJob, error) {
	var jobs []*syncJob
	claimed := map[string]string{}
	for i, im := range images {
		ts := im.Targets
		if len(ts) == 0 {
			ts = make([]int, len(targets))
			for t := range targets {
				ts[t] = t
			}
		}
		for _, t := range ts {
			if t < 0 || t >= len(targets) {
				return nil, fmt.Errorf("%w: %s: no target %d", selection.ErrBadList, im.Spec.String(), t)
			}
			r, err := targets[t].Repo(im.Spec.Repository)
			if err != nil {
				return nil, fmt.Errorf("%s at %s: %w", im.Spec.String(), targets[t].Name, err)
			}
			j := &syncJob{img: i, tgt: t, repo: r}
			if tag := im.Spec.Tag; tag != "" {
				k := fmt.Sprintf("%d|%s:%s", t, r.CommonName(), tag)
				if prev, ok := claimed[k]; ok && prev != im.Spec.String() {
					return nil, fmt.Errorf("%w: %s and %s would both be %s", selection.ErrBadList, prev, im.Spec.String(), r.SetTag(tag).CommonName())
				}
				if _, ok := claimed[k]; ok {
					continue // the same image twice
				}
				claimed[k] = im.Spec.String()
			}
			jobs = append(jobs, j)
		}
	}
	return jobs, nil
}

func containsRepo(rs []ref.Ref, r ref.Ref) bool {
	for _, x := range rs {
		if ref.EqualRepository(x, r) {
			return true
		}
	}
	return false
}

// pushManifests puts an image's manifests, children first by digest, the
// top one under its tag (by digest when it has none). It returns how many
// manifests it put.
func pushManifests(ctx context.Context, sink oci.Sink, repo ref.Ref, tag string, p *imagePlan, opts SyncOptions) (int, error) {
	top := p.top.GetDescriptor().Digest
	put := func(r ref.Ref, m manifest.Manifest) error {
		err := retry(ctx, opts.Retries, opts.RetryDelay, opts.Log, "manifest "+r.CommonName(), func() error {
			return sink.ManifestPut(ctx, r, m)
		})
		if err != nil {
			return fmt.Errorf("pushing manifest %s to %s: %w", m.GetDescriptor().Digest, r.CommonName(), err)
		}
		return nil
	}
	n := 0
	for _, m := range p.manifests {
		if dg := m.GetDescriptor().Digest; dg != top || tag == "" {
			if err := put(repo.SetDigest(dg.String()), m); err != nil {
				return n, err
			}
			n++
		}
	}
	if tag != "" {
		if err := put(repo.SetTag(tag), p.top); err != nil {
			return n, err
		}
		n++
	}
	for _, tr := range p.tagged { // cosign-style referrers: tags last
		for _, m := range p.manifests {
			if m.GetDescriptor().Digest == tr.desc.Digest {
				if err := put(repo.SetTag(tr.tag), m); err != nil {
					return n, err
				}
				break
			}
		}
	}
	return n, nil
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

// ExpandSyncImages is ExpandTags for Sync: an entry whose selection fails
// (no tag matches, the listing failed) is returned as a failure, the
// others go on. Each expanded entry keeps its targets.
func ExpandSyncImages(ctx context.Context, lister oci.TagLister, images []SyncImage, opts selection.ExpandOptions) ([]SyncImage, []ImageError) {
	specs := make([]selection.ImageSpec, len(images))
	for i, im := range images {
		specs[i] = im.Spec
	}
	out, errs := selection.ExpandEach(ctx, lister, specs, opts)
	var ok []SyncImage
	var failed []ImageError
	for i, o := range out {
		if errs[i] != nil {
			failed = append(failed, ImageError{Image: specs[i].String(), Err: errs[i]})
			continue
		}
		for _, s := range o {
			ok = append(ok, SyncImage{Spec: s, Targets: images[i].Targets})
		}
	}
	return ok, failed
}
