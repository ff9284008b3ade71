package transfer_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/registry/regtest"
	"github.com/ferry-oss/ferry/transfer"
)

// oldBundles are the bundles earlier ferry versions wrote
// (testdata/bundles, never regenerated).
var oldBundles = []struct{ dir, full, incr string }{
	{"v1-none", "ferry_full_20261101T020000Z", "ferry_incr_20261102T020000Z"},
	{"v1-zstd", "ferry_full_20261101T020000Z", "ferry_incr_20261102T020000Z"},
}

type wantImage struct {
	bundle, name string
	digest       digest.Digest
}

// oldBundleImages reads testdata/bundles/images.txt and checks SHA256SUMS:
// the old bundles must stay byte for byte what was written.
func oldBundleImages(t *testing.T) []wantImage {
	t.Helper()
	root := filepath.Join(regtest.TestdataDir(), "bundles")
	sums, err := os.ReadFile(filepath.Join(root, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		want, name, _ := strings.Cut(line, "  ")
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		if h := sha256.Sum256(b); hex.EncodeToString(h[:]) != want {
			t.Fatalf("testdata/bundles/%s changed: old bundles are never regenerated", name)
		}
	}
	f, err := os.Open(filepath.Join(root, "images.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []wantImage
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		out = append(out, wantImage{fields[0], fields[1], digest.Digest(fields[2])})
	}
	if len(out) != 4 {
		t.Fatalf("images.txt: %d images", len(out))
	}
	return out
}

func openOld(t *testing.T, dir, id string) *bundle.Bundle {
	t.Helper()
	bd, err := bundle.Open(filepath.Join(regtest.TestdataDir(), "bundles", dir, id+"_meta.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if bd.Meta.SchemaVersion != 1 {
		t.Fatalf("%s: schema %d", id, bd.Meta.SchemaVersion)
	}
	return bd
}

// TestOldBundlesVerify: every old bundle verifies, and works as a Source
// (every blob read back equals its digest).
func TestOldBundlesVerify(t *testing.T) {
	oldBundleImages(t)
	for _, ob := range oldBundles {
		for _, id := range []string{ob.full, ob.incr} {
			t.Run(ob.dir+"/"+id, func(t *testing.T) {
				bd := openOld(t, ob.dir, id)
				if err := bd.Verify(context.Background(), 2, nil); err != nil {
					t.Fatalf("verify: %v", err)
				}
				for _, b := range bd.Meta.Blobs {
					rc, err := bd.BlobGet(context.Background(), ref.Ref{}, descOf(b))
					if err != nil {
						t.Fatal(err)
					}
					h := digest.SHA256.Digester()
					_, err = io.Copy(h.Hash(), rc)
					rc.Close()
					if err != nil || h.Digest() != b.Digest {
						t.Fatalf("blob %s: %v, read %s", b.Digest, err, h.Digest())
					}
				}
			})
		}
	}
}

// TestOldBundlesUpload uploads the full then the increment of each old
// bundle into olareg and docker-registry and checks every image's digest.
func TestOldBundlesUpload(t *testing.T) {
	want := oldBundleImages(t)
	targets := map[string]func(t *testing.T) string{
		"olareg": func(t *testing.T) string {
			host, stop := regtest.Olareg()
			t.Cleanup(stop)
			return host
		},
		"docker-registry": func(t *testing.T) string {
			return regtest.StartDistribution(t, regtest.DistributionOptions{}).Host
		},
	}
	for _, ob := range oldBundles {
		for tname, start := range targets {
			t.Run(ob.dir+"/"+tname, func(t *testing.T) {
				host := start(t)
				treg := newReg(t, host)
				tgt, _ := ref.NewHost(host)
				opts := transfer.UploadOptions{Target: transfer.RegistryTarget(tgt, "mirror", nil), Jobs: 2}
				for _, id := range []string{ob.full, ob.incr} {
					bd := openOld(t, ob.dir, id)
					res, err := transfer.Upload(context.Background(), bd, treg, opts)
					if err != nil {
						t.Fatalf("upload %s: %v", id, err)
					}
					if res.BlobsPushed != len(bd.Meta.Blobs) {
						t.Errorf("%s: pushed %d of %d blobs", id, res.BlobsPushed, len(bd.Meta.Blobs))
					}
				}
				for _, w := range want {
					r, err := ref.New(host + "/mirror/" + w.name)
					if err != nil {
						t.Fatal(err)
					}
					m, err := treg.ManifestGet(context.Background(), r)
					if err != nil {
						t.Fatalf("%s: %v", w.name, err)
					}
					if got := m.GetDescriptor().Digest; got != w.digest {
						t.Errorf("%s: digest %s, want %s", w.name, got, w.digest)
					}
				}
				// Again: nothing is pushed.
				for _, id := range []string{ob.full, ob.incr} {
					res, err := transfer.Upload(context.Background(), openOld(t, ob.dir, id), treg, opts)
					if err != nil || res.BlobsPushed != 0 {
						t.Fatalf("re-upload %s: %v, pushed %d", id, err, res.BlobsPushed)
					}
				}
			})
		}
	}
}

// TestIncrementOnOldBundle: a schema 2 increment on a schema 1 full skips
// the full's blobs, and uploads after it.
func TestIncrementOnOldBundle(t *testing.T) {
	oldBundleImages(t)
	e := seeded(t)
	full := openOld(t, "v1-zstd", "ferry_full_20261101T020000Z")
	dir := t.TempDir()
	res, err := save(t, e.reg, e.specs(t, "team/app:1"), dir, saveCase{bases: []string{full.MetaPath}, codec: bundle.CodecZstd})
	if err != nil {
		t.Fatal(err)
	}
	if res.Meta.SchemaVersion != 2 || len(res.Meta.BaseBlobs) != 1 || res.Meta.BaseBlobs[0].Base != full.Meta.ID {
		t.Fatalf("schema %d, base blobs %+v", res.Meta.SchemaVersion, res.Meta.BaseBlobs)
	}
	host, stop := regtest.Olareg()
	defer stop()
	treg := newReg(t, host)
	tgt, _ := ref.NewHost(host)
	opts := transfer.UploadOptions{Target: transfer.RegistryTarget(tgt, "", nil)}
	incr, _ := bundle.Open(res.MetaPath)
	if _, err := transfer.Upload(context.Background(), incr, treg, opts); !errors.Is(err, bundle.ErrBaseMissing) {
		t.Fatalf("increment before its base: %v", err)
	}
	for _, bd := range []*bundle.Bundle{full, incr} {
		if _, err := transfer.Upload(context.Background(), bd, treg, opts); err != nil {
			t.Fatal(err)
		}
	}
	r, _ := ref.New(host + "/team/app:1")
	m, err := treg.ManifestGet(context.Background(), r)
	if err != nil || m.GetDescriptor().Digest != res.Meta.Images[0].Digest {
		t.Fatalf("team/app:1: %v", err)
	}
}
