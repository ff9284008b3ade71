package docker_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/docker"
	"github.com/ferry-oss/ferry/registry/regtest"
	"github.com/ferry-oss/ferry/transfer"
)

// loadInto uploads bd into the engine at sock the way the CLI does (the
// engine reads configs from the bundle).
func loadInto(t *testing.T, bd *bundle.Bundle, sock string) error {
	t.Helper()
	eng, err := docker.New(context.Background(), bd.Meta, docker.Options{Socket: sock, ReadConfigs: func(ctx context.Context, ds []descriptor.Descriptor) (map[digest.Digest][]byte, error) {
		out := map[digest.Digest][]byte{}
		for _, d := range ds {
			rc, err := bd.BlobGet(ctx, ref.Ref{}, d)
			if err != nil {
				return nil, err
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				return nil, err
			}
			out[d.Digest] = b
		}
		return out, nil
	}})
	if err != nil {
		return err
	}
	defer eng.Close()
	host, _ := ref.NewHost("docker.io")
	_, err = transfer.Upload(context.Background(), bd, eng, transfer.UploadOptions{Target: transfer.RegistryTarget(host, "", nil), Jobs: 2})
	return err
}

// engineImages lists the image ids a real engine holds.
func engineImages(t *testing.T, d *regtest.Dockerd) []string {
	t.Helper()
	resp, err := d.Client().Get("http://docker/images/json?all=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []struct{ Id string }
	_ = json.NewDecoder(resp.Body).Decode(&list)
	var ids []string
	for _, i := range list {
		ids = append(ids, i.Id)
	}
	return ids
}

// TestIncrementRealDockerd: an incremental bundle loads into a real
// dockerd that holds its base images (only the new layers are sent);
// alone, or after the base image was removed, it is refused before
// anything is loaded, naming the base bundle and the missing layers.
func TestIncrementRealDockerd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts dockerd")
	}
	d := regtest.StartDockerd(t)
	host, stop := regtest.Olareg()
	defer stop()
	reg, _ := registry.New(registry.Options{Registries: []string{host}})
	base := regtest.RootfsLayer("base", nil)
	app := regtest.RootfsLayer("app", nil)
	extra := regtest.RootfsLayer("app", map[string]string{"extra.txt": "day 2\n"})
	v1 := regtest.NewImage("linux/amd64", base, app)
	v2 := regtest.NewImage("linux/amd64", base, app, extra)
	ctx := context.Background()
	push := func(name string, img *regtest.Image) {
		r, _ := ref.New(host + "/" + name)
		if err := regtest.Push(ctx, reg, r, img); err != nil {
			t.Fatal(err)
		}
	}
	push("team/app:1", v1)
	push("team/app:2", v2)
	full := saveBundle(t, reg, host, nil, "team/app:1")
	// the increment: app:2 (one new layer) and app:1 again under a new tag (all in the base)
	incr := saveBundle(t, reg, host, []string{full.Dir + "/" + full.Meta.ID + "_meta.yaml"}, "team/app:2", "team/app:1 -> team/app:stable")
	if len(incr.Meta.Blobs) != 2 || len(incr.Meta.BaseBlobs) != 3 {
		t.Fatalf("increment: %d blobs, %d base blobs; want 2 and 3", len(incr.Meta.Blobs), len(incr.Meta.BaseBlobs))
	}

	// 1. alone: refused, nothing loaded
	err := loadInto(t, incr, d.Socket)
	if !errors.Is(err, bundle.ErrBaseMissing) || !strings.Contains(err.Error(), full.Meta.ID) || !strings.Contains(err.Error(), "layer 1/3") || !strings.Contains(err.Error(), "layer 2/3") {
		t.Fatalf("increment alone: %v, want ErrBaseMissing naming %s and layers 1/3, 2/3", err, full.Meta.ID)
	}
	if ids := engineImages(t, d); len(ids) != 0 {
		t.Fatalf("a refused increment loaded %v", ids)
	}

	// 2. full, then increment
	if err := loadInto(t, full, d.Socket); err != nil {
		t.Fatal(err)
	}
	if err := loadInto(t, incr, d.Socket); err != nil {
		t.Fatalf("increment after the full bundle: %v", err)
	}
	for name, img := range map[string]*regtest.Image{"team/app:1": v1, "team/app:2": v2, "team/app:stable": v1} {
		cfg := img.Blobs[0].Desc.Digest // the config is Docker's image id
		if id := inspect(t, d, name); id != cfg.String() {
			t.Errorf("%s: Id %q, want %s", name, id, cfg)
		}
	}

	// 3. the base image removed (its layers go with it): refused
	for _, name := range []string{"team/app:2", "team/app:stable", "team/app:1"} {
		req, _ := http.NewRequest(http.MethodDelete, "http://docker/images/"+name, nil)
		resp, err := d.Client().Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("removing %s: %v %v", name, err, resp)
		}
		resp.Body.Close()
	}
	err = loadInto(t, incr, d.Socket)
	if !errors.Is(err, bundle.ErrBaseMissing) {
		t.Fatalf("increment after the base image was removed: %v", err)
	}
	if ids := engineImages(t, d); len(ids) != 0 {
		t.Fatalf("a refused increment loaded %v", ids)
	}
}
