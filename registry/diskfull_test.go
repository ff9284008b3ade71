package registry_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
	"github.com/ferry-oss/ferry/selection"
	"github.com/ferry-oss/ferry/transfer"
)

// bigSource is docker-registry holding a 6 MiB image (3 layers).
func bigSource(t *testing.T) (*regtest.Distribution, *registry.Registry, *regtest.Image) {
	t.Helper()
	src := regtest.StartDistribution(t, regtest.DistributionOptions{})
	reg := client(t, src, regtest.DistributionOptions{})
	img := regtest.NewBigImage(7, 3, 2<<20)
	r, _ := ref.New(src.Host + "/big/img:1")
	if err := regtest.Push(context.Background(), reg, r, img); err != nil {
		t.Fatal(err)
	}
	return src, reg, img
}

// TestSaveDiskFull: the output directory fills up mid-save: a clear error,
// no meta file and no part (.partial or not) left behind.
func TestSaveDiskFull(t *testing.T) {
	src, reg, _ := bigSource(t)
	out := filepath.Join(t.TempDir(), "usb")
	regtest.NeedTmpfs(t, out, 3<<20)
	_, err := saveBundle(t, reg, src.Host, out, "big/img:1")
	if !errors.Is(err, syscall.ENOSPC) && (err == nil || !strings.Contains(err.Error(), "no space left")) {
		t.Fatalf("err %v, want no space left on device", err)
	}
	noFiles(t, out)
}

// TestUploadTargetDiskFull: the target registry's storage fills up: the
// upload fails naming a blob, and no tag is pushed.
func TestUploadTargetDiskFull(t *testing.T) {
	src, reg, img := bigSource(t)
	dir := t.TempDir()
	res, err := saveBundle(t, reg, src.Host, dir, "big/img:1")
	if err != nil {
		t.Fatal(err)
	}
	dst := regtest.StartDistribution(t, regtest.DistributionOptions{StorageSize: 3 << 20})
	dreg, err := registry.New(registry.Options{Registries: []string{dst.Host}, Retries: 1, RetryDelay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	bd, err := bundle.Open(res.MetaPath)
	if err != nil {
		t.Fatal(err)
	}
	th, _ := ref.NewHost(dst.Host)
	_, err = transfer.Upload(context.Background(), bd, dreg, transfer.UploadOptions{Target: transfer.RegistryTarget(th, "", nil), Retries: 1})
	if err == nil {
		t.Fatal("upload into a full registry succeeded")
	}
	named := false // the config or a layer, whichever hit the full disk
	for _, b := range img.Big {
		named = named || strings.Contains(err.Error(), b.Desc.Digest.String())
	}
	for _, b := range img.Blobs {
		named = named || strings.Contains(err.Error(), b.Desc.Digest.String())
	}
	if !named {
		t.Errorf("error does not name the blob: %v", err)
	}
	if tags := regtest.Tags(t, dst, "big/img"); len(tags) != 0 {
		t.Errorf("tags %v pushed by a failed upload", tags)
	}
	t.Logf("error: %v", err)
}

// TestSaveReadOnlyOutput: an output directory that cannot be written fails
// the save with the file system's reason and leaves nothing.
func TestSaveReadOnlyOutput(t *testing.T) {
	src, reg, _ := bigSource(t)
	out := filepath.Join(t.TempDir(), "ro")
	regtest.NeedTmpfs(t, out, 1<<20)
	if err := syscall.Mount("", out, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	spec, err := selection.ParseImage("big/img:1", src.Host)
	if err != nil {
		t.Fatal(err)
	}
	w, err := bundle.NewWriter(bundle.WriterOptions{Dir: out, Parts: 1})
	if err == nil {
		_, err = transfer.Save(context.Background(), reg, w, []selection.ImageSpec{spec}, transfer.SaveOptions{Jobs: 1})
	}
	if !errors.Is(err, syscall.EROFS) {
		t.Fatalf("err %v, want read-only file system", err)
	}
	noFiles(t, out)
}
