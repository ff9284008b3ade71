// Package archive writes images as files that other tools load, keeping
// every digest:
//
//   - docker-archive: Docker's own `docker save` layout (blobs/sha256/<hex>
//     for the config and each layer, manifest.json with Config, RepoTags
//     and Layers, written last) for `docker load`, `podman load`,
//     `ctr images import` and k3s/rke2 airgap image directories. One
//     platform per image; the image Id Docker shows is the config digest.
//   - oci-archive: a tar of an OCI image layout (oci-layout, index.json,
//     blobs/<alg>/<hex>), for `podman load`, `ctr images import`, skopeo
//     (`oci-archive:FILE`) and k3s/rke2.
//   - oci: the same layout as a directory.
//
// DockerWriter and OCIWriter are oci.Sinks that stream every blob into
// an io.Writer (a tar) or a directory: nothing is buffered whole and every
// blob's digest is checked on the way through. Export copies images from
// any oci.Source (a bundle.Set, a registry) into one of them. The
// index or manifest list naming the images is written last, so a stream
// that broke off never looks complete to a loader.
package archive

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/mediatype"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/oci"
)

// Format is an output format.
type Format string

// Formats.
const (
	DockerArchive Format = "docker-archive"
	OCIArchive    Format = "oci-archive"
	OCILayout     Format = "oci"
)

// Sentinel errors.
var (
	ErrFormat   = errors.New("unknown export format")
	ErrOneImage = errors.New("docker-archive holds image manifests only")
	ErrAborted  = errors.New("archive stream aborted")
)

// ParseFormat parses a format name.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case DockerArchive, OCIArchive, OCILayout:
		return f, nil
	}
	return "", fmt.Errorf("%w %q (docker-archive, oci-archive, oci)", ErrFormat, s)
}

// entries is where an archive's files go: a tar stream or a directory.
type entries interface {
	// add writes one file of size bytes read from r.
	add(name string, size int64, r io.Reader) error
	// close finishes the archive (the tar end); it does not close what
	// the archive is written to.
	close() error
}

type tarEntries struct{ tw *tar.Writer }

func (t tarEntries) add(name string, size int64, r io.Reader) error {
	if err := t.tw.WriteHeader(&tar.Header{Name: name, Size: size, Mode: 0o644, Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}); err != nil {
		return err
	}
	n, err := io.Copy(t.tw, r)
	if err == nil && n != size {
		err = fmt.Errorf("%s: %w: %d bytes, want %d", name, oci.ErrSizeMismatch, n, size)
	}
	return err
}

func (t tarEntries) close() error { return t.tw.Close() }

type dirEntries struct{ dir string }

func (d dirEntries) add(name string, size int64, r io.Reader) error {
	p := filepath.Join(d.dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, r)
	if err == nil && n != size {
		err = fmt.Errorf("%s: %w: %d bytes, want %d", name, oci.ErrSizeMismatch, n, size)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(p)
	}
	return err
}

func (d dirEntries) close() error { return nil }

// blobs is what both writers share: blob entries written once, checked
// while they stream, and a sticky failure.
type blobs struct {
	mu      sync.Mutex
	out     entries
	written map[digest.Digest]bool
	failed  error
}

func newBlobs(out entries) blobs {
	return blobs{out: out, written: map[digest.Digest]bool{}}
}

func (b *blobs) BlobExists(_ context.Context, _ ref.Ref, d descriptor.Descriptor) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.written[d.Digest], nil
}

func (b *blobs) BlobMount(_ context.Context, _, _ ref.Ref, d descriptor.Descriptor) error {
	return fmt.Errorf("blob %s: %w: an archive cannot mount", d.Digest, oci.ErrUnsupported)
}

// BlobPut writes blob d as blobs/<alg>/<hex>, checking its size and digest
// while it streams. A failed blob leaves the archive unusable: every later
// call fails with ErrAborted.
func (b *blobs) BlobPut(ctx context.Context, _ ref.Ref, d descriptor.Descriptor, rdr io.Reader) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failed != nil {
		return fmt.Errorf("%w: %v", ErrAborted, b.failed)
	}
	if b.written[d.Digest] {
		return nil
	}
	return b.putLocked(ctx, d, rdr)
}

func (b *blobs) putLocked(ctx context.Context, d descriptor.Descriptor, rdr io.Reader) error {
	if err := d.Digest.Validate(); err != nil {
		return fmt.Errorf("blob %q: %w", d.Digest, err)
	}
	err := b.out.add(bundle.BlobPath(d.Digest), d.Size, oci.ContextReader(ctx, oci.VerifyReader(rdr, d)))
	if err != nil {
		b.failed = err
		return fmt.Errorf("writing blob %s: %w", d.Digest, err)
	}
	b.written[d.Digest] = true
	return nil
}

func (b *blobs) usable() error {
	if b.failed != nil {
		return fmt.Errorf("%w: %v", ErrAborted, b.failed)
	}
	return nil
}

// finish writes the last entry (the list of images) and closes the archive.
func (b *blobs) finish(name string, v any) error {
	raw, err := json.Marshal(v)
	if err == nil {
		err = b.out.add(name, int64(len(raw)), strings.NewReader(string(raw)))
	}
	if err == nil {
		err = b.out.close()
	}
	if err != nil {
		b.failed = err
	}
	return err
}

// DockerWriter is a oci.Sink writing a docker-archive (`docker save`
// layout) to an io.Writer: blobs/sha256/<hex> entries for configs and
// layers as they come, manifest.json last (Commit). A stream cut before
// Commit holds no manifest.json, so `docker load` loads nothing from it.
// Methods are safe for concurrent use; BlobPut calls are serialized.
//
// It takes image manifests only (put an index's child, not the index).
// ManifestPut by digest adds an image, by tag also one of its RepoTags
// (named like `docker images` shows them: Docker Hub's registry and
// library/ dropped).
type DockerWriter struct {
	blobs
	images map[digest.Digest]*dockerImage
	order  []digest.Digest
}

type dockerImage struct {
	config digest.Digest
	layers []digest.Digest
	tags   []string
}

var _ oci.Sink = (*DockerWriter)(nil)

// NewDockerWriter writes a docker-archive tar to w.
func NewDockerWriter(w io.Writer) *DockerWriter {
	return &DockerWriter{blobs: newBlobs(tarEntries{tar.NewWriter(w)}), images: map[digest.Digest]*dockerImage{}}
}

// ManifestPut adds image manifest m (its blobs must have been put) and,
// when r has a tag, r as one of its RepoTags.
func (dw *DockerWriter) ManifestPut(_ context.Context, r ref.Ref, m manifest.Manifest) error {
	dw.mu.Lock()
	defer dw.mu.Unlock()
	if err := dw.usable(); err != nil {
		return err
	}
	dg := m.GetDescriptor().Digest
	img := dw.images[dg]
	if img == nil {
		im, ok := m.(manifest.Imager)
		if !ok || oci.IsIndex(m.GetDescriptor().MediaType) {
			return fmt.Errorf("manifest %s (%s): %w: choose a platform", dg, m.GetDescriptor().MediaType, ErrOneImage)
		}
		cfg, err := im.GetConfig()
		if err != nil {
			return fmt.Errorf("manifest %s: %w", dg, err)
		}
		layers, err := im.GetLayers()
		if err != nil {
			return fmt.Errorf("manifest %s: %w", dg, err)
		}
		img = &dockerImage{config: cfg.Digest}
		for _, l := range layers {
			if len(l.URLs) > 0 {
				return fmt.Errorf("manifest %s: layer %s: %w: foreign layers cannot be exported", dg, l.Digest, oci.ErrUnsupported)
			}
			img.layers = append(img.layers, l.Digest)
		}
		var missing []string
		for _, b := range append([]digest.Digest{img.config}, img.layers...) {
			if !dw.written[b] {
				missing = append(missing, b.String())
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("manifest %s: %w: %s not written", dg, bundle.ErrBlobMissing, strings.Join(missing, ", "))
		}
		dw.images[dg] = img
		dw.order = append(dw.order, dg)
	}
	if r.Tag != "" {
		if t := RepoTag(r); !slices.Contains(img.tags, t) {
			img.tags = append(img.tags, t)
		}
	}
	return nil
}

// RepoTag is the name Docker shows for r: repository:tag, with the
// registry in front unless it is Docker Hub (whose library/ namespace is
// also dropped).
func RepoTag(r ref.Ref) string {
	name := r.Repository
	switch r.Registry {
	case "", "docker.io", "index.docker.io", "registry-1.docker.io":
		name = strings.TrimPrefix(name, "library/")
	default:
		name = r.Registry + "/" + name
	}
	return name + ":" + r.Tag
}

// DockerManifestEntry is one image of a docker-archive's manifest.json.
type DockerManifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// Commit writes manifest.json and ends the tar stream (it does not close
// the io.Writer).
func (dw *DockerWriter) Commit(context.Context) error {
	dw.mu.Lock()
	defer dw.mu.Unlock()
	if err := dw.usable(); err != nil {
		return err
	}
	mj := []DockerManifestEntry{}
	for _, dg := range dw.order {
		img := dw.images[dg]
		en := DockerManifestEntry{Config: bundle.BlobPath(img.config), RepoTags: slices.Sorted(slices.Values(img.tags)), Layers: []string{}}
		for _, l := range img.layers {
			en.Layers = append(en.Layers, bundle.BlobPath(l))
		}
		mj = append(mj, en)
	}
	return dw.finish("manifest.json", mj)
}

// OCIWriter is a oci.Sink writing an OCI image layout, as a tar stream
// (oci-archive) or into a directory: blobs as they come, every manifest
// as a blob too, then oci-layout and index.json (Commit). index.json lists
// every manifest put by tag, annotated with the full name as both
// org.opencontainers.image.ref.name and io.containerd.image.name, and,
// unnamed with their artifact type, the referrers (manifests with a
// subject) put by digest.
type OCIWriter struct {
	blobs
	index     []descriptor.Descriptor
	referrers map[digest.Digest]bool // listed in index without a name
}

var _ oci.Sink = (*OCIWriter)(nil)

// NewOCIWriter writes an oci-archive (a tar of the layout) to w.
func NewOCIWriter(w io.Writer) *OCIWriter {
	return &OCIWriter{blobs: newBlobs(tarEntries{tar.NewWriter(w)})}
}

// NewOCIDir writes an OCI layout into dir, which must exist and be empty.
func NewOCIDir(dir string) *OCIWriter {
	return &OCIWriter{blobs: newBlobs(dirEntries{dir})}
}

// ManifestPut stores m as a blob and, when r has a tag, lists it in
// index.json under r's full name.
func (ow *OCIWriter) ManifestPut(ctx context.Context, r ref.Ref, m manifest.Manifest) error {
	ow.mu.Lock()
	defer ow.mu.Unlock()
	if err := ow.usable(); err != nil {
		return err
	}
	d := m.GetDescriptor()
	raw, err := m.RawBody()
	if err != nil {
		return fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	if !ow.written[d.Digest] {
		if err := ow.putLocked(ctx, descriptor.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: int64(len(raw))}, strings.NewReader(string(raw))); err != nil {
			return err
		}
	}
	if r.Tag == "" {
		if sj, ok := m.(manifest.Subjecter); ok {
			if s, err := sj.GetSubject(); err == nil && s != nil && !ow.referrers[d.Digest] {
				if ow.referrers == nil {
					ow.referrers = map[digest.Digest]bool{}
				}
				ow.referrers[d.Digest] = true
				// a referrer: listed without a name, where tools look for
				// referrers in a layout
				ow.index = append(ow.index, descriptor.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: int64(len(raw)), ArtifactType: oci.ArtifactType(d.MediaType, raw)})
			}
		}
		return nil
	}
	name := r.SetTag(r.Tag).CommonName()
	ow.index = append(ow.index, descriptor.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: int64(len(raw)), Annotations: map[string]string{
		"org.opencontainers.image.ref.name": name,
		"io.containerd.image.name":          name,
	}})
	return nil
}

// Commit writes oci-layout and index.json, then ends the stream.
func (ow *OCIWriter) Commit(context.Context) error {
	ow.mu.Lock()
	defer ow.mu.Unlock()
	if err := ow.usable(); err != nil {
		return err
	}
	layout := `{"imageLayoutVersion":"1.0.0"}`
	if err := ow.out.add("oci-layout", int64(len(layout)), strings.NewReader(layout)); err != nil {
		ow.failed = err
		return err
	}
	return ow.finish("index.json", map[string]any{"schemaVersion": 2, "mediaType": mediatype.OCI1ManifestList, "manifests": append([]descriptor.Descriptor{}, ow.index...)})
}
