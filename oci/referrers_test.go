package oci_test

import (
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-oss/ferry/oci"
)

func TestCosignTagsAndArtifactType(t *testing.T) {
	d := digest.FromString("x")
	tags := oci.CosignTags(d)
	if len(tags) != 3 || tags[0] != "sha256-"+d.Encoded()+".sig" || tags[2] != "sha256-"+d.Encoded()+".sbom" {
		t.Fatalf("CosignTags: %v", tags)
	}
	for tag, want := range map[string]bool{tags[0]: true, tags[1]: true, tags[2]: true, "1": false, "sha256-abc.sig": false, "sha256-" + d.Encoded(): false} {
		if oci.IsCosignTag(tag) != want {
			t.Errorf("IsCosignTag(%q) = %v", tag, !want)
		}
	}
	tests := []struct{ mt, raw, want string }{
		{"application/vnd.oci.image.manifest.v1+json", `{"artifactType":"a/b","config":{"mediaType":"c/d"}}`, "a/b"},
		{"application/vnd.oci.image.manifest.v1+json", `{"config":{"mediaType":"c/d"}}`, "c/d"},
		{"application/vnd.oci.image.index.v1+json", `{"manifests":[]}`, ""},
		{"application/vnd.oci.image.index.v1+json", `{"artifactType":"e/f"}`, "e/f"},
	}
	for _, tt := range tests {
		if got := oci.ArtifactType(tt.mt, []byte(tt.raw)); got != tt.want {
			t.Errorf("ArtifactType(%s) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}
