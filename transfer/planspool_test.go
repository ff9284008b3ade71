package transfer

import (
	"os"
	"runtime"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/mediatype"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/selection"
)

func spoolManifest(t *testing.T, raw string, mt string) manifest.Manifest {
	t.Helper()
	m, err := manifest.New(manifest.WithRaw([]byte(raw)), manifest.WithDesc(descriptor.Descriptor{MediaType: mt, Digest: digest.FromString(raw), Size: int64(len(raw))}))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestPlanSpool: a plan read back is the plan put (manifest bytes, top,
// blobs with the references its spec gives, platforms, cosign tags), and
// the spool leaves no file behind.
func TestPlanSpool(t *testing.T) {
	dir := t.TempDir()
	s, err := newPlanSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("spool file visible while open: %v", ents)
		}
	}
	cfg := descriptor.Descriptor{MediaType: mediatype.OCI1ImageConfig, Digest: digest.FromString("c"), Size: 1}
	layer := descriptor.Descriptor{MediaType: mediatype.OCI1Layer, Digest: digest.FromString("l"), Size: 1}
	img := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + cfg.Digest.String() + `","size":1},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` + layer.Digest.String() + `","size":1}]}`
	sig := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + cfg.Digest.String() + `","size":1},"layers":[]}`
	mi, ms := spoolManifest(t, img, mediatype.OCI1Manifest), spoolManifest(t, sig, mediatype.OCI1Manifest)
	specs := []selection.ImageSpec{}
	for _, s := range []string{"src.example/team/app:1", "src.example/team/other:2"} {
		r, err := ref.New(s)
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, selection.ImageSpec{Source: r, Repository: r.Repository, Tag: r.Tag})
	}
	plans := []*imagePlan{
		{spec: specs[0], top: mi, manifests: []manifest.Manifest{mi, ms}, platforms: []string{"linux/amd64"},
			blobs:  []srcBlob{{desc: cfg}, {desc: layer}},
			tagged: []taggedReferrer{{tag: "sha256-x.sig", desc: ms.GetDescriptor()}}},
		{spec: specs[1], top: ms, manifests: []manifest.Manifest{mi, ms}, srcDigest: digest.FromString("src"), blobs: []srcBlob{{desc: cfg}}},
	}
	for i, p := range plans {
		if err := s.put(i*7, p); err != nil {
			t.Fatal(err)
		}
	}
	if s.has(1) || !s.has(7) {
		t.Errorf("has: 1 %v, 7 %v", s.has(1), s.has(7))
	}
	if _, err := s.get(3, specs[0]); err == nil {
		t.Error("get of a key never put: no error")
	}
	for i, want := range plans {
		got, err := s.get(i*7, specs[i])
		if err != nil {
			t.Fatal(err)
		}
		if got.top.GetDescriptor().Digest != want.top.GetDescriptor().Digest || got.srcDigest != want.srcDigest {
			t.Errorf("plan %d: top %s src %s, want %s %s", i, got.top.GetDescriptor().Digest, got.srcDigest, want.top.GetDescriptor().Digest, want.srcDigest)
		}
		if len(got.manifests) != len(want.manifests) {
			t.Fatalf("plan %d: %d manifests, want %d", i, len(got.manifests), len(want.manifests))
		}
		for k, m := range got.manifests {
			gr, _ := m.RawBody()
			wr, _ := want.manifests[k].RawBody()
			if string(gr) != string(wr) || m.GetDescriptor().MediaType != want.manifests[k].GetDescriptor().MediaType {
				t.Errorf("plan %d manifest %d differs", i, k)
			}
		}
		if len(got.blobs) != len(want.blobs) {
			t.Fatalf("plan %d: %d blobs, want %d", i, len(got.blobs), len(want.blobs))
		}
		for k, b := range got.blobs {
			if b.desc.Digest != want.blobs[k].desc.Digest || b.desc.MediaType != want.blobs[k].desc.MediaType || b.desc.Size != want.blobs[k].desc.Size {
				t.Errorf("plan %d blob %d: %v", i, k, b.desc)
			}
			if b.src.CommonName() != specs[i].Source.CommonName() || b.tgt.Repository != specs[i].Repository {
				t.Errorf("plan %d blob %d: src %s tgt %s", i, k, b.src.CommonName(), b.tgt.CommonName())
			}
		}
		if len(got.tagged) != len(want.tagged) || (len(got.tagged) == 1 && (got.tagged[0].tag != want.tagged[0].tag || got.tagged[0].desc.Digest != want.tagged[0].desc.Digest)) {
			t.Errorf("plan %d: tagged %v, want %v", i, got.tagged, want.tagged)
		}
		if len(got.platforms) != len(want.platforms) {
			t.Errorf("plan %d: platforms %v, want %v", i, got.platforms, want.platforms)
		}
	}
	bad := &imagePlan{spec: specs[0], top: ms, manifests: []manifest.Manifest{mi}}
	if err := s.put(99, bad); err == nil {
		t.Error("a plan whose top is not among its manifests was spooled")
	}
	s.Close()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("spool left %v", ents)
	}
}
