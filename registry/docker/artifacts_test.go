package docker_test

import (
	"context"
	"testing"

	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
	"github.com/ferry-oss/ferry/selection"
	"github.com/ferry-oss/ferry/transfer"
)

// TestArtifactsNotLoaded: a bundle that carries a cosign signature (an
// artifact saved as a tagged image) and an SBOM loads into a real dockerd:
// the image is loaded, the artifacts are left out instead of failing the
// load.
func TestArtifactsNotLoaded(t *testing.T) {
	if testing.Short() {
		t.Skip("starts dockerd")
	}
	d := regtest.StartDockerd(t)
	host, stop := regtest.Olareg()
	defer stop()
	reg, err := registry.New(registry.Options{Registries: []string{host}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	app := regtest.Fixtures()["team/app:1"]
	r, _ := ref.New(host + "/team/app:1")
	if err := regtest.Push(ctx, reg, r, app); err != nil {
		t.Fatal(err)
	}
	a, err := regtest.AttachReferrers(ctx, reg, r, app)
	if err != nil {
		t.Fatal(err)
	}
	sigTag := a.SigTag
	spec, _ := selection.ParseImage("team/app:1", host)
	w, err := bundle.NewWriter(bundle.WriterOptions{Dir: t.TempDir(), Parts: 1})
	if err != nil {
		t.Fatal(err)
	}
	res, err := transfer.Save(ctx, reg, w, []selection.ImageSpec{spec}, transfer.SaveOptions{Jobs: 2, Referrers: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Meta.Images) != 2 {
		t.Fatalf("images %+v, want the app and its signature tag", res.Meta.Images)
	}
	bd, err := bundle.Open(res.MetaPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := loadInto(t, bd, d.Socket); err != nil {
		t.Fatalf("load of a bundle with artifacts: %v", err)
	}
	if id := inspect(t, d, "team/app:1"); id != app.Blobs[0].Desc.Digest.String() {
		t.Errorf("team/app:1 has id %s, want the config digest %s", id, app.Blobs[0].Desc.Digest)
	}
	if id := inspect(t, d, "team/app:"+sigTag); id != "" {
		t.Errorf("the signature was loaded as an image: %s", id)
	}
}
