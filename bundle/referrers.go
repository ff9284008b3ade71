package bundle

import (
	"context"
	"fmt"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
)

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
func metaReferrers(m *meta.Meta, refs map[digest.Digest][]digest.Digest, tagged map[string]digest.Digest, d digest.Digest) []oci.Referrer {
	var out []oci.Referrer
	for _, r := range refs[d] {
		if mf := m.ManifestByDigest(r); mf != nil {
			out = append(out, oci.Referrer{Desc: descriptor.Descriptor{MediaType: mf.MediaType, Digest: mf.Digest, Size: mf.Size}})
		}
	}
	for _, tag := range oci.CosignTags(d) {
		if dg, ok := tagged[tag]; ok {
			if mf := m.ManifestByDigest(dg); mf != nil {
				out = append(out, oci.Referrer{Desc: descriptor.Descriptor{MediaType: mf.MediaType, Digest: mf.Digest, Size: mf.Size}, Tag: tag})
			}
		}
	}
	return out
}

var (
	_ oci.ReferrerSource = (*Bundle)(nil)
	_ oci.ReferrerSource = (*Set)(nil)
)

// Referrers lists what the bundle carries that refers to manifest d (a
// bundle as the Source of a save, an export or a sync keeps them).
func (bd *Bundle) Referrers(_ context.Context, _ ref.Ref, d descriptor.Descriptor) ([]oci.Referrer, error) {
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
func (s *Set) Referrers(_ context.Context, _ ref.Ref, d descriptor.Descriptor) ([]oci.Referrer, error) {
	var out []oci.Referrer
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
