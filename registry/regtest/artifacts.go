package regtest

import (
	"encoding/json"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/mediatype"
)

// Artifact types of the test artifacts.
const (
	SBOMType      = "application/spdx+json"
	SignatureType = "application/vnd.dev.cosign.artifact.sig.v1+json"
	CosignLayer   = "application/vnd.dev.cosign.simplesigning.v1+json"
)

// Artifact builds an OCI 1.1 artifact: an image manifest with an
// artifactType, the empty config ({}) and one layer holding content. With a
// subject it is a referrer of that manifest (found through the referrers
// API or the fallback tag); without one it is a tag-addressed artifact like
// cosign's sha256-<hex>.sig.
func Artifact(subject *descriptor.Descriptor, artifactType, layerType string, content []byte) *Image {
	cfg := blobOf(mediatype.OCI1Empty, []byte("{}"))
	layer := blobOf(layerType, content)
	mm := map[string]any{
		"schemaVersion": 2, "mediaType": mediatype.OCI1Manifest,
		"artifactType": artifactType,
		"config":       map[string]any{"mediaType": cfg.Desc.MediaType, "digest": cfg.Desc.Digest, "size": cfg.Desc.Size},
		"layers":       []any{map[string]any{"mediaType": layer.Desc.MediaType, "digest": layer.Desc.Digest, "size": layer.Desc.Size}},
		"annotations":  map[string]string{"org.opencontainers.image.created": "2026-12-01T00:00:00Z"},
	}
	if subject != nil {
		mm["subject"] = map[string]any{"mediaType": subject.MediaType, "digest": subject.Digest, "size": subject.Size}
	}
	mb, _ := json.Marshal(mm)
	m, err := manifest.New(manifest.WithRaw(mb), manifest.WithDesc(descriptor.Descriptor{MediaType: mediatype.OCI1Manifest, Digest: digest.FromBytes(mb), Size: int64(len(mb)), ArtifactType: artifactType}))
	if err != nil {
		panic(err)
	}
	return &Image{Manifest: m, Blobs: []Blob{cfg, layer}}
}
