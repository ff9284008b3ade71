package serve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/registry/regtest"
)

// run runs a tool and returns its trimmed stdout; it fails the test with
// the tool's stderr.
func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// served is an increment with its base, served under a namespace: what
// the clients pull.
func served(t *testing.T) (*regtest.Source, string) {
	t.Helper()
	src := regtest.NewSource(t)
	dir := t.TempDir()
	full := src.Save(t, dir, bundle.CodecZstd, nil, "library/base:1", "library/multi:1")
	incr := src.Save(t, dir, bundle.CodecNone, []string{full}, "team/app:1", "big/one:1")
	return src, start(t, "mirror", full, incr)
}

// pulled lists the images the client tests pull: name at serve -> image.
var pulled = []string{"library/base:1", "library/multi:1", "team/app:1", "big/one:1"}

// TestClients pulls every image with crane, skopeo and regctl (each checks
// every blob's digest) and compares the digests they see with the source.
func TestClients(t *testing.T) {
	crane := regtest.NeedGoBinary(t, "crane", "github.com/google/go-containerregistry/cmd/crane@v0.22.1")
	skopeo := regtest.Need(t, "skopeo")
	regctl := regtest.NeedGoBinary(t, "regctl", "github.com/regclient/regclient/cmd/regctl@v0.11.7")
	src, host := served(t)
	home := []string{"HOME=" + t.TempDir()} // no user config for regctl, crane
	run(t, home, regctl, "registry", "set", host, "--tls", "disabled")
	for _, name := range pulled {
		img := src.Images[name]
		want := img.Digest().String()
		r := host + "/mirror/" + name
		t.Run(name, func(t *testing.T) {
			if got := run(t, home, crane, "digest", "--insecure", r); got != want {
				t.Errorf("crane digest %s, want %s", got, want)
			}
			out := filepath.Join(t.TempDir(), "crane")
			run(t, home, crane, "pull", "--insecure", "--format=oci", r, out)
			if len(img.Big) == 0 { // crane validate reads every layer as gzip
				run(t, home, crane, "validate", "--insecure", "--remote", r)
			}

			raw := run(t, nil, skopeo, "inspect", "--raw", "--tls-verify=false", "docker://"+r)
			if got := digest.FromString(raw).String(); got != want {
				t.Errorf("skopeo inspect --raw: %s, want %s", got, want)
			}
			run(t, nil, skopeo, "copy", "-q", "--all", "--src-tls-verify=false", "docker://"+r, "oci:"+filepath.Join(t.TempDir(), "sk")+":x")

			if got := run(t, home, regctl, "image", "digest", r); got != want {
				t.Errorf("regctl image digest %s, want %s", got, want)
			}
			run(t, home, regctl, "image", "export", r, filepath.Join(t.TempDir(), "regctl.tar"))
			tags := run(t, home, regctl, "tag", "ls", host+"/mirror/"+strings.Split(name, ":")[0])
			if tags != strings.Split(name, ":")[1] {
				t.Errorf("regctl tag ls: %q", tags)
			}
		})
	}
	repos := run(t, home, regctl, "repo", "ls", host)
	if want := "mirror/big/one\nmirror/library/base\nmirror/library/multi\nmirror/team/app"; repos != want {
		t.Errorf("regctl repo ls:\n%s\nwant\n%s", repos, want)
	}
	// a push is refused with the OCI error
	cmd := exec.Command(crane, "copy", "--insecure", host+"/mirror/team/app:1", host+"/mirror/team/copy:1")
	cmd.Env = append(os.Environ(), home...)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "UNSUPPORTED") {
		t.Errorf("crane copy into serve: %v\n%s", err, out)
	}
}

// TestDockerPull pulls from ferry serve into a real Docker engine: the
// image Id is the config digest, RepoDigests the manifest digest served.
func TestDockerPull(t *testing.T) {
	docker := regtest.Need(t, "docker")
	src, host := served(t)
	d := regtest.StartDockerd(t)
	env := []string{"DOCKER_HOST=unix://" + d.Socket, "HOME=" + t.TempDir()}
	for _, name := range []string{"team/app:1", "library/multi:1"} {
		r := host + "/mirror/" + name
		run(t, env, docker, "pull", "-q", r)
		img := src.Images[name]
		cfg := img.Blobs[0].Desc.Digest // multi: its first child, linux/amd64
		out := run(t, env, docker, "image", "inspect", "--format", "{{.Id}} {{json .RepoDigests}}", r)
		id, digests, _ := strings.Cut(out, " ")
		if id != cfg.String() {
			t.Errorf("%s: docker image Id %s, want config %s", name, id, cfg)
		}
		var rd []string
		_ = json.Unmarshal([]byte(digests), &rd)
		if want := strings.Split(r, ":1")[0] + "@" + img.Digest().String(); len(rd) != 1 || rd[0] != want {
			t.Errorf("%s: RepoDigests %v, want %s", name, rd, want)
		}
	}
}

// TestContainerdPull pulls with containerd's ctr (plain HTTP) from a
// containerd started for the test.
func TestContainerdPull(t *testing.T) {
	src, host := served(t)
	c := regtest.StartContainerd(t)
	for _, name := range []string{"team/app:1", "library/multi:1"} {
		r := host + "/mirror/" + name
		c.Ctr(t, "images", "pull", "--plain-http", "--snapshotter", "native", r)
		out := c.Ctr(t, "images", "ls")
		if want := src.Images[name].Digest().String(); !strings.Contains(out, r) || !strings.Contains(out, want) {
			t.Errorf("ctr images ls has no %s at %s:\n%s", r, want, out)
		}
	}
}

// TestClientsCorrupt: crane and skopeo fail to pull an image whose layer
// is corrupt in the part, rather than store wrong bytes.
func TestClientsCorrupt(t *testing.T) {
	crane := regtest.NeedGoBinary(t, "crane", "github.com/google/go-containerregistry/cmd/crane@v0.22.1")
	skopeo := regtest.Need(t, "skopeo")
	src := regtest.NewSource(t)
	dir := t.TempDir()
	mp := src.Save(t, dir, bundle.CodecNone, nil, "big/one:1")
	data, _ := io.ReadAll(src.Images["big/one:1"].Big[0].Reader())
	parts, _ := filepath.Glob(strings.TrimSuffix(mp, "_meta.yaml") + "_*.tar")
	corrupted := false
	for _, p := range parts {
		b, _ := os.ReadFile(p)
		if i := bytes.Index(b, data[:4096]); i >= 0 {
			b[i+len(data)-10] ^= 0x80 // near the end: after what serve holds back would have started
			_ = os.WriteFile(p, b, 0o644)
			corrupted = true
		}
	}
	if !corrupted {
		t.Fatal("layer not found in the parts")
	}
	host := start(t, "", mp)
	r := host + "/big/one:1"
	home := []string{"HOME=" + t.TempDir()}
	for _, args := range [][]string{
		{crane, "pull", "--insecure", "--format=oci", r, filepath.Join(t.TempDir(), "c")},
		{skopeo, "copy", "-q", "--src-tls-verify=false", "docker://" + r, "dir:" + t.TempDir()},
	} {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), home...)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("%s pulled a corrupt layer without error:\n%s", filepath.Base(args[0]), out)
		}
		t.Logf("%s: %v: %s", filepath.Base(args[0]), err, out)
	}
}

// TestReferrers: an SBOM saved with its image is listed by the referrers
// API (with artifactType filtering) and found by regctl.
func TestReferrers(t *testing.T) {
	regctl := regtest.NeedGoBinary(t, "regctl", "github.com/regclient/regclient/cmd/regctl@v0.11.7")
	src := regtest.NewSource(t)
	src.Referrers = true
	d := src.Images["team/app:1"].Manifest.GetDescriptor()
	sbom := regtest.Artifact(&d, regtest.SBOMType, regtest.SBOMType, []byte(`{"spdxVersion":"SPDX-2.3"}`))
	r, _ := ref.New(src.Host + "/team/app")
	if err := regtest.Push(context.Background(), src.Reg, r, sbom); err != nil {
		t.Fatal(err)
	}
	host := start(t, "", src.Save(t, t.TempDir(), bundle.CodecNone, nil, "team/app:1"))
	url := "http://" + host + "/v2/team/app/referrers/" + d.Digest.String()
	var idx struct {
		Manifests []struct {
			Digest       digest.Digest `json:"digest"`
			ArtifactType string        `json:"artifactType"`
		} `json:"manifests"`
	}
	resp := do(t, "GET", url)
	if err := json.Unmarshal(resp.body, &idx); err != nil || len(idx.Manifests) != 1 || idx.Manifests[0].Digest != sbom.Digest() || idx.Manifests[0].ArtifactType != regtest.SBOMType {
		t.Fatalf("referrers: %v %s", err, resp.body)
	}
	resp = do(t, "GET", url+"?artifactType=application/other")
	if err := json.Unmarshal(resp.body, &idx); err != nil || len(idx.Manifests) != 0 || resp.header.Get("OCI-Filters-Applied") != "artifactType" {
		t.Fatalf("filtered referrers: %v %s %v", err, resp.body, resp.header)
	}
	home := []string{"HOME=" + t.TempDir()}
	run(t, home, regctl, "registry", "set", host, "--tls", "disabled")
	if out := run(t, home, regctl, "artifact", "list", host+"/team/app:1", "--format", "{{range .Descriptors}}{{.Digest}} {{end}}"); !strings.Contains(out, sbom.Digest().String()) {
		t.Fatalf("regctl artifact list: %s", out)
	}
}
