// Package regtest provides real registries and real images for tests, the
// demo and benchmarks: olareg in memory behind httptest, Debian's
// docker-registry (distribution) as a child process with optional basic
// auth and TLS, and deterministic OCI images built from testdata.
package regtest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http/httptest"
	"sort"
	"strings"

	"github.com/olareg/olareg"
	oconfig "github.com/olareg/olareg/config"
	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/mediatype"
	"github.com/regclient/regclient/types/platform"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/oci"
)

// Blob is a blob with its content, for small test images.
type Blob struct {
	Desc descriptor.Descriptor
	Data []byte
}

// Image is a built image: an image manifest, or an index with children.
type Image struct {
	Manifest manifest.Manifest
	Blobs    []Blob   // config and layers (of all children for an index)
	Children []*Image // for an index
	// Big layers streamed from a generator instead of Data (see BigLayer).
	Big []BigLayer
}

// Digest is the digest of the top manifest.
func (img *Image) Digest() digest.Digest { return img.Manifest.GetDescriptor().Digest }

// Layer builds a gzip tar layer with the given files (name -> content).
func Layer(files map[string]string) Blob {
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		_ = tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg, Format: tar.FormatPAX})
		_, _ = io.WriteString(tw, files[n])
	}
	_ = tw.Close()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(tb.Bytes())
	_ = zw.Close()
	return blobOf(mediatype.OCI1LayerGzip, gz.Bytes())
}

func blobOf(mt string, b []byte) Blob {
	return Blob{Desc: descriptor.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}, Data: b}
}

// diffID is the digest of the uncompressed layer.
func diffID(l Blob) digest.Digest {
	if l.Desc.MediaType != mediatype.OCI1LayerGzip {
		return l.Desc.Digest
	}
	zr, err := gzip.NewReader(bytes.NewReader(l.Data))
	if err != nil {
		panic(err)
	}
	h := sha256.New()
	_, _ = io.Copy(h, zr)
	return digest.NewDigest(digest.SHA256, h)
}

// NewImage builds an image manifest for a platform from layers.
func NewImage(plat string, layers ...Blob) *Image {
	p, err := platform.Parse(plat)
	if err != nil {
		panic(err)
	}
	var diffIDs []string
	for _, l := range layers {
		diffIDs = append(diffIDs, diffID(l).String())
	}
	cfg := map[string]any{
		"architecture": p.Architecture, "os": p.OS,
		"config": map[string]any{"Cmd": []string{"/hello"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	}
	if p.Variant != "" {
		cfg["variant"] = p.Variant
	}
	cb, _ := json.Marshal(cfg)
	return assemble(blobOf(mediatype.OCI1ImageConfig, cb), layers, nil)
}

func assemble(cfg Blob, layers []Blob, big []BigLayer) *Image {
	var ld []map[string]any
	for _, l := range layers {
		ld = append(ld, map[string]any{"mediaType": l.Desc.MediaType, "digest": l.Desc.Digest, "size": l.Desc.Size})
	}
	for _, l := range big {
		ld = append(ld, map[string]any{"mediaType": mediatype.OCI1Layer, "digest": l.Desc.Digest, "size": l.Desc.Size})
	}
	mb, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": mediatype.OCI1Manifest,
		"config": map[string]any{"mediaType": cfg.Desc.MediaType, "digest": cfg.Desc.Digest, "size": cfg.Desc.Size},
		"layers": ld,
	})
	m, err := manifest.New(manifest.WithRaw(mb), manifest.WithDesc(descriptor.Descriptor{MediaType: mediatype.OCI1Manifest, Digest: digest.FromBytes(mb), Size: int64(len(mb))}))
	if err != nil {
		panic(err)
	}
	return &Image{Manifest: m, Blobs: append([]Blob{cfg}, layers...), Big: big}
}

// NewIndex builds a multi-platform index of images (each must be built
// with NewImage for its platform).
func NewIndex(children ...*Image) *Image {
	var md []map[string]any
	img := &Image{Children: children}
	for _, c := range children {
		var cfg struct {
			OS, Architecture, Variant string
		}
		_ = json.Unmarshal(c.Blobs[0].Data, &cfg)
		p := map[string]any{"os": cfg.OS, "architecture": cfg.Architecture}
		if cfg.Variant != "" {
			p["variant"] = cfg.Variant
		}
		d := c.Manifest.GetDescriptor()
		md = append(md, map[string]any{"mediaType": d.MediaType, "digest": d.Digest, "size": d.Size, "platform": p})
		img.Blobs = append(img.Blobs, c.Blobs...)
	}
	ib, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mediatype.OCI1ManifestList, "manifests": md})
	m, err := manifest.New(manifest.WithRaw(ib), manifest.WithDesc(descriptor.Descriptor{MediaType: mediatype.OCI1ManifestList, Digest: digest.FromBytes(ib), Size: int64(len(ib))}))
	if err != nil {
		panic(err)
	}
	img.Manifest = m
	return img
}

// Push writes img to sink (blobs, manifests children first, then the tag
// or digest of r).
func Push(ctx context.Context, sink oci.Sink, r ref.Ref, img *Image) error {
	seen := map[digest.Digest]bool{}
	for _, b := range img.Blobs {
		if seen[b.Desc.Digest] {
			continue
		}
		seen[b.Desc.Digest] = true
		if ok, _ := sink.BlobExists(ctx, r, b.Desc); ok {
			continue
		}
		if err := sink.BlobPut(ctx, r, b.Desc, bytes.NewReader(b.Data)); err != nil {
			return fmt.Errorf("pushing blob %s: %w", b.Desc.Digest, err)
		}
	}
	for _, b := range img.Big {
		if ok, _ := sink.BlobExists(ctx, r, b.Desc); ok {
			continue
		}
		if err := sink.BlobPut(ctx, r, b.Desc, b.Reader()); err != nil {
			return fmt.Errorf("pushing blob %s: %w", b.Desc.Digest, err)
		}
	}
	for _, c := range img.Children {
		if err := sink.ManifestPut(ctx, r.SetDigest(c.Digest().String()), c.Manifest); err != nil {
			return fmt.Errorf("pushing manifest: %w", err)
		}
	}
	if r.Tag == "" && r.Digest == "" {
		r = r.SetDigest(img.Digest().String())
	}
	if err := sink.ManifestPut(ctx, r, img.Manifest); err != nil {
		return fmt.Errorf("pushing manifest: %w", err)
	}
	return nil
}

// BigLayer is an uncompressed tar layer holding one file of size
// pseudo-random (incompressible) bytes from seed, generated on demand.
type BigLayer struct {
	Desc descriptor.Descriptor
	seed uint64
	size int64
}

// NewBigLayer computes the layer's digest by generating it once.
func NewBigLayer(seed uint64, size int64) BigLayer {
	l := BigLayer{seed: seed, size: size}
	h := sha256.New()
	n, _ := io.Copy(h, l.Reader())
	l.Desc = descriptor.Descriptor{MediaType: mediatype.OCI1Layer, Digest: digest.NewDigest(digest.SHA256, h), Size: n}
	return l
}

// Reader streams the layer.
func (l BigLayer) Reader() io.Reader {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("data-%d.bin", l.seed), Mode: 0o644, Size: l.size, Typeflag: tar.TypeReg, Format: tar.FormatPAX})
		if err == nil {
			_, err = io.CopyN(tw, &randReader{r: rand.New(rand.NewPCG(l.seed, l.seed^0x9e3779b97f4a7c15))}, l.size)
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr
}

type randReader struct{ r *rand.Rand }

func (r *randReader) Read(p []byte) (int, error) {
	i := 0
	for ; i+8 <= len(p); i += 8 {
		v := r.r.Uint64()
		p[i], p[i+1], p[i+2], p[i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		p[i+4], p[i+5], p[i+6], p[i+7] = byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56)
	}
	for ; i < len(p); i++ {
		p[i] = byte(r.r.Uint32())
	}
	return len(p), nil
}

// NewBigImage builds a linux/amd64 image of n big layers of size bytes each.
func NewBigImage(seed uint64, n int, size int64) *Image {
	var big []BigLayer
	var diffIDs []string
	for i := range n {
		l := NewBigLayer(seed+uint64(i), size)
		big = append(big, l)
		diffIDs = append(diffIDs, l.Desc.Digest.String())
	}
	cb, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	return assemble(blobOf(mediatype.OCI1ImageConfig, cb), nil, big)
}

// Olareg starts an in-memory olareg behind httptest and returns its host
// (127.0.0.1:port) and a stop function.
func Olareg() (host string, stop func()) {
	reg := olareg.New(oconfig.Config{Storage: oconfig.ConfigStorage{StoreType: oconfig.StoreMem}})
	srv := httptest.NewServer(reg)
	return strings.TrimPrefix(srv.URL, "http://"), func() { srv.Close(); _ = reg.Close() }
}
