package transfer_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/errs"
	"github.com/regclient/regclient/types/platform"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
	"github.com/ferry-oss/ferry/selection"
	"github.com/ferry-oss/ferry/transfer"
)

// attached are the artifacts attach pushed.
type attached struct {
	appSBOM, appSig, childSBOM, indexSig *regtest.Image
	sigTag                               string
}

// attach pushes an SBOM (OCI referrer) and a cosign-style signature tag
// for team/app:1, an SBOM for the amd64 child of library/multi:1 and a
// signature (OCI referrer) of that index.
func attach(t *testing.T, e *env) attached {
	t.Helper()
	var a attached
	app := e.imgs["team/app:1"].Manifest.GetDescriptor()
	repo, _ := ref.New(e.host + "/team/app")
	a.appSBOM = regtest.Artifact(&app, regtest.SBOMType, regtest.SBOMType, []byte(`{"spdxVersion":"SPDX-2.3","name":"app"}`))
	a.appSig = regtest.Artifact(nil, regtest.SignatureType, regtest.CosignLayer, []byte(`{"critical":{"image":"app"}}`))
	a.sigTag = strings.Replace(app.Digest.String(), ":", "-", 1) + ".sig"
	push(t, e.reg, repo.SetDigest(a.appSBOM.Digest().String()), a.appSBOM)
	push(t, e.reg, repo.SetTag(a.sigTag), a.appSig)

	multi := e.imgs["library/multi:1"]
	mrepo, _ := ref.New(e.host + "/library/multi")
	var child descriptor.Descriptor
	for _, c := range multi.Children {
		if strings.Contains(string(c.Blobs[0].Data), `"amd64"`) {
			child = c.Manifest.GetDescriptor()
		}
	}
	if child.Digest == "" {
		t.Fatal("no amd64 child")
	}
	a.childSBOM = regtest.Artifact(&child, regtest.SBOMType, regtest.SBOMType, []byte(`{"spdxVersion":"SPDX-2.3","name":"multi-amd64"}`))
	push(t, e.reg, mrepo.SetDigest(a.childSBOM.Digest().String()), a.childSBOM)
	idx := multi.Manifest.GetDescriptor()
	a.indexSig = regtest.Artifact(&idx, regtest.SignatureType, regtest.CosignLayer, []byte(`{"critical":{"image":"multi"}}`))
	push(t, e.reg, mrepo.SetDigest(a.indexSig.Digest().String()), a.indexSig)
	return a
}

func push(t *testing.T, reg *registry.Registry, r ref.Ref, img *regtest.Image) {
	t.Helper()
	if err := regtest.Push(context.Background(), reg, r, img); err != nil {
		t.Fatal(err)
	}
}

func saveReferrers(t *testing.T, src oci.Source, specs []selection.ImageSpec, dir string, opts transfer.SaveOptions, bases ...string) (*transfer.SaveResult, error) {
	t.Helper()
	w, err := bundle.NewWriter(bundle.WriterOptions{Dir: dir, Parts: 2, Bases: bases, Tool: "ferry test"})
	if err != nil {
		t.Fatal(err)
	}
	opts.Jobs, opts.Retries, opts.RetryDelay = 2, 1, time.Millisecond
	return transfer.Save(context.Background(), src, w, specs, opts)
}

func manifestDigests(m *meta.Meta) []digest.Digest {
	var out []digest.Digest
	for _, mf := range m.Manifests {
		out = append(out, mf.Digest)
	}
	return out
}

// TestSaveReferrers: referrers of images and of index children are saved
// after their subjects (with their blobs, and cosign tags as images);
// platform filters never drop them; a filtered index's own referrers are
// left out (their subject is the unfiltered index); --referrers=false and
// artifact type filters apply.
func TestSaveReferrers(t *testing.T) {
	e := seeded(t)
	a := attach(t, e)
	amd64, _ := platform.Parse("linux/amd64")
	tests := []struct {
		name       string
		opts       transfer.SaveOptions
		want, none []*regtest.Image
	}{
		{"all", transfer.SaveOptions{Referrers: true}, []*regtest.Image{a.appSBOM, a.appSig, a.childSBOM, a.indexSig}, nil},
		{"platform filter", transfer.SaveOptions{Referrers: true, Platforms: []platform.Platform{amd64}}, []*regtest.Image{a.appSBOM, a.appSig, a.childSBOM}, []*regtest.Image{a.indexSig}},
		{"off", transfer.SaveOptions{}, nil, []*regtest.Image{a.appSBOM, a.appSig, a.childSBOM, a.indexSig}},
		{"sboms only", transfer.SaveOptions{Referrers: true, ArtifactTypes: []string{regtest.SBOMType}}, []*regtest.Image{a.appSBOM, a.childSBOM}, []*regtest.Image{a.appSig, a.indexSig}},
		{"cosign tags only", transfer.SaveOptions{Referrers: true, ArtifactTypes: []string{".sig"}}, []*regtest.Image{a.appSig}, []*regtest.Image{a.appSBOM, a.childSBOM, a.indexSig}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := saveReferrers(t, e.reg, e.specs(t, "team/app:1", "library/multi:1"), t.TempDir(), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			got := manifestDigests(res.Meta)
			for _, w := range tt.want {
				if !slices.Contains(got, w.Digest()) {
					t.Errorf("referrer %s not saved", w.Digest())
				}
				for _, b := range w.Blobs {
					if !slices.ContainsFunc(res.Meta.Blobs, func(mb meta.Blob) bool { return mb.Digest == b.Desc.Digest }) {
						t.Errorf("blob %s of referrer %s not saved", b.Desc.Digest, w.Digest())
					}
				}
			}
			for _, n := range tt.none {
				if slices.Contains(got, n.Digest()) {
					t.Errorf("referrer %s saved, want it left out", n.Digest())
				}
			}
			// the cosign signature is an image with its tag
			tagged := slices.ContainsFunc(res.Meta.Images, func(img meta.Image) bool {
				return img.Repository == "team/app" && img.Tag == a.sigTag && img.Digest == a.appSig.Digest()
			})
			if wantSig := slices.Contains(tt.want, a.appSig); tagged != wantSig {
				t.Errorf("signature tag %s as an image: %v, want %v", a.sigTag, tagged, wantSig)
			}
			// a subject comes before its referrers
			if i, j := slices.Index(got, e.imgs["team/app:1"].Digest()), slices.Index(got, a.appSBOM.Digest()); j >= 0 && i > j {
				t.Errorf("SBOM stored at %d before its subject at %d", j, i)
			}
			bd, err := bundle.Open(res.MetaPath)
			if err != nil {
				t.Fatal(err)
			}
			if err := bd.Verify(context.Background(), 2, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestUploadReferrers: referrers reach the target where a client no one
// here wrote (regctl artifact list) finds them: docker-registry 2.8 and
// distribution v3.1.2 through the fallback tag, olareg through its
// referrers API. An
// increment that only adds a new signature carries just its blobs.
func TestUploadReferrers(t *testing.T) {
	e := seeded(t)
	a := attach(t, e)
	dir := t.TempDir()
	full, err := saveReferrers(t, e.reg, e.specs(t, "team/app:1", "library/multi:1"), dir, transfer.SaveOptions{Referrers: true})
	if err != nil {
		t.Fatal(err)
	}
	// a new attestation of team/app:1 after the full bundle
	app := e.imgs["team/app:1"].Manifest.GetDescriptor()
	repo, _ := ref.New(e.host + "/team/app")
	att := regtest.Artifact(&app, "application/vnd.in-toto+json", "application/vnd.in-toto+json", []byte(`{"_type":"https://in-toto.io/Statement/v1"}`))
	push(t, e.reg, repo.SetDigest(att.Digest().String()), att)
	time.Sleep(1100 * time.Millisecond) // bundle ids carry the second
	incr, err := saveReferrers(t, e.reg, e.specs(t, "team/app:1", "library/multi:1"), dir, transfer.SaveOptions{Referrers: true}, full.MetaPath)
	if err != nil {
		t.Fatal(err)
	}
	var newBlobs []digest.Digest
	for _, b := range incr.Meta.Blobs {
		newBlobs = append(newBlobs, b.Digest)
	}
	wantNew := []digest.Digest{att.Blobs[1].Desc.Digest} // the empty config {} was in the full bundle
	if !slices.Equal(newBlobs, wantNew) {
		t.Errorf("increment stores blobs %v, want only the attestation's %v", newBlobs, wantNew)
	}

	type target struct {
		name, host string
	}
	d := regtest.StartDistribution(t, regtest.DistributionOptions{})
	d3 := regtest.StartDistribution(t, regtest.DistributionOptions{V3: true})
	oh, stop := regtest.Olareg()
	defer stop()
	for _, tgt := range []target{{"docker-registry 2.8", d.Host}, {"distribution v3", d3.Host}, {"olareg", oh}} {
		t.Run(tgt.name, func(t *testing.T) {
			dreg := newReg(t, tgt.host)
			th, _ := ref.NewHost(tgt.host)
			for _, mp := range []string{full.MetaPath, incr.MetaPath} {
				bd, err := bundle.Open(mp)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := transfer.Upload(context.Background(), bd, dreg, transfer.UploadOptions{Target: transfer.RegistryTarget(th, "", nil)}); err != nil {
					t.Fatalf("upload %s: %v", filepath.Base(mp), err)
				}
			}
			// what ferry's own client sees
			trepo, _ := ref.New(tgt.host + "/team/app")
			rs, err := dreg.Referrers(context.Background(), trepo, app)
			if err != nil {
				t.Fatal(err)
			}
			var got []digest.Digest
			for _, r := range rs {
				got = append(got, r.Desc.Digest)
			}
			for _, w := range []*regtest.Image{a.appSBOM, att, a.appSig} {
				if !slices.Contains(got, w.Digest()) {
					t.Errorf("referrer %s missing at the target: %v", w.Digest(), got)
				}
			}
			// what regctl sees
			regctl := regtest.NeedGoBinary(t, "regctl", "github.com/regclient/regclient/cmd/regctl@v0.11.7")
			cmd := exec.Command(regctl, "artifact", "list", "--host", "reg="+tgt.host+",tls=disabled", "--format", "{{range .Descriptors}}{{println .Digest}}{{end}}", tgt.host+"/team/app:1")
			cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("regctl artifact list: %v\n%s", err, out)
			}
			for _, w := range []*regtest.Image{a.appSBOM, att} {
				if !strings.Contains(string(out), w.Digest().String()) {
					t.Errorf("regctl artifact list does not show %s:\n%s", w.Digest(), out)
				}
			}
			cmd = exec.Command(regctl, "artifact", "list", "--host", "reg="+tgt.host+",tls=disabled", "--format", "{{range .Descriptors}}{{println .Digest}}{{end}}", tgt.host+"/library/multi:1")
			cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
			if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), a.indexSig.Digest().String()) {
				t.Errorf("regctl artifact list of the index: %v\n%s", err, out)
			}
		})
	}
}

// TestSaveCorruptReferrer: a referrer whose blob comes back wrong is
// refused like any blob.
func TestSaveCorruptReferrer(t *testing.T) {
	e := seeded(t)
	a := attach(t, e)
	p := regtest.StartFaultProxy(t, e.host)
	p.Add(regtest.Fault{Method: "GET", Path: "/blobs/" + a.appSBOM.Blobs[1].Desc.Digest.String(), Action: regtest.Flip(3)})
	reg := newReg(t, p.Host)
	specs := []selection.ImageSpec{}
	for _, s := range e.specs(t, "team/app:1") {
		s.Source.Registry = p.Host
		specs = append(specs, s)
	}
	dir := t.TempDir()
	_, err := saveReferrers(t, reg, specs, dir, transfer.SaveOptions{Referrers: true})
	if !errors.Is(err, oci.ErrDigestMismatch) && !errors.Is(err, errs.ErrDigestMismatch) {
		t.Fatalf("err %v, want a digest mismatch", err)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*")); len(files) != 0 {
		t.Errorf("files left: %v", files)
	}
}
