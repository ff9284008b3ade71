package containerd

import (
	"errors"
	"maps"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/platform"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
	"github.com/ferry-oss/ferry/registry/regtest"
)

// addManifests puts img's manifests (children first) into m.
func addManifests(m *meta.Meta, img *regtest.Image) {
	for _, c := range img.Children {
		addManifests(m, c)
	}
	raw, _ := img.Manifest.RawBody()
	d := img.Manifest.GetDescriptor()
	m.Manifests = append(m.Manifests, meta.Manifest{Digest: d.Digest, MediaType: d.MediaType, Size: d.Size, Raw: raw})
}

func TestPlan(t *testing.T) {
	fx := regtest.Fixtures()
	multi, app := fx["library/multi:1"], fx["team/app:1"]
	subject := app.Manifest.GetDescriptor()
	sbom := regtest.Artifact(&subject, regtest.SBOMType, regtest.SBOMType, []byte("{}"))
	sig := regtest.Artifact(nil, regtest.SignatureType, regtest.CosignLayer, []byte("sig"))
	sigTag := "sha256-" + app.Digest().Encoded() + ".sig"
	m := &meta.Meta{Images: []meta.Image{
		{Source: "docker.io/library/multi:1", Repository: "library/multi", Tag: "1", Digest: multi.Digest()},
		{Source: "quay.io/team/app:1", Repository: "apps/app", Tag: "stable", Digest: app.Digest()}, // renamed at save
		{Source: "quay.io/team/app:" + sigTag, Repository: "apps/app", Tag: sigTag, Digest: sig.Digest()},
		{Source: "quay.io/team/app@" + app.Digest().String(), Repository: "apps/app", Digest: app.Digest()},
	}}
	for _, img := range []*regtest.Image{multi, app, sbom, sig} {
		addManifests(m, img)
	}
	arm64, _ := platform.Parse("linux/arm64")

	p, err := newPlan(m, []platform.Platform{arm64})
	if err != nil {
		t.Fatal(err)
	}
	wantNames := map[string]imageNames{
		"library/multi:1":                   {tag: "docker.io/library/multi:1", digest: "docker.io/library/multi@" + multi.Digest().String(), source: "docker.io/library/multi:1"},
		"apps/app:stable":                   {tag: "quay.io/team/app:stable", digest: "quay.io/team/app@" + app.Digest().String(), source: "quay.io/team/app:1"},
		"apps/app@" + app.Digest().String(): {digest: "quay.io/team/app@" + app.Digest().String(), source: "quay.io/team/app@" + app.Digest().String()},
	}
	if !maps.Equal(p.names, wantNames) {
		t.Errorf("names:\n%v\nwant\n%v", p.names, wantNames)
	}
	if want := map[digest.Digest]digest.Digest{sbom.Digest(): app.Digest(), sig.Digest(): app.Digest()}; !maps.Equal(p.pinned, want) {
		t.Errorf("pinned %v, want the SBOM and the signature on %s", p.pinned, app.Digest())
	}
	for i, c := range multi.Children {
		if got, want := p.manifests[c.Digest()], i == 1; got != want { // Fixtures: amd64, arm64, arm/v7
			t.Errorf("child %d: wanted %v, want %v", i, got, want)
		}
		if got, want := p.blobs[c.Blobs[0].Desc.Digest], i == 1; got != want {
			t.Errorf("child %d config: wanted %v, want %v", i, got, want)
		}
	}
	for _, d := range []digest.Digest{app.Digest(), sbom.Digest(), sig.Digest(), sbom.Blobs[1].Desc.Digest, sig.Blobs[1].Desc.Digest} {
		if !p.manifests[d] && !p.blobs[d] {
			t.Errorf("%s not planned", d)
		}
	}

	s390x, _ := platform.Parse("linux/s390x")
	if _, err := newPlan(m, []platform.Platform{s390x}); !errors.Is(err, oci.ErrPlatformMismatch) {
		t.Errorf("no such platform: %v", err)
	}
	m.Manifests = m.Manifests[1:] // multi's amd64 child is gone
	if _, err := newPlan(m, nil); !errors.Is(err, bundle.ErrBlobMissing) {
		t.Errorf("a manifest missing from the bundle: %v", err)
	}
}

func TestGCLabels(t *testing.T) {
	fx := regtest.Fixtures()
	multi, app := fx["library/multi:1"], fx["team/app:1"]
	got, err := gcLabels(multi.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for i, c := range multi.Children {
		want["containerd.io/gc.ref.content.m."+string(rune('0'+i))] = c.Digest().String()
	}
	if !maps.Equal(got, want) {
		t.Errorf("index labels %v, want %v", got, want)
	}
	got, _ = gcLabels(app.Manifest)
	want = map[string]string{
		"containerd.io/gc.ref.content.config": app.Blobs[0].Desc.Digest.String(),
		"containerd.io/gc.ref.content.l.0":    app.Blobs[1].Desc.Digest.String(),
		"containerd.io/gc.ref.content.l.1":    app.Blobs[2].Desc.Digest.String(),
	}
	if !maps.Equal(got, want) {
		t.Errorf("image labels %v, want %v", got, want)
	}
}
