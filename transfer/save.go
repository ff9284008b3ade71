package transfer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/platform"
	"golang.org/x/sync/errgroup"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
	"github.com/ferry-oss/ferry/selection"
)

// SaveOptions configure Save.
type SaveOptions struct {
	// Platforms keeps only these children of multi-platform indexes; empty
	// keeps all.
	Platforms []platform.Platform
	// Jobs bounds concurrent fetches (default 4).
	Jobs int
	// Retries is how often a failed fetch is retried (default 0).
	Retries int
	// RetryDelay is the first backoff delay, doubled per retry (default 1s).
	RetryDelay time.Duration
	// KeepGoing writes a meta of the images that succeeded, marked partial.
	KeepGoing bool
	// IdleTimeout ends a blob download that waits longer than this for
	// a byte and retries it (it resumes where it broke off); 0: no limit.
	IdleTimeout time.Duration
	// Referrers also saves what refers to each saved manifest (SBOMs,
	// signatures, attestations: OCI referrers and cosign tags) when the
	// Source is a ReferrerSource; see Referrer.
	Referrers bool
	// ArtifactTypes keeps only referrers of these artifact types (a
	// cosign tag's suffix, ".sig", ".att" or ".sbom", also matches); empty
	// keeps all.
	ArtifactTypes []string
	Log           *slog.Logger
	Progress      oci.Progress
}

// SaveInputs lists what, besides the Writer's own options, makes a save's
// content: the images (as resolved into specs, renames included; their
// order does not matter), the platform filter and the referrer settings.
// Pass it as WriterOptions.Inputs so that only a save of the same inputs
// resumes an interrupted one.
func SaveInputs(images []selection.ImageSpec, opts SaveOptions) []string {
	var imgs []string
	for _, s := range images {
		imgs = append(imgs, "image="+s.String()+" -> "+s.Repository+":"+s.Tag)
	}
	sort.Strings(imgs)
	out := imgs
	for _, p := range opts.Platforms {
		out = append(out, "platform="+p.String())
	}
	out = append(out, fmt.Sprintf("referrers=%t", opts.Referrers))
	types := slices.Clone(opts.ArtifactTypes)
	sort.Strings(types)
	for _, t := range types {
		out = append(out, "artifact-type="+t)
	}
	return out
}

// SaveResult summarizes a save.
type SaveResult struct {
	// Meta is what was written, but for the manifests' bytes (Raw is nil;
	// the meta file has them: meta.Load it to read them).
	Meta      *meta.Meta
	MetaPath  string
	Blobs     int
	BlobBytes int64
	Skipped   int // blobs skipped because a base bundle has them
	Resumed   int // blobs not fetched: the interrupted save resumed wrote them
	Failed    []ImageError
	Duration  time.Duration
}

// Save copies images from src into the bundle w, in stages: it resolves
// and plans every image (resolve), lists the blobs the bundle lacks, each
// once, skipping base blobs, and streams them with bounded concurrency
// (moveBlobs), puts each image's manifests and records it
// (writeImages), then commits the bundle (commit). When an image fails
// and KeepGoing is off, nothing is committed, w is aborted and a
// *FailedError is returned.
func Save(ctx context.Context, src oci.Source, w *bundle.Writer, images []selection.ImageSpec, opts SaveOptions) (*SaveResult, error) {
	start := time.Now()
	defaults(&opts.Jobs, &opts.RetryDelay, &opts.Log)
	committed := false
	defer func() {
		if !committed {
			w.Abort()
		}
	}()
	if err := checkSaveList(images); err != nil {
		return nil, err
	}
	// Plans go to a spool file in the output directory: memory holds an
	// offset per image, not every image's manifests.
	spool, err := newPlanSpool(w.Dir())
	if err != nil {
		return nil, err
	}
	defer spool.Close()
	s := &saveRun{src: src, w: w, images: images, opts: opts, prog: oci.OrNop(opts.Progress), spool: spool, res: &SaveResult{}, failures: map[int]error{}}
	if err := s.resolve(ctx); err != nil {
		return nil, err
	}
	if err := s.moveBlobs(ctx); err != nil {
		return nil, err
	}
	if err := s.writeImages(ctx); err != nil {
		return nil, err
	}
	res, err := s.commit(ctx, start)
	committed = res != nil
	return res, err
}

// saveRun is what the stages of one Save share.
type saveRun struct {
	src    oci.Source
	w      *bundle.Writer
	images []selection.ImageSpec
	opts   SaveOptions
	prog   oci.Progress
	spool  *planSpool
	res    *SaveResult

	mu       sync.Mutex
	failures map[int]error // by index into images
}

// saveBlob is a blob to fetch and the first image that needs it.
type saveBlob struct {
	d   planDesc
	img int
}

// checkSaveList refuses an empty list, and two images that would get the
// same repository and tag.
func checkSaveList(images []selection.ImageSpec) error {
	if len(images) == 0 {
		return fmt.Errorf("%w: no images to save", selection.ErrBadList)
	}
	targets := map[string]string{}
	for _, s := range images {
		if s.Tag == "" {
			continue
		}
		t := s.Repository + ":" + s.Tag
		if prev, ok := targets[t]; ok && prev != s.String() {
			return fmt.Errorf("%w: %s and %s would both be %s at the target", selection.ErrBadList, prev, s.String(), t)
		}
		targets[t] = s.String()
	}
	return nil
}

// plan reads the plan of image i back from the spool.
func (s *saveRun) plan(i int) (*imagePlan, error) { return s.spool.get(i, s.images[i]) }

// resolve plans every image, Jobs at a time, into the spool; an image
// that fails is recorded in failures, and without KeepGoing ends the
// save.
func (s *saveRun) resolve(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.opts.Jobs)
	for i, spec := range s.images {
		g.Go(func() error {
			s.resolveOne(gctx, i, spec)
			return nil
		})
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(s.failures) > 0 && !s.opts.KeepGoing {
		return failedErr(s.images, s.failures)
	}
	return nil
}

// resolveOne plans image i and spools the plan.
func (s *saveRun) resolveOne(ctx context.Context, i int, spec selection.ImageSpec) {
	p, err := planImage(ctx, s.src, spec, s.opts)
	if err == nil {
		err = s.spool.put(i, p)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.failures[i] = err
		s.opts.Log.Debug("image failed", "image", spec.String(), "err", err) // the caller's summary says it
		return
	}
	distinct := map[digest.Digest]bool{}
	for _, b := range p.blobs {
		distinct[b.desc.Digest] = true
	}
	s.opts.Log.Info("resolved", "image", spec.String(), "digest", p.top.GetDescriptor().Digest, "manifests", len(p.manifests), "blobs", len(distinct))
}

// moveBlobs fetches the blobs the bundle lacks into it. Every image that
// needs a blob that failed fails with it; without KeepGoing that ends the
// save.
func (s *saveRun) moveBlobs(ctx context.Context) error {
	todo, err := s.blobsToFetch(ctx)
	if err != nil {
		return err
	}
	blobErr := s.copyBlobs(ctx, todo)
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(blobErr) == 0 {
		return nil
	}
	if err := s.failByBlobs(blobErr); err != nil {
		return err
	}
	if !s.opts.KeepGoing {
		return failedErr(s.images, s.failures)
	}
	return nil
}

// blobsToFetch lists the blobs the planned images need that neither the
// bundle nor a base bundle has, each once (through the first image that
// needs it), largest first, and announces them to the progress.
func (s *saveRun) blobsToFetch(ctx context.Context) ([]saveBlob, error) {
	var todo []saveBlob
	seen := map[digest.Digest]struct{}{}
	for i := range s.images {
		if !s.spool.has(i) {
			continue
		}
		p, err := s.plan(i)
		if err != nil {
			return nil, err
		}
		for _, b := range p.blobs {
			if _, ok := seen[b.desc.Digest]; ok {
				continue
			}
			seen[b.desc.Digest] = struct{}{}
			if ok, _ := s.w.BlobExists(ctx, b.tgt, b.desc); ok {
				if s.w.Kept(b.desc.Digest) {
					s.res.Resumed++
				} else {
					s.res.Skipped++
				}
				continue
			}
			todo = append(todo, saveBlob{d: planDescOf(b.desc), img: i})
		}
	}
	sort.SliceStable(todo, func(i, j int) bool { return todo[i].d.Size > todo[j].d.Size })
	var total int64
	for _, b := range todo {
		total += b.d.Size
	}
	s.prog.SetTotal(total, len(todo))
	s.opts.Log.Info("fetching blobs", "blobs", len(todo), "bytes", total, "skipped", s.res.Skipped, "resumed", s.res.Resumed)
	return todo, nil
}

// copyBlobs copies todo from the source into the bundle, Jobs at a time,
// and returns the error of each blob that failed; without KeepGoing the
// first failure cancels the others.
func (s *saveRun) copyBlobs(ctx context.Context, todo []saveBlob) map[digest.Digest]error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.opts.Jobs)
	blobErr := map[digest.Digest]error{}
	for _, tb := range todo {
		g.Go(func() error {
			b := specBlob(s.images[tb.img], tb.d.desc())
			err := copyBlob(gctx, s.src, s.w, b, s.opts, s.prog)
			if err != nil {
				s.mu.Lock()
				blobErr[b.desc.Digest] = err
				s.mu.Unlock()
				if !s.opts.KeepGoing {
					cancel()
				}
				return nil
			}
			s.mu.Lock()
			s.res.Blobs++
			s.res.BlobBytes += b.desc.Size
			s.mu.Unlock()
			return nil
		})
	}
	_ = g.Wait()
	return blobErr
}

// failByBlobs fails every planned image that needs a blob that failed.
func (s *saveRun) failByBlobs(blobErr map[digest.Digest]error) error {
	for i := range s.images {
		if _, failed := s.failures[i]; failed || !s.spool.has(i) {
			continue
		}
		p, err := s.plan(i)
		if err != nil {
			return err
		}
		if err := blobFailure(p, blobErr); err != nil {
			s.failures[i] = err
		}
	}
	return nil
}

// writeImages puts the manifests of every image that did not fail,
// children first, and records the image; an image whose manifests fail
// fails.
func (s *saveRun) writeImages(ctx context.Context) error {
	taggedSeen := map[string]bool{}
	for i := range s.images {
		if !s.spool.has(i) {
			continue
		}
		if _, failed := s.failures[i]; failed {
			continue
		}
		p, err := s.plan(i)
		if err != nil {
			return err
		}
		if err := putManifests(ctx, s.w, p); err != nil {
			s.failures[i] = err
			continue
		}
		s.addImage(p, taggedSeen)
	}
	return nil
}

// addImage records image p and the tags of its cosign-style referrers,
// each tag once (taggedSeen: the same image saved under two tags).
func (s *saveRun) addImage(p *imagePlan, taggedSeen map[string]bool) {
	desc := p.top.GetDescriptor()
	s.w.AddImage(meta.Image{
		Source:       p.spec.String(),
		Repository:   p.spec.Repository,
		Tag:          p.spec.Tag,
		Digest:       desc.Digest,
		MediaType:    desc.MediaType,
		SourceDigest: p.srcDigest,
		Platforms:    p.platforms,
	})
	for _, tr := range p.tagged {
		key := p.spec.Repository + ":" + tr.tag
		if taggedSeen[key] {
			continue // the same image saved twice (two tags of one digest)
		}
		taggedSeen[key] = true
		s.w.AddImage(meta.Image{
			Source:     p.spec.Source.SetTag(tr.tag).CommonName(),
			Repository: p.spec.Repository,
			Tag:        tr.tag,
			Digest:     tr.desc.Digest,
			MediaType:  tr.desc.MediaType,
		})
	}
}

// commit records the images that failed (KeepGoing; without it they end
// the save) and commits the bundle. The result comes with a
// *FailedError when images failed.
func (s *saveRun) commit(ctx context.Context, start time.Time) (*SaveResult, error) {
	fe := failedErr(s.images, s.failures)
	if fe != nil {
		if !s.opts.KeepGoing {
			return nil, fe
		}
		for _, f := range fe.Images {
			s.w.AddFailure(f.Image, f.Err)
		}
		s.res.Failed = fe.Images
	}
	m, err := s.w.CommitMeta(ctx)
	if err != nil {
		if fe != nil {
			return nil, errors.Join(err, fe)
		}
		return nil, err
	}
	s.res.Meta, s.res.MetaPath, s.res.Duration = m, s.w.MetaPath(), time.Since(start)
	if fe != nil {
		return s.res, fe
	}
	return s.res, nil
}

// blobFailure is the error of the first blob of p that failed, if any. A
// blob cancelled because another one failed counts only when nothing
// better is known.
func blobFailure(p *imagePlan, blobErr map[digest.Digest]error) error {
	var canceled error
	for _, b := range p.blobs {
		err, ok := blobErr[b.desc.Digest]
		if !ok {
			continue
		}
		if !errors.Is(err, context.Canceled) {
			return err
		}
		canceled = err
	}
	return canceled
}

func putManifests(ctx context.Context, w *bundle.Writer, p *imagePlan) error {
	tgt := bundleRef(p.spec.Repository)
	for _, m := range p.manifests {
		if err := w.ManifestPut(ctx, tgt.SetDigest(m.GetDescriptor().Digest.String()), m); err != nil {
			return err
		}
	}
	return nil
}

// copyBlob streams one blob from src into w, reopening the source on
// transient errors and resuming where it broke off.
func copyBlob(ctx context.Context, src oci.Source, w *bundle.Writer, b srcBlob, opts SaveOptions, prog oci.Progress) error {
	t := prog.Begin(b.desc.Digest.Encoded()[:12], b.desc.Size)
	rr := blobReader(ctx, src, b.src, b.desc, opts.Retries, opts.RetryDelay, opts.IdleTimeout, opts.Log)
	defer rr.Close()
	// The Source contract makes rr check the digest at EOF: Verified
	// spares the Writer a second hash of every byte.
	err := w.BlobPut(ctx, b.tgt, b.desc, oci.Verified(oci.TrackReader(rr, t)))
	t.Done(err)
	if err != nil {
		return fmt.Errorf("fetching blob %s: %w", b.desc.Digest, err)
	}
	return nil
}
