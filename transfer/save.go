package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// Save copies images from src into the bundle w: it resolves every image
// first, then streams the blobs each image needs (each once, skipping base
// blobs) with bounded concurrency, then the manifests, then commits the
// bundle. When an image fails and KeepGoing is off, nothing is committed,
// w is aborted and a *FailedError is returned.
func Save(ctx context.Context, src oci.Source, w *bundle.Writer, images []selection.ImageSpec, opts SaveOptions) (*SaveResult, error) {
	start := time.Now()
	defaults(&opts.Jobs, &opts.RetryDelay, &opts.Log)
	prog := oci.OrNop(opts.Progress)
	res := &SaveResult{}
	committed := false
	defer func() {
		if !committed {
			w.Abort()
		}
	}()
	if len(images) == 0 {
		return nil, fmt.Errorf("%w: no images to save", selection.ErrBadList)
	}
	targets := map[string]string{}
	for _, s := range images {
		if s.Tag == "" {
			continue
		}
		t := s.Repository + ":" + s.Tag
		if prev, ok := targets[t]; ok && prev != s.String() {
			return nil, fmt.Errorf("%w: %s and %s would both be %s at the target", selection.ErrBadList, prev, s.String(), t)
		}
		targets[t] = s.String()
	}

	// Plans go to a spool file in the output directory: memory holds an
	// offset per image, not every image's manifests.
	spool, err := newPlanSpool(w.Dir())
	if err != nil {
		return nil, err
	}
	defer spool.Close()
	plan := func(i int) (*imagePlan, error) { return spool.get(i, images[i]) }

	// 1. Resolve every image and its manifests.
	failures := map[int]error{}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Jobs)
	for i, spec := range images {
		g.Go(func() error {
			p, err := planImage(gctx, src, spec, opts)
			if err == nil {
				err = spool.put(i, p)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failures[i] = err
				opts.Log.Debug("image failed", "image", spec.String(), "err", err) // the caller's summary says it
			} else {
				distinct := map[digest.Digest]bool{}
				for _, b := range p.blobs {
					distinct[b.desc.Digest] = true
				}
				opts.Log.Info("resolved", "image", spec.String(), "digest", p.top.GetDescriptor().Digest, "manifests", len(p.manifests), "blobs", len(distinct))
			}
			return nil
		})
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(failures) > 0 && !opts.KeepGoing {
		return nil, failedErr(images, failures)
	}

	// 2. Blobs: unique, not in a base bundle, largest first. A blob is
	// fetched through the first image that needs it.
	type todoBlob struct {
		d   planDesc
		img int
	}
	var todo []todoBlob
	seen := map[digest.Digest]struct{}{}
	for i := range images {
		if !spool.has(i) {
			continue
		}
		p, err := plan(i)
		if err != nil {
			return nil, err
		}
		for _, b := range p.blobs {
			if _, ok := seen[b.desc.Digest]; ok {
				continue
			}
			seen[b.desc.Digest] = struct{}{}
			if ok, _ := w.BlobExists(ctx, b.tgt, b.desc); ok {
				if w.Kept(b.desc.Digest) {
					res.Resumed++
				} else {
					res.Skipped++
				}
				continue
			}
			todo = append(todo, todoBlob{d: planDescOf(b.desc), img: i})
		}
	}
	seen = nil
	sort.SliceStable(todo, func(i, j int) bool { return todo[i].d.Size > todo[j].d.Size })
	var total int64
	for _, b := range todo {
		total += b.d.Size
	}
	prog.SetTotal(total, len(todo))
	opts.Log.Info("fetching blobs", "blobs", len(todo), "bytes", total, "skipped", res.Skipped, "resumed", res.Resumed)

	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx = errgroup.WithContext(bctx)
	g.SetLimit(opts.Jobs)
	blobErr := map[digest.Digest]error{}
	for _, tb := range todo {
		g.Go(func() error {
			b := specBlob(images[tb.img], tb.d.desc())
			err := copyBlob(gctx, src, w, b, opts, prog)
			if err != nil {
				mu.Lock()
				blobErr[b.desc.Digest] = err
				mu.Unlock()
				if !opts.KeepGoing {
					cancel()
				}
				return nil
			}
			mu.Lock()
			res.Blobs++
			res.BlobBytes += b.desc.Size
			mu.Unlock()
			return nil
		})
	}
	_ = g.Wait()
	todo = nil
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(blobErr) > 0 { // every image that needs a failed blob fails
		for i := range images {
			if _, failed := failures[i]; failed || !spool.has(i) {
				continue
			}
			p, err := plan(i)
			if err != nil {
				return nil, err
			}
			if err := blobFailure(p, blobErr); err != nil {
				failures[i] = err
			}
		}
		if !opts.KeepGoing {
			return nil, failedErr(images, failures)
		}
	}

	// 3. Manifests, children first, then the image records; an image
	// whose blob failed fails with it.
	taggedSeen := map[string]bool{}
	for i := range images {
		if !spool.has(i) {
			continue
		}
		if _, failed := failures[i]; failed {
			continue
		}
		p, err := plan(i)
		if err != nil {
			return nil, err
		}
		if err := putManifests(ctx, w, p); err != nil {
			failures[i] = err
			continue
		}
		desc := p.top.GetDescriptor()
		w.AddImage(meta.Image{
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
			w.AddImage(meta.Image{
				Source:     p.spec.Source.SetTag(tr.tag).CommonName(),
				Repository: p.spec.Repository,
				Tag:        tr.tag,
				Digest:     tr.desc.Digest,
				MediaType:  tr.desc.MediaType,
			})
		}
	}
	fe := failedErr(images, failures)
	if fe != nil {
		if !opts.KeepGoing {
			return nil, fe
		}
		for _, f := range fe.Images {
			w.AddFailure(f.Image, f.Err)
		}
		res.Failed = fe.Images
	}
	m, err := w.CommitMeta(ctx)
	if err != nil {
		if fe != nil {
			return nil, errors.Join(err, fe)
		}
		return nil, err
	}
	committed = true
	res.Meta, res.MetaPath, res.Duration = m, w.MetaPath(), time.Since(start)
	if fe != nil {
		return res, fe
	}
	return res, nil
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
	rr := &resumeReader{ctx: ctx, idle: opts.IdleTimeout, open: func(actx context.Context) (io.ReadCloser, error) {
		var rc io.ReadCloser
		err := retry(actx, opts.Retries, opts.RetryDelay, opts.Log, "blob "+b.desc.Digest.String(), func() error {
			var err error
			rc, err = src.BlobGet(actx, b.src, b.desc)
			return err
		})
		return rc, err
	}, retries: opts.Retries, delay: opts.RetryDelay, log: opts.Log, name: b.desc.Digest.String()}
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
