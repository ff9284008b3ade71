// Package docker loads images into a local Docker engine: Engine is a
// bundle.Sink that streams a docker-load tar (blobs plus manifest.json)
// straight into the Engine API's POST /images/load over the engine's unix
// socket. Nothing is staged on disk and no blob is held in memory.
//
// A Docker engine stores one platform per image, so Engine picks one child
// of every index (Options.Platform, default the host's) and asks only for
// the blobs those images need.
package docker

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/platform"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
)

// ErrEngine wraps every error the engine reported.
var ErrEngine = errors.New("docker engine")

// Options configure New.
type Options struct {
	// Socket is the engine's unix socket (default DefaultSocket()).
	Socket string
	// Platform picks the child of each index to load (default: the
	// host's platform, or the only child).
	Platform *platform.Platform
	Log      *slog.Logger
}

// DefaultSocket is $DOCKER_HOST when it is a unix:// address, else
// /var/run/docker.sock.
func DefaultSocket() string {
	if h := os.Getenv("DOCKER_HOST"); strings.HasPrefix(h, "unix://") {
		return strings.TrimPrefix(h, "unix://")
	}
	return "/var/run/docker.sock"
}

type image struct {
	manifest digest.Digest // the chosen image manifest
	config   digest.Digest
	layers   []digest.Digest
	tags     []string
}

// Engine is a bundle.Sink for a Docker engine.
type Engine struct {
	ctx    context.Context // New's: bounds the load request
	socket string
	client *http.Client
	log    *slog.Logger

	wanted map[digest.Digest]bool          // blobs the chosen images need
	images map[digest.Digest]*image        // chosen image manifest -> image
	choose map[digest.Digest]digest.Digest // top manifest (index or image) -> chosen image manifest
	order  []digest.Digest

	mu      sync.Mutex
	written map[digest.Digest]bool
	pw      *io.PipeWriter
	tw      *tar.Writer
	bw      *bufio.Writer
	done    chan error // result of the load request
	cancel  context.CancelFunc
}

var _ bundle.Sink = (*Engine)(nil)

// New checks that the engine answers and plans which manifest of every
// image of m to load.
func New(ctx context.Context, m *meta.Meta, opts Options) (*Engine, error) {
	if opts.Socket == "" {
		opts.Socket = DefaultSocket()
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{
		ctx: ctx, socket: opts.Socket, log: opts.Log,
		wanted: map[digest.Digest]bool{}, images: map[digest.Digest]*image{},
		choose: map[digest.Digest]digest.Digest{}, written: map[digest.Digest]bool{},
	}
	e.client = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", opts.Socket)
		},
	}}
	if err := e.ping(ctx); err != nil {
		return nil, err
	}
	want := platform.Local()
	if opts.Platform != nil {
		want = *opts.Platform
	}
	for _, img := range m.Images {
		mf := m.ManifestByDigest(img.Digest)
		if mf == nil {
			return nil, fmt.Errorf("image %s: manifest %s not in the bundle", img.Source, img.Digest)
		}
		chosen, err := choosePlatform(m, *mf, want)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", img.Source, err)
		}
		e.choose[img.Digest] = chosen.Digest
		if _, ok := e.images[chosen.Digest]; ok {
			continue
		}
		mm, err := bundle.ParseManifest(*chosen)
		if err != nil {
			return nil, err
		}
		if _, ok := mm.(manifest.Imager); !ok {
			return nil, fmt.Errorf("image %s: %s is not an image manifest", img.Source, chosen.Digest)
		}
		blobs, _, err := bundle.References(mm)
		if err != nil {
			return nil, err
		}
		it := &image{manifest: chosen.Digest, config: blobs[0].Digest}
		e.wanted[it.config] = true
		for _, l := range blobs[1:] {
			it.layers = append(it.layers, l.Digest)
			e.wanted[l.Digest] = true
		}
		e.images[chosen.Digest] = it
		e.order = append(e.order, chosen.Digest)
	}
	return e, nil
}

// choosePlatform returns the image manifest to load for a top manifest.
func choosePlatform(m *meta.Meta, top meta.Manifest, want platform.Platform) (*meta.Manifest, error) {
	mm, err := bundle.ParseManifest(top)
	if err != nil {
		return nil, err
	}
	ix, ok := mm.(manifest.Indexer)
	if !ok {
		return &top, nil
	}
	dl, err := ix.GetManifestList()
	if err != nil {
		return nil, err
	}
	var have []string
	var pick *descriptor.Descriptor
	for i, d := range dl {
		if d.Platform == nil || m.ManifestByDigest(d.Digest) == nil {
			continue
		}
		have = append(have, d.Platform.String())
		if platform.Match(want, *d.Platform) {
			pick = &dl[i]
			break
		}
	}
	if pick == nil {
		for i, d := range dl { // a compatible one (e.g. arm64 for arm64/v8)
			if d.Platform != nil && m.ManifestByDigest(d.Digest) != nil && platform.Compatible(want, *d.Platform) {
				pick = &dl[i]
				break
			}
		}
	}
	if pick == nil {
		return nil, fmt.Errorf("%w: no %s in the bundle (it has %s); choose one with --platform", bundle.ErrPlatformMismatch, want, strings.Join(have, ", "))
	}
	child := m.ManifestByDigest(pick.Digest)
	return choosePlatform(m, *child, want)
}

func (e *Engine) ping(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/_ping", nil)
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("%w at %s: %v", ErrEngine, e.socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%w at %s: ping: %s %s", ErrEngine, e.socket, resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

// BlobExists is true for blobs no chosen image needs (so they are not
// sent) and for blobs already written.
func (e *Engine) BlobExists(_ context.Context, _ ref.Ref, d descriptor.Descriptor) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return !e.wanted[d.Digest] || e.written[d.Digest], nil
}

// BlobMount succeeds for a blob already written: repositories do not
// matter to a Docker engine.
func (e *Engine) BlobMount(_ context.Context, _, _ ref.Ref, d descriptor.Descriptor) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.written[d.Digest] || !e.wanted[d.Digest] {
		return nil
	}
	return fmt.Errorf("docker: mounting %s: %w", d.Digest, bundle.ErrUnsupported)
}

// start begins the load request; the tar stream is its body. The request
// lives as long as New's context (per-call contexts end between calls).
func (e *Engine) start() {
	ctx := e.ctx
	pr, pw := io.Pipe()
	e.pw = pw
	e.bw = bufio.NewWriterSize(pw, 256<<10)
	e.tw = tar.NewWriter(e.bw)
	e.done = make(chan error, 1)
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.cancel = cancel
	go func() {
		// stop the request when the caller's context ends
		select {
		case <-ctx.Done():
			cancel()
		case <-lctx.Done():
		}
	}()
	go func() {
		req, _ := http.NewRequestWithContext(lctx, http.MethodPost, "http://docker/images/load?quiet=1", pr)
		req.Header.Set("Content-Type", "application/x-tar")
		resp, err := e.client.Do(req)
		if err != nil {
			pr.CloseWithError(err)
			e.done <- fmt.Errorf("%w: load: %v", ErrEngine, err)
			return
		}
		defer resp.Body.Close()
		err = readLoadResponse(resp)
		pr.CloseWithError(errors.New("docker load ended"))
		e.done <- err
	}()
}

// readLoadResponse reads the JSON message stream of /images/load and
// returns what Docker said when it failed.
func readLoadResponse(resp *http.Response) error {
	body := io.LimitReader(resp.Body, 16<<20)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(body)
		return fmt.Errorf("%w: load: %s: %s", ErrEngine, resp.Status, strings.TrimSpace(string(b)))
	}
	dec := json.NewDecoder(body)
	for {
		var msg struct {
			Stream      string `json:"stream"`
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("%w: load: reading the response: %v", ErrEngine, err)
		}
		if msg.ErrorDetail != nil && msg.ErrorDetail.Message != "" {
			return fmt.Errorf("%w: load: %s", ErrEngine, msg.ErrorDetail.Message)
		}
		if msg.Error != "" {
			return fmt.Errorf("%w: load: %s", ErrEngine, msg.Error)
		}
	}
}

// BlobPut writes a wanted blob into the load stream.
func (e *Engine) BlobPut(ctx context.Context, _ ref.Ref, d descriptor.Descriptor, rdr io.Reader) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.wanted[d.Digest] || e.written[d.Digest] {
		_, err := io.Copy(io.Discard, rdr)
		return err
	}
	if e.pw == nil {
		e.start()
	}
	err := e.tw.WriteHeader(&tar.Header{Name: bundle.BlobPath(d.Digest), Size: d.Size, Mode: 0o644, Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)})
	if err == nil {
		var n int64
		n, err = io.Copy(e.tw, rdr)
		if err == nil && n != d.Size {
			err = fmt.Errorf("%w: %d of %d bytes", bundle.ErrSizeMismatch, n, d.Size)
		}
	}
	if err != nil {
		// Docker must not load a half-sent image: break the stream.
		e.pw.CloseWithError(err)
		return fmt.Errorf("loading blob %s into docker: %w", d.Digest, err)
	}
	e.written[d.Digest] = true
	return nil
}

// ManifestPut records the repository tags of the chosen images.
func (e *Engine) ManifestPut(_ context.Context, r ref.Ref, m manifest.Manifest) error {
	if r.Tag == "" {
		return nil // manifests themselves are not loaded; Docker computes its own
	}
	dg := m.GetDescriptor().Digest
	chosen, ok := e.choose[dg]
	if !ok {
		chosen = dg
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	img, ok := e.images[chosen]
	if !ok {
		return fmt.Errorf("docker: tag %s: manifest %s was not planned", r.Tag, dg)
	}
	name := r.Repository
	if r.Registry != "" && r.Registry != "docker.io" {
		name = r.Registry + "/" + name
	} else {
		name = strings.TrimPrefix(name, "library/")
	}
	tag := name + ":" + r.Tag
	if !slices.Contains(img.tags, tag) {
		img.tags = append(img.tags, tag)
	}
	return nil
}

// Commit writes manifest.json, ends the stream and waits for Docker.
func (e *Engine) Commit(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for dg := range e.wanted {
		if !e.written[dg] {
			if e.pw != nil {
				e.pw.CloseWithError(errors.New("incomplete"))
			}
			return fmt.Errorf("loading into docker: %w: %s (an incremental bundle needs its base loaded in the same run)", bundle.ErrBlobMissing, dg)
		}
	}
	if e.pw == nil {
		e.start()
	}
	type entry struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	var mj []entry
	for _, dg := range e.order {
		img := e.images[dg]
		en := entry{Config: bundle.BlobPath(img.config), RepoTags: img.tags}
		for _, l := range img.layers {
			en.Layers = append(en.Layers, bundle.BlobPath(l))
		}
		mj = append(mj, en)
	}
	b, err := json.Marshal(mj)
	if err != nil {
		return err
	}
	err = e.tw.WriteHeader(&tar.Header{Name: "manifest.json", Size: int64(len(b)), Mode: 0o644, Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)})
	if err == nil {
		_, err = e.tw.Write(b)
	}
	if err == nil {
		err = e.tw.Close()
	}
	if err == nil {
		err = e.bw.Flush()
	}
	if err != nil {
		e.pw.CloseWithError(err)
		<-e.done
		return fmt.Errorf("loading into docker: %w", err)
	}
	e.pw.Close()
	select {
	case err = <-e.done:
	case <-ctx.Done():
		e.cancel()
		<-e.done
		return ctx.Err()
	}
	e.cancel()
	if err != nil {
		return fmt.Errorf("loading into docker: %w", err)
	}
	for _, dg := range e.order {
		e.log.Info("loaded into docker", "image", strings.Join(e.images[dg].tags, ","), "id", e.images[dg].config)
	}
	return nil
}
