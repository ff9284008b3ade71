package imagearchive

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/mediatype"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
)

// ErrNotArchive is a tar or directory that is neither an OCI layout nor a
// docker-archive.
var ErrNotArchive = errors.New("not an image archive")

// Format reads image archives as bundles.
type Format struct{}

var _ bundle.Format = Format{}

// Register makes ferry read image archives (bundle.Open).
func Register() { bundle.RegisterFormat(Format{}) }

// Name names the format.
func (Format) Name() string { return "an image archive" }

// Sniff tells a tar file.
func (Format) Sniff(head []byte) bool { return isTar(head) }

// SniffDir tells an OCI layout directory.
func (Format) SniffDir(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "oci-layout"))
	return err == nil
}

// Base refuses an archive as the base of an increment: it records no
// bundle ferry could name.
func (Format) Base(p string) (*meta.Meta, error) {
	return nil, fmt.Errorf("%s: an image archive cannot be the base of an increment (give a meta file)", filepath.Base(p))
}

// Open reads an archive: its OCI layout (index.json, with the names
// docker save, skopeo and ferry export write), or else docker's
// manifest.json, whose images get a Docker schema 2 manifest made from
// their config and layers (the archive keeps no manifest).
func (f Format) Open(p string) (*meta.Meta, bundle.Store, error) {
	var fs files
	var err error
	if st, serr := os.Stat(p); serr == nil && st.IsDir() {
		fs, err = indexDir(p)
	} else {
		fs, err = indexTar(p)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", filepath.Base(p), err)
	}
	c := &converter{dir: filepath.Dir(p), fs: fs, blobs: map[digest.Digest]*meta.Blob{}, mans: map[digest.Digest]bool{}, paths: map[digest.Digest]string{}}
	c.m = &meta.Meta{SchemaVersion: meta.SchemaVersion, Kind: "image-archive", ID: strings.TrimSuffix(filepath.Base(p), filepath.Ext(p)), Type: meta.TypeFull, Tool: "image archive", Compression: "none"}
	switch {
	case fs.has("index.json") && fs.has("oci-layout"):
		c.m.Tool, err = "OCI image layout", c.fromLayout()
	case fs.has("manifest.json"):
		c.m.Tool, err = "docker-archive", c.fromDocker()
	default:
		err = fmt.Errorf("%w: no index.json with oci-layout, no manifest.json", ErrNotArchive)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", filepath.Base(p), err)
	}
	c.finish()
	if st, err := os.Stat(p); err == nil {
		c.m.Created = st.ModTime().UTC()
	}
	return c.m, &store{fs: fs, paths: c.paths, m: c.m}, nil
}

type converter struct {
	dir   string // the bundle's directory: parts are relative to it
	fs    files
	m     *meta.Meta
	blobs map[digest.Digest]*meta.Blob
	mans  map[digest.Digest]bool
	paths map[digest.Digest]string // where each blob is in the archive
}

// fromLayout reads index.json: each named manifest is an image.
func (c *converter) fromLayout() error {
	b, err := readSmall(c.fs, "index.json")
	if err != nil {
		return err
	}
	var ix struct {
		Manifests []descriptor.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(b, &ix); err != nil {
		return fmt.Errorf("index.json: %w", err)
	}
	for _, d := range ix.Manifests {
		name := d.Annotations["io.containerd.image.name"]
		if name == "" {
			name = d.Annotations["org.opencontainers.image.ref.name"]
		}
		r, err := ref.New(name)
		if name == "" || err != nil {
			continue // unnamed: a referrer, or nothing to call it at the target
		}
		if err := c.manifest(d, r.Repository, 0); err != nil {
			return err
		}
		c.image(name, r, d)
	}
	return nil
}

// manifest adds the manifest d (and its children, config and layers)
// from blobs/, checked against its digest.
func (c *converter) manifest(d descriptor.Descriptor, repo string, depth int) error {
	if depth > 4 {
		return fmt.Errorf("manifest %s: %w: nested too deep", d.Digest, oci.ErrLimit)
	}
	if c.mans[d.Digest] {
		return nil
	}
	if d.Digest.Validate() != nil {
		return fmt.Errorf("manifest digest %q: invalid", d.Digest)
	}
	raw, err := readSmall(c.fs, blobPath(d.Digest))
	if err != nil {
		return fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	if d.Digest.Algorithm().FromBytes(raw) != d.Digest {
		return fmt.Errorf("manifest %s: %w", d.Digest, oci.ErrDigestMismatch)
	}
	mf := meta.Manifest{Digest: d.Digest, MediaType: d.MediaType, Size: int64(len(raw)), Raw: raw, Repos: []string{repo}}
	mm, err := bundle.ParseManifest(mf)
	if err != nil {
		return err
	}
	c.mans[d.Digest] = true
	c.m.Manifests = append(c.m.Manifests, mf)
	blobs, children, err := oci.References(mm)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	for _, ch := range children {
		if c.fs.has(blobPath(ch.Digest)) { // an index may list platforms the archive left out
			if err := c.manifest(ch, repo, depth+1); err != nil {
				return err
			}
		}
	}
	for _, b := range blobs {
		if b.Digest.Validate() != nil {
			return fmt.Errorf("manifest %s: blob digest %q: invalid", d.Digest, b.Digest)
		}
		c.blob(b, blobPath(b.Digest), repo)
	}
	return nil
}

// blob records a blob stored at name in the archive (when it is there).
func (c *converter) blob(d descriptor.Descriptor, name, repo string) {
	if !c.fs.has(name) {
		return // verify and upload report it missing
	}
	b := c.blobs[d.Digest]
	if b == nil {
		b = &meta.Blob{Digest: d.Digest, Size: d.Size, MediaType: d.MediaType, Part: c.fs.part(name)}
		c.blobs[d.Digest] = b
		c.paths[d.Digest] = name
	}
	for _, r := range b.Repos {
		if r == repo {
			return
		}
	}
	b.Repos = append(b.Repos, repo)
}

func (c *converter) image(source string, r ref.Ref, d descriptor.Descriptor) {
	img := meta.Image{Source: source, Repository: r.Repository, Tag: r.Tag, Digest: d.Digest, MediaType: d.MediaType}
	if r.Digest != "" && !strings.Contains(source, ":"+r.Tag) {
		img.Tag = ""
	}
	c.m.Images = append(c.m.Images, img)
}

// finish lists the parts and blobs in a stable order.
func (c *converter) finish() {
	parts := map[string]bool{}
	for _, b := range c.blobs {
		parts[b.Part] = true
	}
	for _, p := range slices.Sorted(maps.Keys(parts)) {
		size := int64(0)
		if st, err := os.Stat(filepath.Join(c.dir, p)); err == nil {
			size = st.Size()
		}
		c.m.Parts = append(c.m.Parts, meta.Part{Name: p, Size: size})
	}
	for _, d := range slices.Sorted(maps.Keys(c.blobs)) {
		c.m.Blobs = append(c.m.Blobs, *c.blobs[d])
	}
}

func blobPath(d digest.Digest) string { return "blobs/" + d.Algorithm().String() + "/" + d.Encoded() }

// fromDocker reads docker's manifest.json: Config, RepoTags, Layers.
func (c *converter) fromDocker() error {
	b, err := readSmall(c.fs, "manifest.json")
	if err != nil {
		return err
	}
	var entries []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(b, &entries); err != nil {
		return fmt.Errorf("manifest.json: %w", err)
	}
	for _, e := range entries {
		cfg, err := c.dockerBlob(path.Clean(e.Config), mediatype.Docker2ImageConfig)
		if err != nil {
			return err
		}
		var layers []descriptor.Descriptor
		for _, l := range e.Layers {
			d, err := c.dockerBlob(path.Clean(l), "")
			if err != nil {
				return err
			}
			layers = append(layers, d)
		}
		raw, _ := json.MarshalIndent(map[string]any{"schemaVersion": 2, "mediaType": mediatype.Docker2Manifest, "config": cfg, "layers": layers}, "", "   ")
		md := descriptor.Descriptor{MediaType: mediatype.Docker2Manifest, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
		for _, tag := range e.RepoTags {
			r, err := ref.New(tag)
			if err != nil {
				return fmt.Errorf("manifest.json: RepoTags %q: %w", tag, err)
			}
			if !c.mans[md.Digest] {
				c.mans[md.Digest] = true
				c.m.Manifests = append(c.m.Manifests, meta.Manifest{Digest: md.Digest, MediaType: md.MediaType, Size: md.Size, Raw: raw})
			}
			mf := c.m.ManifestByDigest(md.Digest)
			mf.Repos = appendNew(mf.Repos, r.Repository)
			for _, d := range append([]descriptor.Descriptor{cfg}, layers...) {
				c.blob(d, c.paths[d.Digest], r.Repository)
			}
			c.image(tag, r, md)
		}
	}
	return nil
}

// dockerBlob describes a config or layer of a docker-archive: its digest
// from its name (blobs/sha256/<hex>, <hex>.json) or, for docker's older
// <id>/layer.tar, by reading it; a layer's media type from its first
// bytes (gzip, or an uncompressed tar).
func (c *converter) dockerBlob(name, mt string) (descriptor.Descriptor, error) {
	if !c.fs.has(name) {
		return descriptor.Descriptor{}, fmt.Errorf("manifest.json: %s: %w", name, bundle.ErrBlobMissing)
	}
	d := descriptor.Descriptor{MediaType: mt, Size: c.fs.size(name)}
	base := strings.TrimSuffix(path.Base(name), ".json")
	if dg := digest.NewDigestFromEncoded(digest.SHA256, base); dg.Validate() == nil {
		d.Digest = dg
	}
	rc, err := c.fs.open(name)
	if err != nil {
		return d, err
	}
	defer rc.Close()
	head := make([]byte, 2)
	n, _ := io.ReadFull(rc, head)
	if mt == "" {
		d.MediaType = mediatype.Docker2Layer
		if n == 2 && head[0] == 0x1f && head[1] == 0x8b {
			d.MediaType = mediatype.Docker2LayerGzip
		}
	}
	if d.Digest == "" { // hash it: read once here, checked again when pushed
		h := sha256.New()
		h.Write(head[:n])
		if _, err := io.Copy(h, oci.ContextReader(context.Background(), rc)); err != nil {
			return d, err
		}
		d.Digest = digest.NewDigest(digest.SHA256, h)
	}
	c.paths[d.Digest] = name
	return d, nil
}

func appendNew(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}
