package transfer_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/platform"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
	"github.com/ferry-oss/ferry/selection"
	"github.com/ferry-oss/ferry/transfer"
)

// env is a source registry seeded with the fixtures and a client for it.
type env struct {
	host string
	reg  *registry.Registry
	imgs map[string]*regtest.Image
}

func newReg(t testing.TB, hosts ...string) *registry.Registry { return regtest.Client(t, hosts...) }

func seeded(t testing.TB) *env {
	t.Helper()
	host, stop := regtest.Olareg()
	t.Cleanup(stop)
	e := &env{host: host, reg: newReg(t, host), imgs: regtest.Fixtures()}
	for name, img := range e.imgs {
		r, err := ref.New(host + "/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if err := regtest.Push(context.Background(), e.reg, r, img); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func (e *env) specs(t testing.TB, names ...string) []selection.ImageSpec {
	return regtest.Specs(t, e.host, names...)
}

type saveCase struct {
	images    []string
	platforms []string
	codec     bundle.Codec
	bases     []string
	split     int64
	single    bool
	jobs      int
}

func save(t testing.TB, src oci.Source, specs []selection.ImageSpec, dir string, c saveCase) (*transfer.SaveResult, error) {
	t.Helper()
	var plats []platform.Platform
	for _, p := range c.platforms {
		pp, err := platform.Parse(p)
		if err != nil {
			t.Fatal(err)
		}
		plats = append(plats, pp)
	}
	w, err := bundle.NewWriter(bundle.WriterOptions{Dir: dir, Codec: c.codec, Parts: max(c.jobs, 2), SplitSize: c.split, Single: c.single, Platforms: c.platforms, Bases: c.bases, Tool: "ferry test"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := transfer.Save(context.Background(), src, w, specs, transfer.SaveOptions{Platforms: plats, Jobs: max(c.jobs, 2), Retries: 2, RetryDelay: time.Millisecond})
	return withFile(t, res), err
}

// withFile replaces a SaveResult's Meta (no manifest bytes) by the meta
// file it wrote, for tests that edit and rewrite it; it first checks that
// the two agree but for those bytes.
func withFile(t testing.TB, res *transfer.SaveResult) *transfer.SaveResult {
	t.Helper()
	if res == nil || res.MetaPath == "" {
		return res
	}
	m, err := meta.Load(res.MetaPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != len(res.Meta.Manifests) || len(m.Blobs) != len(res.Meta.Blobs) || len(m.Images) != len(res.Meta.Images) || m.ID != res.Meta.ID {
		t.Fatalf("SaveResult.Meta and %s differ", res.MetaPath)
	}
	for i, mf := range res.Meta.Manifests {
		if mf.Raw != nil || m.Manifests[i].Digest != mf.Digest {
			t.Fatalf("SaveResult.Meta manifest %d: %s with %d bytes in memory, file %s", i, mf.Digest, len(mf.Raw), m.Manifests[i].Digest)
		}
	}
	res.Meta = m
	return res
}

func TestSaveVerifyUpload(t *testing.T) {
	e := seeded(t)
	cases := map[string]saveCase{
		"all platforms":  {images: []string{"library/multi:1"}},
		"one platform":   {images: []string{"library/multi:1"}, platforms: []string{"linux/arm64"}},
		"two platforms":  {images: []string{"library/multi:1"}, platforms: []string{"linux/amd64", "linux/arm/v7"}},
		"shared layers":  {images: []string{"team/app:1", "team/tools:1", "library/base:1"}},
		"zstd":           {images: []string{"team/app:1", "library/multi:1"}, codec: bundle.CodecZstd},
		"gzip":           {images: []string{"team/app:1"}, codec: bundle.CodecGzip},
		"xz":             {images: []string{"team/app:1"}, codec: bundle.CodecXz},
		"lz4":            {images: []string{"team/app:1"}, codec: bundle.CodecLz4},
		"single":         {images: []string{"team/app:1", "library/multi:1"}, single: true},
		"split":          {images: []string{"team/app:1", "library/multi:1"}, split: 1, jobs: 1},
		"rename":         {images: []string{"team/app:1 -> mirror/app:stable"}},
		"single-plat ok": {images: []string{"team/app:1"}, platforms: []string{"linux/amd64"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			res, err := save(t, e.reg, e.specs(t, c.images...), dir, c)
			if err != nil {
				t.Fatal(err)
			}
			m := res.Meta
			// Every blob stored once, parts are complete, no partial left.
			seen := map[digest.Digest]bool{}
			for _, b := range m.Blobs {
				if seen[b.Digest] {
					t.Errorf("blob %s stored twice", b.Digest)
				}
				seen[b.Digest] = true
			}
			left, _ := filepath.Glob(filepath.Join(dir, "*.partial"))
			if len(left) > 0 {
				t.Errorf("partial files left: %v", left)
			}
			if c.single && len(m.Parts) != 1 {
				t.Errorf("single: %d parts", len(m.Parts))
			}
			if c.split == 1 && len(m.Parts) < len(m.Blobs) {
				t.Errorf("split: %d parts for %d blobs", len(m.Parts), len(m.Blobs))
			}
			for _, p := range m.Parts {
				if !strings.HasSuffix(p.Name, ".tar"+c.codec.Ext()) {
					t.Errorf("part %s: want extension .tar%s", p.Name, c.codec.Ext())
				}
			}
			bd, err := bundle.Open(res.MetaPath)
			if err != nil {
				t.Fatal(err)
			}
			if err := bd.Verify(context.Background(), 2, nil); err != nil {
				t.Fatalf("verify: %v", err)
			}
			// Upload to an empty registry; digests must match the meta.
			thost, stop := regtest.Olareg()
			defer stop()
			treg := newReg(t, thost)
			tgt, _ := ref.NewHost(thost)
			ur, err := transfer.Upload(context.Background(), bd, treg, transfer.UploadOptions{Target: transfer.RegistryTarget(tgt, "ns", nil), Jobs: 2})
			if err != nil {
				t.Fatalf("upload: %v", err)
			}
			if ur.BlobsPushed != len(m.Blobs) {
				t.Errorf("pushed %d blobs, bundle has %d", ur.BlobsPushed, len(m.Blobs))
			}
			for _, img := range m.Images {
				r, _ := ref.New(thost + "/ns/" + img.Repository + ":" + img.Tag)
				got, err := treg.ManifestGet(context.Background(), r)
				if err != nil {
					t.Fatalf("%s: %v", r.CommonName(), err)
				}
				if got.GetDescriptor().Digest != img.Digest {
					t.Errorf("%s: digest %s, meta says %s", r.CommonName(), got.GetDescriptor().Digest, img.Digest)
				}
			}
			// A second upload sends nothing again.
			ur, err = transfer.Upload(context.Background(), bd, treg, transfer.UploadOptions{Target: transfer.RegistryTarget(tgt, "ns", nil), Jobs: 2})
			if err != nil {
				t.Fatal(err)
			}
			if ur.BlobsPushed != 0 {
				t.Errorf("re-upload pushed %d blobs", ur.BlobsPushed)
			}
		})
	}
}

func TestPlatformFilter(t *testing.T) {
	e := seeded(t)
	src := e.imgs["library/multi:1"]
	tests := []struct {
		platforms []string
		want      int
		err       error
	}{
		{nil, 3, nil},
		{[]string{"linux/arm64"}, 1, nil},
		{[]string{"linux/amd64", "linux/arm/v7"}, 2, nil},
		{[]string{"windows/amd64"}, 0, oci.ErrPlatformMismatch},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.platforms, ","), func(t *testing.T) {
			res, err := save(t, e.reg, e.specs(t, "library/multi:1"), t.TempDir(), saveCase{platforms: tt.platforms})
			if tt.err != nil {
				if !errors.Is(err, tt.err) || !errors.Is(err, oci.ErrImagesFailed) {
					t.Fatalf("err %v, want %v", err, tt.err)
				}
				if !strings.Contains(err.Error(), "library/multi:1") {
					t.Errorf("error does not name the image: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			img := res.Meta.Images[0]
			if len(img.Platforms) != tt.want {
				t.Errorf("platforms %v, want %d", img.Platforms, tt.want)
			}
			if (tt.want == 3) != (img.Digest == src.Digest()) {
				t.Errorf("digest %s, source %s: a filtered index must get a new digest, an unfiltered one keep it", img.Digest, src.Digest())
			}
			if tt.want < 3 && img.SourceDigest != src.Digest() {
				t.Errorf("sourceDigest %s, want %s", img.SourceDigest, src.Digest())
			}
			// manifests: index + kept children
			if len(res.Meta.Manifests) != tt.want+1 {
				t.Errorf("%d manifests, want %d", len(res.Meta.Manifests), tt.want+1)
			}
		})
	}
	// a single-platform image that does not match is an error naming it
	_, err := save(t, e.reg, e.specs(t, "team/app:1"), t.TempDir(), saveCase{platforms: []string{"linux/arm64"}})
	if !errors.Is(err, oci.ErrPlatformMismatch) || !strings.Contains(err.Error(), "team/app:1") {
		t.Fatalf("err %v, want platform mismatch naming team/app:1", err)
	}
}

func TestIncremental(t *testing.T) {
	e := seeded(t)
	dir := t.TempDir()
	full, err := save(t, e.reg, e.specs(t, "library/base:1"), dir, saveCase{})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // bundle ids are per second
	incr, err := save(t, e.reg, e.specs(t, "team/app:1", "team/tools:1"), dir, saveCase{bases: []string{full.MetaPath}})
	if err != nil {
		t.Fatal(err)
	}
	m := incr.Meta
	if m.Type != meta.TypeIncremental || len(m.Bases) != 1 || m.Bases[0].ID != full.Meta.ID {
		t.Fatalf("type %s bases %+v", m.Type, m.Bases)
	}
	base := full.Meta.Blobs
	for _, b := range m.Blobs {
		if slices.ContainsFunc(base, func(x meta.Blob) bool { return x.Digest == b.Digest }) {
			t.Errorf("increment stores base blob %s", b.Digest)
		}
	}
	if len(m.BaseBlobs) == 0 || incr.Skipped == 0 {
		t.Fatalf("no base blobs recorded (skipped %d)", incr.Skipped)
	}
	// An increment of the increment skips blobs of both.
	time.Sleep(1100 * time.Millisecond)
	incr2, err := save(t, e.reg, e.specs(t, "team/app:1", "library/multi:1"), dir, saveCase{bases: []string{incr.MetaPath}})
	if err != nil {
		t.Fatal(err)
	}
	if len(incr2.Meta.Bases) != 2 {
		t.Errorf("bases %+v, want the increment and its full", incr2.Meta.Bases)
	}
	for _, b := range incr2.Meta.Blobs {
		if slices.ContainsFunc(m.Blobs, func(x meta.Blob) bool { return x.Digest == b.Digest }) || slices.ContainsFunc(base, func(x meta.Blob) bool { return x.Digest == b.Digest }) {
			t.Errorf("second increment stores blob %s again", b.Digest)
		}
	}

	// Upload: the increment onto an empty registry is refused, nothing pushed.
	thost, stop := regtest.Olareg()
	defer stop()
	treg := newReg(t, thost)
	tgt, _ := ref.NewHost(thost)
	target := transfer.RegistryTarget(tgt, "", nil)
	ib, err := bundle.Open(incr.MetaPath)
	if err != nil {
		t.Fatal(err)
	}
	_, err = transfer.Upload(context.Background(), ib, treg, transfer.UploadOptions{Target: target})
	var bme *transfer.BaseMissingError
	if !errors.Is(err, bundle.ErrBaseMissing) || !errors.As(err, &bme) || bme.Missing == 0 || !strings.Contains(err.Error(), full.Meta.ID) {
		t.Fatalf("err %v, want base missing naming %s", err, full.Meta.ID)
	}
	for _, b := range m.Blobs {
		r, _ := target(b.Repos[0])
		if ok, _ := treg.BlobExists(context.Background(), r, descOf(b)); ok {
			t.Errorf("blob %s pushed although the upload was refused", b.Digest)
		}
	}
	// Full, then the increment (a new repository needs base blobs: mounted).
	fb, _ := bundle.Open(full.MetaPath)
	if _, err := transfer.Upload(context.Background(), fb, treg, transfer.UploadOptions{Target: target}); err != nil {
		t.Fatal(err)
	}
	res, err := transfer.Upload(context.Background(), ib, treg, transfer.UploadOptions{Target: target})
	if err != nil {
		t.Fatal(err)
	}
	if res.BlobsMounted == 0 {
		t.Errorf("no base blob mounted into the new repositories")
	}
	for _, img := range m.Images {
		r, _ := ref.New(thost + "/" + img.Repository + ":" + img.Tag)
		got, err := treg.ManifestGet(context.Background(), r)
		if err != nil || got.GetDescriptor().Digest != img.Digest {
			t.Fatalf("%s: %v", r.CommonName(), err)
		}
	}
}

func TestCorruptPart(t *testing.T) {
	e := seeded(t)
	for _, codec := range []bundle.Codec{bundle.CodecNone, bundle.CodecZstd} {
		t.Run(string(codec), func(t *testing.T) {
			dir := t.TempDir()
			res, err := save(t, e.reg, e.specs(t, "team/app:1"), dir, saveCase{codec: codec, single: true})
			if err != nil {
				t.Fatal(err)
			}
			// flip a byte in the middle of the biggest blob's data
			part := filepath.Join(dir, res.Meta.Parts[0].Name)
			b, err := os.ReadFile(part)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/3] ^= 0xff
			if err := os.WriteFile(part, b, 0o644); err != nil {
				t.Fatal(err)
			}
			bd, err := bundle.Open(res.MetaPath)
			if err != nil {
				t.Fatal(err)
			}
			err = bd.Verify(context.Background(), 1, nil)
			if err == nil || !strings.Contains(err.Error(), res.Meta.Parts[0].Name) {
				t.Fatalf("verify: %v", err)
			}
			if !errors.Is(err, bundle.ErrPartCorrupt) && !errors.Is(err, oci.ErrDigestMismatch) {
				t.Errorf("verify err %v: want part corrupt or digest mismatch", err)
			}
			thost, stop := regtest.Olareg()
			defer stop()
			treg := newReg(t, thost)
			tgt, _ := ref.NewHost(thost)
			_, err = transfer.Upload(context.Background(), bd, treg, transfer.UploadOptions{Target: transfer.RegistryTarget(tgt, "", nil)})
			if err == nil {
				t.Fatal("upload of a corrupt part succeeded")
			}
			r, _ := ref.New(thost + "/team/app:1")
			if _, err := treg.ManifestGet(context.Background(), r); err == nil {
				t.Error("manifest pushed although a part was corrupt")
			}
		})
	}
}

func TestMissingPart(t *testing.T) {
	e := seeded(t)
	dir := t.TempDir()
	res, err := save(t, e.reg, e.specs(t, "team/app:1", "library/multi:1"), dir, saveCase{})
	if err != nil {
		t.Fatal(err)
	}
	name := res.Meta.Parts[0].Name
	if err := os.Remove(filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
	bd, _ := bundle.Open(res.MetaPath)
	err = bd.Verify(context.Background(), 2, nil)
	if !errors.Is(err, bundle.ErrPartMissing) || !strings.Contains(err.Error(), name) {
		t.Fatalf("verify: %v", err)
	}
	thost, stop := regtest.Olareg()
	defer stop()
	tgt, _ := ref.NewHost(thost)
	_, err = transfer.Upload(context.Background(), bd, newReg(t, thost), transfer.UploadOptions{Target: transfer.RegistryTarget(tgt, "", nil)})
	if !errors.Is(err, bundle.ErrPartMissing) {
		t.Fatalf("upload: %v", err)
	}
}

func TestFailedImageWritesNoMeta(t *testing.T) {
	e := seeded(t)
	dir := t.TempDir()
	_, err := save(t, e.reg, e.specs(t, "team/app:1", "nosuch/image:1"), dir, saveCase{})
	var fe *transfer.FailedError
	if !errors.As(err, &fe) || len(fe.Images) != 1 || !strings.Contains(fe.Images[0].Image, "nosuch/image:1") {
		t.Fatalf("err %v", err)
	}
	if files, _ := os.ReadDir(dir); len(files) != 0 {
		t.Errorf("files left after a failed save: %v", files)
	}
}

func TestKeepGoingPartial(t *testing.T) {
	e := seeded(t)
	dir := t.TempDir()
	specs := e.specs(t, "team/app:1", "nosuch/image:1")
	w, err := bundle.NewWriter(bundle.WriterOptions{Dir: dir, Parts: 2})
	if err != nil {
		t.Fatal(err)
	}
	res, err := transfer.Save(context.Background(), e.reg, w, specs, transfer.SaveOptions{KeepGoing: true, RetryDelay: time.Millisecond})
	if !errors.Is(err, oci.ErrImagesFailed) || res == nil {
		t.Fatalf("err %v res %v", err, res)
	}
	m, err := meta.Load(res.MetaPath)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Partial || len(m.Failed) != 1 || len(m.Images) != 1 {
		t.Fatalf("partial %v failed %v images %d", m.Partial, m.Failed, len(m.Images))
	}
}

func descOf(b meta.Blob) descriptor.Descriptor {
	return descriptor.Descriptor{MediaType: b.MediaType, Digest: b.Digest, Size: b.Size}
}

func mustPlatforms(t testing.TB, names ...string) []platform.Platform {
	t.Helper()
	var out []platform.Platform
	for _, n := range names {
		p, err := platform.Parse(n)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// hostRewrite serves references to registry.test:5000 from the real host.
type hostRewrite struct {
	oci.Source
	host string
}

func (h hostRewrite) ManifestGet(ctx context.Context, r ref.Ref) (manifest.Manifest, error) {
	r.Registry = h.host
	return h.Source.ManifestGet(ctx, r)
}

func (h hostRewrite) BlobGet(ctx context.Context, r ref.Ref, d descriptor.Descriptor) (io.ReadCloser, error) {
	r.Registry = h.host
	return h.Source.BlobGet(ctx, r, d)
}

// stallSource delivers a few bytes of every blob, then blocks until the
// context ends, like a transfer interrupted by Ctrl-C.
type stallSource struct {
	oci.Source
	started chan struct{}
	once    sync.Once
}

func (s *stallSource) BlobGet(ctx context.Context, r ref.Ref, d descriptor.Descriptor) (io.ReadCloser, error) {
	rc, err := s.Source.BlobGet(ctx, r, d)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(io.LimitReader(rc, 10), readerFunc(func([]byte) (int, error) {
		s.once.Do(func() { close(s.started) })
		<-ctx.Done()
		return 0, ctx.Err()
	})), rc}, nil
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func TestInterruptLeavesNothing(t *testing.T) {
	e := seeded(t)
	dir := t.TempDir()
	src := &stallSource{Source: e.reg, started: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-src.started; cancel() }()
	w, err := bundle.NewWriter(bundle.WriterOptions{Dir: dir, Parts: 2})
	if err != nil {
		t.Fatal(err)
	}
	_, err = transfer.Save(ctx, src, w, e.specs(t, "team/app:1", "library/multi:1"), transfer.SaveOptions{Jobs: 2, Retries: 3, RetryDelay: time.Millisecond})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if files, _ := os.ReadDir(dir); len(files) != 0 {
		var names []string
		for _, f := range files {
			names = append(names, f.Name())
		}
		t.Fatalf("an interrupted save left %v", names)
	}
}

// TestBundleAsSource re-bundles a bundle: the Bundle is a Source whose
// manifests come from the meta file and blobs from the parts.
func TestBundleAsSource(t *testing.T) {
	e := seeded(t)
	first, err := save(t, e.reg, e.specs(t, "team/app:1", "library/multi:1"), t.TempDir(), saveCase{codec: bundle.CodecZstd})
	if err != nil {
		t.Fatal(err)
	}
	bd, err := bundle.Open(first.MetaPath)
	if err != nil {
		t.Fatal(err)
	}
	specs := []selection.ImageSpec{}
	for _, n := range []string{"bundle.local/team/app:1", "bundle.local/library/multi:1"} {
		s, _ := selection.ParseImage(n, "")
		specs = append(specs, s)
	}
	second, err := save(t, bd, specs, t.TempDir(), saveCase{platforms: []string{"linux/amd64"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range second.Meta.Images {
		if img.Repository == "team/app" && img.Digest != e.imgs["team/app:1"].Digest() {
			t.Errorf("team/app re-bundled as %s", img.Digest)
		}
		if img.Repository == "library/multi" && len(img.Platforms) != 1 {
			t.Errorf("multi re-bundled with platforms %v", img.Platforms)
		}
	}
	b2, _ := bundle.Open(second.MetaPath)
	if err := b2.Verify(context.Background(), 2, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := bd.BlobGet(context.Background(), ref.Ref{}, descriptor.Descriptor{Digest: digest.FromString("nope")}); !errors.Is(err, bundle.ErrBlobMissing) {
		t.Errorf("missing blob: %v", err)
	}
}

// TestSplitSizeBlobBoundary: --split-size starts a new part only at a blob
// boundary: every entry starts before the split size in its part (a part
// passes the size by its last blob at most), blobs larger than the split
// get a part each, and the bundle verifies.
func TestSplitSizeBlobBoundary(t *testing.T) {
	e := seeded(t)
	for _, c := range []saveCase{
		{images: []string{"team/app:1", "library/multi:1"}, split: 1, jobs: 1},
		{images: []string{"team/app:1", "library/multi:1"}, split: 700, jobs: 1},
		{images: []string{"team/app:1", "library/multi:1"}, split: 700, jobs: 3},
		{images: []string{"team/app:1", "library/multi:1"}, split: 1 << 30, jobs: 1},
	} {
		t.Run(fmt.Sprintf("split %d jobs %d", c.split, c.jobs), func(t *testing.T) {
			res, err := save(t, e.reg, e.specs(t, c.images...), t.TempDir(), c)
			if err != nil {
				t.Fatal(err)
			}
			m := res.Meta
			sizes := map[string]int64{}
			for _, p := range m.Parts {
				sizes[p.Name] = p.Size
			}
			over := 0
			check := func(what string, part string, size int64, loc meta.Location) {
				if loc.Offset >= c.split {
					t.Errorf("%s starts at %d in %s, past the split size %d", what, loc.Offset, part, c.split)
				}
				if loc.Offset+loc.Length > sizes[part] {
					t.Errorf("%s ends at %d, after its part %s (%d bytes)", what, loc.Offset+loc.Length, part, sizes[part])
				}
				if size > c.split {
					over++
				}
			}
			for _, b := range m.Blobs {
				check("blob "+b.Digest.String(), b.Part, b.Size, b.Location)
			}
			for _, mf := range m.Manifests {
				check("manifest "+mf.Digest.String(), mf.Part, mf.Size, mf.Location)
			}
			if c.split == 1 && len(m.Parts) < len(m.Blobs)+len(m.Manifests) {
				t.Errorf("split 1: %d parts for %d entries: every entry is larger than the split, so each needs its own part", len(m.Parts), len(m.Blobs)+len(m.Manifests))
			}
			if c.split == 1<<30 && len(m.Parts) != 1 {
				t.Errorf("split 1 GiB: %d parts", len(m.Parts))
			}
			if c.split == 700 && over == 0 {
				t.Fatal("no entry larger than the split: the case tests nothing")
			}
			bd, err := bundle.Open(res.MetaPath)
			if err != nil {
				t.Fatal(err)
			}
			if err := bd.Verify(context.Background(), 2, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSaveRejectsTargetClash(t *testing.T) {
	specs, err := selection.ParseList(strings.NewReader("localhost:5000/a/app:1 -> x/app:1\nlocalhost:5000/b/app:1 -> x/app:1\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	w, err := bundle.NewWriter(bundle.WriterOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = transfer.Save(context.Background(), nil, w, specs, transfer.SaveOptions{})
	if !errors.Is(err, selection.ErrBadList) || !strings.Contains(err.Error(), "x/app:1") {
		t.Fatalf("err %v", err)
	}
}
