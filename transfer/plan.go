package transfer

import (
	"context"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/mediatype"
	"github.com/regclient/regclient/types/platform"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/oci"
	"github.com/ferry-oss/ferry/selection"
)

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

// walk adds manifest m to the plan after what it lists: an index's
// children (kept to the wanted platforms; the index is then filtered), an
// image's blobs; then what refers to m. It returns m as planned (a
// filtered index is a new manifest).
func (p *imagePlan) walk(ctx context.Context, src oci.Source, m manifest.Manifest, srcRef, tgt ref.Ref, opts SaveOptions, depth int) (manifest.Manifest, error) {
	if depth > 4 {
		return nil, fmt.Errorf("%w: indexes nested too deep", oci.ErrUnsupported)
	}
	desc := m.GetDescriptor()
	var err error
	switch m.(type) {
	case manifest.Indexer:
		m, err = p.walkIndex(ctx, src, m, srcRef, tgt, opts, depth)
	case manifest.Imager:
		err = p.walkImage(ctx, src, m, srcRef, tgt, opts, depth)
	default:
		err = fmt.Errorf("%w: manifest media type %s", oci.ErrUnsupported, desc.MediaType)
	}
	if err != nil {
		return nil, err
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

// walkIndex walks the children of index m that have a wanted platform
// and returns m, filtered to them when it lists others too.
func (p *imagePlan) walkIndex(ctx context.Context, src oci.Source, m manifest.Manifest, srcRef, tgt ref.Ref, opts SaveOptions, depth int) (manifest.Manifest, error) {
	desc := m.GetDescriptor()
	dl, err := m.(manifest.Indexer).GetManifestList()
	if err != nil {
		return nil, err
	}
	if len(dl) > oci.MaxChildren {
		return nil, fmt.Errorf("index %s lists %d manifests: %w (at most %d)", desc.Digest, len(dl), oci.ErrLimit, oci.MaxChildren)
	}
	kept, err := keptChildren(desc, dl, opts.Platforms)
	if err != nil {
		return nil, err
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
	if len(kept) == len(dl) {
		return m, nil
	}
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
	return nm, nil
}

// keptChildren are the children of index desc (listing dl) that have one
// of the wanted platforms; all of them when none is wanted.
func keptChildren(desc descriptor.Descriptor, dl []descriptor.Descriptor, want []platform.Platform) ([]descriptor.Descriptor, error) {
	if len(want) == 0 {
		return dl, nil
	}
	var kept []descriptor.Descriptor
	for _, c := range dl {
		if c.Platform != nil && matchAny(*c.Platform, want) {
			kept = append(kept, c)
		}
	}
	if len(kept) > 0 {
		return kept, nil
	}
	var have []string
	for _, c := range dl {
		if c.Platform != nil {
			have = append(have, c.Platform.String())
		}
	}
	return nil, fmt.Errorf("%w: index %s has %s, wanted %s", oci.ErrPlatformMismatch, desc.Digest, strings.Join(have, ", "), platformList(want))
}

// walkImage adds the config and layers of image manifest m; at the top,
// with platforms wanted, its config must declare one of them.
func (p *imagePlan) walkImage(ctx context.Context, src oci.Source, m manifest.Manifest, srcRef, tgt ref.Ref, opts SaveOptions, depth int) error {
	desc := m.GetDescriptor()
	blobs, _, err := oci.References(m)
	if err != nil {
		return err
	}
	if len(blobs)-1 > oci.MaxLayers {
		return fmt.Errorf("image %s has %d layers: %w (at most %d)", desc.Digest, len(blobs)-1, oci.ErrLimit, oci.MaxLayers)
	}
	cfg := blobs[0]
	if depth == 0 && len(opts.Platforms) > 0 && mediatype.Base(cfg.MediaType) != mediatype.OCI1Empty {
		plat, err := oci.ConfigPlatform(ctx, src, srcRef, cfg)
		if err != nil {
			return err
		}
		if plat != nil {
			if !matchAny(*plat, opts.Platforms) {
				return fmt.Errorf("%w: image is %s, wanted %s", oci.ErrPlatformMismatch, plat, platformList(opts.Platforms))
			}
			p.platforms = append(p.platforms, plat.String())
		}
	}
	for _, b := range blobs {
		p.blobs = append(p.blobs, srcBlob{desc: descriptor.Descriptor{MediaType: b.MediaType, Digest: b.Digest, Size: b.Size}, src: srcRef, tgt: tgt})
	}
	return nil
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
