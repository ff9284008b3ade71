package registry_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
	"github.com/ferry-oss/ferry/transfer"
)

// faultTarget is docker-registry behind a FaultProxy, with a client for
// the proxy.
func faultTarget(t *testing.T) (*regtest.Distribution, *regtest.FaultProxy, *registry.Registry) {
	t.Helper()
	dst := regtest.StartDistribution(t, regtest.DistributionOptions{})
	p := regtest.StartFaultProxy(t, dst.Host)
	reg, err := registry.New(registry.Options{Registries: []string{p.Host}, Retries: 1, RetryDelay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return dst, p, reg
}

func uploadTo(reg *registry.Registry, host string, bd *bundle.Bundle) (*transfer.UploadResult, error) {
	th, _ := ref.NewHost(host)
	return transfer.Upload(context.Background(), bd, reg, transfer.UploadOptions{Target: transfer.RegistryTarget(th, "", nil), Jobs: 2, Retries: 1})
}

// TestUploadTargetFaults: a target that dies in the middle of a blob
// fails the upload with no tag pushed; once it is back, a re-run sends
// only the blobs that had not landed. A target that answers 500 to every
// manifest PUT is left with no tag.
func TestUploadTargetFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("needs docker-registry")
	}
	src := regtest.StartDistribution(t, regtest.DistributionOptions{})
	sreg := client(t, src, regtest.DistributionOptions{})
	names := []string{"team/app:1", "team/tools:1", "library/base:1"}
	seed(t, sreg, src.Host, names...)
	res, err := saveBundle(t, sreg, src.Host, t.TempDir(), names...)
	if err != nil {
		t.Fatal(err)
	}
	bd, err := bundle.Open(res.MetaPath)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("dies mid-blob, re-run sends the rest", func(t *testing.T) {
		dst, p, reg := faultTarget(t)
		// two blob uploads go through, then the target hangs up on every
		// upload request part way through its body
		p.Add(regtest.Fault{Path: "/blobs/uploads/", Action: regtest.After(4, regtest.Hangup(64))})
		if _, err := uploadTo(reg, p.Host, bd); err == nil {
			t.Fatal("upload into a dying target succeeded")
		}
		for _, n := range []string{"team/app", "team/tools", "library/base"} {
			if tags := regtest.Tags(t, dst, n); len(tags) != 0 {
				t.Errorf("%s: tags %v after a failed upload", n, tags)
			}
		}
		landed := 0
		dreg := client(t, dst, regtest.DistributionOptions{})
		for _, b := range res.Meta.Blobs {
			r, _ := ref.New(dst.Host + "/" + b.Repos[0])
			if ok, _ := dreg.BlobExists(context.Background(), r, bundleDesc(b)); ok {
				landed++
			}
		}
		if landed == 0 || landed == len(res.Meta.Blobs) {
			t.Fatalf("%d of %d blobs landed before the target died: the fault did not hit mid-upload", landed, len(res.Meta.Blobs))
		}
		p.Reset() // the target is back
		up, err := uploadTo(reg, p.Host, bd)
		if err != nil {
			t.Fatal(err)
		}
		posts := 0
		for _, r := range p.Requests("/blobs/uploads/") {
			if r.Method == http.MethodPost {
				posts++
			}
		}
		missing := len(res.Meta.Blobs) - landed
		if up.BlobsPushed != missing || posts < missing || posts > missing+len(res.Meta.Blobs) {
			t.Errorf("re-run pushed %d blobs (%d upload POSTs incl. mounts); %d had landed of %d", up.BlobsPushed, posts, landed, len(res.Meta.Blobs))
		}
		for _, img := range res.Meta.Images {
			r, _ := ref.New(dst.Host + "/" + img.Repository + ":" + img.Tag)
			m, err := dreg.ManifestGet(context.Background(), r)
			if err != nil || m.GetDescriptor().Digest != img.Digest {
				t.Errorf("%s: %v, want %s", r.CommonName(), err, img.Digest)
			}
		}
	})

	t.Run("serves another digest after accepting a blob", func(t *testing.T) {
		dst, p, reg := faultTarget(t)
		var victim meta.Blob
		for _, b := range res.Meta.Blobs {
			if b.Size > victim.Size {
				victim = b
			}
		}
		p.Add(regtest.Fault{Method: http.MethodHead, Path: "/blobs/" + victim.Digest.String(), Action: regtest.SetHeader("Docker-Content-Digest", "sha256:"+strings.Repeat("0", 64))})
		_, err := uploadTo(reg, p.Host, bd)
		if !errors.Is(err, oci.ErrDigestMismatch) || !strings.Contains(err.Error(), victim.Digest.String()) {
			t.Fatalf("err %v, want a digest mismatch naming %s", err, victim.Digest)
		}
		for _, n := range []string{"team/app", "team/tools", "library/base"} {
			if tags := regtest.Tags(t, dst, n); len(tags) != 0 {
				t.Errorf("%s: tags %v pushed onto a lying target", n, tags)
			}
		}
	})

	t.Run("500 on manifest PUT leaves no tag", func(t *testing.T) {
		dst, p, reg := faultTarget(t)
		p.Add(regtest.Fault{Method: http.MethodPut, Path: "/manifests/", Action: regtest.Status(500, "")})
		if _, err := uploadTo(reg, p.Host, bd); err == nil {
			t.Fatal("upload succeeded although every manifest PUT failed")
		}
		for _, n := range []string{"team/app", "team/tools", "library/base"} {
			if tags := regtest.Tags(t, dst, n); len(tags) != 0 {
				t.Errorf("%s: tags %v", n, tags)
			}
		}
	})
}

func bundleDesc(b meta.Blob) descriptor.Descriptor {
	return descriptor.Descriptor{MediaType: b.MediaType, Digest: b.Digest, Size: b.Size}
}
