// Package docker loads images into a local Docker engine: Engine is a
// oci.Sink that streams a docker-load tar (blobs/sha256/<hex> entries,
// then manifest.json) straight into the Engine API's POST /images/load over
// the engine's unix socket. Nothing is staged on disk and no blob is held in
// memory: BlobPut copies the (already digest-checked) blob reader into an
// io.Pipe whose other end is the body of the load request.
//
// A Docker engine stores one platform per image, so New picks one image
// manifest for every image of the bundle (Options.Platform, default the
// host's) and Engine asks Upload only for the blobs those images need.
//
// An incremental bundle loads when the engine already holds what its
// base bundles carried: New checks, before anything is sent, that every
// base layer is in the engine on the same chain of layers (from the
// engine's images' RootFS diff ids, compared with the diff ids in the
// bundle's configs); docker load then takes those layers from the engine.
// An image whose config a base carried must be in the engine and is only
// tagged.
//
// manifest.json is always the last entry, written by Commit: a stream that
// breaks earlier never holds a manifest.json and Docker loads nothing from
// it. Once Commit has sent the whole stream, Docker may finish the load
// even if Commit's context is canceled while it waits for the answer.
package docker

import (
	"archive/tar"
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/mediatype"
	"github.com/regclient/regclient/types/platform"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/archive"
	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
)

// errNotContainer marks an image manifest that is not a container image
// (an artifact: a signature, an SBOM); the engine skips it.
var errNotContainer = fmt.Errorf("not a container image: %w", oci.ErrUnsupported)

// ErrEngine wraps every error the Docker engine reported, and a failure to
// reach it.
var ErrEngine = errors.New("docker engine")

// pingTimeout bounds New's check that the engine answers.
const pingTimeout = 30 * time.Second

// Options configure New.
type Options struct {
	// Socket is the path of the engine's unix socket (a unix:// prefix is
	// accepted). Empty means DefaultSocket().
	Socket string
	// Platform picks the child of each index to load. Nil means the host's
	// platform, or the index's only image when it has just one.
	Platform *platform.Platform
	// Log receives what Docker said ("Loaded image: ..."); nil discards.
	Log *slog.Logger
	// ReadConfigs reads small blobs the bundle stores (image configs), all
	// in one call. New needs it for an incremental bundle: the configs of
	// images whose base layers the engine must already hold give their
	// layer diff ids. Nil refuses such images.
	ReadConfigs func(ctx context.Context, ds []descriptor.Descriptor) (map[digest.Digest][]byte, error)
}

// DefaultSocket is the socket path of $DOCKER_HOST when it is a unix://
// address, else /var/run/docker.sock.
func DefaultSocket() string {
	if h, ok := strings.CutPrefix(os.Getenv("DOCKER_HOST"), "unix://"); ok && h != "" {
		return h
	}
	return "/var/run/docker.sock"
}

// SocketName is the socket Options.Socket s means, for messages.
func SocketName(s string) string {
	p, err := socketPath(s)
	if err != nil {
		return s
	}
	return p
}

// image is one image manifest that will be loaded.
type image struct {
	manifest digest.Digest // the chosen image manifest
	config   digest.Digest
	layers   []digest.Digest
	sources  []string // the bundle images it serves, for messages
	put      bool     // ManifestPut received it (or an index resolving to it)
	tags     []string // docker RepoTags
	// base holds the config and layers a base bundle carried (digest ->
	// base bundle id): not in this bundle, so the engine must have them.
	base map[digest.Digest]string
	// present: the engine has the image already (its config was in a base
	// bundle): nothing is loaded, its tags are set through the API.
	present bool
}

// Engine is a oci.Sink that loads images into a Docker engine. Its
// methods are safe for concurrent use; BlobPut calls are serialized.
type Engine struct {
	socket string
	client *http.Client
	log    *slog.Logger

	// The plan, fixed by New.
	wanted  map[digest.Digest]bool          // blobs the chosen images need
	images  map[digest.Digest]*image        // chosen image manifest -> image
	choose  map[digest.Digest]digest.Digest // top or nested index / image manifest -> chosen image manifest
	skipped map[digest.Digest]bool          // images of the bundle that are artifacts, not loaded
	order   []digest.Digest                 // chosen image manifests in bundle order

	// The load request lives as long as New's context, until Commit or
	// Close: Upload's per-call contexts end between its phases.
	reqCtx    context.Context
	reqCancel context.CancelFunc

	mu        sync.Mutex
	written   map[digest.Digest]bool
	pw        *io.PipeWriter // the request body's writing end; nil until the first BlobPut
	bw        *bufio.Writer
	tw        *tar.Writer
	done      chan error // result of the load request
	failed    error      // sticky: the stream was aborted
	committed bool
}

var _ oci.Sink = (*Engine)(nil)

// New checks that the engine at opts.Socket answers and plans which image
// manifest of every image of m to load and which blobs that needs. The load
// request, started by the first BlobPut, lives at most as long as ctx.
func New(ctx context.Context, m *meta.Meta, opts Options) (*Engine, error) {
	sock, err := socketPath(opts.Socket)
	if err != nil {
		return nil, fmt.Errorf("loading into docker: %w", err)
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{
		socket: sock, log: opts.Log,
		wanted: map[digest.Digest]bool{}, images: map[digest.Digest]*image{},
		choose: map[digest.Digest]digest.Digest{}, written: map[digest.Digest]bool{}, skipped: map[digest.Digest]bool{},
	}
	e.client = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		DisableCompression: true,
		DisableKeepAlives:  true, // two requests: no idle connection left behind
	}}
	if err := e.plan(m, opts.Platform); err != nil {
		return nil, fmt.Errorf("loading into docker: %w", err)
	}
	if err := e.ping(ctx); err != nil {
		return nil, fmt.Errorf("loading into docker: %w", err)
	}
	if err := e.checkBase(ctx, m, opts.ReadConfigs); err != nil {
		return nil, fmt.Errorf("loading into docker: %w", err)
	}
	for _, it := range e.images {
		if it.present {
			continue
		}
		for _, dg := range append([]digest.Digest{it.config}, it.layers...) {
			if _, inBase := it.base[dg]; !inBase {
				e.wanted[dg] = true
			}
		}
	}
	e.reqCtx, e.reqCancel = context.WithCancel(ctx)
	return e, nil
}

// socketPath resolves Options.Socket.
func socketPath(s string) (string, error) {
	if s == "" {
		if h := os.Getenv("DOCKER_HOST"); h != "" && !strings.HasPrefix(h, "unix://") {
			return "", fmt.Errorf("DOCKER_HOST=%s: only a unix:// socket is supported; name the socket explicitly", h)
		}
		return DefaultSocket(), nil
	}
	if p, ok := strings.CutPrefix(s, "unix://"); ok {
		s = p
	}
	if s == "" || strings.Contains(s, "://") {
		return "", fmt.Errorf("docker socket %q: want the path of a unix socket", s)
	}
	return s, nil
}

// ping checks that the engine answers GET /_ping.
func (e *Engine) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/_ping", nil)
	if err != nil {
		return err
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("%w at %s is not reachable (is dockerd running, and may this user use its socket?): %v", ErrEngine, e.socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%w at %s: ping: %s: %s", ErrEngine, e.socket, resp.Status, engineMessage(b))
	}
	return nil
}

// plan chooses one image manifest per image of m and the blobs it needs.
func (e *Engine) plan(m *meta.Meta, want *platform.Platform) error {
	var skipped []string
	stored := map[digest.Digest]bool{}
	for _, b := range m.Blobs {
		stored[b.Digest] = true
	}
	for _, img := range m.Images {
		mf := m.ManifestByDigest(img.Digest)
		if mf == nil {
			return fmt.Errorf("image %s: manifest %s: %w", img.Source, img.Digest, bundle.ErrBlobMissing)
		}
		chosen, path, err := choosePlatform(m, *mf, want, 0)
		if err != nil {
			return fmt.Errorf("image %s: %w", img.Source, err)
		}
		for _, dg := range path {
			e.choose[dg] = chosen.Digest
		}
		if it, ok := e.images[chosen.Digest]; ok {
			it.sources = append(it.sources, img.Source)
			continue
		}
		it, err := imageOf(*chosen)
		if errors.Is(err, errNotContainer) {
			// a signature, SBOM or other artifact carried with the images
			e.log.Info("not a container image, not loaded into docker", "image", img.Source, "err", err)
			for _, dg := range path {
				delete(e.choose, dg)
			}
			e.skipped[img.Digest] = true
			skipped = append(skipped, img.Source)
			continue
		}
		if err != nil {
			return fmt.Errorf("image %s: %w", img.Source, err)
		}
		it.sources = []string{img.Source}
		it.base = map[digest.Digest]string{}
	blobs:
		for _, dg := range append([]digest.Digest{it.config}, it.layers...) {
			if stored[dg] {
				continue
			}
			for _, bb := range m.BaseBlobs {
				if bb.Digest == dg {
					it.base[dg] = bb.Base // checked against the engine by checkBase
					continue blobs
				}
			}
			return fmt.Errorf("image %s: blob %s is not in the bundle: %w", img.Source, dg, bundle.ErrBlobMissing)
		}
		e.images[chosen.Digest] = it
		e.order = append(e.order, chosen.Digest)
	}
	if len(e.order) == 0 && len(skipped) > 0 {
		return fmt.Errorf("nothing to load: %s: %w", strings.Join(skipped, ", "), errNotContainer)
	}
	return nil
}

// checkBase makes sure, before anything is sent, that the engine holds
// what an incremental bundle left to its base bundles: an image whose
// config a base carried must be in the engine (it is then only tagged);
// for the others, every base layer must be in the engine on the same chain
// of layers below it, which is how docker load finds a layer it is not
// sent. The engine's layer chains come from its images' RootFS diff ids.
func (e *Engine) checkBase(ctx context.Context, m *meta.Meta, read func(context.Context, []descriptor.Descriptor) (map[digest.Digest][]byte, error)) error {
	var need []*image
	for _, dg := range e.order {
		if it := e.images[dg]; len(it.base) > 0 {
			need = append(need, it)
		}
	}
	if len(need) == 0 {
		return nil
	}
	ids, chains, err := e.inventory(ctx)
	if err != nil {
		return err
	}
	configs, err := readConfigs(ctx, m, need, read)
	if err != nil {
		return err
	}
	var missing []string
	var bases []string
	lack := func(it *image, what string, dg digest.Digest) {
		missing = append(missing, fmt.Sprintf("%s %s %s", strings.Join(it.sources, ", "), what, dg))
		if b := it.base[dg]; !slices.Contains(bases, b) {
			bases = append(bases, b)
		}
	}
	for _, it := range need {
		if _, ok := it.base[it.config]; ok {
			if ids[it.config] {
				it.present = true
			} else {
				lack(it, "image", it.config)
			}
			continue
		}
		diffs, err := diffIDs(it, configs[it.config])
		if err != nil {
			return err
		}
		for i, l := range it.layers {
			if _, ok := it.base[l]; ok && !chains[strings.Join(diffs[:i+1], ",")] {
				lack(it, fmt.Sprintf("layer %d/%d", i+1, len(it.layers)), l)
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: the engine lacks %d blob(s) that this incremental bundle left to base bundle(s) %s: %s; load %s into this engine first, or upload the bundles to a registry",
			bundle.ErrBaseMissing, len(missing), strings.Join(bases, ", "), strings.Join(missing, "; "), strings.Join(bases, ", "))
	}
	return nil
}

// inventory lists the engine's image ids and the layer chains it holds
// (every prefix of every image's RootFS diff ids, joined with commas).
func (e *Engine) inventory(ctx context.Context) (map[digest.Digest]bool, map[string]bool, error) {
	var list []struct{ Id string }
	if err := e.getJSON(ctx, "/images/json?all=1", &list); err != nil {
		return nil, nil, err
	}
	ids, chains := map[digest.Digest]bool{}, map[string]bool{}
	for _, img := range list {
		var info struct {
			RootFS struct{ Layers []string }
		}
		if err := e.getJSON(ctx, "/images/"+img.Id+"/json", &info); err != nil {
			return nil, nil, err
		}
		ids[digest.Digest(img.Id)] = true
		for i := range info.RootFS.Layers {
			chains[strings.Join(info.RootFS.Layers[:i+1], ",")] = true
		}
	}
	return ids, chains, nil
}

// getJSON decodes the answer of an Engine API GET.
func (e *Engine) getJSON(ctx context.Context, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker"+path, nil)
	if err != nil {
		return err
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: GET %s: %v", ErrEngine, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%w: GET %s: %v", ErrEngine, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: GET %s: %s: %s", ErrEngine, path, resp.Status, engineMessage(b))
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: GET %s: %v", ErrEngine, path, err)
	}
	return nil
}

// readConfigs reads, in one call, the stored configs of the images that
// need base layers (those whose config a base carried are not read).
func readConfigs(ctx context.Context, m *meta.Meta, need []*image, read func(context.Context, []descriptor.Descriptor) (map[digest.Digest][]byte, error)) (map[digest.Digest][]byte, error) {
	var ds []descriptor.Descriptor
	for _, it := range need {
		if _, inBase := it.base[it.config]; inBase {
			continue
		}
		for _, b := range m.Blobs {
			if b.Digest == it.config {
				ds = append(ds, descriptor.Descriptor{MediaType: b.MediaType, Digest: b.Digest, Size: b.Size})
			}
		}
	}
	if len(ds) == 0 {
		return nil, nil
	}
	if read == nil {
		return nil, fmt.Errorf("cannot read image configs to check the base layers: %w", oci.ErrUnsupported)
	}
	for _, d := range ds {
		if d.Size > 4<<20 {
			return nil, fmt.Errorf("config %s: %w: %d bytes", d.Digest, oci.ErrUnsupported, d.Size)
		}
	}
	configs, err := read(ctx, ds)
	if err != nil {
		return nil, fmt.Errorf("reading image configs: %w", err)
	}
	return configs, nil
}

// diffIDs are the layer diff ids in an image's config b.
func diffIDs(it *image, b []byte) ([]string, error) {
	if it.config.Algorithm().FromBytes(b) != it.config {
		return nil, fmt.Errorf("image %s: config %s: %w", strings.Join(it.sources, ", "), it.config, oci.ErrDigestMismatch)
	}
	var cfg struct {
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil || len(cfg.RootFS.DiffIDs) != len(it.layers) {
		return nil, fmt.Errorf("image %s: config %s: %d diff ids for %d layers (%v): %w", strings.Join(it.sources, ", "), it.config, len(cfg.RootFS.DiffIDs), len(it.layers), err, oci.ErrUnsupported)
	}
	return cfg.RootFS.DiffIDs, nil
}

// imageOf reads the config and layers of an image manifest, refusing what
// docker load cannot take.
func imageOf(mf meta.Manifest) (*image, error) {
	mm, err := bundle.ParseManifest(mf)
	if err != nil {
		return nil, err
	}
	im, ok := mm.(manifest.Imager)
	if !ok {
		return nil, fmt.Errorf("manifest %s (%s) is not an image manifest: %w", mf.Digest, mf.MediaType, oci.ErrUnsupported)
	}
	cfg, err := im.GetConfig()
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", mf.Digest, err)
	}
	if cfg.MediaType != mediatype.OCI1ImageConfig && cfg.MediaType != mediatype.Docker2ImageConfig {
		return nil, fmt.Errorf("manifest %s (config media type %q): %w", mf.Digest, cfg.MediaType, errNotContainer)
	}
	layers, err := im.GetLayers()
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", mf.Digest, err)
	}
	it := &image{manifest: mf.Digest, config: cfg.Digest, layers: []digest.Digest{}}
	for _, l := range layers {
		if len(l.URLs) > 0 {
			return nil, fmt.Errorf("manifest %s: foreign layer %s is not in the bundle: %w", mf.Digest, l.Digest, oci.ErrUnsupported)
		}
		it.layers = append(it.layers, l.Digest)
	}
	return it, nil
}

// choosePlatform returns the image manifest to load for a top manifest and
// the digests of the manifests on the way to it (top first).
func choosePlatform(m *meta.Meta, top meta.Manifest, want *platform.Platform, depth int) (*meta.Manifest, []digest.Digest, error) {
	mm, err := bundle.ParseManifest(top)
	if err != nil {
		return nil, nil, err
	}
	ix, ok := mm.(manifest.Indexer)
	if !ok {
		return &top, []digest.Digest{top.Digest}, nil
	}
	if depth > 4 {
		return nil, nil, fmt.Errorf("manifest %s: %w: indexes nested too deep", top.Digest, oci.ErrUnsupported)
	}
	dl, err := ix.GetManifestList()
	if err != nil {
		return nil, nil, fmt.Errorf("manifest %s: %w", top.Digest, err)
	}
	host := platform.Local()
	if want != nil {
		host = *want
	}
	// candidates: children stored in the bundle that are not attestations
	var cands []descriptor.Descriptor
	var have []string
	for _, d := range dl {
		if m.ManifestByDigest(d.Digest) == nil || (d.Platform != nil && d.Platform.OS == "unknown") {
			continue
		}
		cands = append(cands, d)
		if d.Platform != nil {
			have = append(have, d.Platform.String())
		} else {
			have = append(have, "(no platform)")
		}
	}
	var pick *descriptor.Descriptor
	for i, d := range cands {
		if d.Platform != nil && platform.Match(host, *d.Platform) {
			pick = &cands[i]
			break
		}
	}
	if pick == nil { // the best compatible one (e.g. arm64 for arm64/v8, amd64 for amd64/v3)
		cmpr := platform.NewCompare(host)
		var best platform.Platform
		for i, d := range cands {
			if d.Platform != nil && cmpr.Better(*d.Platform, best) {
				pick, best = &cands[i], *d.Platform
			}
		}
	}
	if pick == nil && want == nil && len(cands) == 1 {
		pick = &cands[0] // no choice to make
	}
	if pick == nil {
		if len(have) == 0 {
			have = []string{"none"}
		}
		return nil, nil, fmt.Errorf("%w: no %s image in index %s (the bundle has %s); choose one with --platform", oci.ErrPlatformMismatch, host, top.Digest, strings.Join(have, ", "))
	}
	chosen, path, err := choosePlatform(m, *m.ManifestByDigest(pick.Digest), want, depth+1)
	if err != nil {
		return nil, nil, err
	}
	return chosen, append([]digest.Digest{top.Digest}, path...), nil
}

// BlobExists is true for blobs no chosen image needs (so that Upload does
// not send them) and for blobs already written into the load stream.
func (e *Engine) BlobExists(_ context.Context, _ ref.Ref, d descriptor.Descriptor) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return !e.wanted[d.Digest] || e.written[d.Digest], nil
}

// BlobMount succeeds for a blob BlobExists reports: repositories do not
// matter to a Docker engine. Any other blob must be put.
func (e *Engine) BlobMount(_ context.Context, _, _ ref.Ref, d descriptor.Descriptor) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.written[d.Digest] || !e.wanted[d.Digest] {
		return nil
	}
	return fmt.Errorf("loading into docker: mounting %s: %w", d.Digest, oci.ErrUnsupported)
}

// BlobPut writes a wanted blob into the load stream as blobs/sha256/<hex>.
// When rdr fails (or ctx ends) part way, the stream is aborted: Docker
// gets a broken request and loads nothing, and the Engine fails from then
// on. When ctx ends, rdr is closed if it is an io.Closer, so that a read
// blocked on it returns. Blobs no chosen image needs, or already written, are read and
// dropped.
func (e *Engine) BlobPut(ctx context.Context, _ ref.Ref, d descriptor.Descriptor, rdr io.Reader) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.usable(); err != nil {
		return err
	}
	if !e.wanted[d.Digest] || e.written[d.Digest] {
		if _, err := io.Copy(io.Discard, rdr); err != nil {
			return fmt.Errorf("loading into docker: blob %s: %w", d.Digest, err)
		}
		return nil
	}
	if e.pw == nil {
		e.start()
	}
	pw := e.pw
	stop := context.AfterFunc(ctx, func() {
		pw.CloseWithError(context.Cause(ctx))
		if c, ok := rdr.(io.Closer); ok {
			_ = c.Close() // a read blocked on a source that stalled ends too
		}
	})
	err := e.tw.WriteHeader(&tar.Header{Name: bundle.BlobPath(d.Digest), Size: d.Size, Mode: 0o644, Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)})
	if err == nil {
		var n int64
		n, err = io.Copy(e.tw, rdr)
		if err == nil && n != d.Size {
			err = fmt.Errorf("%w: %d of %d bytes", oci.ErrSizeMismatch, n, d.Size)
		}
	}
	if !stop() {
		err = context.Cause(ctx) // the stream was closed under us
	}
	if err != nil {
		e.abort(err)
		return fmt.Errorf("loading into docker: blob %s: %w", d.Digest, err)
	}
	e.written[d.Digest] = true
	return nil
}

// usable reports why the Engine can take nothing more. e.mu is held.
func (e *Engine) usable() error {
	switch {
	case e.failed != nil:
		return fmt.Errorf("loading into docker: the load was aborted: %w", e.failed)
	case e.committed:
		return errors.New("loading into docker: already committed")
	}
	return nil
}

// abort breaks the load stream so that Docker loads nothing. e.mu is held.
func (e *Engine) abort(err error) {
	if e.failed == nil {
		e.failed = err
	}
	if e.pw != nil {
		e.pw.CloseWithError(err)
	}
}

// start begins the load request; the tar stream is its body. e.mu is held.
func (e *Engine) start() {
	pr, pw := io.Pipe()
	e.pw = pw
	e.bw = bufio.NewWriterSize(pw, 256<<10)
	e.tw = tar.NewWriter(e.bw)
	e.done = make(chan error, 1)
	go func() {
		err := e.load(pr)
		// Unblock a writer when Docker ended the request early, with what
		// it said.
		pr.CloseWithError(cmp.Or(err, errors.New("docker ended the load request")))
		e.done <- err
	}()
}

// load runs POST /images/load with body as the tar stream.
func (e *Engine) load(body io.Reader) error {
	req, err := http.NewRequestWithContext(e.reqCtx, http.MethodPost, "http://docker/images/load?quiet=1", body)
	if err != nil {
		return err
	}
	// Not optional: Docker parses a form-encoded body (curl's default) as
	// a form and then loads from an empty stream.
	req.Header.Set("Content-Type", "application/x-tar")
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: load request: %v", ErrEngine, err)
	}
	defer resp.Body.Close()
	return e.readLoadResponse(resp)
}

// readLoadResponse reads the JSON message stream of /images/load (Docker
// answers 200 and reports a failure as a message) and returns what Docker
// said when it failed.
func (e *Engine) readLoadResponse(resp *http.Response) error {
	body := io.LimitReader(resp.Body, 64<<20)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(body, 64<<10))
		return fmt.Errorf("%w: load: %s: %s", ErrEngine, resp.Status, engineMessage(b))
	}
	dec := json.NewDecoder(body)
	var problems []string
	for {
		var msg struct {
			Stream      string `json:"stream"`
			Status      string `json:"status"`
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("%w: load: reading the answer: %v", ErrEngine, err)
		}
		switch {
		case msg.ErrorDetail != nil && msg.ErrorDetail.Message != "":
			problems = append(problems, msg.ErrorDetail.Message)
		case msg.Error != "":
			problems = append(problems, msg.Error)
		case strings.TrimSpace(msg.Stream+msg.Status) != "":
			e.log.Info("docker said", "message", strings.TrimSpace(msg.Stream+msg.Status))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: load: %s", ErrEngine, strings.Join(problems, "; "))
	}
	return nil
}

// engineMessage returns the message of an Engine API error body
// ({"message": "..."}), or the body.
func engineMessage(b []byte) string {
	var msg struct{ Message string }
	if json.Unmarshal(b, &msg) == nil && msg.Message != "" {
		return msg.Message
	}
	return strings.TrimSpace(string(b))
}

// ManifestPut records which images to load and their tags. Docker computes
// its own manifests, so nothing is sent; an index is resolved to the image
// manifest New chose from it. A tag r.Repository:r.Tag becomes a RepoTag,
// prefixed with r.Registry unless that is docker.io (where library/ is
// dropped as Docker does).
func (e *Engine) ManifestPut(_ context.Context, r ref.Ref, m manifest.Manifest) error {
	dg := m.GetDescriptor().Digest
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.usable(); err != nil {
		return err
	}
	chosen, ok := e.choose[dg]
	if !ok {
		if r.Tag != "" && !e.skipped[dg] {
			return fmt.Errorf("loading into docker: tag %s: manifest %s is not one New chose to load", r.Tag, dg)
		}
		return nil // e.g. an index's child of another platform
	}
	img := e.images[chosen]
	img.put = true
	if r.Tag == "" {
		return nil
	}
	if tag := archive.RepoTag(r); !slices.Contains(img.tags, tag) {
		img.tags = append(img.tags, tag)
	}
	return nil
}

// Commit writes manifest.json (every image whose manifest was put, with
// its tags) as the last entry, ends the stream and waits for Docker's
// answer. It fails if a blob those images need was never written. If ctx
// is canceled the request is aborted; Docker may still finish a load whose
// stream was complete.
func (e *Engine) Commit(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.usable(); err != nil {
		return err
	}
	mj, missing, tagOnly := e.manifestEntries()
	if len(missing) > 0 {
		err := fmt.Errorf("%w: %d blob(s) never written: %s", bundle.ErrBlobMissing, len(missing), strings.Join(missing, ", "))
		e.abort(err)
		e.finish()
		return fmt.Errorf("loading into docker: %w", err)
	}
	if len(mj) == 0 {
		e.abort(errors.New("nothing to load"))
		e.finish()
		e.committed = true
		return e.tag(ctx, tagOnly)
	}
	if e.pw == nil {
		e.start() // images whose blobs all came before: not with Upload, but allowed
	}
	if err := e.sendManifest(ctx, mj); err != nil {
		return err
	}
	for _, en := range mj {
		e.log.Info("loaded into docker", "tags", strings.Join(en.RepoTags, ","), "id", "sha256:"+strings.TrimPrefix(en.Config, "blobs/sha256/"))
	}
	return e.tag(ctx, tagOnly)
}

// manifestEntries lists the manifest.json entries of every image whose
// manifest was put and that the engine does not hold yet, the blobs they
// need that were never written, and the images the engine holds already
// (they only need their tags). The e.mu lock is held.
func (e *Engine) manifestEntries() (mj []archive.DockerManifestEntry, missing []string, tagOnly []*image) {
	for _, dg := range e.order {
		img := e.images[dg]
		if !img.put {
			continue
		}
		if img.present {
			tagOnly = append(tagOnly, img)
			continue
		}
		en := archive.DockerManifestEntry{Config: bundle.BlobPath(img.config), RepoTags: slices.Sorted(slices.Values(img.tags)), Layers: []string{}}
		for _, b := range append([]digest.Digest{img.config}, img.layers...) {
			if _, inBase := img.base[b]; !e.written[b] && !inBase {
				missing = append(missing, fmt.Sprintf("%s (of %s)", b, strings.Join(img.sources, ", ")))
			}
		}
		for _, l := range img.layers {
			en.Layers = append(en.Layers, bundle.BlobPath(l))
		}
		mj = append(mj, en)
	}
	return mj, missing, tagOnly
}

// sendManifest writes manifest.json (mj) as the stream's last entry, ends
// the stream and waits for Docker's answer. The e.mu lock is held.
func (e *Engine) sendManifest(ctx context.Context, mj []archive.DockerManifestEntry) error {
	pw := e.pw
	stop := context.AfterFunc(ctx, func() {
		pw.CloseWithError(context.Cause(ctx))
		e.reqCancel()
	})
	defer stop()
	b, err := json.Marshal(mj)
	if err == nil {
		err = e.tw.WriteHeader(&tar.Header{Name: "manifest.json", Size: int64(len(b)), Mode: 0o644, Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)})
	}
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
		e.abort(err)
		e.finish()
		return fmt.Errorf("loading into docker: %w", err)
	}
	e.pw.Close()
	err = <-e.done
	e.committed = true
	e.reqCancel()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("loading into docker: %w (docker may still finish the load: the whole stream was sent)", context.Cause(ctx))
		}
		e.failed = err
		return fmt.Errorf("loading into docker: %w", err)
	}
	return nil
}

// tag gives images the engine already holds their tags (POST
// /images/{id}/tag).
func (e *Engine) tag(ctx context.Context, imgs []*image) error {
	for _, img := range imgs {
		for _, t := range slices.Sorted(slices.Values(img.tags)) {
			repo, tag := t, ""
			if i := strings.LastIndex(t, ":"); i > strings.LastIndex(t, "/") {
				repo, tag = t[:i], t[i+1:]
			}
			q := url.Values{"repo": {repo}, "tag": {tag}}
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://docker/images/"+img.config.String()+"/tag?"+q.Encode(), nil)
			if err != nil {
				return err
			}
			resp, err := e.client.Do(req)
			if err != nil {
				return fmt.Errorf("loading into docker: tagging %s: %w: %v", t, ErrEngine, err)
			}
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
				return fmt.Errorf("loading into docker: tagging %s: %w: %s: %s", t, ErrEngine, resp.Status, engineMessage(b))
			}
			e.log.Info("tagged in docker", "tag", t, "id", img.config)
		}
	}
	return nil
}

// finish ends a started request after abort and waits for it. e.mu is held.
func (e *Engine) finish() {
	e.reqCancel()
	if e.done != nil {
		<-e.done
		e.done = nil
	}
}

// Close aborts a load that was started but not committed, so that Docker
// loads nothing, and releases the request. Call it when the transfer
// failed before Commit; after Commit it does nothing.
func (e *Engine) Close() error {
	e.reqCancel() // unblocks a BlobPut waiting on Docker
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.committed {
		return nil
	}
	e.abort(errors.New("load aborted: the engine was closed"))
	e.finish()
	return nil
}
