package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
)

// TestUploadArchives: ferry upload takes a docker-archive, an oci-archive
// and an OCI layout (what docker save, skopeo and image-transmit's newest
// version write; here ferry export's, from image-transmit's bundle). The
// OCI formats keep every digest; a docker-archive keeps no manifest, so
// its images get a new one over the same config and layers.
func TestUploadArchives(t *testing.T) {
	metas, _ := filepath.Glob(filepath.Join(regtest.TestdataDir(), "imagetransmit", "tar", "*_full_*_meta.yaml"))
	dir := t.TempDir()
	want := map[string]digest.Digest{}
	cfgs := map[string]digest.Digest{}
	for name, img := range regtest.ImageTransmitFixtures() {
		if len(img.Children) > 0 {
			img = img.Children[0]
		}
		want[name], cfgs[name] = img.Digest(), img.Blobs[0].Desc.Digest
	}
	for _, format := range []string{"oci", "oci-archive", "docker-archive"} {
		t.Run(format, func(t *testing.T) {
			out := filepath.Join(dir, format)
			if format != "oci" {
				out += ".tar"
			}
			if code, stdout, stderr := ferry(t, "", "--no-progress", "export", metas[0], "--all", "--format", format, "--platform", "linux/amd64", "-o", out); code != 0 {
				t.Fatalf("export: %d\n%s\n%s", code, stdout, stderr)
			}
			host, stop := regtest.Olareg()
			defer stop()
			if code, stdout, stderr := ferry(t, "", "--no-progress", "upload", out, "--target", host+"/mirror"); code != 0 {
				t.Fatalf("upload: %d\n%s\n%s", code, stdout, stderr)
			}
			for _, name := range []string{"it/base:1", "it/app:1", "it/oci:1"} {
				m := manifestAt(t, host, "mirror/"+name)
				if format != "docker-archive" && m.GetDescriptor().Digest != want[name] {
					t.Errorf("%s: %s, source %s", name, m.GetDescriptor().Digest, want[name])
				}
				if img, ok := m.(manifest.Imager); ok {
					if c, _ := img.GetConfig(); c.Digest != cfgs[name] {
						t.Errorf("%s: config %s, source %s", name, c.Digest, cfgs[name])
					}
				}
			}
		})
	}
}

func manifestAt(t *testing.T, host, repoTag string) manifest.Manifest {
	t.Helper()
	reg, _ := registry.New(registry.Options{Registries: []string{host}})
	r, _ := ref.New(host + "/" + repoTag)
	m, err := reg.ManifestGet(context.Background(), r)
	if err != nil {
		t.Fatalf("%s: %v", repoTag, err)
	}
	if ix, ok := m.(manifest.Indexer); ok { // an OCI export of a filtered index
		ds, _ := ix.GetManifestList()
		r.Tag, r.Digest = "", ds[0].Digest.String()
		if m, err = reg.ManifestGet(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// dockerSave writes what the engine's docker save writes for names.
func dockerSave(t *testing.T, d *regtest.Dockerd, file string, names ...string) {
	t.Helper()
	resp, err := d.Client().Get("http://docker/images/get?names=" + strings.Join(names, "&names="))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	f, _ := os.Create(file)
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		t.Fatal(err)
	}
}
