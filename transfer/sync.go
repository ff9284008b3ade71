package transfer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
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

// Sync copies images from src straight into every target, in stages: it
// resolves each source image once, filtering indexes as Save does
// (resolve), leaves alone images a target already has, same digest under
// the tag (checkPresent), copies each blob that some target lacks from
// one read of the source into every target that lacks it, a tee; blobs
// are mounted across repositories of one target (moveBlobs), pushes
// manifests, children first and tags last (writeImages), and commits
// every target (commit). A failure at one target never stops the others;
// the result is returned with a *FailedError listing every image copy
// that failed.
func Sync(ctx context.Context, src oci.Source, targets []SyncTarget, images []SyncImage, opts SyncOptions) (*SyncResult, error) {
	start := time.Now()
	defaults(&opts.Jobs, &opts.RetryDelay, &opts.Log)
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
	// Plans are spooled to a temporary file: memory holds a key per
	// image, not every image's manifests.
	spool, err := newPlanSpool("")
	if err != nil {
		return nil, err
	}
	defer spool.Close()
	s := &syncRun{src: src, targets: targets, images: images, jobs: jobs, opts: opts, prog: oci.OrNop(opts.Progress), spool: spool,
		res: &SyncResult{Targets: make([]TargetResult, len(targets))}, down: &downSet{m: map[int]error{}}}
	for i, t := range targets {
		s.res.Targets[i].Name = t.Name
	}
	if err := s.resolve(ctx); err != nil {
		return nil, err
	}
	if err := s.checkPresent(ctx); err != nil {
		return nil, err
	}
	stopped, err := s.moveBlobs(ctx)
	if err != nil {
		return nil, err
	}
	if stopped {
		s.res.Duration = time.Since(start)
		return s.res, ErrStopped
	}
	if err := s.writeImages(ctx); err != nil {
		return nil, err
	}
	s.commit(ctx)
	return s.result(start)
}

// syncRun is what the stages of one Sync share.
type syncRun struct {
	src     oci.Source
	targets []SyncTarget
	images  []SyncImage
	jobs    []*syncJob
	opts    SyncOptions
	prog    oci.Progress
	spool   *planSpool
	res     *SyncResult
	read    atomic.Int64 // blob bytes read from the source
	down    *downSet     // targets found unreachable while copying blobs

	mu      sync.Mutex
	plans   map[string]int   // spool key of each source image's plan
	planErr map[string]error // why a source image could not be planned
}

// needRec is a blob that pending copies need, kept compact (the copies
// that need it) until its copy starts.
type needRec struct {
	d    planDesc
	img  int     // an image that has it at the source
	jobs []int32 // indexes into jobs
}

// plan reads the plan stored under key back from the spool.
func (s *syncRun) plan(key int) (*imagePlan, error) { return s.spool.get(key, s.images[key].Spec) }

// stopped reports whether SyncOptions.Stop was closed.
func (s *syncRun) stopped() bool {
	select {
	case <-s.opts.Stop:
		return true
	default:
		return false
	}
}

// resolve plans each source image once (under the index of its first
// entry), Jobs at a time, into the spool.
func (s *syncRun) resolve(ctx context.Context) error {
	s.plans, s.planErr = map[string]int{}, map[string]error{}
	popts := SaveOptions{Platforms: s.opts.Platforms, Retries: s.opts.Retries, RetryDelay: s.opts.RetryDelay, IdleTimeout: s.opts.IdleTimeout, Referrers: s.opts.Referrers, ArtifactTypes: s.opts.ArtifactTypes, Log: s.opts.Log}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.opts.Jobs)
	for i, im := range s.images {
		key := im.Spec.String()
		if _, dup := s.plans[key]; dup {
			continue
		}
		s.plans[key] = i
		g.Go(func() error {
			s.resolveOne(gctx, i, im.Spec, popts)
			return nil
		})
	}
	_ = g.Wait()
	return ctx.Err()
}

// resolveOne plans the source image of entry i and spools the plan.
func (s *syncRun) resolveOne(ctx context.Context, i int, spec selection.ImageSpec, popts SaveOptions) {
	key := spec.String()
	p, err := planImage(ctx, s.src, spec, popts)
	if err == nil {
		err = s.spool.put(i, p)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.planErr[key] = err
		s.opts.Log.Warn("image failed", "image", key, "err", err)
		return
	}
	s.res.Images++
	s.opts.Log.Info("resolved", "image", key, "digest", p.top.GetDescriptor().Digest, "manifests", len(p.manifests), "blobs", len(p.blobs))
}

// checkPresent finds the copies a target already has (its tag or digest
// points at the same manifest): they are left alone. One copy per target
// is checked first: a target that cannot be reached fails all its copies
// at once (a registry client backs off from a dead host, so asking for
// each would take minutes).
func (s *syncRun) checkPresent(ctx context.Context) error {
	down := map[int]error{}
	for k, js := range s.presenceChecks() {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(s.opts.Jobs)
		for _, j := range js {
			if err := down[j.tgt]; err != nil {
				j.err = err
				continue
			}
			mh := s.targets[j.tgt].Sink.(oci.ManifestHeader)
			g.Go(func() error {
				p, err := s.plan(j.plan)
				if err != nil {
					return err
				}
				j.upToDate, j.err = present(gctx, mh, j.repo, s.images[j.img].Spec.Tag, p, s.opts)
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		for _, j := range js {
			if k == 0 && unreachable(j.err) {
				down[j.tgt] = fmt.Errorf("target %s unreachable: %w", s.targets[j.tgt].Name, j.err)
				j.err = down[j.tgt]
			}
		}
	}
	return nil
}

// presenceChecks gives each copy its image's plan (or its failure) and
// returns the copies to check at targets that can say what they have:
// the first copy per target, then the others.
func (s *syncRun) presenceChecks() [2][]*syncJob {
	var check [2][]*syncJob
	probed := map[int]bool{}
	for _, j := range s.jobs {
		key := s.images[j.img].Spec.String()
		if err := s.planErr[key]; err != nil {
			j.err = err
			continue
		}
		j.plan = s.plans[key]
		if _, ok := s.targets[j.tgt].Sink.(oci.ManifestHeader); !ok {
			continue
		}
		k := 1
		if !probed[j.tgt] {
			probed[j.tgt], k = true, 0
		}
		check[k] = append(check[k], j)
	}
	return check
}

// moveBlobs copies every blob that a pending copy needs into each target
// that lacks it, each read once from the source for all of them; a copy
// fails with a blob it needs that did not land. It reports whether Stop
// ended it.
func (s *syncRun) moveBlobs(ctx context.Context) (stopped bool, err error) {
	order, err := s.blobNeeds()
	if err != nil {
		return false, err
	}
	blobErr, stoppedEarly := s.copyBlobs(ctx, order)
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if stoppedEarly || s.stopped() {
		return true, nil
	}
	return false, s.failByBlobs(blobErr)
}

// blobNeeds lists every blob that a pending copy needs, once, largest
// first, and announces them to the progress.
func (s *syncRun) blobNeeds() ([]*needRec, error) {
	needs := map[digest.Digest]*needRec{}
	var order []*needRec
	for ji, j := range s.jobs {
		if j.err != nil || j.upToDate {
			continue
		}
		p, err := s.plan(j.plan)
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
	sort.SliceStable(order, func(a, b int) bool { return order[a].d.Size > order[b].d.Size })
	var total int64
	for _, n := range order {
		total += n.d.Size
	}
	s.prog.SetTotal(total, len(order))
	s.opts.Log.Info("copying blobs", "blobs", len(order), "bytes", total, "targets", len(s.targets))
	return order, nil
}

// need is n with, per target, the repositories that need it.
func (s *syncRun) need(n *needRec) *blobNeed {
	bn := &blobNeed{desc: n.d.desc(), src: s.images[n.img].Spec.Source, repos: map[int][]ref.Ref{}}
	for _, ji := range n.jobs {
		j := s.jobs[ji]
		if !containsRepo(bn.repos[j.tgt], j.repo) {
			bn.repos[j.tgt] = append(bn.repos[j.tgt], j.repo)
		}
	}
	return bn
}

// copyBlobs copies the blobs, Jobs at a time, each into every target that
// needs it, and returns per target the blobs that did not land there
// (blobErr[target][digest]). Once Stop is closed it starts no blob, and
// says so.
func (s *syncRun) copyBlobs(ctx context.Context, order []*needRec) ([]map[digest.Digest]error, bool) {
	blobErr := make([]map[digest.Digest]error, len(s.targets))
	for i := range blobErr {
		blobErr[i] = map[digest.Digest]error{}
	}
	var wasStoppedLate atomic.Bool
	wasStopped := false
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.opts.Jobs)
	for _, nr := range order {
		if s.stopped() {
			wasStopped = true
			break
		}
		g.Go(func() error {
			if s.stopped() {
				wasStoppedLate.Store(true)
				return nil
			}
			s.copyBlob(gctx, nr, blobErr)
			return nil
		})
	}
	_ = g.Wait()
	s.res.BytesRead = s.read.Load()
	return blobErr, wasStopped || wasStoppedLate.Load()
}

// copyBlob copies one blob into every target that needs it and counts
// what it did per target.
func (s *syncRun) copyBlob(ctx context.Context, nr *needRec, blobErr []map[digest.Digest]error) {
	n := s.need(nr)
	c := &blobCopy{src: s.src, n: n, targets: s.targets, opts: s.opts, prog: s.prog, read: &s.read, down: s.down}
	failed := c.run(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, err := range failed {
		blobErr[t][n.desc.Digest] = err
	}
	for t, tr := range c.counts {
		s.res.Targets[t].BlobsPushed += tr.BlobsPushed
		s.res.Targets[t].BlobsSkipped += tr.BlobsSkipped
		s.res.Targets[t].BlobsMounted += tr.BlobsMounted
		s.res.Targets[t].BytesPushed += tr.BytesPushed
	}
}

// failByBlobs fails every pending copy that needs a blob that did not
// land at its target.
func (s *syncRun) failByBlobs(blobErr []map[digest.Digest]error) error {
	for _, j := range s.jobs {
		if j.err != nil || j.upToDate || len(blobErr[j.tgt]) == 0 {
			continue
		}
		p, err := s.plan(j.plan)
		if err != nil {
			return err
		}
		for _, b := range p.blobs {
			if err := blobErr[j.tgt][b.desc.Digest]; err != nil {
				j.err = err
				break
			}
		}
	}
	return nil
}

// writeImages pushes the manifests of every pending copy, children first,
// then its tag, Jobs copies at a time.
func (s *syncRun) writeImages(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.opts.Jobs)
	for _, j := range s.jobs {
		if j.err != nil || j.upToDate {
			continue
		}
		g.Go(func() error {
			s.writeImage(gctx, j)
			return nil
		})
	}
	_ = g.Wait()
	return ctx.Err()
}

// writeImage pushes the manifests of copy j.
func (s *syncRun) writeImage(ctx context.Context, j *syncJob) {
	p, err := s.plan(j.plan)
	if err != nil {
		s.mu.Lock()
		j.err = err
		s.mu.Unlock()
		return
	}
	n, err := pushManifests(ctx, s.targets[j.tgt].Sink, j.repo, s.images[j.img].Spec.Tag, p, s.opts)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.res.Targets[j.tgt].Manifests += n
	if err != nil {
		j.err = err
		return
	}
	s.opts.Log.Info("synced", "image", j.name(s.images), "digest", p.top.GetDescriptor().Digest)
}

// commit commits every target that got a copy; the copies of a target
// whose commit fails fail.
func (s *syncRun) commit(ctx context.Context) {
	used := map[int]bool{}
	for _, j := range s.jobs {
		used[j.tgt] = true
	}
	for t := range s.targets {
		if !used[t] {
			continue
		}
		if err := s.targets[t].Sink.Commit(ctx); err != nil {
			for _, j := range s.jobs {
				if j.tgt == t && j.err == nil {
					j.err = err
				}
			}
		}
	}
}

// result counts the copies per target; it comes with a *FailedError
// listing the copies that failed.
func (s *syncRun) result(start time.Time) (*SyncResult, error) {
	fe := &FailedError{}
	for _, j := range s.jobs {
		tr := &s.res.Targets[j.tgt]
		switch {
		case j.err != nil:
			tr.Failed++
			fe.Images = append(fe.Images, ImageError{Image: j.name(s.images), Err: j.err})
		case j.upToDate:
			tr.Images++
			tr.UpToDate++
		default:
			tr.Images++
		}
	}
	s.res.Duration = time.Since(start)
	if len(fe.Images) > 0 {
		s.res.Failed = fe.Images
		return s.res, fe
	}
	return s.res, nil
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
