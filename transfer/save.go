// Package transfer holds the engines that move images: Save (a Source
// into a bundle Writer), Upload (a bundle into a Sink) and Sync (a Source
// into registries), each a pipeline of named stages over a shared plan.
package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/errs"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/mediatype"
	"github.com/regclient/regclient/types/platform"
	"github.com/regclient/regclient/types/ref"
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

// ErrIdleTimeout: a read or a write waited longer than the idle timeout
// for a byte.
var ErrIdleTimeout = errors.New("idle timeout")

// ImageError is the failure of one image.
type ImageError struct {
	Image string
	Err   error
}

func (e ImageError) Error() string { return e.Image + ": " + e.Err.Error() }
func (e ImageError) Unwrap() error { return e.Err }

// FailedError lists every image that failed; it wraps ErrImagesFailed.
type FailedError struct{ Images []ImageError }

func (e *FailedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d image(s) failed:", len(e.Images))
	for _, f := range e.Images {
		b.WriteString("\n  ")
		b.WriteString(f.Error())
	}
	return b.String()
}

func (e *FailedError) Unwrap() []error {
	out := []error{oci.ErrImagesFailed}
	for _, f := range e.Images {
		out = append(out, f.Err)
	}
	return out
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

type srcBlob struct {
	desc descriptor.Descriptor
	src  ref.Ref // a repository at the source that has it
	tgt  ref.Ref
}

type imagePlan struct {
	spec      selection.ImageSpec
	top       manifest.Manifest
	srcDigest digest.Digest
	manifests []manifest.Manifest // children first, referrers after their subject
	blobs     []srcBlob
	platforms []string
	tagged    []taggedReferrer // cosign-style referrers, tagged at the target
	referred  map[digest.Digest]bool
}

// taggedReferrer is a referrer that needs a tag at the target.
type taggedReferrer struct {
	tag  string
	desc descriptor.Descriptor
}

// maxReferrerLevel bounds referrers of referrers (a signature of an SBOM
// is level 2).
const maxReferrerLevel = 2

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

func failedErr(images []selection.ImageSpec, failures map[int]error) *FailedError {
	if len(failures) == 0 {
		return nil
	}
	fe := &FailedError{}
	for i := range images {
		if err, ok := failures[i]; ok {
			fe.Images = append(fe.Images, ImageError{Image: images[i].String(), Err: err})
		}
	}
	return fe
}

// bundleRef is the reference a bundle Writer stores repository repo's
// manifests and blobs under.
func bundleRef(repo string) ref.Ref {
	return ref.Ref{Scheme: "reg", Registry: "bundle", Repository: repo}
}

// specBlob is blob d of image spec: read from the spec's source, stored
// for its repository (as planImage plans every blob).
func specBlob(spec selection.ImageSpec, d descriptor.Descriptor) srcBlob {
	return srcBlob{desc: d, src: spec.Source, tgt: bundleRef(spec.Repository)}
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

// planImage resolves one image: its top manifest (an index filtered to the
// wanted platforms), every child manifest, and the blobs they reference.
func planImage(ctx context.Context, src oci.Source, spec selection.ImageSpec, opts SaveOptions) (*imagePlan, error) {
	p := &imagePlan{spec: spec}
	top, err := getManifest(ctx, src, spec.Source, opts)
	if err != nil {
		return nil, err
	}
	p.srcDigest = top.GetDescriptor().Digest
	tgt := bundleRef(spec.Repository)
	top, err = p.walk(ctx, src, top, spec.Source, tgt, opts, 0)
	if err != nil {
		return nil, err
	}
	p.top = top
	if top.GetDescriptor().Digest == p.srcDigest {
		p.srcDigest = ""
	}
	return p, nil
}

func (p *imagePlan) walk(ctx context.Context, src oci.Source, m manifest.Manifest, srcRef, tgt ref.Ref, opts SaveOptions, depth int) (manifest.Manifest, error) {
	if depth > 4 {
		return nil, fmt.Errorf("%w: indexes nested too deep", oci.ErrUnsupported)
	}
	desc := m.GetDescriptor()
	switch mm := m.(type) {
	case manifest.Indexer:
		dl, err := mm.GetManifestList()
		if err != nil {
			return nil, err
		}
		if len(dl) > oci.MaxChildren {
			return nil, fmt.Errorf("index %s lists %d manifests: %w (at most %d)", desc.Digest, len(dl), oci.ErrLimit, oci.MaxChildren)
		}
		kept := dl
		if len(opts.Platforms) > 0 {
			kept = nil
			for _, c := range dl {
				if c.Platform != nil && matchAny(*c.Platform, opts.Platforms) {
					kept = append(kept, c)
				}
			}
			if len(kept) == 0 {
				var have []string
				for _, c := range dl {
					if c.Platform != nil {
						have = append(have, c.Platform.String())
					}
				}
				return nil, fmt.Errorf("%w: index %s has %s, wanted %s", oci.ErrPlatformMismatch, desc.Digest, strings.Join(have, ", "), platformList(opts.Platforms))
			}
		}
		for _, c := range kept {
			cm, err := getManifest(ctx, src, srcRef.SetDigest(c.Digest.String()), opts)
			if err != nil {
				return nil, fmt.Errorf("child %s: %w", c.Digest, err)
			}
			if _, err := p.walk(ctx, src, cm, srcRef, tgt, opts, depth+1); err != nil {
				return nil, err
			}
			if c.Platform != nil && depth == 0 {
				p.platforms = append(p.platforms, c.Platform.String())
			}
		}
		if len(kept) != len(dl) {
			raw, err := m.RawBody()
			if err != nil {
				return nil, err
			}
			nm, err := manifest.New(manifest.WithRaw(raw), manifest.WithDesc(desc))
			if err != nil {
				return nil, err
			}
			if err := nm.(manifest.Indexer).SetManifestList(kept); err != nil {
				return nil, fmt.Errorf("filtering index %s: %w", desc.Digest, err)
			}
			m = nm
		}
	case manifest.Imager:
		blobs, _, err := oci.References(m)
		if err != nil {
			return nil, err
		}
		if len(blobs)-1 > oci.MaxLayers {
			return nil, fmt.Errorf("image %s has %d layers: %w (at most %d)", desc.Digest, len(blobs)-1, oci.ErrLimit, oci.MaxLayers)
		}
		cfg := blobs[0]
		if depth == 0 && len(opts.Platforms) > 0 && mediatype.Base(cfg.MediaType) != mediatype.OCI1Empty {
			plat, err := oci.ConfigPlatform(ctx, src, srcRef, cfg)
			if err != nil {
				return nil, err
			}
			if plat != nil {
				if !matchAny(*plat, opts.Platforms) {
					return nil, fmt.Errorf("%w: image is %s, wanted %s", oci.ErrPlatformMismatch, plat, platformList(opts.Platforms))
				}
				p.platforms = append(p.platforms, plat.String())
			}
		}
		for _, b := range blobs {
			p.blobs = append(p.blobs, srcBlob{desc: descriptor.Descriptor{MediaType: b.MediaType, Digest: b.Digest, Size: b.Size}, src: srcRef, tgt: tgt})
		}
	default:
		return nil, fmt.Errorf("%w: manifest media type %s", oci.ErrUnsupported, desc.MediaType)
	}
	p.manifests = append(p.manifests, m)
	if m.GetDescriptor().Digest != desc.Digest {
		// A filtered index is a new manifest: what refers to the source's
		// index names a digest the target will not have.
		opts.Log.Info("referrers of a filtered index are not carried (their subject is the unfiltered index)", "image", p.spec.String(), "index", desc.Digest)
	} else if err := p.addReferrers(ctx, src, desc, srcRef, tgt, opts, 1); err != nil {
		return nil, err
	}
	return m, nil
}

// addReferrers adds what refers to the manifest d (and, up to
// maxReferrerLevel, what refers to those) after it: their manifests and
// blobs, never filtered by platform, and their tags when they are
// cosign-style.
func (p *imagePlan) addReferrers(ctx context.Context, src oci.Source, d descriptor.Descriptor, srcRef, tgt ref.Ref, opts SaveOptions, level int) error {
	rs, ok := src.(oci.ReferrerSource)
	if !opts.Referrers || !ok || level > maxReferrerLevel {
		return nil
	}
	var list []oci.Referrer
	err := retry(ctx, opts.Retries, opts.RetryDelay, opts.Log, "referrers of "+d.Digest.String(), func() error {
		var err error
		list, err = rs.Referrers(ctx, srcRef, d)
		return err
	})
	if err != nil {
		return fmt.Errorf("referrers of %s (leave them out with --referrers=false): %w", d.Digest, err)
	}
	if len(list) > oci.MaxReferrers {
		return fmt.Errorf("%s has %d referrers: %w (at most %d; leave them out with --referrers=false)", d.Digest, len(list), oci.ErrLimit, oci.MaxReferrers)
	}
	ropts := opts
	ropts.Platforms = nil // platform filters never drop referrers
	for _, r := range list {
		if !wantArtifact(r, opts.ArtifactTypes) {
			continue
		}
		if p.referred == nil {
			p.referred = map[digest.Digest]bool{}
		}
		if p.referred[r.Desc.Digest] {
			continue
		}
		p.referred[r.Desc.Digest] = true
		rm, err := getManifest(ctx, src, srcRef.SetDigest(r.Desc.Digest.String()), opts)
		if err != nil {
			return fmt.Errorf("referrer %s of %s: %w", r.Desc.Digest, d.Digest, err)
		}
		if err := p.walkReferrer(ctx, src, rm, srcRef, tgt, ropts, level); err != nil {
			return fmt.Errorf("referrer %s of %s: %w", r.Desc.Digest, d.Digest, err)
		}
		if r.Tag != "" {
			rd := rm.GetDescriptor()
			p.tagged = append(p.tagged, taggedReferrer{tag: r.Tag, desc: descriptor.Descriptor{MediaType: rd.MediaType, Digest: rd.Digest, Size: rd.Size}})
		}
		opts.Log.Debug("referrer", "image", p.spec.String(), "subject", d.Digest, "referrer", r.Desc.Digest, "artifactType", r.Desc.ArtifactType, "tag", r.Tag)
	}
	return nil
}

// walkReferrer adds a referrer manifest like a child (depth 1: it adds no
// platforms to the image), then its own referrers one level down.
func (p *imagePlan) walkReferrer(ctx context.Context, src oci.Source, m manifest.Manifest, srcRef, tgt ref.Ref, opts SaveOptions, level int) error {
	o := opts
	o.Referrers = false // walk does not recurse into referrers here
	if _, err := p.walk(ctx, src, m, srcRef, tgt, o, 1); err != nil {
		return err
	}
	return p.addReferrers(ctx, src, m.GetDescriptor(), srcRef, tgt, opts, level+1)
}

// wantArtifact applies SaveOptions.ArtifactTypes.
func wantArtifact(r oci.Referrer, types []string) bool {
	if len(types) == 0 {
		return true
	}
	for _, t := range types {
		if t == r.Desc.ArtifactType || (r.Tag != "" && strings.HasSuffix(r.Tag, t)) {
			return true
		}
	}
	return false
}

func matchAny(p platform.Platform, want []platform.Platform) bool {
	for _, w := range want {
		if platform.Match(w, p) {
			return true
		}
	}
	return false
}

func platformList(ps []platform.Platform) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// getManifest fetches a manifest with retries.
func getManifest(ctx context.Context, src oci.Source, r ref.Ref, opts SaveOptions) (manifest.Manifest, error) {
	var m manifest.Manifest
	err := retry(ctx, opts.Retries, opts.RetryDelay, opts.Log, "manifest "+r.CommonName(), func() error {
		var err error
		m, err = src.ManifestGet(ctx, r)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("fetching manifest %s: %w", r.CommonName(), err)
	}
	return m, nil
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

// defaults fills the options Save, Sync and Upload share when unset: 4
// jobs, 1 s before the first retry, a logger that discards.
func defaults(jobs *int, retryDelay *time.Duration, log **slog.Logger) {
	if *jobs < 1 {
		*jobs = 4
	}
	if *retryDelay <= 0 {
		*retryDelay = time.Second
	}
	if *log == nil {
		*log = slog.New(slog.DiscardHandler)
	}
}

// retryable reports whether err may go away on a retry.
func retryable(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	for _, perm := range []error{oci.ErrLimit, oci.ErrDigestMismatch, oci.ErrSizeMismatch, bundle.ErrPartCorrupt, bundle.ErrPartMissing, bundle.ErrBlobMissing, bundle.ErrBaseMissing, oci.ErrUnsupported, bundle.ErrCodec, errs.ErrDigestMismatch, errs.ErrNotRetryable, errs.ErrSizeLimitExceeded, errs.ErrNotFound, errs.ErrHTTPUnauthorized, errs.ErrInvalidReference, errs.ErrUnsupportedMediaType, errs.ErrParsingFailed, oci.ErrPlatformMismatch, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, perm) {
			return false
		}
	}
	return true
}

func retry(ctx context.Context, retries int, delay time.Duration, log *slog.Logger, what string, fn func() error) error {
	for attempt := 0; ; attempt++ {
		err := fn()
		if err == nil || attempt >= retries || !retryable(ctx, err) {
			return err
		}
		log.Warn("retrying", "what", what, "attempt", attempt+1, "err", err)
		select {
		case <-time.After(delay << attempt):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// resumeReader reads a blob; when the stream breaks it reopens the source,
// discards what was already delivered and goes on. With idle set, an
// attempt that waits longer than idle for a byte (opening included) is
// ended with ErrIdleTimeout and retried like a broken stream.
type resumeReader struct {
	ctx     context.Context
	open    func(ctx context.Context) (io.ReadCloser, error)
	idle    time.Duration
	rc      io.ReadCloser
	off     int64
	retries int
	tries   int
	delay   time.Duration
	log     *slog.Logger
	name    string

	actx   context.Context // the current attempt's
	cancel context.CancelCauseFunc
	timer  *time.Timer
}

// attempt starts an attempt context, watched by the idle timer.
func (r *resumeReader) attempt() {
	r.endAttempt()
	r.actx, r.cancel = context.WithCancelCause(r.ctx)
	if r.idle > 0 {
		cancel := r.cancel
		r.timer = time.AfterFunc(r.idle, func() { cancel(ErrIdleTimeout) })
	}
}

func (r *resumeReader) endAttempt() {
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	if r.cancel != nil {
		r.cancel(nil)
		r.cancel = nil
	}
}

// watch runs fn with the idle timer armed, and names an idle timeout as
// such (the read itself only saw a canceled context).
func (r *resumeReader) watch(fn func() error) error {
	if r.timer != nil {
		r.timer.Reset(r.idle)
	}
	err := fn()
	if r.timer != nil {
		r.timer.Stop()
	}
	if err != nil && err != io.EOF && errors.Is(context.Cause(r.actx), ErrIdleTimeout) && r.ctx.Err() == nil {
		err = fmt.Errorf("%w: no data for %v", ErrIdleTimeout, r.idle)
	}
	return err
}

func (r *resumeReader) Read(p []byte) (int, error) {
	for {
		if r.rc == nil {
			r.attempt()
			var rc io.ReadCloser
			err := r.watch(func() error {
				var err error
				rc, err = r.open(r.actx)
				if err == nil && r.off > 0 {
					if _, err = io.CopyN(io.Discard, rc, r.off); err != nil {
						rc.Close()
					}
				}
				return err
			})
			if err != nil {
				if r.off > 0 && r.again(err) {
					continue
				}
				if errors.Is(err, ErrIdleTimeout) && r.again(err) {
					continue
				}
				r.endAttempt()
				return 0, err
			}
			r.rc = rc
		}
		var n int
		err := r.watch(func() error {
			var err error
			n, err = r.rc.Read(p)
			return err
		})
		r.off += int64(n)
		if err == nil || err == io.EOF || n > 0 {
			if err != nil && err != io.EOF && n > 0 {
				// deliver n now; the error comes back on the next read
				err = nil
			}
			return n, err
		}
		r.rc.Close()
		r.rc = nil
		if !r.again(err) {
			r.endAttempt()
			return 0, err
		}
	}
}

func (r *resumeReader) again(err error) bool {
	if r.tries >= r.retries || !retryable(r.ctx, err) {
		return false
	}
	r.tries++
	r.log.Warn("resuming blob", "blob", r.name, "offset", r.off, "attempt", r.tries, "err", err)
	select {
	case <-time.After(r.delay << (r.tries - 1)):
		return true
	case <-r.ctx.Done():
		return false
	}
}

func (r *resumeReader) Close() error {
	defer r.endAttempt()
	if r.rc != nil {
		return r.rc.Close()
	}
	return nil
}
