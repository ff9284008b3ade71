package containerd

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/mediatype"
	"github.com/regclient/regclient/types/platform"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
)

// maxDepth bounds how deep indexes and referrers nest.
const maxDepth = 8

// plan is what New decided from the meta file: which manifests and blobs
// go into containerd, under which names, and which artifacts are kept as
// content of the manifest they refer to.
type plan struct {
	manifests map[digest.Digest]bool // wanted manifests
	blobs     map[digest.Digest]bool // wanted config, layer and artifact blobs
	// names of the images, by the ref Upload gives ManifestPut: a tag
	// ("repo:tag") or, for an image without a tag, "repo@digest"
	names map[string]imageNames
	// pinned maps a referrer or a cosign-style tagged artifact to the
	// manifest it refers to: it is kept as content of that manifest (a
	// GC label on it), not as an image
	pinned map[digest.Digest]digest.Digest
	byDig  map[digest.Digest]*meta.Manifest
}

// imageNames are the containerd image names of one image of the bundle.
type imageNames struct {
	tag    string // source registry/repository:tag; "" for a digest-only image
	digest string // source registry/repository@digest
	source string // the bundle's image, for messages
}

// cosignTag is the tag scheme of cosign's signatures, attestations and
// SBOMs: sha256-<hex of the subject>.sig|.att|.sbom.
var cosignTag = regexp.MustCompile(`^sha256-([0-9a-f]{64})\.(sig|att|sbom)$`)

// newPlan walks every image of m from its top manifest: indexes keep the
// children of want (all when empty), and the referrers of every manifest
// kept come along.
func newPlan(m *meta.Meta, want []platform.Platform) (*plan, error) {
	p := &plan{
		manifests: map[digest.Digest]bool{}, blobs: map[digest.Digest]bool{},
		names: map[string]imageNames{}, pinned: map[digest.Digest]digest.Digest{},
		byDig: map[digest.Digest]*meta.Manifest{},
	}
	for i := range m.Manifests {
		p.byDig[m.Manifests[i].Digest] = &m.Manifests[i]
	}
	referrers, err := bundle.ReferrersOf(m)
	if err != nil {
		return nil, err
	}
	for _, dg := range slices.Sorted(maps.Keys(referrers)) {
		for _, r := range referrers[dg] {
			p.pinned[r] = dg
		}
	}
	for _, img := range m.Images {
		if err := p.walk(img.Digest, want, referrers, 0); err != nil {
			return nil, fmt.Errorf("image %s: %w", img.Source, err)
		}
	}
	for _, img := range m.Images {
		if err := p.name(img); err != nil {
			return nil, fmt.Errorf("image %s: %w", img.Source, err)
		}
	}
	return p, nil
}

// walk marks manifest dg, its blobs, the children of the wanted platforms
// and its referrers as wanted.
func (p *plan) walk(dg digest.Digest, want []platform.Platform, referrers map[digest.Digest][]digest.Digest, depth int) error {
	if p.manifests[dg] {
		return nil
	}
	if depth > maxDepth {
		return fmt.Errorf("manifest %s: %w: indexes or referrers nested too deep", dg, oci.ErrUnsupported)
	}
	mf := p.byDig[dg]
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
	p.manifests[dg] = true
	for _, b := range blobs {
		p.blobs[b.Digest] = true
	}
	kept, err := keepPlatforms(dg, children, want)
	if err != nil {
		return err
	}
	for _, c := range kept {
		if err := p.walk(c.Digest, want, referrers, depth+1); err != nil {
			return err
		}
	}
	for _, r := range referrers[dg] { // platform filters never drop referrers
		if err := p.walk(r, want, referrers, depth+1); err != nil {
			return fmt.Errorf("referrer %s of %s: %w", r, dg, err)
		}
	}
	return nil
}

// keepPlatforms returns the children of index dg that match want (all of
// them when want is empty); none is an error.
func keepPlatforms(dg digest.Digest, children []descriptor.Descriptor, want []platform.Platform) ([]descriptor.Descriptor, error) {
	if len(want) == 0 || len(children) == 0 {
		return children, nil
	}
	var kept []descriptor.Descriptor
	var have []string
	for _, c := range children {
		if c.Platform == nil {
			continue
		}
		have = append(have, c.Platform.String())
		for _, w := range want {
			if platform.Match(w, *c.Platform) {
				kept = append(kept, c)
				break
			}
		}
	}
	if len(kept) == 0 {
		return nil, fmt.Errorf("%w: index %s has %s, wanted %s", oci.ErrPlatformMismatch, dg, strings.Join(have, ", "), platformList(want))
	}
	return kept, nil
}

// name records the containerd names of img, or, for a cosign-style tagged
// artifact whose subject the bundle carries, pins it to that subject.
func (p *plan) name(img meta.Image) error {
	mf := p.byDig[img.Digest]
	if sm := cosignTag.FindStringSubmatch(img.Tag); sm != nil && isArtifact(mf) {
		subject := digest.NewDigestFromEncoded(digest.SHA256, sm[1])
		if p.manifests[subject] {
			p.pinned[img.Digest] = subject
			return nil
		}
	}
	src, err := ref.New(img.Source)
	if err != nil {
		return fmt.Errorf("source reference: %w", err)
	}
	base := src.Registry + "/" + src.Repository
	n := imageNames{digest: base + "@" + img.Digest.String(), source: img.Source}
	key := img.Repository + "@" + img.Digest.String()
	if img.Tag != "" {
		n.tag = base + ":" + img.Tag
		key = img.Repository + ":" + img.Tag
	}
	p.names[key] = n
	return nil
}

// isArtifact says that mf is an image manifest whose config is not a
// container image's: a signature, an SBOM, an attestation.
func isArtifact(mf *meta.Manifest) bool {
	if mf == nil {
		return false
	}
	mm, err := bundle.ParseManifest(*mf)
	if err != nil {
		return false
	}
	im, ok := mm.(manifest.Imager)
	if !ok {
		return false
	}
	cfg, err := im.GetConfig()
	return err == nil && cfg.MediaType != mediatype.OCI1ImageConfig && cfg.MediaType != mediatype.Docker2ImageConfig
}

func platformList(ps []platform.Platform) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}
