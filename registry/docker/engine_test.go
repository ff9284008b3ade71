package docker_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/mediatype"
	"github.com/regclient/regclient/types/platform"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
	"github.com/ferry-oss/ferry/registry/docker"
	"github.com/ferry-oss/ferry/registry/regtest"
)

// tinyImage is a one-layer image built in memory.
type tinyImage struct {
	plat     string
	config   []byte
	layer    []byte // gzip tar
	manifest []byte // OCI image manifest
}

func (img tinyImage) configDigest() digest.Digest   { return digest.FromBytes(img.config) }
func (img tinyImage) layerDigest() digest.Digest    { return digest.FromBytes(img.layer) }
func (img tinyImage) manifestDigest() digest.Digest { return digest.FromBytes(img.manifest) }

// makeImage builds an image for plat ("linux/arm64") whose layer holds
// /hello with content.
func makeImage(t *testing.T, plat string, content []byte) tinyImage {
	t.Helper()
	var lt bytes.Buffer
	tw := tar.NewWriter(&lt)
	if err := tw.WriteHeader(&tar.Header{Name: "hello", Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	tw.Write(content)
	tw.Close()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(lt.Bytes())
	zw.Close()
	p, err := platform.Parse(plat)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(map[string]any{
		"architecture": p.Architecture, "os": p.OS, "variant": p.Variant,
		"config": map[string]any{"Cmd": []string{"/hello"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []digest.Digest{digest.FromBytes(lt.Bytes())}},
	})
	img := tinyImage{plat: plat, config: cfg, layer: gz.Bytes()}
	img.manifest, _ = json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediatype.OCI1Manifest,
		"config":        descriptor.Descriptor{MediaType: mediatype.OCI1ImageConfig, Digest: img.configDigest(), Size: int64(len(cfg))},
		"layers":        []descriptor.Descriptor{{MediaType: mediatype.OCI1LayerGzip, Digest: img.layerDigest(), Size: int64(len(img.layer))}},
	})
	return img
}

// makeIndex builds an OCI index of imgs; a child "unknown/unknown" is
// added as an attestation would be.
func makeIndex(t *testing.T, imgs ...tinyImage) []byte {
	t.Helper()
	var ds []descriptor.Descriptor
	for _, img := range imgs {
		p, err := platform.Parse(img.plat)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, descriptor.Descriptor{MediaType: mediatype.OCI1Manifest, Digest: img.manifestDigest(), Size: int64(len(img.manifest)), Platform: &p})
	}
	b, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mediatype.OCI1ManifestList, "manifests": ds})
	return b
}

// testBundle is a meta file built by hand plus the bytes of its blobs.
type testBundle struct {
	m     *meta.Meta
	blobs map[digest.Digest][]byte
}

func newBundle() *testBundle {
	return &testBundle{
		m: &meta.Meta{
			SchemaVersion: 1 /* no offsets */, Kind: meta.Kind, ID: "test", Type: meta.TypeFull, Compression: "none",
			Parts: []meta.Part{{Name: "p1", SHA256: strings.Repeat("0", 64)}},
		},
		blobs: map[digest.Digest][]byte{},
	}
}

func (b *testBundle) addManifest(raw []byte, mt, repo string) digest.Digest {
	dg := digest.FromBytes(raw)
	if b.m.ManifestByDigest(dg) == nil {
		b.m.Manifests = append(b.m.Manifests, meta.Manifest{Digest: dg, MediaType: mt, Size: int64(len(raw)), Part: "p1", Repos: []string{repo}, Raw: raw})
	}
	return dg
}

func (b *testBundle) addBlob(raw []byte, mt, repo string) {
	dg := digest.FromBytes(raw)
	if _, ok := b.blobs[dg]; ok {
		return
	}
	b.blobs[dg] = raw
	b.m.Blobs = append(b.m.Blobs, meta.Blob{Digest: dg, Size: int64(len(raw)), MediaType: mt, Part: "p1", Repos: []string{repo}})
}

// addImage adds an image (an index when there are several imgs) under
// repo:tag.
func (b *testBundle) addImage(t *testing.T, source, repo, tag string, index bool, imgs ...tinyImage) {
	t.Helper()
	for _, img := range imgs {
		b.addBlob(img.config, mediatype.OCI1ImageConfig, repo)
		b.addBlob(img.layer, mediatype.OCI1LayerGzip, repo)
		b.addManifest(img.manifest, mediatype.OCI1Manifest, repo)
	}
	top := imgs[0].manifestDigest()
	mt := mediatype.OCI1Manifest
	if index {
		mt = mediatype.OCI1ManifestList
		top = b.addManifest(makeIndex(t, imgs...), mt, repo)
	}
	b.m.Images = append(b.m.Images, meta.Image{Source: source, Repository: repo, Tag: tag, Digest: top, MediaType: mt})
	if err := b.m.Validate(); err != nil {
		t.Fatal(err)
	}
}

// drive calls the Sink like transfer.Upload does: blobs from several
// goroutines (skipping what the sink has), then manifests children first,
// then tags, then Commit. registry is the target's registry.
func (b *testBundle) drive(ctx context.Context, t *testing.T, s oci.Sink, registry string) error {
	t.Helper()
	target := func(repo string) ref.Ref {
		r, err := ref.New(registry + "/" + repo)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	var wg sync.WaitGroup
	errs := make([]error, len(b.m.Blobs))
	for i, bl := range b.m.Blobs {
		wg.Go(func() {
			d := descriptor.Descriptor{MediaType: bl.MediaType, Digest: bl.Digest, Size: bl.Size}
			r := target(bl.Repos[0])
			ok, err := s.BlobExists(ctx, r, d)
			if err == nil && !ok {
				err = s.BlobPut(ctx, r, d, bytes.NewReader(b.blobs[bl.Digest]))
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, img := range b.m.Images {
		r := target(img.Repository)
		top := b.m.ManifestByDigest(img.Digest)
		order := []meta.Manifest{}
		mm, err := bundle.ParseManifest(*top)
		if err != nil {
			t.Fatal(err)
		}
		_, children, _ := oci.References(mm)
		for _, c := range children {
			order = append(order, *b.m.ManifestByDigest(c.Digest))
		}
		order = append(order, *top)
		for _, mf := range order {
			mm, _ := bundle.ParseManifest(mf)
			if err := s.ManifestPut(ctx, r.SetDigest(mf.Digest.String()), mm); err != nil {
				return err
			}
		}
		if img.Tag != "" {
			if err := s.ManifestPut(ctx, r.SetTag(img.Tag), mm); err != nil {
				return err
			}
		}
	}
	return s.Commit(ctx)
}

// loadReq is what the fake engine received on POST /images/load.
type loadReq struct {
	contentType string
	names       []string // tar entries in order
	files       map[string][]byte
	err         error // the body or the tar was broken
}

// fakeDocker serves /_ping and /images/load on a unix socket.
type fakeDocker struct {
	sock   string
	status int
	answer string
	stall  bool // read the body, then never answer
	loads  chan loadReq
}

func newFakeDocker(t *testing.T, status int, answer string) *fakeDocker {
	t.Helper()
	dir := t.TempDir()
	if len(dir) > 90 { // unix socket paths are limited to 108 bytes
		var err error
		if dir, err = os.MkdirTemp("/tmp", "fe"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	f := &fakeDocker{sock: filepath.Join(dir, "d.sock"), status: status, answer: answer, loads: make(chan loadReq, 8)}
	l, err := net.Listen("unix", f.sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/_ping":
			io.WriteString(w, "OK")
		case "/images/json":
			io.WriteString(w, "[]") // an empty engine
		case "/images/load":
			got := loadReq{contentType: r.Header.Get("Content-Type"), files: map[string][]byte{}}
			tr := tar.NewReader(r.Body)
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				var b []byte
				if err == nil {
					b, err = io.ReadAll(tr)
				}
				if err != nil {
					got.err = err
					break
				}
				got.names = append(got.names, h.Name)
				got.files[h.Name] = b
			}
			if got.err == nil { // Docker reads to the end of the body, not just the tar's
				_, got.err = io.Copy(io.Discard, r.Body)
			}
			f.loads <- got
			if f.stall {
				<-r.Context().Done()
				return
			}
			w.WriteHeader(f.status)
			io.WriteString(w, f.answer)
		default:
			http.NotFound(w, r)
		}
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return f
}

// received waits for a load request.
func (f *fakeDocker) received(t *testing.T) loadReq {
	t.Helper()
	select {
	case got := <-f.loads:
		return got
	case <-time.After(10 * time.Second):
		t.Fatal("no load request reached the engine")
		return loadReq{}
	}
}

func newEngine(t *testing.T, m *meta.Meta, sock, plat string) *docker.Engine {
	t.Helper()
	opts := docker.Options{Socket: sock}
	if plat != "" {
		p, err := platform.Parse(plat)
		if err != nil {
			t.Fatal(err)
		}
		opts.Platform = &p
	}
	eng, err := docker.New(context.Background(), m, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}

type manifestJSON []struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// TestEngineLoadTar checks the docker-load tar: the chosen platform's
// blobs only, at blobs/sha256/<hex> with their exact bytes, and
// manifest.json last with every tag of each image.
func TestEngineLoadTar(t *testing.T) {
	amd := makeImage(t, "linux/amd64", []byte("amd64\n"))
	arm := makeImage(t, "linux/arm64", []byte("arm64\n"))
	app := makeImage(t, "linux/amd64", []byte("app\n"))
	b := newBundle()
	b.addImage(t, "docker.io/library/tiny:1", "library/tiny", "1", true, amd, arm)
	b.addImage(t, "docker.io/library/tiny:latest", "library/tiny", "latest", true, amd, arm)
	b.addImage(t, "quay.io/team/app:2", "team/app", "2", false, app)
	b.addImage(t, "quay.io/team/app@"+app.manifestDigest().String(), "team/app", "", false, app)

	for _, tc := range []struct {
		registry string
		tiny     []string
		app      []string
	}{
		{"docker.io", []string{"tiny:1", "tiny:latest"}, []string{"team/app:2"}},
		{"registry.example.com:5000", []string{"registry.example.com:5000/library/tiny:1", "registry.example.com:5000/library/tiny:latest"}, []string{"registry.example.com:5000/team/app:2"}},
	} {
		t.Run(tc.registry, func(t *testing.T) {
			f := newFakeDocker(t, http.StatusOK, `{"stream":"Loaded image: tiny:1\n"}`+"\n")
			eng := newEngine(t, b.m, f.sock, "linux/arm64")
			ctx := context.Background()
			d := func(img []byte) descriptor.Descriptor {
				return descriptor.Descriptor{Digest: digest.FromBytes(img), Size: int64(len(img))}
			}
			// wanted blobs are missing until put; the other platform's are "there"
			for blob, want := range map[string]bool{"amd64 config": true, "amd64 layer": true, "arm64 config": false, "app layer": false} {
				var raw []byte
				switch blob {
				case "amd64 config":
					raw = amd.config
				case "amd64 layer":
					raw = amd.layer
				case "arm64 config":
					raw = arm.config
				case "app layer":
					raw = app.layer
				}
				if ok, err := eng.BlobExists(ctx, ref.Ref{}, d(raw)); err != nil || ok != want {
					t.Errorf("BlobExists(%s) = %v, %v; want %v", blob, ok, err, want)
				}
			}
			if err := eng.BlobMount(ctx, ref.Ref{}, ref.Ref{}, d(arm.config)); !errors.Is(err, oci.ErrUnsupported) {
				t.Errorf("BlobMount of a blob not yet put: %v, want ErrUnsupported", err)
			}
			if err := b.drive(ctx, t, eng, tc.registry); err != nil {
				t.Fatal(err)
			}
			if ok, _ := eng.BlobExists(ctx, ref.Ref{}, d(arm.config)); !ok {
				t.Error("BlobExists is false after BlobPut")
			}
			if err := eng.BlobMount(ctx, ref.Ref{}, ref.Ref{}, d(arm.config)); err != nil {
				t.Errorf("BlobMount of a blob put: %v", err)
			}

			got := f.received(t)
			if got.err != nil {
				t.Fatalf("the load tar is broken: %v", got.err)
			}
			if got.contentType != "application/x-tar" {
				t.Errorf("Content-Type %q", got.contentType)
			}
			if last := got.names[len(got.names)-1]; last != "manifest.json" {
				t.Errorf("last entry %s, want manifest.json; entries %v", last, got.names)
			}
			wantNames := []string{bundle.BlobPath(arm.configDigest()), bundle.BlobPath(arm.layerDigest()), bundle.BlobPath(app.configDigest()), bundle.BlobPath(app.layerDigest()), "manifest.json"}
			if !sameSet(got.names, wantNames) {
				t.Errorf("entries %v, want %v", got.names, wantNames)
			}
			for name, raw := range got.files {
				if name != "manifest.json" && !bytes.Equal(raw, b.blobs[digest.Digest("sha256:"+strings.TrimPrefix(name, "blobs/sha256/"))]) {
					t.Errorf("%s: wrong content", name)
				}
			}
			var mj manifestJSON
			if err := json.Unmarshal(got.files["manifest.json"], &mj); err != nil {
				t.Fatalf("manifest.json: %v: %s", err, got.files["manifest.json"])
			}
			if len(mj) != 2 {
				t.Fatalf("manifest.json has %d images, want 2: %s", len(mj), got.files["manifest.json"])
			}
			for i, want := range []struct {
				img  tinyImage
				tags []string
			}{{arm, tc.tiny}, {app, tc.app}} {
				if mj[i].Config != bundle.BlobPath(want.img.configDigest()) || !slices.Equal(mj[i].Layers, []string{bundle.BlobPath(want.img.layerDigest())}) {
					t.Errorf("image %d: %+v, want the %s image", i, mj[i], want.img.plat)
				}
				if !slices.Equal(mj[i].RepoTags, want.tags) {
					t.Errorf("image %d: RepoTags %q, want %q", i, mj[i].RepoTags, want.tags)
				}
			}
			if err := eng.Commit(ctx); err == nil {
				t.Error("a second Commit succeeded")
			}
		})
	}
}

func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

// TestEngineDockerErrors checks that what Docker said reaches the caller.
func TestEngineDockerErrors(t *testing.T) {
	img := makeImage(t, "linux/amd64", []byte("x\n"))
	b := newBundle()
	b.addImage(t, "docker.io/library/tiny:1", "library/tiny", "1", false, img)
	for _, tc := range []struct {
		name   string
		status int
		answer string
		want   string
	}{
		{"errorDetail", http.StatusOK, `{"stream":"Loading layer\n"}` + "\n" + `{"errorDetail":{"message":"write /var/lib/docker/tmp/x: no space left on device"},"error":"write /var/lib/docker/tmp/x: no space left on device"}`, "no space left on device"},
		{"error only", http.StatusOK, `{"error":"invalid diffID for layer 0"}`, "invalid diffID for layer 0"},
		{"status", http.StatusInternalServerError, `{"message":"engine is shutting down"}`, "500 Internal Server Error: engine is shutting down"},
		{"garbage", http.StatusOK, `Loaded image: tiny:1`, "reading the answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeDocker(t, tc.status, tc.answer)
			eng := newEngine(t, b.m, f.sock, "")
			err := b.drive(context.Background(), t, eng, "docker.io")
			if !errors.Is(err, docker.ErrEngine) || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "loading into docker: ") {
				t.Fatalf("err %v: want ErrEngine saying %q", err, tc.want)
			}
			if got := f.received(t); got.err != nil || got.files["manifest.json"] == nil {
				t.Errorf("the load tar was broken: %v", got.err)
			}
		})
	}
}

// failingReader returns n bytes of r, then err.
type failingReader struct {
	r   io.Reader
	n   int
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, f.err
	}
	p = p[:min(len(p), f.n)]
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

// TestEngineAbort checks that a failing blob, a blob never written, a
// canceled context and Close all break the stream before manifest.json,
// so that Docker loads nothing, and that the Engine fails from then on.
func TestEngineAbort(t *testing.T) {
	big := make([]byte, 2<<20) // incompressible: the layer outgrows the stream's buffer
	rand.Read(big)
	img := makeImage(t, "linux/amd64", big)
	b := newBundle()
	b.addImage(t, "docker.io/library/tiny:1", "library/tiny", "1", false, img)
	ctx := context.Background()
	cfgD := descriptor.Descriptor{Digest: img.configDigest(), Size: int64(len(img.config))}
	layerD := descriptor.Descriptor{Digest: img.layerDigest(), Size: int64(len(img.layer))}
	manifestPut := func(eng *docker.Engine) {
		mm, _ := bundle.ParseManifest(*b.m.ManifestByDigest(img.manifestDigest()))
		r, _ := ref.New("docker.io/library/tiny:1")
		if err := eng.ManifestPut(ctx, r, mm); err != nil {
			t.Fatal(err)
		}
	}
	broken := func(t *testing.T, f *fakeDocker) {
		t.Helper()
		got := f.received(t)
		if got.err == nil {
			t.Errorf("docker got a complete stream: %v", got.names)
		}
		if _, ok := got.files["manifest.json"]; ok {
			t.Error("docker got a manifest.json")
		}
	}

	t.Run("reader fails", func(t *testing.T) {
		f := newFakeDocker(t, http.StatusOK, "")
		eng := newEngine(t, b.m, f.sock, "")
		if err := eng.BlobPut(ctx, ref.Ref{}, cfgD, bytes.NewReader(img.config)); err != nil {
			t.Fatal(err)
		}
		err := eng.BlobPut(ctx, ref.Ref{}, layerD, &failingReader{r: bytes.NewReader(img.layer), n: 1 << 20, err: oci.ErrDigestMismatch})
		if !errors.Is(err, oci.ErrDigestMismatch) {
			t.Fatalf("BlobPut: %v, want the reader's error", err)
		}
		broken(t, f)
		if ok, _ := eng.BlobExists(ctx, ref.Ref{}, layerD); ok {
			t.Error("a failed blob counts as written")
		}
		if err := eng.BlobPut(ctx, ref.Ref{}, layerD, bytes.NewReader(img.layer)); !errors.Is(err, oci.ErrDigestMismatch) {
			t.Errorf("BlobPut after the abort: %v", err)
		}
		if err := eng.Commit(ctx); err == nil {
			t.Error("Commit after the abort succeeded")
		}
	})

	t.Run("short reader", func(t *testing.T) {
		f := newFakeDocker(t, http.StatusOK, "")
		eng := newEngine(t, b.m, f.sock, "")
		err := eng.BlobPut(ctx, ref.Ref{}, layerD, bytes.NewReader(img.layer[:len(img.layer)-1]))
		if !errors.Is(err, oci.ErrSizeMismatch) {
			t.Fatalf("BlobPut: %v, want ErrSizeMismatch", err)
		}
		broken(t, f)
	})

	t.Run("blob never written", func(t *testing.T) {
		f := newFakeDocker(t, http.StatusOK, "")
		eng := newEngine(t, b.m, f.sock, "")
		if err := eng.BlobPut(ctx, ref.Ref{}, layerD, bytes.NewReader(img.layer)); err != nil {
			t.Fatal(err)
		}
		manifestPut(eng)
		err := eng.Commit(ctx)
		if !errors.Is(err, bundle.ErrBlobMissing) || !strings.Contains(err.Error(), img.configDigest().String()) {
			t.Fatalf("Commit: %v, want ErrBlobMissing naming the config", err)
		}
		broken(t, f)
	})

	t.Run("canceled BlobPut", func(t *testing.T) {
		f := newFakeDocker(t, http.StatusOK, "")
		eng := newEngine(t, b.m, f.sock, "")
		cctx, cancel := context.WithCancelCause(ctx)
		pr, pw := io.Pipe()
		go func() {
			pw.Write(img.layer[:1<<20])
			cancel(errors.New("interrupted"))
			// never finishes the blob
		}()
		err := eng.BlobPut(cctx, ref.Ref{}, layerD, pr)
		if err == nil || !strings.Contains(err.Error(), "interrupted") {
			t.Fatalf("BlobPut: %v, want the context's cause", err)
		}
		pw.Close()
		broken(t, f)
	})

	t.Run("Close", func(t *testing.T) {
		f := newFakeDocker(t, http.StatusOK, "")
		eng := newEngine(t, b.m, f.sock, "")
		if err := eng.BlobPut(ctx, ref.Ref{}, layerD, bytes.NewReader(img.layer)); err != nil {
			t.Fatal(err)
		}
		if err := eng.Close(); err != nil {
			t.Fatal(err)
		}
		broken(t, f)
		if err := eng.BlobPut(ctx, ref.Ref{}, cfgD, bytes.NewReader(img.config)); err == nil {
			t.Error("BlobPut after Close succeeded")
		}
	})
}

// TestEngineCommitCanceled checks that Commit gives up when its context
// ends while Docker does not answer.
func TestEngineCommitCanceled(t *testing.T) {
	img := makeImage(t, "linux/amd64", []byte("x\n"))
	b := newBundle()
	b.addImage(t, "docker.io/library/tiny:1", "library/tiny", "1", false, img)
	f := newFakeDocker(t, http.StatusOK, "")
	f.stall = true
	eng := newEngine(t, b.m, f.sock, "")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := b.drive(ctx, t, eng, "docker.io")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Commit: %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Commit took %s to give up", d)
	}
	f.received(t)
}

// TestEnginePlan checks New's choice of platform and what it refuses.
func TestEnginePlan(t *testing.T) {
	f := newFakeDocker(t, http.StatusOK, "")
	amd := makeImage(t, "linux/amd64", []byte("amd64\n"))
	arm := makeImage(t, "linux/arm64", []byte("arm64\n"))
	s390 := makeImage(t, "linux/s390x", []byte("s390x\n"))
	attest := makeImage(t, "unknown/unknown", []byte("attestation\n"))
	wants := func(eng *docker.Engine, img tinyImage) bool {
		ok, _ := eng.BlobExists(context.Background(), ref.Ref{}, descriptor.Descriptor{Digest: img.configDigest(), Size: int64(len(img.config))})
		return !ok
	}

	multi := newBundle()
	multi.addImage(t, "docker.io/library/multi:1", "library/multi", "1", true, amd, arm)
	eng := newEngine(t, multi.m, f.sock, "linux/arm64/v8")
	if !wants(eng, arm) || wants(eng, amd) {
		t.Error("linux/arm64/v8: the arm64 image was not chosen")
	}
	host := platform.Local()
	if host.OS == "linux" && (host.Architecture == "amd64" || host.Architecture == "arm64") {
		eng = newEngine(t, multi.m, f.sock, "")
		if (host.Architecture == "amd64") != wants(eng, amd) {
			t.Errorf("default platform: the %s image was not chosen", host.Architecture)
		}
	}
	p, _ := platform.Parse("linux/ppc64le")
	_, err := docker.New(context.Background(), multi.m, docker.Options{Socket: f.sock, Platform: &p})
	if !errors.Is(err, oci.ErrPlatformMismatch) || !strings.Contains(err.Error(), "docker.io/library/multi:1") || !strings.Contains(err.Error(), "linux/amd64, linux/arm64") {
		t.Errorf("missing platform: %v: want ErrPlatformMismatch naming the image and its platforms", err)
	}

	// an index with one image (and an attestation): taken when no platform was asked for
	one := newBundle()
	one.addImage(t, "docker.io/library/one:1", "library/one", "1", true, s390, attest)
	eng = newEngine(t, one.m, f.sock, "")
	if !wants(eng, s390) || wants(eng, attest) {
		t.Error("the only image of the index was not chosen")
	}
	p, _ = platform.Parse("linux/riscv64")
	if _, err := docker.New(context.Background(), one.m, docker.Options{Socket: f.sock, Platform: &p}); !errors.Is(err, oci.ErrPlatformMismatch) {
		t.Errorf("asked for riscv64: %v", err)
	}

	// an incremental bundle: a layer left to the base cannot be loaded
	incr := newBundle()
	incr.addImage(t, "docker.io/library/tiny:1", "library/tiny", "1", false, amd)
	incr.m.Blobs = slices.DeleteFunc(incr.m.Blobs, func(b meta.Blob) bool { return b.Digest == amd.layerDigest() })
	incr.m.Bases = []meta.Base{{ID: "base1", Meta: "base1_meta.yaml", SHA256: strings.Repeat("1", 64)}}
	incr.m.BaseBlobs = []meta.BaseBlob{{Digest: amd.layerDigest(), Size: int64(len(amd.layer)), Base: "base1", Repos: []string{"library/tiny"}}}
	read := func(_ context.Context, ds []descriptor.Descriptor) (map[digest.Digest][]byte, error) {
		out := map[digest.Digest][]byte{}
		for _, d := range ds {
			out[d.Digest] = incr.blobs[d.Digest]
		}
		return out, nil
	}
	_, err = docker.New(context.Background(), incr.m, docker.Options{Socket: f.sock, ReadConfigs: read})
	if !errors.Is(err, bundle.ErrBaseMissing) || !strings.Contains(err.Error(), "base1") || !strings.Contains(err.Error(), "layer 1/1 "+amd.layerDigest().String()) {
		t.Errorf("incremental into an empty engine: %v, want ErrBaseMissing naming the base and the layer", err)
	}
	if _, err := docker.New(context.Background(), incr.m, docker.Options{Socket: f.sock}); !errors.Is(err, oci.ErrUnsupported) {
		t.Errorf("incremental without ReadConfigs: %v", err)
	}
	bad := func(context.Context, []descriptor.Descriptor) (map[digest.Digest][]byte, error) {
		return map[digest.Digest][]byte{amd.configDigest(): []byte("{}")}, nil
	}
	if _, err := docker.New(context.Background(), incr.m, docker.Options{Socket: f.sock, ReadConfigs: bad}); !errors.Is(err, oci.ErrDigestMismatch) {
		t.Errorf("a config that does not match its digest: %v", err)
	}

	// not a container image
	art := newBundle()
	raw, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": mediatype.OCI1Manifest,
		"config": descriptor.Descriptor{MediaType: "application/vnd.cncf.helm.config.v1+json", Digest: amd.configDigest(), Size: int64(len(amd.config))},
		"layers": []descriptor.Descriptor{},
	})
	art.addBlob(amd.config, "application/vnd.cncf.helm.config.v1+json", "charts/x")
	dg := art.addManifest(raw, mediatype.OCI1Manifest, "charts/x")
	art.m.Images = []meta.Image{{Source: "example.com/charts/x:1", Repository: "charts/x", Tag: "1", Digest: dg, MediaType: mediatype.OCI1Manifest}}
	if _, err := docker.New(context.Background(), art.m, docker.Options{Socket: f.sock}); !errors.Is(err, oci.ErrUnsupported) || !strings.Contains(err.Error(), "example.com/charts/x:1") {
		t.Errorf("artifact: %v, want ErrUnsupported naming it", err)
	}
}

// TestEngineSocket checks the socket defaults and an unreachable engine.
func TestEngineSocket(t *testing.T) {
	t.Setenv("DOCKER_HOST", "")
	if s := docker.DefaultSocket(); s != "/var/run/docker.sock" {
		t.Errorf("DefaultSocket() = %q", s)
	}
	t.Setenv("DOCKER_HOST", "unix:///run/user/1000/docker.sock")
	if s := docker.DefaultSocket(); s != "/run/user/1000/docker.sock" {
		t.Errorf("DefaultSocket() with DOCKER_HOST = %q", s)
	}
	b := newBundle()
	b.addImage(t, "docker.io/library/tiny:1", "library/tiny", "1", false, makeImage(t, "linux/amd64", []byte("x")))

	f := newFakeDocker(t, http.StatusOK, "")
	t.Setenv("DOCKER_HOST", "unix://"+f.sock)
	if _, err := docker.New(context.Background(), b.m, docker.Options{}); err != nil {
		t.Errorf("DOCKER_HOST=unix://%s: %v", f.sock, err)
	}
	if _, err := docker.New(context.Background(), b.m, docker.Options{Socket: "unix://" + f.sock}); err != nil {
		t.Errorf("Socket unix://%s: %v", f.sock, err)
	}
	t.Setenv("DOCKER_HOST", "tcp://10.0.0.1:2375")
	if _, err := docker.New(context.Background(), b.m, docker.Options{}); err == nil || !strings.Contains(err.Error(), "DOCKER_HOST") {
		t.Errorf("DOCKER_HOST=tcp://: %v", err)
	}
	missing := filepath.Join(t.TempDir(), "docker.sock")
	_, err := docker.New(context.Background(), b.m, docker.Options{Socket: missing})
	if !errors.Is(err, docker.ErrEngine) || !strings.Contains(err.Error(), missing) || !strings.HasPrefix(err.Error(), "loading into docker: ") {
		t.Errorf("unreachable engine: %v", err)
	}
}

// inspect returns the Id of image name in the engine, "" if it has none.
func inspect(t *testing.T, d *regtest.Dockerd, name string) string {
	t.Helper()
	resp, err := d.Client().Get("http://docker/images/" + name + "/json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return ""
	}
	var info struct{ Id string }
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("inspect %s: %s: %v", name, resp.Status, err)
	}
	return info.Id
}

// TestEngineRealDockerd loads hand-built images into a real dockerd
// (Debian's docker.io) and checks that each tag's image id is the chosen
// config's digest, and that an aborted load leaves nothing.
func TestEngineRealDockerd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts dockerd")
	}
	d := regtest.StartDockerd(t)
	amd := makeImage(t, "linux/amd64", []byte("amd64\n"))
	arm := makeImage(t, "linux/arm64", []byte("arm64\n"))
	app := makeImage(t, "linux/amd64", []byte("app\n"))
	b := newBundle()
	b.addImage(t, "docker.io/library/tiny:1", "library/tiny", "1", true, amd, arm)
	b.addImage(t, "docker.io/library/tiny:2", "library/tiny", "2", true, amd, arm)
	b.addImage(t, "quay.io/team/app:1", "team/app", "1", false, app)
	ctx := context.Background()
	eng, err := docker.New(ctx, b.m, docker.Options{Socket: d.Socket, Platform: &platform.Platform{OS: "linux", Architecture: "arm64"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.drive(ctx, t, eng, "docker.io"); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]digest.Digest{"tiny:1": arm.configDigest(), "tiny:2": arm.configDigest(), "team/app:1": app.configDigest()} {
		if id := inspect(t, d, name); id != want.String() {
			t.Errorf("%s: Id %q, want %s", name, id, want)
		}
	}
	if id := inspect(t, d, amd.configDigest().String()); id != "" {
		t.Errorf("the amd64 image was loaded too: %s", id)
	}

	// a registry that is not Docker Hub stays in the name
	eng, err = docker.New(ctx, b.m, docker.Options{Socket: d.Socket, Platform: &platform.Platform{OS: "linux", Architecture: "amd64"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.drive(ctx, t, eng, "registry.example.com:5000"); err != nil {
		t.Fatal(err)
	}
	if id := inspect(t, d, "registry.example.com:5000/library/tiny:1"); id != amd.configDigest().String() {
		t.Errorf("registry.example.com:5000/library/tiny:1: Id %q, want %s", id, amd.configDigest())
	}

	// a blob that fails part way: nothing is loaded
	big := make([]byte, 1<<20)
	rand.Read(big)
	bad := makeImage(t, "linux/amd64", big)
	bb := newBundle()
	bb.addImage(t, "docker.io/library/bad:1", "library/bad", "1", false, bad)
	eng, err = docker.New(ctx, bb.m, docker.Options{Socket: d.Socket})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.BlobPut(ctx, ref.Ref{}, descriptor.Descriptor{Digest: bad.configDigest(), Size: int64(len(bad.config))}, bytes.NewReader(bad.config)); err != nil {
		t.Fatal(err)
	}
	err = eng.BlobPut(ctx, ref.Ref{}, descriptor.Descriptor{Digest: bad.layerDigest(), Size: int64(len(bad.layer))}, &failingReader{r: bytes.NewReader(bad.layer), n: len(bad.layer) / 2, err: oci.ErrDigestMismatch})
	if !errors.Is(err, oci.ErrDigestMismatch) {
		t.Fatalf("BlobPut: %v", err)
	}
	eng.Close()
	time.Sleep(500 * time.Millisecond) // let dockerd finish with the broken request
	if id := inspect(t, d, "bad:1"); id != "" {
		t.Errorf("an aborted load left bad:1 (%s)", id)
	}
	if id := inspect(t, d, bad.configDigest().String()); id != "" {
		t.Errorf("an aborted load left image %s", id)
	}

	// Docker's own complaint comes back: a config whose diff_ids do not match the layer
	wrong := makeImage(t, "linux/amd64", []byte("wrong\n"))
	other := makeImage(t, "linux/amd64", []byte("other\n"))
	wrong.layer = other.layer
	wrong.manifest, _ = json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": mediatype.OCI1Manifest,
		"config": descriptor.Descriptor{MediaType: mediatype.OCI1ImageConfig, Digest: wrong.configDigest(), Size: int64(len(wrong.config))},
		"layers": []descriptor.Descriptor{{MediaType: mediatype.OCI1LayerGzip, Digest: other.layerDigest(), Size: int64(len(other.layer))}},
	})
	wb := newBundle()
	wb.addImage(t, "docker.io/library/wrong:1", "library/wrong", "1", false, wrong)
	eng, err = docker.New(ctx, wb.m, docker.Options{Socket: d.Socket})
	if err != nil {
		t.Fatal(err)
	}
	err = wb.drive(ctx, t, eng, "docker.io")
	if !errors.Is(err, docker.ErrEngine) || !strings.Contains(err.Error(), "diffID") {
		t.Fatalf("load with a wrong diff_id: %v, want docker's complaint", err)
	}
	t.Log("docker said:", err)
}
