package regtest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"path"
	"sort"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/mediatype"
	"github.com/regclient/regclient/types/platform"
)

// DockerLayer builds a Docker schema 2 gzip layer (media type
// ...rootfs.diff.tar.gzip) of files, with an entry for every parent
// directory and a symlink "latest" to the first file, as docker build
// writes them. gnu gzips it the way GNU gzip -9 does (a file name in the
// header, best compression): bytes no Go writer at its defaults
// reproduces; otherwise Go's compress/gzip at its defaults, as image
// builders written in Go do.
func DockerLayer(files map[string]string, gnu bool) Blob {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	dirs := map[string]bool{}
	for _, n := range names {
		for d := path.Dir(n); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
			_ = tw.WriteHeader(&tar.Header{Name: d + "/", Mode: 0o755, Typeflag: tar.TypeDir, Format: tar.FormatPAX})
		}
		_ = tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg, Format: tar.FormatPAX})
		_, _ = tw.Write([]byte(files[n]))
	}
	if len(names) > 0 {
		_ = tw.WriteHeader(&tar.Header{Name: "latest", Linkname: names[0], Mode: 0o777, Typeflag: tar.TypeSymlink, Format: tar.FormatPAX})
	}
	_ = tw.Close()
	var gz bytes.Buffer
	var zw *gzip.Writer
	if gnu {
		zw, _ = gzip.NewWriterLevel(&gz, gzip.BestCompression)
		zw.Name = "layer.tar"
	} else {
		zw = gzip.NewWriter(&gz)
	}
	_, _ = zw.Write(tb.Bytes())
	_ = zw.Close()
	return blobOf(mediatype.Docker2LayerGzip, gz.Bytes())
}

// NewDockerImage builds a Docker schema 2 image of layers (DockerLayer) for
// a platform: Docker's media types for the manifest and the config.
func NewDockerImage(plat string, layers ...Blob) *Image {
	p, err := platform.Parse(plat)
	if err != nil {
		panic(err)
	}
	var diffIDs []string
	ld := []map[string]any{}
	for _, l := range layers {
		diffIDs = append(diffIDs, dockerDiffID(l).String())
		ld = append(ld, map[string]any{"mediaType": l.Desc.MediaType, "digest": l.Desc.Digest, "size": l.Desc.Size})
	}
	cb, _ := json.Marshal(map[string]any{
		"architecture": p.Architecture, "os": p.OS,
		"config": map[string]any{"Cmd": []string{"/hello"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	cfg := blobOf(mediatype.Docker2ImageConfig, cb)
	mb, _ := json.MarshalIndent(map[string]any{
		"schemaVersion": 2, "mediaType": mediatype.Docker2Manifest,
		"config": map[string]any{"mediaType": cfg.Desc.MediaType, "digest": cfg.Desc.Digest, "size": cfg.Desc.Size},
		"layers": ld,
	}, "", "   ")
	return &Image{Manifest: mustManifest(mediatype.Docker2Manifest, mb), Blobs: append([]Blob{cfg}, layers...)}
}

// NewDockerList builds a Docker manifest list of Docker images.
func NewDockerList(children ...*Image) *Image {
	img := NewIndex(children...)
	var ix map[string]any
	raw, _ := img.Manifest.RawBody()
	_ = json.Unmarshal(raw, &ix)
	ix["mediaType"] = mediatype.Docker2ManifestList
	ib, _ := json.MarshalIndent(ix, "", "   ")
	img.Manifest = mustManifest(mediatype.Docker2ManifestList, ib)
	return img
}

func mustManifest(mt string, b []byte) manifest.Manifest {
	m, err := manifest.New(manifest.WithRaw(b), manifest.WithDesc(descriptor.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}))
	if err != nil {
		panic(err)
	}
	return m
}

func dockerDiffID(l Blob) digest.Digest {
	return diffID(Blob{Desc: descriptor.Descriptor{MediaType: mediatype.OCI1LayerGzip}, Data: l.Data})
}

// ImageTransmitFixtures are the images the image-transmit bundles in
// testdata/imagetransmit were saved from (see its README): Docker schema 2
// images (whose layers image-transmit's squashfs mode unpacks), an OCI
// image and a multi-platform Docker manifest list.
func ImageTransmitFixtures() map[string]*Image {
	base := DockerLayer(map[string]string{"etc/os-release": "NAME=ferry-test\n", "bin/hello": "#!/bin/sh\necho hello\n"}, false)
	app := DockerLayer(map[string]string{"app/app.txt": "app 1\n", "app/data/config.json": "{\"v\":1}\n"}, false)
	app2 := DockerLayer(map[string]string{"app/app.txt": "app 2\n", "app/notes/readme.md": "# app 2\n"}, true)
	var children []*Image
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		children = append(children, NewDockerImage(p, base, DockerLayer(map[string]string{"arch.txt": p + "\n"}, false)))
	}
	return map[string]*Image{
		"it/base:1":  NewDockerImage("linux/amd64", base),
		"it/app:1":   NewDockerImage("linux/amd64", base, app),
		"it/app:2":   NewDockerImage("linux/amd64", base, app, app2),
		"it/oci:1":   NewImage("linux/amd64", RootfsLayer("tools", nil)),
		"it/multi:1": NewDockerList(children...),
	}
}
