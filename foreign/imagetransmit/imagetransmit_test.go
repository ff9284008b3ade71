package imagetransmit_test

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/foreign/imagetransmit"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
	"github.com/ferry-oss/ferry/registry/serve"
	"github.com/ferry-oss/ferry/selection"
	"github.com/ferry-oss/ferry/transfer"
)

func init() { imagetransmit.Register() }

// variants are the fixture directories: image-transmit d5e5061's CLI in
// tar, squashfs and zstd mode (plain tar files recorded as zstd), and the
// Windows GUI's whole-file compressed data files.
var variants = []string{"tar", "squashfs", "zstd", "gui-zstd", "gui-gzip", "gui-xz", "gui-lz4"}

func fixtureDir() string { return filepath.Join(regtest.TestdataDir(), "imagetransmit") }

// metas returns a variant's full and incremental meta files.
func metas(t *testing.T, variant string) (full, incr string) {
	t.Helper()
	for _, kind := range []string{"full", "incr"} {
		got, _ := filepath.Glob(filepath.Join(fixtureDir(), variant, "img_amd64_"+kind+"_*_meta.yaml"))
		if len(got) != 1 {
			t.Fatalf("%s: %d %s meta files", variant, len(got), kind)
		}
		if kind == "full" {
			full = got[0]
		} else {
			incr = got[0]
		}
	}
	return full, incr
}

// sourceDigests are the digests image-transmit must have stored: the
// images' own, and for the manifest list its linux/amd64 child's.
func sourceDigests() map[string]digest.Digest {
	out := map[string]digest.Digest{}
	for name, img := range regtest.ImageTransmitFixtures() {
		out[name] = img.Digest()
		if len(img.Children) > 0 {
			out[name] = img.Children[0].Digest()
		}
	}
	return out
}

func TestOpenAndVerify(t *testing.T) {
	want := sourceDigests()
	for _, v := range variants {
		t.Run(v, func(t *testing.T) {
			full, incr := metas(t, v)
			for _, file := range []string{full, incr} {
				bd, err := bundle.Open(file)
				if err != nil {
					t.Fatal(err)
				}
				for _, img := range bd.Meta.Images {
					if want[img.Repository+":"+img.Tag] != img.Digest {
						t.Errorf("%s: %s stored as %s, the source has %s", filepath.Base(file), img.Source, img.Digest, want[img.Repository+":"+img.Tag])
					}
				}
				err = bd.Verify(context.Background(), 2, nil)
				if v == "squashfs" && file == incr {
					// it/app:2's last layer was gzipped like GNU gzip -9: image-transmit
					// kept it unpacked and no one can give its bytes back
					if !errors.Is(err, imagetransmit.ErrNotReproducible) {
						t.Fatalf("verify: %v, want ErrNotReproducible", err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("verify %s: %v", filepath.Base(file), err)
				}
			}
			bd, _ := bundle.Open(incr)
			if bd.Meta.Type != meta.TypeIncremental || len(bd.Meta.BaseBlobs) != 2 || len(bd.Meta.Bases) != 1 || bd.Meta.Bases[0].ID != strings.TrimSuffix(filepath.Base(full), "_meta.yaml") {
				t.Fatalf("increment: type %s, %d base blobs, bases %+v", bd.Meta.Type, len(bd.Meta.BaseBlobs), bd.Meta.Bases)
			}
		})
	}
}

// target starts an empty olareg registry.
func target(t *testing.T) (*registry.Registry, ref.Ref) {
	t.Helper()
	host, stop := regtest.Olareg()
	t.Cleanup(stop)
	reg, err := registry.New(registry.Options{Registries: []string{host}, RetryDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := ref.NewHost(host)
	return reg, r
}

func upload(t *testing.T, reg *registry.Registry, host ref.Ref, file string) (*transfer.UploadResult, error) {
	t.Helper()
	bd, err := bundle.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	return transfer.Upload(context.Background(), bd, reg, transfer.UploadOptions{Target: transfer.RegistryTarget(host, "mirror", nil), Jobs: 2})
}

// digestAt is the digest of repo:tag at the target ("" when missing).
func digestAt(t *testing.T, reg *registry.Registry, host ref.Ref, repoTag string) digest.Digest {
	t.Helper()
	r, _ := ref.New(host.Registry + "/mirror/" + repoTag)
	m, err := reg.ManifestGet(context.Background(), r)
	if err != nil {
		return ""
	}
	return m.GetDescriptor().Digest
}

func TestUploadFullThenIncrement(t *testing.T) {
	want := sourceDigests()
	for _, v := range variants {
		t.Run(v, func(t *testing.T) {
			reg, host := target(t)
			full, incr := metas(t, v)
			if _, err := upload(t, reg, host, full); err != nil {
				t.Fatal(err)
			}
			for _, it := range []string{"it/base:1", "it/app:1", "it/oci:1", "it/multi:1"} {
				if got := digestAt(t, reg, host, it); got != want[it] {
					t.Errorf("%s at the target: %s, source %s", it, got, want[it])
				}
			}
			_, err := upload(t, reg, host, incr)
			got := digestAt(t, reg, host, "it/app:2")
			if v == "squashfs" {
				if !errors.Is(err, imagetransmit.ErrNotReproducible) || got != "" {
					t.Fatalf("squashfs increment: %v, it/app:2 at %q; want ErrNotReproducible and no tag", err, got)
				}
				return
			}
			if err != nil || got != want["it/app:2"] {
				t.Fatalf("increment: %v; it/app:2 at %s, source %s", err, got, want["it/app:2"])
			}
		})
	}
}

func TestIncrementWithoutBaseRefused(t *testing.T) {
	for _, v := range []string{"tar", "squashfs", "gui-xz"} {
		t.Run(v, func(t *testing.T) {
			reg, host := target(t)
			_, incr := metas(t, v)
			res, err := upload(t, reg, host, incr)
			if !errors.Is(err, bundle.ErrBaseMissing) {
				t.Fatalf("upload: %v, want ErrBaseMissing", err)
			}
			if res != nil && res.BlobsPushed > 0 {
				t.Fatalf("%d blobs pushed before the refusal", res.BlobsPushed)
			}
			if !strings.Contains(err.Error(), "img_amd64_full_") {
				t.Errorf("the error does not name the base: %v", err)
			}
		})
	}
}

// corrupt copies a variant's full bundle and flips a byte of its first
// data file at off (from the end when negative).
func corrupt(t *testing.T, v string, off int64) string {
	t.Helper()
	full, _ := metas(t, v)
	dir := t.TempDir()
	files, _ := filepath.Glob(strings.TrimSuffix(full, "_meta.yaml") + "*")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(f, "_meta.yaml") && (strings.HasSuffix(f, "_0"+filepath.Ext(f)) || strings.HasSuffix(f, ".squashfs")) {
			i := off
			if i < 0 {
				i += int64(len(b))
			}
			b[i] ^= 0x20
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, filepath.Base(full))
}

func TestCorruptDataFileRefused(t *testing.T) {
	for _, tc := range []struct {
		variant string
		off     int64
	}{
		{"tar", 600},          // inside the first blob's bytes
		{"gui-zstd", 40},      // inside the frame
		{"gui-gzip", 30},      // inside the deflate stream
		{"squashfs", 200},     // inside the image's data blocks
		{"gui-lz4", 20},       // inside the frame
		{"gui-xz", 60},        // inside the stream
		{"zstd", 512 + 3*512}, // a plain tar despite its name: the second entry's data
	} {
		t.Run(tc.variant, func(t *testing.T) {
			file := corrupt(t, tc.variant, tc.off)
			bd, err := bundle.Open(file)
			if err == nil {
				err = bd.Verify(context.Background(), 2, nil)
			}
			if err == nil {
				t.Fatal("a corrupt data file verified")
			}
			if bd == nil {
				return // refused at open: nothing can be uploaded either
			}
			reg, host := target(t)
			if _, err := transfer.Upload(context.Background(), bd, reg, transfer.UploadOptions{Target: transfer.RegistryTarget(host, "mirror", nil), RetryDelay: time.Millisecond}); err == nil {
				t.Fatal("a corrupt data file uploaded")
			}
			for _, it := range []string{"it/base:1", "it/app:1", "it/oci:1", "it/multi:1"} {
				if got := digestAt(t, reg, host, it); got != "" {
					t.Errorf("%s tagged at the target from a corrupt bundle", it)
				}
			}
		})
	}
}

func TestNotABundle(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"list.txt":   "it/base:1\n",
		"cfg.yaml":   "source:\n- registry: http://127.0.0.1:5000\n",
		"empty.yaml": "",
	} {
		p := filepath.Join(dir, name)
		_ = os.WriteFile(p, []byte(content), 0o644)
		_, err := bundle.Open(p)
		if !errors.Is(err, bundle.ErrNotBundle) || strings.Count(err.Error(), "\n") > 0 {
			t.Errorf("%s: %v, want one line with ErrNotBundle", name, err)
		}
	}
}

// An image-transmit meta file is a base for ferry's increments: what it
// carried is skipped and recorded with its id.
func TestSaveOnImageTransmitBase(t *testing.T) {
	host, stop := regtest.Olareg()
	t.Cleanup(stop)
	reg, err := registry.New(registry.Options{Registries: []string{host}})
	if err != nil {
		t.Fatal(err)
	}
	imgs := regtest.ImageTransmitFixtures()
	r, _ := ref.New(host + "/it/app:2")
	if err := regtest.Push(context.Background(), reg, r, imgs["it/app:2"]); err != nil {
		t.Fatal(err)
	}
	full, _ := metas(t, "squashfs")
	spec, _ := selection.ParseImage("it/app:2", host)
	w, err := bundle.NewWriter(bundle.WriterOptions{Dir: t.TempDir(), Parts: 1, Bases: []string{full}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := transfer.Save(context.Background(), reg, w, []selection.ImageSpec{spec}, transfer.SaveOptions{Jobs: 1})
	if err != nil {
		t.Fatal(err)
	}
	m := res.Meta
	if res.Skipped != 2 || len(m.BaseBlobs) != 2 || m.BaseBlobs[0].Base != strings.TrimSuffix(filepath.Base(full), "_meta.yaml") || m.Type != meta.TypeIncremental {
		t.Fatalf("skipped %d, base blobs %+v, type %s", res.Skipped, m.BaseBlobs, m.Type)
	}
	if _, err := meta.Load(res.MetaPath); err != nil {
		t.Fatalf("the increment's meta file: %v", err)
	}
}

func TestOpenBlobStreams(t *testing.T) {
	full, _ := metas(t, "squashfs")
	bd, err := bundle.Open(full)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bd.Meta.Blobs {
		rc, err := bd.OpenBlob(context.Background(), b.Digest)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || digest.FromBytes(data) != b.Digest {
			t.Fatalf("blob %s: %v", b.Digest, err)
		}
	}
}

// TestServe: ferry serve answers from an image-transmit increment and its
// base, straight from their data files; a pull gets the source's bytes.
func TestServe(t *testing.T) {
	full, incr := metas(t, "gui-zstd")
	set, err := bundle.OpenSet(incr, full)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := serve.New(set, serve.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	host := strings.TrimPrefix(hs.URL, "http://")
	reg, err := registry.New(registry.Options{Registries: []string{host}})
	if err != nil {
		t.Fatal(err)
	}
	want := sourceDigests()
	for _, name := range []string{"it/app:2", "it/base:1"} {
		r, _ := ref.New(host + "/" + name)
		m, err := reg.ManifestGet(context.Background(), r)
		if err != nil || m.GetDescriptor().Digest != want[name] {
			t.Fatalf("%s: %v %v", name, m, err)
		}
		img := regtest.ImageTransmitFixtures()[name]
		for _, b := range img.Blobs {
			rc, err := reg.BlobGet(context.Background(), r, b.Desc)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || digest.FromBytes(got) != b.Desc.Digest {
				t.Fatalf("%s blob %s: %v", name, b.Desc.Digest, err)
			}
		}
	}
}

// TestFixturesUnchanged: the bundles image-transmit wrote are never
// edited; SHA256SUMS pins them.
func TestFixturesUnchanged(t *testing.T) {
	sums, err := os.ReadFile(filepath.Join(fixtureDir(), "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q", line)
		}
		b, err := os.ReadFile(filepath.Join(fixtureDir(), name))
		if err != nil {
			t.Fatal(err)
		}
		if got := digest.FromBytes(b).Encoded(); got != sum {
			t.Errorf("%s changed: sha256 %s, SHA256SUMS says %s", name, got, sum)
		}
		n++
	}
	if n < 20 {
		t.Fatalf("SHA256SUMS pins %d files", n)
	}
}
