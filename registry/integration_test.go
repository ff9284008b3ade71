package registry_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/platform"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/oci"
	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
	"github.com/ferry-oss/ferry/selection"
	"github.com/ferry-oss/ferry/transfer"
)

func client(t *testing.T, d *regtest.Distribution, opts regtest.DistributionOptions) *registry.Registry {
	t.Helper()
	h := registry.Host{Registry: d.Host, User: opts.User, Pass: opts.Pass}
	if opts.TLS {
		h.TLS, h.CAFile = registry.TLSEnabled, d.CAFile
	}
	reg, err := registry.New(registry.Options{Hosts: []registry.Host{h}, Retries: 2})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func seed(t *testing.T, reg *registry.Registry, host string, names ...string) map[string]*regtest.Image {
	t.Helper()
	imgs := regtest.Fixtures()
	for _, n := range names {
		r, _ := ref.New(host + "/" + n)
		if err := regtest.Push(context.Background(), reg, r, imgs[n]); err != nil {
			t.Fatalf("seeding %s: %v", n, err)
		}
	}
	return imgs
}

func saveBundle(t *testing.T, reg oci.Source, host, dir string, names ...string) (*transfer.SaveResult, error) {
	t.Helper()
	var specs []selection.ImageSpec
	for _, n := range names {
		s, err := selection.ParseImage(n, host)
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, s)
	}
	w, err := bundle.NewWriter(bundle.WriterOptions{Dir: dir, Parts: 2})
	if err != nil {
		t.Fatal(err)
	}
	return transfer.Save(context.Background(), reg, w, specs, transfer.SaveOptions{Jobs: 2, Retries: 3, RetryDelay: 10 * time.Millisecond})
}

// TestDistributionVariants saves from and uploads to docker-registry: plain
// HTTP, basic auth, and TLS with a self-signed certificate.
func TestDistributionVariants(t *testing.T) {
	variants := map[string]regtest.DistributionOptions{
		"plain": {},
		"auth":  {User: "ferry", Pass: "s3cret-pass"},
		"tls":   {TLS: true},
	}
	names := []string{"library/multi:1", "team/app:1", "team/tools:1"}
	for name, opts := range variants {
		t.Run(name, func(t *testing.T) {
			src := regtest.StartDistribution(t, opts)
			dst := regtest.StartDistribution(t, opts)
			sreg, dreg := client(t, src, opts), client(t, dst, opts)
			seed(t, sreg, src.Host, names...)
			if opts.User != "" {
				// without credentials the registry refuses
				anon, _ := registry.New(registry.Options{Registries: []string{src.Host}})
				r, _ := ref.New(src.Host + "/team/app:1")
				if _, err := anon.ManifestGet(context.Background(), r); err == nil {
					t.Fatal("anonymous pull succeeded on an auth registry")
				}
			}
			dir := t.TempDir()
			res, err := saveBundle(t, sreg, src.Host, dir, names...)
			if err != nil {
				t.Fatal(err)
			}
			if opts.Pass != "" {
				b, _ := os.ReadFile(res.MetaPath)
				if strings.Contains(string(b), opts.Pass) {
					t.Fatal("password written to meta.yaml")
				}
			}
			bd, err := bundle.Open(res.MetaPath)
			if err != nil {
				t.Fatal(err)
			}
			tgt, _ := ref.NewHost(dst.Host)
			up, err := transfer.Upload(context.Background(), bd, dreg, transfer.UploadOptions{Target: transfer.RegistryTarget(tgt, "mirror", nil)})
			if err != nil {
				t.Fatal(err)
			}
			if up.BlobsPushed != len(res.Meta.Blobs) || up.Images != len(names) {
				t.Errorf("pushed %d blobs, %d images", up.BlobsPushed, up.Images)
			}
			for _, img := range res.Meta.Images {
				r, _ := ref.New(dst.Host + "/mirror/" + img.Repository + ":" + img.Tag)
				m, err := dreg.ManifestGet(context.Background(), r)
				if err != nil {
					t.Fatal(err)
				}
				if m.GetDescriptor().Digest != img.Digest {
					t.Errorf("%s: %s, want %s", r.CommonName(), m.GetDescriptor().Digest, img.Digest)
				}
			}
		})
	}
}

// TestIncrementalDistribution: full then incremental upload into
// docker-registry; the increment alone onto an empty registry is refused
// before anything is pushed.
func TestIncrementalDistribution(t *testing.T) {
	src := regtest.StartDistribution(t, regtest.DistributionOptions{})
	dst := regtest.StartDistribution(t, regtest.DistributionOptions{})
	sreg, dreg := client(t, src, regtest.DistributionOptions{}), client(t, dst, regtest.DistributionOptions{})
	seed(t, sreg, src.Host, "library/base:1", "team/app:1", "team/tools:1")
	dir := t.TempDir()
	full, err := saveBundle(t, sreg, src.Host, dir, "library/base:1")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // bundle ids carry the second
	specs := []selection.ImageSpec{}
	for _, n := range []string{"team/app:1", "team/tools:1 -> other/tools:1"} {
		s, _ := selection.ParseImage(n, src.Host)
		specs = append(specs, s)
	}
	w, err := bundle.NewWriter(bundle.WriterOptions{Dir: dir, Parts: 2, Bases: []string{full.MetaPath}})
	if err != nil {
		t.Fatal(err)
	}
	incr, err := transfer.Save(context.Background(), sreg, w, specs, transfer.SaveOptions{Jobs: 2})
	if err != nil {
		t.Fatal(err)
	}
	tgt, _ := ref.NewHost(dst.Host)
	opts := transfer.UploadOptions{Target: transfer.RegistryTarget(tgt, "mirror", nil)}
	ib, _ := bundle.Open(incr.MetaPath)
	_, err = transfer.Upload(context.Background(), ib, dreg, opts)
	if !errors.Is(err, bundle.ErrBaseMissing) || !strings.Contains(err.Error(), full.Meta.ID) {
		t.Fatalf("increment onto an empty registry: %v", err)
	}
	// nothing was pushed: the registry has no repository
	resp, err := http.Get("http://" + dst.Host + "/v2/_catalog")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"repositories":[]`) {
		t.Fatalf("refused upload left content: %s", body)
	}
	fb, _ := bundle.Open(full.MetaPath)
	if _, err := transfer.Upload(context.Background(), fb, dreg, opts); err != nil {
		t.Fatal(err)
	}
	res, err := transfer.Upload(context.Background(), ib, dreg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.BlobsMounted == 0 {
		t.Error("base blobs were not mounted into the new repositories")
	}
	for _, img := range incr.Meta.Images {
		r, _ := ref.New(dst.Host + "/mirror/" + img.Repository + ":" + img.Tag)
		m, err := dreg.ManifestGet(context.Background(), r)
		if err != nil || m.GetDescriptor().Digest != img.Digest {
			t.Fatalf("%s: %v", r.CommonName(), err)
		}
	}
}

// TestOCILayout: the parts of a full bundle unpacked into one directory
// are an OCI image layout; skopeo picks each image by its unique name
// (repository:tag, or repository@digest), regctl by digest, also when two
// images share a tag.
func TestOCILayout(t *testing.T) {
	skopeo := regtest.Need(t, "skopeo")
	regctl := regtest.Need(t, "regctl")
	host, stop := regtest.Olareg()
	defer stop()
	reg, _ := registry.New(registry.Options{Registries: []string{host}})
	imgs := seed(t, reg, host, "team/app:1", "team/tools:1", "library/multi:1")
	dir := t.TempDir()
	byDigest := "library/multi@" + imgs["library/multi:1"].Digest().String()
	res, err := saveBundle(t, reg, host, dir, "team/app:1", "team/tools:1", byDigest)
	if err != nil {
		t.Fatal(err)
	}
	layout := t.TempDir()
	for _, p := range res.Meta.Parts {
		if out, err := exec.Command("tar", "-xf", filepath.Join(dir, p.Name), "-C", layout).CombinedOutput(); err != nil {
			t.Fatalf("untar %s: %v %s", p.Name, err, out)
		}
	}
	for _, img := range res.Meta.Images {
		name := bundle.LayoutName(img)
		out, err := exec.Command(skopeo, "inspect", "--raw", "oci:"+layout+":"+name).Output()
		if err != nil {
			t.Fatalf("skopeo inspect %s: %v", name, err)
		}
		if got := digest.FromBytes(out); got != img.Digest {
			t.Fatalf("skopeo reads %s for %s, meta says %s", got, name, img.Digest)
		}
		out, err = exec.Command(regctl, "manifest", "get", "--format", "raw-body", "ocidir://"+layout+"@"+img.Digest.String()).Output()
		if err != nil {
			t.Fatalf("regctl manifest get %s: %v", img.Digest, err)
		}
		if got := digest.FromBytes(out); got != img.Digest {
			t.Fatalf("regctl reads %s, meta says %s", got, img.Digest)
		}
	}
	// and copies one, checking every blob
	if out, err := exec.Command(skopeo, "copy", "-q", "oci:"+layout+":team/tools:1", "dir:"+t.TempDir()).CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy from the layout: %v %s", err, out)
	}
}

// TestSaveMatrixDistribution saves from docker-registry with each codec
// and platform filter; every bundle must verify, shared blobs stored once.
func TestSaveMatrixDistribution(t *testing.T) {
	src := regtest.StartDistribution(t, regtest.DistributionOptions{})
	reg := client(t, src, regtest.DistributionOptions{})
	seed(t, reg, src.Host, "library/multi:1", "team/app:1", "team/tools:1")
	type tc struct {
		codec     bundle.Codec
		platforms []string
		children  int
	}
	var cases []tc
	for _, c := range bundle.Codecs {
		cases = append(cases, tc{codec: c, platforms: []string{"linux/arm64"}, children: 1})
	}
	cases = append(cases, tc{codec: bundle.CodecNone, platforms: []string{"linux/amd64", "linux/arm/v7"}, children: 2}, tc{codec: bundle.CodecZstd, children: 3})
	for _, c := range cases {
		t.Run(string(c.codec)+"/"+strings.Join(c.platforms, "+"), func(t *testing.T) {
			var plats []platform.Platform
			for _, p := range c.platforms {
				pp, _ := platform.Parse(p)
				plats = append(plats, pp)
			}
			var specs []selection.ImageSpec
			for _, n := range []string{"library/multi:1", "team/app:1", "team/tools:1"} {
				s, _ := selection.ParseImage(n, src.Host)
				specs = append(specs, s)
			}
			w, err := bundle.NewWriter(bundle.WriterOptions{Dir: t.TempDir(), Codec: c.codec, Parts: 2})
			if err != nil {
				t.Fatal(err)
			}
			if len(plats) > 0 && plats[0].Architecture == "arm64" {
				specs = specs[:1] // the single-platform images are amd64
			}
			res, err := transfer.Save(context.Background(), reg, w, specs, transfer.SaveOptions{Platforms: plats, Jobs: 2})
			if err != nil {
				t.Fatal(err)
			}
			for _, img := range res.Meta.Images {
				if img.Repository == "library/multi" && len(img.Platforms) != c.children {
					t.Errorf("multi kept %v, want %d platforms", img.Platforms, c.children)
				}
			}
			seen := map[string]bool{}
			for _, b := range res.Meta.Blobs {
				if seen[b.Digest.String()] {
					t.Errorf("blob %s stored twice", b.Digest)
				}
				seen[b.Digest.String()] = true
				if len(specs) == 3 && b.MediaType != "application/vnd.oci.image.config.v1+json" && len(b.Repos) == 3 {
					seen["shared"] = true
				}
			}
			if len(specs) == 3 && c.children == 3 && !seen["shared"] {
				t.Error("no layer is shared by the three images: the base layer should be")
			}
			bd, _ := bundle.Open(res.MetaPath)
			if err := bd.Verify(context.Background(), 2, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}
