package docker_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/platform"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/oci"
	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/docker"
	"github.com/ferry-oss/ferry/registry/regtest"
	"github.com/ferry-oss/ferry/selection"
	"github.com/ferry-oss/ferry/transfer"
)

// saveFixtures writes a bundle of fixtures from an olareg registry.
func saveFixtures(t *testing.T, names ...string) *bundle.Bundle {
	t.Helper()
	host, stop := regtest.Olareg()
	t.Cleanup(stop)
	reg, err := registry.New(registry.Options{Registries: []string{host}})
	if err != nil {
		t.Fatal(err)
	}
	imgs := regtest.Fixtures()
	for _, n := range names {
		r, _ := ref.New(host + "/" + n)
		if err := regtest.Push(context.Background(), reg, r, imgs[n]); err != nil {
			t.Fatal(err)
		}
	}
	return saveBundle(t, reg, host, nil, names...)
}

// saveBundle saves list lines (paths on host) into a zstd bundle of two
// parts, an increment of bases when given.
func saveBundle(t *testing.T, reg *registry.Registry, host string, bases []string, lines ...string) *bundle.Bundle {
	t.Helper()
	var specs []selection.ImageSpec
	for _, l := range lines {
		s, err := selection.ParseImage(l, host)
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, s)
	}
	w, err := bundle.NewWriter(bundle.WriterOptions{Dir: t.TempDir(), Parts: 2, Codec: bundle.CodecZstd, Bases: bases})
	if err != nil {
		t.Fatal(err)
	}
	res, err := transfer.Save(context.Background(), reg, w, specs, transfer.SaveOptions{Jobs: 2})
	if err != nil {
		t.Fatal(err)
	}
	bd, err := bundle.Open(res.MetaPath)
	if err != nil {
		t.Fatal(err)
	}
	return bd
}

func upload(t *testing.T, bd *bundle.Bundle, sock string, plat string) error {
	t.Helper()
	opts := docker.Options{Socket: sock}
	if plat != "" {
		p, _ := platform.Parse(plat)
		opts.Platform = &p
	}
	eng, err := docker.New(context.Background(), bd.Meta, opts)
	if err != nil {
		return err
	}
	host, _ := ref.NewHost("docker.io")
	_, err = transfer.Upload(context.Background(), bd, eng, transfer.UploadOptions{Target: transfer.RegistryTarget(host, "", nil), Jobs: 2})
	return err
}

// TestUploadFixtures loads a two-platform and a one-platform image, saved
// from a registry into a real bundle, through transfer.Upload.
func TestUploadFixtures(t *testing.T) {
	bd := saveFixtures(t, "library/multi:1", "team/app:1")
	f := newFakeDocker(t, http.StatusOK, `{"stream":"Loaded image: team/app:1\n"}`)
	if err := upload(t, bd, f.sock, "linux/arm64"); err != nil {
		t.Fatal(err)
	}
	files := f.received(t).files
	var mj []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &mj); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if len(mj) != 2 {
		t.Fatalf("manifest.json has %d images: %s", len(mj), files["manifest.json"])
	}
	tags := map[string]bool{}
	for _, m := range mj {
		for _, tag := range m.RepoTags {
			tags[tag] = true
		}
		for _, p := range append([]string{m.Config}, m.Layers...) {
			if _, ok := files[p]; !ok {
				t.Errorf("%s listed but not in the tar", p)
			}
		}
		var cfg struct{ Architecture string }
		_ = json.Unmarshal(files[m.Config], &cfg)
		if strings.Contains(strings.Join(m.RepoTags, ","), "multi") && cfg.Architecture != "arm64" {
			t.Errorf("multi: loaded %s, want arm64", cfg.Architecture)
		}
	}
	if !tags["multi:1"] || !tags["team/app:1"] {
		t.Errorf("repo tags %v", tags)
	}
	// only the chosen platform's blobs are sent
	blobs := 0
	for name := range files {
		if strings.HasPrefix(name, "blobs/") {
			blobs++
		}
	}
	if blobs >= len(bd.Meta.Blobs) {
		t.Errorf("%d blobs sent, the bundle has %d: other platforms were sent too", blobs, len(bd.Meta.Blobs))
	}
}

func TestUploadErrors(t *testing.T) {
	bd := saveFixtures(t, "team/app:1")
	f := newFakeDocker(t, http.StatusOK, `{"errorDetail":{"message":"no space left on device"},"error":"no space left on device"}`)
	sock := f.sock
	err := upload(t, bd, sock, "")
	f.received(t)
	if !errors.Is(err, docker.ErrEngine) || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("err %v: want what docker said", err)
	}
	if _, err := docker.New(context.Background(), bd.Meta, docker.Options{Socket: "/nonexistent/docker.sock"}); !errors.Is(err, docker.ErrEngine) {
		t.Fatalf("unreachable engine: %v", err)
	}
	p, _ := platform.Parse("linux/s390x")
	multi := saveFixtures(t, "library/multi:1")
	if _, err := docker.New(context.Background(), multi.Meta, docker.Options{Socket: sock, Platform: &p}); !errors.Is(err, oci.ErrPlatformMismatch) {
		t.Fatalf("missing platform: %v", err)
	}
}

// TestUploadRealDockerd loads a saved bundle into a real dockerd through
// transfer.Upload and checks the images' ids.
func TestUploadRealDockerd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts dockerd")
	}
	d := regtest.StartDockerd(t)
	bd := saveFixtures(t, "library/multi:1", "team/app:1")
	if err := upload(t, bd, d.Socket, "linux/amd64"); err != nil {
		t.Fatal(err)
	}
	client := d.Client()
	want := map[string]string{}
	for _, img := range bd.Meta.Images {
		// the config digest of the loaded platform is Docker's image id
		m := bd.Meta.ManifestByDigest(img.Digest)
		var doc struct {
			Config    struct{ Digest string }
			Manifests []struct {
				Digest   string
				Platform struct{ Architecture string }
			}
		}
		_ = json.Unmarshal(m.Raw, &doc)
		if len(doc.Manifests) > 0 {
			for _, c := range doc.Manifests {
				if c.Platform.Architecture == "amd64" {
					_ = json.Unmarshal(bd.Meta.ManifestByDigest(digest.Digest(c.Digest)).Raw, &doc)
				}
			}
		}
		name := strings.TrimPrefix(img.Repository, "library/") + ":" + img.Tag
		want[name] = doc.Config.Digest
	}
	for name, id := range want {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/images/"+name+"/json", nil)
		resp, err := client.Do(req)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		var info struct{ Id string }
		_ = json.NewDecoder(resp.Body).Decode(&info)
		resp.Body.Close()
		cancel()
		if info.Id != id {
			t.Errorf("docker image inspect %s: Id %q, want %q", name, info.Id, id)
		}
	}
}
