package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/ref"
	"golang.org/x/sync/errgroup"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
)

// UploadOptions configure Upload.
type UploadOptions struct {
	// Target maps a repository of the bundle to the reference of the
	// repository at the sink (no tag or digest).
	Target func(repo string) (ref.Ref, error)
	// Jobs bounds how many blobs are pushed at once (schema 1 bundles:
	// parts streamed at once) (default 4).
	Jobs int
	// Retries is how often a blob whose push failed for a transient reason
	// is read and pushed again (schema 1: its part is streamed again; blobs
	// that landed are not sent again).
	Retries    int
	RetryDelay time.Duration
	// KeepGoing goes on past an image whose blob, manifest or tag push
	// failed: the other images are pushed, the failed one gets no tag,
	// and Upload returns a *FailedError listing each failed image with
	// its cause (and the result of the rest). Without it the first
	// failure ends the upload. Checks of the whole bundle (parts, base
	// blobs) end it either way, before anything is pushed.
	KeepGoing bool
	Log       *slog.Logger
	Progress  oci.Progress
}

// UploadResult summarizes an upload.
type UploadResult struct {
	Images       int
	Manifests    int
	BlobsPushed  int
	BlobsSkipped int
	BlobsMounted int
	BytesPushed  int64
	Duration     time.Duration
	// Failed lists the images that were not pushed (KeepGoing), in meta
	// order; Upload's error is then a *FailedError of them.
	Failed []ImageError
}

// BaseMissingError says which base blobs are missing at the target.
type BaseMissingError struct {
	Missing int
	Bases   []meta.Base
}

func (e *BaseMissingError) Error() string {
	var names []string
	for _, b := range e.Bases {
		names = append(names, fmt.Sprintf("%s (%s)", b.ID, b.Meta))
	}
	return fmt.Sprintf("%d blob(s) that this incremental bundle skipped are missing at the target; upload base bundle(s) first: %s", e.Missing, strings.Join(names, ", "))
}

func (e *BaseMissingError) Unwrap() error { return bundle.ErrBaseMissing }

// Upload pushes a bundle into sink: it checks the parts are present with
// their sizes, checks that every base blob is at the target (nothing is
// sent if one is not), pushes the blobs the target lacks (schema 2: each
// read from its offset, largest first, Jobs at a time, digest checked as
// it streams, blobs the target has not read at all; schema 1: part by
// part, every blob and each part's sha256 checked), and only when every
// blob landed pushes the manifests of every image (children first, then
// indexes, referrers after their subject), then the tags of all images,
// and commits. With KeepGoing an image whose blobs or manifests did not
// land is left out (no tag) and the others go on.
func Upload(ctx context.Context, bd *bundle.Bundle, sink oci.Sink, opts UploadOptions) (*UploadResult, error) {
	start := time.Now()
	defaults(&opts.Jobs, &opts.RetryDelay, &opts.Log)
	if opts.Target == nil {
		return nil, errors.New("upload: no target")
	}
	m := bd.Meta
	res := &UploadResult{}
	if m.Partial {
		opts.Log.Warn("bundle is partial: some images failed at save", "failed", len(m.Failed))
	}
	if err := bd.CheckParts(); err != nil {
		return nil, err
	}
	if err := bd.CheckRefs(); err != nil { // every manifest's blobs in the bundle or a base
		return nil, err
	}
	if err := bd.CheckGaps(ctx); err != nil { // nothing in the parts that the meta file does not name
		return nil, err
	}
	targets := map[string]ref.Ref{}
	target := func(repo string) ref.Ref {
		if r, ok := targets[repo]; ok {
			return r
		}
		r, _ := opts.Target(repo) // a base bundle's repository; zero on error
		return r
	}
	for _, repo := range bundleRepos(m) {
		r, err := opts.Target(repo)
		if err != nil {
			return nil, fmt.Errorf("target for %s: %w", repo, err)
		}
		targets[repo] = r
	}

	// 1. Base blobs: all must be at the target (in some repository) before
	// anything is sent.
	if err := checkBase(ctx, bd, sink, target, res); err != nil {
		return nil, err
	}

	// 2. Blobs: by offset (schema 2), or part by part (schema 1).
	var failed *blobFailures
	if opts.KeepGoing {
		failed = &blobFailures{}
	}
	upload := uploadParts
	if m.SchemaVersion >= 2 {
		upload = uploadBlobs
	}
	if err := upload(ctx, bd, sink, target, opts, res, failed); err != nil {
		return nil, err
	}

	// 3. Manifests of every image, then 4. the tags of every image whose
	// manifests all landed.
	if err := pushImages(ctx, bd, sink, target, opts, res, failed); err != nil {
		return nil, err
	}
	if err := sink.Commit(ctx); err != nil {
		return nil, err
	}
	res.Duration = time.Since(start)
	if len(res.Failed) > 0 {
		return res, &FailedError{Images: res.Failed}
	}
	return res, nil
}

// pushImages pushes, Jobs images at a time, the manifests of each
// image in dependency order (children first, referrers after their
// subject), by digest; once every image's are in, it pushes the tags (the
// PUT of a tag stores its manifest too: one without referrers is not
// pushed by digest first).
// Nothing is kept of an image once its manifests are pushed but whether
// they were: a tag is parsed again from the meta file when it is pushed.
// With failed (KeepGoing), an image that needs a blob that did not land,
// or whose manifest or tag push fails, is recorded in res.Failed and the
// others go on.
func pushImages(ctx context.Context, bd *bundle.Bundle, sink oci.Sink, target func(string) ref.Ref, opts UploadOptions, res *UploadResult, failed *blobFailures) error {
	m := bd.Meta
	referrers, err := bundle.ReferrersOf(m)
	if err != nil {
		return err
	}
	imgErr := make([]error, len(m.Images)) // by image: why it was not pushed
	var mu sync.Mutex
	// each runs fn for every image not failed so far, Jobs at a time: the
	// first error ends it, unless KeepGoing (then it is the image's)
	each := func(fn func(ctx context.Context, img meta.Image) error) error {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(opts.Jobs)
		for i, img := range m.Images {
			if imgErr[i] != nil {
				continue
			}
			g.Go(func() error {
				err := fn(gctx, img)
				if err == nil {
					return nil
				}
				if failed == nil || ctx.Err() != nil {
					return fmt.Errorf("image %s: %w", img.Source, err)
				}
				imgErr[i] = err // each goroutine its own index
				return nil
			})
		}
		return g.Wait()
	}
	err = each(func(ctx context.Context, img meta.Image) error {
		n, err := pushImageManifests(ctx, bd, sink, target(img.Repository), img, referrers, failed)
		if err != nil {
			return err
		}
		mu.Lock()
		res.Manifests += n
		mu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}
	err = each(func(ctx context.Context, img meta.Image) error {
		tgt := target(img.Repository)
		if img.Tag != "" {
			mf := bd.Manifest(img.Digest)
			if mf == nil {
				return fmt.Errorf("manifest %s: %w", img.Digest, bundle.ErrBlobMissing)
			}
			mm, err := bundle.ParseManifest(*mf)
			if err != nil {
				return err
			}
			if err := sink.ManifestPut(ctx, tgt.SetTag(img.Tag), mm); err != nil {
				return fmt.Errorf("pushing tag %s: %w", img.Tag, err)
			}
		}
		mu.Lock()
		res.Images++
		if tagCarries(img, referrers) {
			res.Manifests++
		}
		mu.Unlock()
		opts.Log.Info("pushed", "image", img.Source, "target", tgt.SetTag(img.Tag).CommonName(), "digest", img.Digest)
		return nil
	})
	if err != nil {
		return err
	}
	for i, err := range imgErr {
		if err != nil {
			img := m.Images[i]
			opts.Log.Error("image failed, not tagged", "image", img.Source, "err", err)
			res.Failed = append(res.Failed, ImageError{Image: img.Source, Err: err})
		}
	}
	return nil
}

// blobFailures records, with KeepGoing, which blobs did not land: a blob
// whose push (or check) failed is missing in every repository, a failed
// mount only in its repository (the bundle's repository names).
type blobFailures struct {
	mu     sync.Mutex
	blobs  map[digest.Digest]error
	mounts map[string]error // repository + "@" + digest
}

// add records err for blob d, for repository repo ("": every repository).
func (f *blobFailures) add(d digest.Digest, repo string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if repo == "" {
		if f.blobs == nil {
			f.blobs = map[digest.Digest]error{}
		}
		f.blobs[d] = err
		return
	}
	if f.mounts == nil {
		f.mounts = map[string]error{}
	}
	f.mounts[repo+"@"+string(d)] = err
}

// of returns why blob d is missing in repository repo, or nil.
func (f *blobFailures) of(repo string, d digest.Digest) error {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.blobs[d]; err != nil {
		return err
	}
	return f.mounts[repo+"@"+string(d)]
}

// keep is err for a blob: recorded, and so nil, with KeepGoing (unless
// the upload was interrupted).
func (f *blobFailures) keep(ctx context.Context, d digest.Digest, err error) error {
	if err == nil || f == nil || ctx.Err() != nil {
		return err
	}
	f.add(d, "", err)
	return nil
}

// uploadBlobs pushes the blobs of a schema 2 bundle: it asks the target
// which blobs it has (HEAD), then pushes the missing ones, largest first,
// Jobs at a time, each read from its offset in its part (any part layout).
// Blobs the target has are not read at all.
func uploadBlobs(ctx context.Context, bd *bundle.Bundle, sink oci.Sink, target func(string) ref.Ref, opts UploadOptions, res *UploadResult, failed *blobFailures) error {
	var mu sync.Mutex
	missing, err := missingBlobs(ctx, bd, sink, target, opts, res, failed, &mu)
	if err != nil {
		return err
	}
	var total int64
	for _, b := range missing {
		total += b.Size
	}
	prog := oci.OrNop(opts.Progress)
	prog.SetTotal(total, len(missing))
	opts.Log.Info("pushing blobs", "missing", len(missing), "bytes", total, "present", res.BlobsSkipped)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Jobs)
	for _, b := range missing {
		g.Go(func() error {
			d := descOf(b)
			if err := pushBlob(gctx, bd, sink, target(b.Repos[0]), d, opts, prog); err != nil {
				return failed.keep(gctx, d.Digest, err)
			}
			// just pushed: the other repositories are very likely without
			// it, so mount without asking first (a mount of a blob a
			// repository has is a no-op)
			n, err := mountRest(gctx, sink, target, b, false, failed)
			mu.Lock()
			res.BlobsPushed++
			res.BytesPushed += d.Size
			res.BlobsMounted += n
			mu.Unlock()
			return err
		})
	}
	return g.Wait()
}

// missingBlobs asks the target (HEAD, in the first repository that needs
// it) for every blob in use and returns those it lacks, largest first; a
// blob it has is mounted into the other repositories that need it.
func missingBlobs(ctx context.Context, bd *bundle.Bundle, sink oci.Sink, target func(string) ref.Ref, opts UploadOptions, res *UploadResult, failed *blobFailures, mu *sync.Mutex) ([]*meta.Blob, error) {
	var missing []*meta.Blob
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(opts.Jobs, 4))
	for i := range bd.Meta.Blobs {
		b := &bd.Meta.Blobs[i]
		if len(b.Repos) == 0 {
			continue // stored but unused (a failed image of a partial bundle)
		}
		g.Go(func() error {
			d := descOf(b)
			ok, err := sink.BlobExists(gctx, target(b.Repos[0]), d)
			if err != nil {
				return failed.keep(gctx, d.Digest, fmt.Errorf("checking blob %s: %w", d.Digest, err))
			}
			if !ok {
				mu.Lock()
				missing = append(missing, b)
				mu.Unlock()
				return nil
			}
			n, err := mountRest(gctx, sink, target, b, true, failed)
			mu.Lock()
			res.BlobsSkipped++
			res.BlobsMounted += n
			mu.Unlock()
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	sort.Slice(missing, func(i, j int) bool {
		if missing[i].Size != missing[j].Size {
			return missing[i].Size > missing[j].Size
		}
		return missing[i].Digest < missing[j].Digest
	})
	return missing, nil
}

// pushBlob pushes blob d, read from its offset in the bundle, into
// repository first and checks that the target has it; a transient
// failure reads and pushes it again.
func pushBlob(ctx context.Context, bd *bundle.Bundle, sink oci.Sink, first ref.Ref, d descriptor.Descriptor, opts UploadOptions, prog oci.Progress) error {
	return retry(ctx, opts.Retries, opts.RetryDelay, opts.Log, "blob "+d.Digest.String(), func() error {
		rc, err := bd.OpenBlob(ctx, d.Digest)
		if err != nil {
			return err
		}
		defer rc.Close()
		t := prog.Begin(d.Digest.Encoded()[:12], d.Size)
		err = sink.BlobPut(ctx, first, d, oci.TrackReader(rc, t))
		t.Done(err)
		if err != nil {
			return fmt.Errorf("pushing blob %s to %s: %w", d.Digest, first.CommonName(), err)
		}
		return confirmBlob(ctx, sink, first, d)
	})
}

// mountRest makes blob b, present in its first repository at the target,
// available in its other repositories and returns how many mounts it
// made. With ask, it asks each repository first (HEAD) and mounts only
// where the blob is missing. With failed (KeepGoing), a failed mount is
// recorded for its repository and the others go on.
func mountRest(ctx context.Context, sink oci.Sink, target func(string) ref.Ref, b *meta.Blob, ask bool, failed *blobFailures) (int, error) {
	d := descOf(b)
	first := target(b.Repos[0])
	n := 0
	for _, repo := range b.Repos[1:] {
		tr := target(repo)
		if ask {
			if ok, err := sink.BlobExists(ctx, tr, d); err == nil && ok {
				continue
			}
		}
		if err := sink.BlobMount(ctx, first, tr, d); err != nil {
			err = fmt.Errorf("mounting blob %s into %s: %w", d.Digest, tr.CommonName(), err)
			if failed == nil || ctx.Err() != nil {
				return n, err
			}
			failed.add(d.Digest, repo, err)
			continue
		}
		n++
	}
	return n, nil
}

// confirmBlob asks the target, after a push, whether it has blob d as
// sent (a registry Sink's BlobExists compares the size and digest it
// reports): a target that accepted a blob but serves something else is
// caught before any manifest or tag points at it.
func confirmBlob(ctx context.Context, sink oci.Sink, r ref.Ref, d descriptor.Descriptor) error {
	ok, err := sink.BlobExists(ctx, r, d)
	switch {
	case err != nil:
		return fmt.Errorf("checking pushed blob %s at %s: %w", d.Digest, r.CommonName(), err)
	case !ok:
		return fmt.Errorf("blob %s: %s accepted it but does not have it: %w", d.Digest, r.CommonName(), bundle.ErrBlobMissing)
	}
	return nil
}

func descOf(b *meta.Blob) descriptor.Descriptor {
	return descriptor.Descriptor{MediaType: b.MediaType, Digest: b.Digest, Size: b.Size}
}

// uploadParts pushes the blobs of a schema 1 bundle, whose parts can only
// be read from the start: Jobs parts at a time, each streamed once, every
// blob checked (and the part's sha256), blobs the target lacks pushed.
// With failed (KeepGoing) a blob that fails is recorded and the part read
// on; a part that fails marks the blobs it had not yet delivered.
func uploadParts(ctx context.Context, bd *bundle.Bundle, sink oci.Sink, target func(string) ref.Ref, opts UploadOptions, res *UploadResult, failed *blobFailures) error {
	m := bd.Meta
	prog := oci.OrNop(opts.Progress)
	prog.SetTotal(m.TotalBlobBytes(), len(m.Blobs))
	var pushed, skipped, mounted atomic.Int64
	var bytes atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Jobs)
	for _, p := range m.Parts {
		g.Go(func() error {
			done := map[digest.Digest]bool{} // blobs of p pushed, present or recorded as failed
			err := retry(gctx, opts.Retries, opts.RetryDelay, opts.Log, "part "+p.Name, func() error {
				return bd.ReadPart(gctx, p, func(b *meta.Blob, r io.Reader) error {
					d := descOf(b)
					if len(b.Repos) == 0 || done[d.Digest] {
						return nil // stored but unused (a failed image of a partial bundle), or done in an earlier attempt
					}
					err := pushFromPart(gctx, sink, target, b, r, prog, failed, &pushed, &skipped, &mounted, &bytes)
					if err = failed.keep(gctx, d.Digest, err); err == nil {
						done[d.Digest] = true
					}
					return err
				})
			})
			if err == nil || failed == nil || ctx.Err() != nil {
				return err
			}
			for _, b := range m.Blobs {
				if b.Part == p.Name && len(b.Repos) > 0 && !done[b.Digest] {
					failed.add(b.Digest, "", err)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	res.BlobsPushed, res.BlobsSkipped, res.BlobsMounted = int(pushed.Load()), res.BlobsSkipped+int(skipped.Load()), res.BlobsMounted+int(mounted.Load())
	res.BytesPushed = bytes.Load()
	return nil
}

// pushFromPart pushes blob b, read from its part by r, unless the target
// has it (then r is still read, and so checked), and mounts it into its
// other repositories.
func pushFromPart(ctx context.Context, sink oci.Sink, target func(string) ref.Ref, b *meta.Blob, r io.Reader, prog oci.Progress, failed *blobFailures, pushed, skipped, mounted, bytes *atomic.Int64) error {
	d := descOf(b)
	first := target(b.Repos[0])
	ok, err := sink.BlobExists(ctx, first, d)
	if err != nil {
		return fmt.Errorf("checking blob %s: %w", d.Digest, err)
	}
	t := prog.Begin(d.Digest.Encoded()[:12], d.Size)
	if ok {
		// still read (and so checked) from the part: progress counts it
		_, err := io.Copy(io.Discard, oci.TrackReader(r, t))
		t.Done(err)
		if err != nil {
			return err
		}
		skipped.Add(1)
	} else {
		err := sink.BlobPut(ctx, first, d, oci.TrackReader(r, t))
		t.Done(err)
		if err != nil {
			return fmt.Errorf("pushing blob %s to %s: %w", d.Digest, first.CommonName(), err)
		}
		if err := confirmBlob(ctx, sink, first, d); err != nil {
			return err
		}
		pushed.Add(1)
		bytes.Add(d.Size)
	}
	n, err := mountRest(ctx, sink, target, b, ok, failed)
	mounted.Add(int64(n))
	return err
}

// pushImageManifests pushes the manifests of one image by digest, in
// dependency order: children before indexes, referrers after their
// subject; the image's own manifest is left to its tag where tagCarries.
// It returns how many it put. With failed (KeepGoing), it first
// checks that every blob they reference landed in the image's repository.
func pushImageManifests(ctx context.Context, bd *bundle.Bundle, sink oci.Sink, tgt ref.Ref, img meta.Image, referrers map[digest.Digest][]digest.Digest, failed *blobFailures) (int, error) {
	var order []manifest.Manifest
	seen := map[digest.Digest]bool{}
	var walk func(dg digest.Digest, depth int) error
	walk = func(dg digest.Digest, depth int) error {
		if seen[dg] {
			return nil
		}
		seen[dg] = true
		mf := bd.Manifest(dg)
		if mf == nil {
			return fmt.Errorf("manifest %s: %w", dg, bundle.ErrBlobMissing)
		}
		mm, err := bundle.ParseManifest(*mf)
		if err != nil {
			return err
		}
		blobs, children, err := oci.References(mm)
		if err != nil {
			return fmt.Errorf("manifest %s: %w", dg, err)
		}
		for _, b := range blobs {
			if err := failed.of(img.Repository, b.Digest); err != nil {
				return err // names the blob
			}
		}
		if depth > 4 && len(children) > 0 {
			return fmt.Errorf("manifest %s: %w: indexes nested too deep", dg, oci.ErrUnsupported)
		}
		for _, c := range children {
			if err := walk(c.Digest, depth+1); err != nil {
				return err
			}
		}
		order = append(order, mm)
		for _, r := range referrers[dg] { // after their subject
			if err := walk(r, 0); err != nil {
				return fmt.Errorf("referrer %s of %s: %w", r, dg, err)
			}
		}
		return nil
	}
	if err := walk(img.Digest, 0); err != nil {
		return 0, err
	}
	n := 0
	for _, mm := range order {
		dg := mm.GetDescriptor().Digest
		if dg == img.Digest && tagCarries(img, referrers) {
			continue // the tag's PUT stores it
		}
		if err := sink.ManifestPut(ctx, tgt.SetDigest(dg.String()), mm); err != nil {
			return 0, fmt.Errorf("pushing manifest %s: %w", dg, err)
		}
		n++
	}
	return n, nil
}

// tagCarries says that the PUT of img's tag is enough to store its
// manifest: a PUT by digest before it would send the same bytes twice. Not
// when referrers of the manifest must come after it and before the tag.
func tagCarries(img meta.Image, referrers map[digest.Digest][]digest.Digest) bool {
	return img.Tag != "" && len(referrers[img.Digest]) == 0
}

// checkBase makes sure every base blob is at the target in each repository
// that needs it, mounting it from another repository where it is present
// there. Nothing is mounted unless every base blob was found somewhere.
func checkBase(ctx context.Context, bd *bundle.Bundle, sink oci.Sink, target func(string) ref.Ref, res *UploadResult) error {
	m := bd.Meta
	if len(m.BaseBlobs) == 0 {
		return nil
	}
	type mount struct {
		from, to ref.Ref
		d        descriptor.Descriptor
	}
	var mounts []mount
	missing := map[string]int{}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, bb := range m.BaseBlobs {
		g.Go(func() error {
			d := descriptor.Descriptor{MediaType: bb.MediaType, Digest: bb.Digest, Size: bb.Size}
			var have []ref.Ref
			var lack []ref.Ref
			for _, repo := range bb.Repos {
				tr := target(repo)
				ok, err := sink.BlobExists(gctx, tr, d)
				if err != nil {
					return fmt.Errorf("checking base blob %s: %w", d.Digest, err)
				}
				if ok {
					have = append(have, tr)
				} else {
					lack = append(lack, tr)
				}
			}
			if len(lack) > 0 && len(have) == 0 {
				for _, repo := range bb.BaseRepos {
					tr := target(repo)
					if tr.Repository == "" {
						continue
					}
					if ok, err := sink.BlobExists(gctx, tr, d); err == nil && ok {
						have = append(have, tr)
						break
					}
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if len(lack) > 0 && len(have) == 0 {
				missing[bb.Base]++
				return nil
			}
			res.BlobsSkipped++
			for _, to := range lack {
				mounts = append(mounts, mount{from: have[0], to: to, d: d})
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if len(missing) > 0 {
		e := &BaseMissingError{}
		for _, b := range m.Bases {
			if n := missing[b.ID]; n > 0 {
				e.Missing += n
				e.Bases = append(e.Bases, b)
			}
		}
		sort.Slice(e.Bases, func(i, j int) bool { return e.Bases[i].ID < e.Bases[j].ID })
		return e
	}
	for _, mt := range mounts {
		if err := sink.BlobMount(ctx, mt.from, mt.to, mt.d); err != nil {
			return fmt.Errorf("mounting base blob %s into %s: %w", mt.d.Digest, mt.to.CommonName(), err)
		}
		res.BlobsMounted++
	}
	return nil
}

// bundleRepos lists every repository the bundle mentions.
func bundleRepos(m *meta.Meta) []string {
	set := map[string]bool{}
	for _, img := range m.Images {
		set[img.Repository] = true
	}
	for _, b := range m.Blobs {
		for _, r := range b.Repos {
			set[r] = true
		}
	}
	for _, b := range m.BaseBlobs {
		for _, r := range b.Repos {
			set[r] = true
		}
	}
	out := make([]string, 0, len(set))
	for r := range set {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}
