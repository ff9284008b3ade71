package transfer_test

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/oci"
	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
	"github.com/ferry-oss/ferry/selection"
	"github.com/ferry-oss/ferry/transfer"
)

// countingSource counts the blob bytes read from a Source, per digest.
type countingSource struct {
	oci.Source
	mu    sync.Mutex
	bytes map[digest.Digest]int64
	total atomic.Int64
}

func (c *countingSource) BlobGet(ctx context.Context, r ref.Ref, d descriptor.Descriptor) (io.ReadCloser, error) {
	rc, err := c.Source.BlobGet(ctx, r, d)
	if err != nil {
		return nil, err
	}
	return &countRC{rc: rc, c: c, d: d.Digest}, nil
}

type countRC struct {
	rc io.ReadCloser
	c  *countingSource
	d  digest.Digest
}

func (r *countRC) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	r.c.total.Add(int64(n))
	r.c.mu.Lock()
	r.c.bytes[r.d] += int64(n)
	r.c.mu.Unlock()
	return n, err
}
func (r *countRC) Close() error { return r.rc.Close() }

func syncTargets(t *testing.T, reg *registry.Registry, hosts ...string) []transfer.SyncTarget {
	t.Helper()
	var out []transfer.SyncTarget
	for _, h := range hosts {
		host, err := ref.NewHost(h)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, transfer.SyncTarget{Name: h + "/mirror", Sink: reg, Repo: transfer.RegistryTarget(host, "mirror", nil)})
	}
	return out
}

// twoTargets: the seeded source behind a byte counter and two empty
// olareg targets (namespace mirror).
func twoTargets(t *testing.T) (e *env, src *countingSource, dreg *registry.Registry, t1, t2 string, targets []transfer.SyncTarget) {
	t.Helper()
	e = seeded(t)
	var stop func()
	t1, stop = regtest.Olareg()
	t.Cleanup(stop)
	t2, stop = regtest.Olareg()
	t.Cleanup(stop)
	dreg = newReg(t, t1, t2)
	src = &countingSource{Source: e.reg, bytes: map[digest.Digest]int64{}}
	return e, src, dreg, t1, t2, syncTargets(t, dreg, t1, t2)
}

func syncImages(specs []selection.ImageSpec) []transfer.SyncImage {
	out := make([]transfer.SyncImage, len(specs))
	for i, s := range specs {
		out[i] = transfer.SyncImage{Spec: s}
	}
	return out
}

func TestSyncTwoTargets(t *testing.T) {
	e, src, dreg, t1, t2, targets := twoTargets(t)
	names := []string{"library/multi:1", "team/app:1 -> apps/app:stable", "team/tools:1"}
	ctx := context.Background()

	res, err := transfer.Sync(ctx, src, targets, syncImages(e.specs(t, names...)), transfer.SyncOptions{Jobs: 3})
	if err != nil {
		t.Fatal(err)
	}
	// each blob read once from the source, for both targets
	var unique int64
	seen := map[digest.Digest]bool{}
	for _, img := range []string{"library/multi:1", "team/app:1", "team/tools:1"} {
		for _, b := range e.imgs[img].Blobs {
			if !seen[b.Desc.Digest] {
				seen[b.Desc.Digest] = true
				unique += b.Desc.Size
			}
		}
	}
	for dg, n := range src.bytes {
		if n != mustSize(t, e, dg) {
			t.Errorf("blob %s: read %d bytes from the source", dg, n)
		}
	}
	if src.total.Load() != unique || res.BytesRead != unique {
		t.Errorf("read %d bytes from the source (result says %d), want one copy: %d", src.total.Load(), res.BytesRead, unique)
	}
	for i, tr := range res.Targets {
		if tr.Images != 3 || tr.Failed != 0 || tr.BlobsPushed != len(seen) || tr.BytesPushed != unique {
			t.Errorf("target %d: %+v (want %d blobs, %d bytes)", i, tr, len(seen), unique)
		}
		// the base layer is shared by three repositories: pushed once, mounted
		if tr.BlobsMounted < 2 {
			t.Errorf("target %d: %d blobs mounted", i, tr.BlobsMounted)
		}
	}
	for _, h := range []string{t1, t2} {
		for name, want := range map[string]string{
			"mirror/library/multi:1": "library/multi:1",
			"mirror/apps/app:stable": "team/app:1",
			"mirror/team/tools:1":    "team/tools:1",
		} {
			r, _ := ref.New(h + "/" + name)
			dg, err := dreg.ManifestDigest(ctx, r)
			if err != nil || dg != e.imgs[want].Digest() {
				t.Errorf("%s: %s %v, want %s", r.CommonName(), dg, err, e.imgs[want].Digest())
			}
		}
	}

	// a second run pushes nothing and reads no blob
	src.total.Store(0)
	res, err = transfer.Sync(ctx, src, targets, syncImages(e.specs(t, names...)), transfer.SyncOptions{Jobs: 3})
	if err != nil {
		t.Fatal(err)
	}
	tot := res.Total()
	if tot.BlobsPushed != 0 || tot.Manifests != 0 || tot.UpToDate != 6 || src.total.Load() != 0 {
		t.Errorf("second run: %+v, %d bytes read", tot, src.total.Load())
	}
}

func mustSize(t *testing.T, e *env, dg digest.Digest) int64 {
	t.Helper()
	for _, img := range e.imgs {
		for _, b := range img.Blobs {
			if b.Desc.Digest == dg {
				return b.Desc.Size
			}
		}
	}
	t.Fatalf("unknown blob %s", dg)
	return 0
}

// TestSyncPlatformFilterAsSave: the index a filtered sync pushes is the one
// a filtered save stores (same re-encoding).
func TestSyncPlatformFilterAsSave(t *testing.T) {
	e := seeded(t)
	tgt, stop := regtest.Olareg()
	defer stop()
	dreg := newReg(t, tgt)
	plats := mustPlatforms(t, "linux/arm64", "linux/arm/v7")
	ctx := context.Background()
	res, err := transfer.Sync(ctx, e.reg, syncTargets(t, dreg, tgt), syncImages(e.specs(t, "library/multi:1", "team/app:1")), transfer.SyncOptions{Platforms: plats})
	if !errors.Is(err, oci.ErrImagesFailed) {
		t.Fatalf("sync accepted a single-platform image of another platform: %v", err)
	}
	saved, err := save(t, e.reg, e.specs(t, "library/multi:1", "team/app:1"), t.TempDir(), saveCase{platforms: []string{"linux/arm64", "linux/arm/v7"}})
	if err == nil || res == nil {
		// team/app:1 is linux/amd64 only: both refuse it the same way
		t.Fatalf("save accepted a single-platform image of another platform: %v", err)
	}
	var fe *transfer.FailedError
	if !errors.As(err, &fe) || len(fe.Images) != 1 || !errors.Is(fe.Images[0].Err, oci.ErrPlatformMismatch) {
		t.Fatalf("save: %v", err)
	}
	_ = saved
	if len(res.Failed) != 1 || !errors.Is(res.Failed[0].Err, oci.ErrPlatformMismatch) {
		t.Fatalf("sync failures: %v", res.Failed)
	}
	saved, err = save(t, e.reg, e.specs(t, "library/multi:1"), t.TempDir(), saveCase{platforms: []string{"linux/arm64", "linux/arm/v7"}})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := ref.New(tgt + "/mirror/library/multi:1")
	m, err := dreg.ManifestGet(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if m.GetDescriptor().Digest != saved.Meta.Images[0].Digest || m.GetDescriptor().Digest == e.imgs["library/multi:1"].Digest() {
		t.Errorf("synced index %s, saved %s, source %s", m.GetDescriptor().Digest, saved.Meta.Images[0].Digest, e.imgs["library/multi:1"].Digest())
	}
	dl, _ := m.(manifest.Indexer).GetManifestList()
	if len(dl) != 2 {
		t.Errorf("index has %d children, want 2", len(dl))
	}
}

// TestSyncTargetDown: one target unreachable fails its copies (exit 1 in
// cmd); the other target gets everything.
func TestSyncTargetDown(t *testing.T) {
	e := seeded(t)
	good, stop := regtest.Olareg()
	defer stop()
	dead := httptest.NewServer(nil)
	deadHost := strings.TrimPrefix(dead.URL, "http://")
	dead.Close()
	dreg := newReg(t, good, deadHost)
	names := []string{"team/app:1", "team/tools:1", "library/base:1", "library/multi:1"}
	targets := syncTargets(t, dreg, deadHost, good)
	asked := &headCounter{Registry: dreg, refs: map[string]bool{}}
	targets[0].Sink = asked
	res, err := transfer.Sync(context.Background(), e.reg, targets, syncImages(e.specs(t, names...)), transfer.SyncOptions{Retries: 1})
	// the first copy found the target down: the others were not asked for
	if len(asked.refs) != 1 {
		t.Errorf("the dead target was asked for %d manifests: %v", len(asked.refs), asked.refs)
	}
	var fe *transfer.FailedError
	if !errors.As(err, &fe) || !errors.Is(err, oci.ErrImagesFailed) {
		t.Fatalf("err %v", err)
	}
	if len(fe.Images) != len(names) {
		t.Fatalf("failures %v", fe.Images)
	}
	for _, f := range fe.Images {
		if !strings.Contains(f.Image, deadHost) {
			t.Errorf("failure at the wrong target: %s", f.Image)
		}
	}
	if res.Targets[1].Images != len(names) || res.Targets[1].Failed != 0 || res.Targets[0].Failed != len(names) {
		t.Errorf("targets %+v", res.Targets)
	}
}

// headCounter records the manifests a sink was asked about.
type headCounter struct {
	*registry.Registry
	mu   sync.Mutex
	refs map[string]bool
}

func (h *headCounter) ManifestDigest(ctx context.Context, r ref.Ref) (digest.Digest, error) {
	h.mu.Lock()
	h.refs[r.CommonName()] = true
	h.mu.Unlock()
	return h.Registry.ManifestDigest(ctx, r)
}

func TestSyncStop(t *testing.T) {
	e := seeded(t)
	tgt, stop := regtest.Olareg()
	defer stop()
	ch := make(chan struct{})
	close(ch)
	res, err := transfer.Sync(context.Background(), e.reg, syncTargets(t, newReg(t, tgt), tgt), syncImages(e.specs(t, "team/app:1")), transfer.SyncOptions{Stop: ch})
	if !errors.Is(err, transfer.ErrStopped) || res == nil || res.Total().Manifests != 0 {
		t.Fatalf("%+v %v", res, err)
	}
}

// brokenSink fails every blob push after reading a few bytes.
type brokenSink struct{ oci.Sink }

var errBroken = errors.New("injected push failure")

func (b brokenSink) BlobPut(ctx context.Context, r ref.Ref, d descriptor.Descriptor, rdr io.Reader) error {
	_, _ = io.CopyN(io.Discard, rdr, 10)
	return errBroken
}

// TestSyncTeeOneTargetFails: a target that fails mid-blob drops out of the
// tee (and is retried alone); the other target gets every blob.
func TestSyncTeeOneTargetFails(t *testing.T) {
	e, src, dreg, t1, t2, targets := twoTargets(t)
	targets[0].Sink = brokenSink{dreg}
	res, err := transfer.Sync(context.Background(), src, targets, syncImages(e.specs(t, "team/app:1")), transfer.SyncOptions{Retries: 1, RetryDelay: 1})
	if !errors.Is(err, errBroken) || len(res.Failed) != 1 || !strings.Contains(res.Failed[0].Image, t1) {
		t.Fatalf("err %v, failed %v", err, res.Failed)
	}
	if tr := res.Targets[1]; tr.Images != 1 || tr.BlobsPushed != 3 {
		t.Errorf("the good target: %+v", tr)
	}
	r, _ := ref.New(t2 + "/mirror/team/app:1")
	if dg, err := dreg.ManifestDigest(context.Background(), r); err != nil || dg != e.imgs["team/app:1"].Digest() {
		t.Errorf("good target has %s %v", dg, err)
	}
	// one tee read per blob, plus one retry read per blob for the broken target
	var unique int64
	for _, b := range e.imgs["team/app:1"].Blobs {
		unique += b.Desc.Size
	}
	if src.total.Load() < unique || src.total.Load() > 2*unique {
		t.Errorf("read %d bytes from the source for %d", src.total.Load(), unique)
	}
}

// stopOnRead closes stop when the first blob is opened.
type stopOnRead struct {
	oci.Source
	once sync.Once
	stop chan struct{}
}

func (s *stopOnRead) BlobGet(ctx context.Context, r ref.Ref, d descriptor.Descriptor) (io.ReadCloser, error) {
	s.once.Do(func() { close(s.stop) })
	return s.Source.BlobGet(ctx, r, d)
}

// TestSyncStopFinishesBlobsInFlight: a stop during a copy lets the blob in
// flight land, starts no other and pushes no manifest.
func TestSyncStopFinishesBlobsInFlight(t *testing.T) {
	e, _, dreg, t1, _, targets := twoTargets(t)
	src := &stopOnRead{Source: e.reg, stop: make(chan struct{})}
	res, err := transfer.Sync(context.Background(), src, targets[:1], syncImages(e.specs(t, "team/app:1")), transfer.SyncOptions{Jobs: 1, Stop: src.stop})
	if !errors.Is(err, transfer.ErrStopped) {
		t.Fatalf("err %v", err)
	}
	tr := res.Targets[0]
	if tr.BlobsPushed != 1 || tr.Manifests != 0 {
		t.Errorf("after stop: %+v", tr)
	}
	r, _ := ref.New(t1 + "/mirror/team/app:1")
	landed := 0
	for _, b := range e.imgs["team/app:1"].Blobs {
		if ok, _ := dreg.BlobExists(context.Background(), r, b.Desc); ok {
			landed++
		}
	}
	if landed != 1 {
		t.Errorf("%d blobs at the target, want the one in flight", landed)
	}
	if dg, _ := dreg.ManifestDigest(context.Background(), r); dg != "" {
		t.Error("a manifest was pushed after stop")
	}
}

// TestSyncReferrers: with Referrers, SBOMs and signatures (OCI referrers
// and cosign tags) follow their images, as in Save; a second run finds
// them there and pushes nothing.
func TestSyncReferrers(t *testing.T) {
	e, _, dreg, t1, _, targets := twoTargets(t)
	a := attach(t, e)
	ctx := context.Background()
	opts := transfer.SyncOptions{Referrers: true, Platforms: mustPlatforms(t, "linux/amd64")}
	specs := e.specs(t, "team/app:1")
	if _, err := transfer.Sync(ctx, e.reg, targets[:1], syncImages(specs), opts); err != nil {
		t.Fatal(err)
	}
	repo, _ := ref.New(t1 + "/mirror/team/app")
	for name, r := range map[string]ref.Ref{
		"sbom":       repo.SetDigest(a.appSBOM.Digest().String()),
		"cosign tag": repo.SetTag(a.sigTag),
	} {
		want := a.appSBOM.Digest()
		if name == "cosign tag" {
			want = a.appSig.Digest()
		}
		if dg, err := dreg.ManifestDigest(ctx, r); err != nil || dg != want {
			t.Errorf("%s at the target: %q %v, want %s", name, dg, err, want)
		}
	}
	res, err := transfer.Sync(ctx, e.reg, targets[:1], syncImages(specs), opts)
	if err != nil {
		t.Fatal(err)
	}
	if tot := res.Total(); tot.UpToDate != 1 || tot.Manifests != 0 || tot.BlobsPushed != 0 {
		t.Errorf("second run: %+v", tot)
	}
	// without referrers nothing else is copied
	if _, err := transfer.Sync(ctx, e.reg, targets[1:], syncImages(specs), transfer.SyncOptions{}); err != nil {
		t.Fatal(err)
	}
	other, _ := ref.New(strings.TrimSuffix(targets[1].Name, "/mirror") + "/mirror/team/app")
	if dg, _ := dreg.ManifestDigest(ctx, other.SetDigest(a.appSBOM.Digest().String())); dg != "" {
		t.Error("the SBOM was copied without Referrers")
	}
}

// stuckSink reads a little of each blob and then stops reading until its
// stream is closed under it.
type stuckSink struct{ oci.Sink }

func (s stuckSink) BlobPut(ctx context.Context, r ref.Ref, d descriptor.Descriptor, rdr io.Reader) error {
	_, _ = io.CopyN(io.Discard, rdr, 1)
	for {
		// a sink that holds its stream without reading: the tee's next
		// write to it blocks until the idle timer closes the stream
		time.Sleep(10 * time.Millisecond)
		if _, err := rdr.Read(make([]byte, 0)); err != nil {
			return err
		}
	}
}

// TestSyncStalledTargetDropsOut: with IdleTimeout, a target that stops
// reading is dropped from the tee; the other target completes.
func TestSyncStalledTargetDropsOut(t *testing.T) {
	e, _, dreg, _, _, targets := twoTargets(t)
	targets[0].Sink = stuckSink{dreg}
	done := make(chan struct{})
	var res *transfer.SyncResult
	var err error
	go func() {
		defer close(done)
		res, err = transfer.Sync(context.Background(), e.reg, targets, syncImages(e.specs(t, "team/app:1")), transfer.SyncOptions{IdleTimeout: 200 * time.Millisecond})
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("a stalled target held up the sync")
	}
	if !errors.Is(err, oci.ErrImagesFailed) || res.Targets[1].Images != 1 || res.Targets[0].Failed != 1 {
		t.Fatalf("err %v, result %+v", err, res)
	}
}

// TestSyncTwoNamespacesOneRegistry: two targets on one registry get each
// blob once; the second target mounts it from the first.
func TestSyncTwoNamespacesOneRegistry(t *testing.T) {
	e := seeded(t)
	h, stop := regtest.Olareg()
	defer stop()
	dreg := newReg(t, h)
	host, _ := ref.NewHost(h)
	targets := []transfer.SyncTarget{
		{Name: h + "/prod", Sink: dreg, Repo: transfer.RegistryTarget(host, "prod", nil)},
		{Name: h + "/staging", Sink: dreg, Repo: transfer.RegistryTarget(host, "staging", nil)},
	}
	src := &countingSource{Source: e.reg, bytes: map[digest.Digest]int64{}}
	res, err := transfer.Sync(context.Background(), src, targets, syncImages(e.specs(t, "team/app:1")), transfer.SyncOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := len(e.imgs["team/app:1"].Blobs)
	if a, b := res.Targets[0], res.Targets[1]; a.BlobsPushed+b.BlobsPushed != n || a.BlobsMounted+b.BlobsMounted != n || a.Images != 1 || b.Images != 1 {
		t.Errorf("targets %+v %+v: want %d blobs pushed once and mounted once", a, b, n)
	}
	var one int64
	for _, b := range e.imgs["team/app:1"].Blobs {
		one += b.Desc.Size
	}
	if src.total.Load() != one {
		t.Errorf("read %d bytes from the source, one copy is %d", src.total.Load(), one)
	}
	for _, ns := range []string{"prod", "staging"} {
		r, _ := ref.New(h + "/" + ns + "/team/app:1")
		if dg, err := dreg.ManifestDigest(context.Background(), r); err != nil || dg != e.imgs["team/app:1"].Digest() {
			t.Errorf("%s: %s %v", ns, dg, err)
		}
	}
}
