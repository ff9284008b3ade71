package archive_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/platform"

	"github.com/ferry-oss/ferry/archive"
	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
	"github.com/ferry-oss/ferry/registry/regtest"
)

// fixture: a full bundle and an increment on it, opened as a set.
func fixture(t *testing.T) (*regtest.Source, *bundle.Set, string) {
	t.Helper()
	src := regtest.NewSource(t)
	dir := t.TempDir()
	full := src.Save(t, dir, bundle.CodecZstd, nil, "library/base:1", "library/multi:1")
	incr := src.Save(t, dir, bundle.CodecNone, []string{full}, "team/app:1", "team/tools:1 -> other/tools:v2")
	set, err := bundle.OpenSet(full, incr)
	if err != nil {
		t.Fatal(err)
	}
	return src, set, dir
}

func export(t *testing.T, set *bundle.Set, f archive.Format, plat string, want ...string) (string, *archive.Result) {
	t.Helper()
	imgs, err := archive.Select(set, want, len(want) == 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	var opts archive.Options
	if plat != "" {
		p, _ := platform.Parse(plat)
		opts.Platform = &p
	}
	out := filepath.Join(t.TempDir(), "out")
	res, err := archive.ExportFile(context.Background(), set, imgs, out, f, opts)
	if err != nil {
		t.Fatal(err)
	}
	return out, res
}

// entries lists a tar's entry names and contents.
func entries(t *testing.T, file string) ([]string, map[string][]byte) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var names []string
	data := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, data
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		data[h.Name], _ = io.ReadAll(tr)
	}
}

// TestDockerArchiveLayout: Docker's layout, manifest.json last, blobs
// named by digest with the right bytes, the arm64 child of the index.
func TestDockerArchiveLayout(t *testing.T) {
	src, set, _ := fixture(t)
	out, res := export(t, set, archive.DockerArchive, "linux/arm64", "team/app:1", src.Host+"/library/multi:1")
	names, data := entries(t, out)
	if names[len(names)-1] != "manifest.json" {
		t.Fatalf("last entry %s", names[len(names)-1])
	}
	for _, n := range names[:len(names)-1] {
		dg, ok := strings.CutPrefix(n, "blobs/sha256/")
		if !ok || digest.FromBytes(data[n]).Encoded() != dg {
			t.Errorf("entry %s does not hold its digest", n)
		}
	}
	var mj []archive.DockerManifestEntry
	if err := json.Unmarshal(data["manifest.json"], &mj); err != nil || len(mj) != 2 {
		t.Fatalf("manifest.json: %v %s", err, data["manifest.json"])
	}
	arm := src.Images["library/multi:1"].Children[1]
	for i, want := range []*regtest.Image{src.Images["team/app:1"], arm} {
		if mj[i].Config != bundle.BlobPath(want.Blobs[0].Desc.Digest) || len(mj[i].Layers) != len(want.Blobs)-1 {
			t.Errorf("entry %d: %+v", i, mj[i])
		}
	}
	if got := mj[0].RepoTags; len(got) != 1 || got[0] != src.Host+"/team/app:1" {
		t.Errorf("RepoTags %v", got)
	}
	if res.Images != 2 || res.Blobs != 5 { // base, app layer, app config, arm layer, arm config
		t.Errorf("result %+v", res)
	}
	// an index cannot go into a docker-archive
	imgs, _ := archive.Select(set, []string{"library/multi:1"}, false, nil)
	err := func() error {
		_, err := archive.ExportFile(context.Background(), set, imgs, filepath.Join(t.TempDir(), "x.tar"), archive.DockerArchive, archive.Options{})
		return err
	}()
	if !errors.Is(err, archive.ErrOneImage) {
		t.Errorf("index into docker-archive: %v", err)
	}
	// a single-platform image of another platform than the one asked for
	imgs, _ = archive.Select(set, []string{"team/app:1"}, false, nil)
	arm64, _ := platform.Parse("linux/arm64")
	_, err = archive.ExportFile(context.Background(), set, imgs, filepath.Join(t.TempDir(), "x.tar"), archive.DockerArchive, archive.Options{Platform: &arm64, RequirePlatform: true})
	if !errors.Is(err, oci.ErrPlatformMismatch) || !strings.Contains(err.Error(), "linux/amd64") {
		t.Errorf("amd64 image for linux/arm64: %v", err)
	}
}

// TestCorruptBundle: a blob failing its digest fails the export and leaves
// neither PATH nor its temporary output.
func TestCorruptBundle(t *testing.T) {
	src, set, dir := fixture(t)
	app := src.Images["team/app:1"].Blobs[2].Data
	metas, _ := filepath.Glob(filepath.Join(dir, "*_meta.yaml"))
	var corrupted bool
	for _, mp := range metas {
		m, _ := meta.Load(mp)
		for _, p := range m.Parts {
			file := filepath.Join(dir, p.Name)
			b, _ := os.ReadFile(file)
			if i := bytes.Index(b, app); i >= 0 {
				b[i+len(app)/2] ^= 1
				_ = os.WriteFile(file, b, 0o644)
				corrupted = true
			}
		}
	}
	if !corrupted {
		t.Fatal("app layer not found in an uncompressed part")
	}
	for _, f := range []archive.Format{archive.DockerArchive, archive.OCIArchive, archive.OCILayout} {
		imgs, _ := archive.Select(set, []string{"team/app:1"}, false, nil)
		out := filepath.Join(t.TempDir(), "out")
		_, err := archive.ExportFile(context.Background(), set, imgs, out, f, archive.Options{})
		if !errors.Is(err, oci.ErrDigestMismatch) {
			t.Errorf("%s: %v", f, err)
		}
		left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), "*"))
		if dot, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*")); len(dot) > 0 {
			left = append(left, dot...)
		}
		if len(left) > 0 {
			t.Errorf("%s: left %v", f, left)
		}
	}
}

// TestDockerLoad loads a docker-archive into a real Docker engine: the
// image Id is the config digest and the tag the source reference.
func TestDockerLoad(t *testing.T) {
	docker := regtest.Need(t, "docker")
	src, set, _ := fixture(t)
	out, _ := export(t, set, archive.DockerArchive, "linux/amd64", "team/app:1", "library/multi:1", "other/tools:v2")
	d := regtest.StartDockerd(t)
	env := append(os.Environ(), "DOCKER_HOST=unix://"+d.Socket, "HOME="+t.TempDir())
	cmd := exec.Command(docker, "load", "-i", out)
	cmd.Env = env
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker load: %v\n%s", err, b)
	}
	for name, img := range map[string]*regtest.Image{"team/app:1": src.Images["team/app:1"], "library/multi:1": src.Images["library/multi:1"].Children[0], "team/tools:1": src.Images["team/tools:1"]} {
		cmd := exec.Command(docker, "image", "inspect", "--format", "{{.Id}}", src.Host+"/"+name)
		cmd.Env = env
		b, err := cmd.Output()
		if err != nil {
			t.Fatalf("docker image inspect %s: %v", name, err)
		}
		if got := strings.TrimSpace(string(b)); got != img.Blobs[0].Desc.Digest.String() {
			t.Errorf("%s: Id %s, want config %s", name, got, img.Blobs[0].Desc.Digest)
		}
	}
}

// TestOCIArchiveSkopeo: skopeo reads every image of an oci-archive and an
// oci layout by name with the source digests, and copies them (checking
// every blob).
func TestOCIArchiveSkopeo(t *testing.T) {
	skopeo := regtest.Need(t, "skopeo")
	src, set, _ := fixture(t)
	tarFile, _ := export(t, set, archive.OCIArchive, "")
	dir, _ := export(t, set, archive.OCILayout, "")
	for name, want := range map[string]digest.Digest{
		"library/base:1": src.Images["library/base:1"].Digest(), "library/multi:1": src.Images["library/multi:1"].Digest(),
		"team/app:1": src.Images["team/app:1"].Digest(), "team/tools:1": src.Images["team/tools:1"].Digest(),
	} {
		for _, tr := range []string{"oci-archive:" + tarFile, "oci:" + dir} {
			image := tr + ":" + src.Host + "/" + name
			b, err := exec.Command(skopeo, "inspect", "--raw", image).Output()
			if err != nil {
				t.Fatalf("skopeo inspect %s: %v", image, err)
			}
			if got := digest.FromBytes(b); got != want {
				t.Errorf("%s: %s, want %s", image, got, want)
			}
			if b, err := exec.Command(skopeo, "copy", "-q", "--all", image, "dir:"+t.TempDir()).CombinedOutput(); err != nil {
				t.Errorf("skopeo copy %s: %v %s", image, err, b)
			}
		}
	}
	// one image: skopeo needs no name
	one, _ := export(t, set, archive.OCIArchive, "linux/arm64", "library/multi:1")
	b, err := exec.Command(skopeo, "inspect", "--raw", "oci-archive:"+one).Output()
	if err != nil {
		t.Fatalf("skopeo inspect: %v", err)
	}
	if got, want := digest.FromBytes(b), src.Images["library/multi:1"].Children[1].Digest(); got != want {
		t.Errorf("arm64 child: %s, want %s", got, want)
	}
}

// TestCtrImport imports both archive formats with containerd's ctr, as
// k3s/rke2 do with their airgap images directory.
func TestCtrImport(t *testing.T) {
	src, set, _ := fixture(t)
	c := regtest.StartContainerd(t)
	dockerTar, _ := export(t, set, archive.DockerArchive, "linux/amd64", "team/app:1")
	ociTar, _ := export(t, set, archive.OCIArchive, "", "library/multi:1")
	c.Ctr(t, "images", "import", "--snapshotter", "native", dockerTar)
	c.Ctr(t, "images", "import", "--snapshotter", "native", "--all-platforms", ociTar)
	out := c.Ctr(t, "images", "ls")
	for _, want := range []string{src.Host + "/team/app:1", src.Host + "/library/multi:1", src.Images["library/multi:1"].Digest().String()} {
		if !strings.Contains(out, want) {
			t.Errorf("ctr images ls has no %s:\n%s", want, out)
		}
	}
}

// TestPodmanLoad loads both archive formats with podman (private storage):
// the image Id is the config digest.
func TestPodmanLoad(t *testing.T) {
	pm := regtest.Podman(t)
	src, set, _ := fixture(t)
	dockerTar, _ := export(t, set, archive.DockerArchive, "linux/amd64", "team/app:1")
	ociTar, _ := export(t, set, archive.OCIArchive, "linux/amd64", "library/multi:1")
	pm("load", "-q", "-i", dockerTar)
	pm("load", "-q", "-i", ociTar)
	for name, img := range map[string]*regtest.Image{"team/app:1": src.Images["team/app:1"], "library/multi:1": src.Images["library/multi:1"].Children[0]} {
		if got, want := pm("image", "inspect", "--format", "{{.Id}}", src.Host+"/"+name), img.Blobs[0].Desc.Digest.Encoded(); got != want {
			t.Errorf("%s: podman Id %s, want %s", name, got, want)
		}
	}
}
