package oci

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/ref"
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
