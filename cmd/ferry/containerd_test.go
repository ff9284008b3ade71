package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
)

// TestContainerdAndMirrorConfig: through the CLI, a bundle goes into a
// real containerd (source names and digests; a re-run writes nothing),
// then into a mirror registry, and the configuration mirror-config prints
// makes the real consumers pull the source names from the mirror while
// the source is gone: ctr with the hosts.toml tree, podman with the
// registries.conf entries.
func TestContainerdAndMirrorConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("starts containerd")
	}
	c := regtest.StartContainerd(t)
	src, stopSrc := regtest.Olareg()
	defer stopSrc()
	mirror, stopMirror := regtest.Olareg()
	defer stopMirror()
	reg, _ := registry.New(registry.Options{Registries: []string{src}})
	imgs := regtest.Fixtures()
	for _, n := range []string{"team/app:1", "library/multi:1"} {
		r, _ := ref.New(src + "/" + n)
		if err := regtest.Push(context.Background(), reg, r, imgs[n]); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	_, metaPath, stderr := ferry(t, "", "-q", "save", src+"/team/app:1", src+"/library/multi:1", "-o", dir)
	metaPath = strings.TrimSpace(metaPath)
	if metaPath == "" {
		t.Fatalf("save: %s", stderr)
	}

	// containerd
	target := "containerd://" + c.Socket
	code, stdout, stderr := ferry(t, "", "--no-progress", "upload", metaPath, "--target", target)
	if code != 0 || !strings.Contains(stderr, "(containerd "+c.Socket+" (namespace k8s.io))") {
		t.Fatalf("upload to containerd: %d\n%s\n%s", code, stdout, stderr)
	}
	ls := c.Ctr(t, "-n", "k8s.io", "images", "ls")
	for _, n := range []string{"team/app:1", "library/multi:1"} {
		if !strings.Contains(ls, src+"/"+n+" ") || !strings.Contains(ls, imgs[n].Digest().String()) {
			t.Errorf("ctr images ls lacks %s at %s:\n%s", n, imgs[n].Digest(), ls)
		}
	}
	code, _, stderr = ferry(t, "", "--no-progress", "upload", metaPath, "--target", target)
	if code != 0 || !strings.Contains(stderr, "nothing written") {
		t.Errorf("re-run: %d\n%s", code, stderr)
	}
	code, _, stderr = ferry(t, src+"/team/app:1 -> other/app\n", "upload", metaPath, "--target", target, "--list", "-")
	if code != exitUsage || !strings.Contains(stderr, "containerd keeps the source names") {
		t.Errorf("--list with containerd: %d %s", code, stderr)
	}

	// the mirror, and the nodes' configuration
	if code, _, stderr := ferry(t, "", "-q", "upload", metaPath, "--target", mirror+"/site"); code != 0 {
		t.Fatalf("upload to the mirror: %s", stderr)
	}
	stopSrc() // from now on only the mirror has the images
	certs := filepath.Join(dir, "certs.d")
	code, stdout, stderr = ferry(t, "", "mirror-config", metaPath, "--registry", mirror+"/site", "--format", "containerd", "--plain-http", "--out", certs)
	if code != 0 || strings.TrimSpace(stdout) != filepath.Join(certs, src, "hosts.toml") {
		t.Fatalf("mirror-config containerd: %d\n%s\n%s", code, stdout, stderr)
	}
	c.Ctr(t, "-n", "pull", "images", "pull", "--hosts-dir", certs, "--snapshotter", "native", src+"/team/app:1")
	if ls := c.Ctr(t, "-n", "pull", "images", "ls"); !strings.Contains(ls, imgs["team/app:1"].Digest().String()) {
		t.Errorf("ctr pull through the mirror:\n%s", ls)
	}

	conf := filepath.Join(dir, "registries.conf")
	if code, _, stderr := ferry(t, "", "mirror-config", metaPath, "--registry", mirror+"/site", "--format", "registries.conf", "--plain-http", "-o", conf); code != 0 {
		t.Fatalf("mirror-config registries.conf: %s", stderr)
	}
	// Debian's skopeo reads only /etc/containers/registries.conf; podman
	// reads $CONTAINERS_REGISTRIES_CONF
	pm := regtest.Podman(t, "CONTAINERS_REGISTRIES_CONF="+conf)
	pm("pull", "-q", src+"/library/multi:1")
	if got := pm("image", "inspect", "--format", "{{.Digest}}", src+"/library/multi:1"); got != imgs["library/multi:1"].Digest().String() {
		t.Errorf("podman pull through the mirror: %s, want %s", got, imgs["library/multi:1"].Digest())
	}

	code, stdout, _ = ferry(t, "", "mirror-config", metaPath, "--registry", mirror+"/site", "--format", "idms")
	if code != 0 || !strings.Contains(stdout, "kind: ImageDigestMirrorSet") || !strings.Contains(stdout, "- source: "+src) || !strings.Contains(stdout, "- "+mirror+"/site") {
		t.Errorf("mirror-config idms: %d\n%s", code, stdout)
	}
	if code, _, stderr := ferry(t, "", "mirror-config", metaPath, "--registry", mirror, "--format", "yaml"); code != exitUsage || !strings.Contains(stderr, "containerd, registries.conf, idms") {
		t.Errorf("bad --format: %d %s", code, stderr)
	}
}
