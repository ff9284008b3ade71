package bundle

import (
	"context"
	"fmt"

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
