package bundle

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/meta"
)

// Referrer is a manifest that refers to another one: an OCI 1.1 referrer
// (a manifest whose subject is the other manifest: SBOMs, signatures,
// attestations), or an artifact tagged after the other manifest's digest
// the way cosign does (sha256-<hex>.sig, .att, .sbom).
type Referrer struct {
	// Desc describes the referring manifest; ArtifactType is set when the
	// source reported it.
	Desc descriptor.Descriptor
	// Tag is the tag that makes a cosign-style artifact findable
	// ("sha256-<hex>.sig"); a target must get the manifest under this tag.
	// Empty for OCI referrers, which a target finds through its referrers
	// API or the OCI fallback tag.
	Tag string
}

// ReferrerSource is a Source that can list the referrers of a manifest.
// Sources that cannot (a bundle written before referrers were carried)
// simply do not implement it.
type ReferrerSource interface {
	// Referrers lists what refers to manifest d of repository r, each once.
	Referrers(ctx context.Context, r ref.Ref, d descriptor.Descriptor) ([]Referrer, error)
}

// ReferrersOf maps each manifest of m to the manifests of m whose subject it
// is, in meta order.
func ReferrersOf(m *meta.Meta) (map[digest.Digest][]digest.Digest, error) {
	out := map[digest.Digest][]digest.Digest{}
	for _, mf := range m.Manifests {
		mm, err := ParseManifest(mf)
		if err != nil {
			return nil, err
		}
		sj, ok := mm.(manifest.Subjecter)
		if !ok {
			continue
		}
		subject, err := sj.GetSubject()
		if err != nil {
			return nil, fmt.Errorf("manifest %s: subject: %w", mf.Digest, err)
		}
		if subject != nil && subject.Digest != "" && subject.Digest != mf.Digest {
			out[subject.Digest] = append(out[subject.Digest], mf.Digest)
		}
	}
	return out, nil
}

// metaReferrers lists what m carries that refers to manifest d: manifests
// whose subject is d (refs is ReferrersOf(m)), and cosign-style artifacts
// tagged sha256-<hex>.sig, .att or .sbom after d (tagged maps m's image
// tags to their digests).
func metaReferrers(m *meta.Meta, refs map[digest.Digest][]digest.Digest, tagged map[string]digest.Digest, d digest.Digest) []Referrer {
	var out []Referrer
	for _, r := range refs[d] {
		if mf := m.ManifestByDigest(r); mf != nil {
			out = append(out, Referrer{Desc: descriptor.Descriptor{MediaType: mf.MediaType, Digest: mf.Digest, Size: mf.Size}})
		}
	}
	for _, tag := range CosignTags(d) {
		if dg, ok := tagged[tag]; ok {
			if mf := m.ManifestByDigest(dg); mf != nil {
				out = append(out, Referrer{Desc: descriptor.Descriptor{MediaType: mf.MediaType, Digest: mf.Digest, Size: mf.Size}, Tag: tag})
			}
		}
	}
	return out
}

var (
	_ ReferrerSource = (*Bundle)(nil)
	_ ReferrerSource = (*Set)(nil)
)

// Referrers lists what the bundle carries that refers to manifest d (a
// bundle as the Source of a save, an export or a sync keeps them).
func (bd *Bundle) Referrers(_ context.Context, _ ref.Ref, d descriptor.Descriptor) ([]Referrer, error) {
	bd.refsOnce.Do(func() {
		bd.refs, bd.refsErr = ReferrersOf(bd.Meta)
		bd.tagged = map[string]digest.Digest{}
		for _, img := range bd.Meta.Images {
			if img.Tag != "" {
				bd.tagged[img.Tag] = img.Digest
			}
		}
	})
	if bd.refsErr != nil {
		return nil, bd.refsErr
	}
	return metaReferrers(bd.Meta, bd.refs, bd.tagged, d.Digest), nil
}

// Referrers lists what the bundles of the set carry that refers to
// manifest d, each once.
func (s *Set) Referrers(_ context.Context, _ ref.Ref, d descriptor.Descriptor) ([]Referrer, error) {
	var out []Referrer
	seen := map[digest.Digest]bool{}
	for _, bd := range s.Bundles {
		rs, err := bd.Referrers(context.Background(), ref.Ref{}, d)
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			if !seen[r.Desc.Digest] {
				seen[r.Desc.Digest] = true
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// cosignSuffixes are the tag suffixes cosign gives artifacts of a manifest.
var cosignSuffixes = []string{".sig", ".att", ".sbom"}

// CosignTags are the tags under which cosign stores artifacts of manifest
// d: sha256-<hex>.sig, .att and .sbom.
func CosignTags(d digest.Digest) []string {
	base := string(d.Algorithm()) + "-" + d.Encoded()
	out := make([]string, len(cosignSuffixes))
	for i, s := range cosignSuffixes {
		out[i] = base + s
	}
	return out
}

// IsCosignTag reports whether tag is one of CosignTags of some digest.
func IsCosignTag(tag string) bool {
	for _, s := range cosignSuffixes {
		if hex, ok := strings.CutSuffix(tag, s); ok {
			if algo, enc, ok := strings.Cut(hex, "-"); ok && digest.NewDigestFromEncoded(digest.Algorithm(algo), enc).Validate() == nil {
				return true
			}
		}
	}
	return false
}

// ArtifactType is a manifest's artifact type as the OCI referrers API
// reports it: its artifactType, else (for an image manifest) its config's
// media type.
func ArtifactType(mediaType string, raw []byte) string {
	var m struct {
		ArtifactType string `json:"artifactType"`
		Config       struct {
			MediaType string `json:"mediaType"`
		} `json:"config"`
	}
	_ = json.Unmarshal(raw, &m)
	if m.ArtifactType == "" && !IsIndex(mediaType) {
		return m.Config.MediaType
	}
	return m.ArtifactType
}
