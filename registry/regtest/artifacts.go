package regtest

import (
	"context"
	"encoding/json"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/mediatype"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/oci"
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

// Attached are the artifacts AttachReferrers pushed for an image.
type Attached struct {
	SBOM   *Image // an OCI referrer (subject: the image)
	Sig    *Image // a cosign-style signature, tagged SigTag
	SigTag string // sha256-<hex>.sig
}

// AttachReferrers pushes an SBOM (an OCI referrer of img) and a
// cosign-style signature tag for img into repository repo of sink.
func AttachReferrers(ctx context.Context, sink oci.Sink, repo ref.Ref, img *Image) (Attached, error) {
	subject := img.Manifest.GetDescriptor()
	a := Attached{
		SBOM:   Artifact(&subject, SBOMType, SBOMType, []byte(`{"spdxVersion":"SPDX-2.3","name":"`+subject.Digest.Encoded()[:12]+`"}`)),
		Sig:    Artifact(nil, SignatureType, CosignLayer, []byte(`{"critical":{"image":{"docker-manifest-digest":"`+subject.Digest.String()+`"}}}`)),
		SigTag: "sha256-" + subject.Digest.Encoded() + ".sig",
	}
	if err := Push(ctx, sink, repo.SetDigest(a.SBOM.Digest().String()), a.SBOM); err != nil {
		return a, err
	}
	return a, Push(ctx, sink, repo.SetTag(a.SigTag), a.Sig)
}
