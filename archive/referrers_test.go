package archive_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/archive"
	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
	"github.com/ferry-oss/ferry/selection"
	"github.com/ferry-oss/ferry/transfer"
)

// TestOCIExportReferrers: an OCI layout exported from a bundle that
// carries an SBOM (OCI referrer) and a cosign signature tag lists both in
// index.json (the referrer unnamed, with its artifact type; the signature
// under its tag), and regctl (--slow-referrers, which scans index.json)
// finds the SBOM as a referrer of the image.
func TestOCIExportReferrers(t *testing.T) {
	host, stop := regtest.Olareg()
	defer stop()
	reg, err := registry.New(registry.Options{Registries: []string{host}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	app := regtest.Fixtures()["team/app:1"]
	r, _ := ref.New(host + "/team/app:1")
	subject := app.Manifest.GetDescriptor()
	if err := regtest.Push(ctx, reg, r, app); err != nil {
		t.Fatal(err)
	}
	a, err := regtest.AttachReferrers(ctx, reg, r, app)
	if err != nil {
		t.Fatal(err)
	}
	sbom, sig, sigTag := a.SBOM, a.Sig, a.SigTag
	spec, _ := selection.ParseImage("team/app:1", host)
	w, err := bundle.NewWriter(bundle.WriterOptions{Dir: t.TempDir(), Parts: 1})
	if err != nil {
		t.Fatal(err)
	}
	res, err := transfer.Save(ctx, reg, w, []selection.ImageSpec{spec}, transfer.SaveOptions{Jobs: 2, Referrers: true})
	if err != nil {
		t.Fatal(err)
	}
	set, err := bundle.OpenSet(res.MetaPath)
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := archive.Select(set, []string{"team/app:1"}, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "layout")
	if _, err := archive.ExportFile(ctx, set, imgs, out, archive.OCILayout, archive.Options{}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx struct {
		Manifests []struct {
			Digest       string
			ArtifactType string
			Annotations  map[string]string
		}
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	var sawSBOM, sawSig bool
	for _, m := range idx.Manifests {
		if m.Digest == sbom.Digest().String() && m.ArtifactType == regtest.SBOMType && m.Annotations["org.opencontainers.image.ref.name"] == "" {
			sawSBOM = true
		}
		if m.Digest == sig.Digest().String() && strings.HasSuffix(m.Annotations["org.opencontainers.image.ref.name"], ":"+sigTag) {
			sawSig = true
		}
	}
	if !sawSBOM || !sawSig {
		t.Fatalf("index.json lacks the SBOM (%v) or the signature tag (%v):\n%s", sawSBOM, sawSig, b)
	}
	regctl := regtest.NeedGoBinary(t, "regctl", "github.com/regclient/regclient/cmd/regctl@v0.11.7")
	cmd := exec.Command(regctl, "artifact", "list", "--slow-referrers", "--format", "{{range .Descriptors}}{{println .Digest}}{{end}}", "ocidir://"+out+"@"+subject.Digest.String())
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	got, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(got), sbom.Digest().String()) {
		t.Fatalf("regctl artifact list ocidir: %v\n%s", err, got)
	}
}
