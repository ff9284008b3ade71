package imagetransmit

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/squashfs"
	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/vbatts/tar-split/tar/asm"
	"github.com/vbatts/tar-split/tar/storage"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
)

// squashfsFile is a data file of image-transmit's squashfs mode: an image
// holding configs and blobs as <hex>.json, <hex>.raw (or .tar) files, and
// each gzip layer of a Docker image (<hex>.tar.gz in its tar mode)
// unpacked: its files under <hex>/ and its tar headers in
// <hex>_tar-split.json.gz (vbatts/tar-split). Such a layer is rebuilt:
// tar-split assembles the exact tar stream, which is gzipped again the way
// Go programs (docker, buildkit, image-transmit) do at their default
// settings; the result must hash to the layer's digest, or the layer is
// refused (ErrNotReproducible).
type squashfsFile struct {
	path   string
	mu     sync.Mutex
	levels map[digest.Digest]int // the gzip level that rebuilds a layer
}

// gzipLevels are tried, in this order, to rebuild a layer's gzip bytes.
var gzipLevels = []int{gzip.DefaultCompression, gzip.BestSpeed, gzip.BestCompression}

// maxTarSplit bounds a layer's decompressed tar-split file (its tar
// headers, as JSON): a layer of 100,000 files needs about 60 MB.
const maxTarSplit = 256 << 20

// openSquashfs opens the image at path (go-diskfs, pure Go) with a small
// block cache: blobs are read once, front to back.
func openSquashfs(f *os.File) (*squashfs.FileSystem, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	fsys, err := squashfs.Read(file.New(f, true), st.Size(), 0, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: squashfs: %v", bundle.ErrPartCorrupt, err)
	}
	fsys.SetCacheSize(4 << 20)
	return fsys, nil
}

// indexSquashfs lists the blobs of the image's top directory into entries.
func indexSquashfs(f *os.File, entries map[digest.Digest]entry) (*squashfsFile, error) {
	fsys, err := openSquashfs(f)
	if err != nil {
		return nil, err
	}
	des, err := fsys.ReadDir(".")
	if err != nil {
		return nil, fmt.Errorf("%w: squashfs: %v", bundle.ErrPartCorrupt, err)
	}
	dirs, splits := map[string]bool{}, map[string]bool{}
	for _, de := range des {
		name := de.Name()
		if h, ok := strings.CutSuffix(name, "_tar-split.json.gz"); ok && hexRe.MatchString(h) && de.Type().IsRegular() {
			splits[h] = true
			continue
		}
		if hexRe.MatchString(name) && de.IsDir() {
			dirs[name] = true
			continue
		}
		h, ok := hexOfEntry(name)
		if !ok || !de.Type().IsRegular() {
			return nil, fmt.Errorf("%q: %w: not a blob image-transmit writes", name, bundle.ErrUnlisted)
		}
		info, err := de.Info()
		if err != nil {
			return nil, fmt.Errorf("%w: squashfs: %v", bundle.ErrPartCorrupt, err)
		}
		entries[digestOf(h)] = entry{name: name, size: info.Size()}
	}
	for h := range dirs {
		if !splits[h] {
			return nil, fmt.Errorf("%s/: %w: an unpacked layer without its %s_tar-split.json.gz", h, bundle.ErrPartCorrupt, h)
		}
	}
	for h := range splits {
		if !dirs[h] { // a layer of no regular files has no directory
			dirs[h] = true
		}
		entries[digestOf(h)] = entry{name: h, size: -1, split: true}
	}
	return &squashfsFile{path: f.Name(), levels: map[digest.Digest]int{}}, nil
}

// open opens one blob, its size and digest checked at EOF.
func (s *squashfsFile) open(ctx context.Context, en entry, d descriptor.Descriptor) (io.ReadCloser, error) {
	if en.split {
		return s.rebuild(ctx, en.name, d)
	}
	fsys, f, err := s.fs()
	if err != nil {
		return nil, err
	}
	r, err := fsys.Open(en.name)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("blob %s: %w: %v", d.Digest, bundle.ErrPartCorrupt, err)
	}
	return readCloser{oci.VerifyReader(oci.ContextReader(ctx, r), d), func() error { r.Close(); return f.Close() }}, nil
}

func (s *squashfsFile) fs() (*squashfs.FileSystem, *os.File, error) {
	f, err := meta.OpenRegular(s.path)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", bundle.ErrPartMissing, err)
	}
	fsys, err := openSquashfs(f)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return fsys, f, nil
}

// rebuild streams an unpacked layer gzipped again at the level that gives
// back its digest.
func (s *squashfsFile) rebuild(ctx context.Context, h string, d descriptor.Descriptor) (io.ReadCloser, error) {
	level, err := s.level(ctx, h, d)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() {
		zw, _ := gzip.NewWriterLevel(pw, level)
		err := s.assemble(ctx, h, zw)
		if err == nil {
			err = zw.Close()
		}
		pw.CloseWithError(err)
	}()
	return readCloser{oci.VerifyReader(pr, d), pr.Close}, nil
}

// level finds, once per layer, the gzip level that rebuilds it: the
// candidates are tried in turn (the first, Go's default, is what docker,
// buildkit and image-transmit itself write), each stopped as soon as its
// output grows past the layer's size.
func (s *squashfsFile) level(ctx context.Context, h string, d descriptor.Descriptor) (int, error) {
	s.mu.Lock()
	l, ok := s.levels[d.Digest]
	s.mu.Unlock()
	if ok {
		return l, nil
	}
	tarHash := sha256.New()
	for i, lv := range gzipLevels {
		sum := sha256.New()
		cw := &countWriter{w: sum, max: d.Size}
		zw, _ := gzip.NewWriterLevel(cw, lv)
		var w io.Writer = zw
		if i == 0 {
			w = io.MultiWriter(zw, tarHash) // the tar stream's digest, for the error
		}
		err := s.assemble(ctx, h, w)
		if err == nil {
			err = zw.Close()
		}
		if errors.Is(err, errTooBig) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("layer %s: %w", d.Digest, err)
		}
		if cw.n == d.Size && digest.NewDigest(digest.SHA256, sum) == d.Digest {
			s.mu.Lock()
			s.levels[d.Digest] = lv
			s.mu.Unlock()
			return lv, nil
		}
	}
	return 0, fmt.Errorf("layer %s: %w: image-transmit's squashfs mode kept it unpacked (its tar stream, sha256:%x, was rebuilt), and no gzip setting ferry knows gives back the layer's compressed bytes; copy this image from its source registry, or from a tar-mode image-transmit bundle",
		d.Digest, ErrNotReproducible, tarHash.Sum(nil))
}

// errTooBig ends a candidate whose output is already larger than the layer.
var errTooBig = errors.New("larger than the layer")

// countWriter counts what it writes and fails past max bytes.
type countWriter struct {
	w      io.Writer
	n, max int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.n+int64(len(p)) > c.max {
		return 0, errTooBig
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// assemble writes the layer's exact tar stream: tar-split's headers and
// padding, and each file's bytes from <hex>/ (tar-split checks each
// file's CRC-64).
func (s *squashfsFile) assemble(ctx context.Context, h string, w io.Writer) error {
	fsys, f, err := s.fs()
	if err != nil {
		return err
	}
	defer f.Close()
	tsf, err := fsys.Open(h + "_tar-split.json.gz")
	if err != nil {
		return fmt.Errorf("%w: %v", bundle.ErrPartCorrupt, err)
	}
	defer tsf.Close()
	zr, err := gzip.NewReader(tsf)
	if err != nil {
		return fmt.Errorf("%w: %s_tar-split.json.gz: %v", bundle.ErrPartCorrupt, h, err)
	}
	up := storage.NewJSONUnpacker(io.LimitReader(zr, maxTarSplit))
	if err := asm.WriteOutputTarStream(layerFiles{fsys, h}, up, ctxWriter{ctx, w}); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: rebuilding the layer: %w", bundle.ErrPartCorrupt, err)
	}
	return nil
}

// layerFiles gives tar-split the files of an unpacked layer.
type layerFiles struct {
	fsys *squashfs.FileSystem
	h    string
}

func (l layerFiles) Get(name string) (io.ReadCloser, error) {
	clean := path.Clean("/" + name)[1:]
	if clean == "" || strings.HasPrefix(name, "../") || strings.Contains(name, "/../") {
		return nil, fmt.Errorf("file %q: %w", name, fs.ErrInvalid)
	}
	return l.fsys.Open(l.h + "/" + clean)
}

type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// each reads every blob of the image (ReadPart): those the meta stores go
// to fn, the others are checked against their names.
func (s *squashfsFile) each(ctx context.Context, entries map[digest.Digest]entry, want map[digest.Digest]*meta.Blob, fn bundle.BlobFunc) error {
	for _, dg := range slices.Sorted(maps.Keys(entries)) {
		en := entries[dg]
		b, ok := want[dg]
		if !ok {
			if en.split {
				continue // a layer no image needs: there is no descriptor to rebuild it against
			}
			b = &meta.Blob{Digest: dg, Size: en.size}
		}
		delete(want, dg)
		d := descriptor.Descriptor{Digest: b.Digest, Size: b.Size, MediaType: b.MediaType}
		r, err := s.open(ctx, en, d)
		if err != nil {
			return err
		}
		if ok {
			err = fn(b, r)
		}
		if err == nil {
			_, err = io.Copy(io.Discard, r)
		}
		r.Close()
		if err != nil {
			return fmt.Errorf("blob %s: %w", dg, err)
		}
	}
	return nil
}
