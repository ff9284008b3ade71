// Package imagearchive reads image archives as bundles (a bundle.Format):
// a docker-archive (docker save, ferry export), an oci-archive, or an OCI
// image layout directory, so that `ferry upload` (and verify, inspect,
// serve, export) take what docker save, skopeo and image-transmit's
// newest version write.
package imagearchive

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
)

// maxSmall bounds the JSON files read whole (index.json, manifest.json,
// manifests, configs).
const maxSmall = 8 << 20

// files is an archive's files by their path in it: the entries of a
// plain tar, or the files of a directory.
type files interface {
	// has reports whether name is a regular file of the archive.
	has(name string) bool
	// size is a file's size.
	size(name string) int64
	// open opens a file.
	open(name string) (io.ReadCloser, error)
	// part is the bundle part that holds the file, relative to the
	// bundle's directory.
	part(name string) string
	// names lists the files.
	names() []string
}

// readSmall reads a small file of the archive whole.
func readSmall(fs files, name string) ([]byte, error) {
	if fs.size(name) > maxSmall {
		return nil, fmt.Errorf("%s: %w: %d bytes (at most %d)", name, oci.ErrLimit, fs.size(name), maxSmall)
	}
	rc, err := fs.open(name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, maxSmall))
}

// tarFiles are the entries of a plain tar file, by name, read at their
// offsets.
type tarFiles struct {
	path    string
	entries map[string]tarEntry
}

type tarEntry struct{ off, size int64 }

// indexTar lists a plain tar's regular files; archive/tar seeks over
// their data. Links, devices and names that leave the archive are refused.
func indexTar(p string) (*tarFiles, error) {
	f, err := meta.OpenRegular(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tf := &tarFiles{path: p, entries: map[string]tarEntry{}}
	links := map[string]string{} // docker save links a layer shared by two images
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			for name, target := range links {
				if e, ok := tf.entries[target]; ok {
					tf.entries[name] = e
				}
			}
			return tf, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", bundle.ErrPartCorrupt, err)
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "./"))
		switch {
		case hdr.Typeflag == tar.TypeDir:
			continue
		case hdr.Typeflag == tar.TypeSymlink:
			links[name] = path.Clean(path.Join(path.Dir(name), hdr.Linkname))
			continue
		case hdr.Typeflag == tar.TypeLink:
			links[name] = path.Clean(strings.TrimPrefix(hdr.Linkname, "./"))
			continue
		case hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeRegA, strings.HasPrefix(name, "../"), path.IsAbs(name):
			return nil, fmt.Errorf("entry %q: %w: not a regular file of the archive", hdr.Name, bundle.ErrUnlisted)
		}
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, err
		}
		tf.entries[name] = tarEntry{off: off, size: hdr.Size}
	}
}

func (t *tarFiles) has(name string) bool   { _, ok := t.entries[name]; return ok }
func (t *tarFiles) size(name string) int64 { return t.entries[name].size }
func (t *tarFiles) part(string) string     { return filepath.Base(t.path) }
func (t *tarFiles) names() []string        { return slices.Sorted(maps.Keys(t.entries)) }

func (t *tarFiles) open(name string) (io.ReadCloser, error) {
	e, ok := t.entries[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w in %s", name, bundle.ErrBlobMissing, filepath.Base(t.path))
	}
	f, err := meta.OpenRegular(t.path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", bundle.ErrPartMissing, err)
	}
	return readCloser{io.NewSectionReader(f, e.off, e.size), f.Close}, nil
}

// dirFiles are the files of an OCI layout directory.
type dirFiles struct {
	dir   string
	sizes map[string]int64
}

// indexDir lists index.json, oci-layout and blobs/<alg>/<hex> of a layout.
func indexDir(dir string) (*dirFiles, error) {
	df := &dirFiles{dir: dir, sizes: map[string]int64{}}
	for _, n := range []string{"index.json", "oci-layout"} {
		if st, err := os.Lstat(filepath.Join(dir, n)); err == nil && st.Mode().IsRegular() {
			df.sizes[n] = st.Size()
		}
	}
	algs, _ := os.ReadDir(filepath.Join(dir, "blobs"))
	for _, a := range algs {
		des, _ := os.ReadDir(filepath.Join(dir, "blobs", a.Name()))
		for _, de := range des {
			if info, err := de.Info(); err == nil && info.Mode().IsRegular() {
				df.sizes[path.Join("blobs", a.Name(), de.Name())] = info.Size()
			}
		}
	}
	return df, nil
}

func (d *dirFiles) has(name string) bool   { _, ok := d.sizes[name]; return ok }
func (d *dirFiles) size(name string) int64 { return d.sizes[name] }
func (d *dirFiles) names() []string        { return slices.Sorted(maps.Keys(d.sizes)) }
func (d *dirFiles) part(name string) string {
	return filepath.Join(filepath.Base(d.dir), filepath.FromSlash(name))
}

func (d *dirFiles) open(name string) (io.ReadCloser, error) {
	if !d.has(name) {
		return nil, fmt.Errorf("%s: %w in %s", name, bundle.ErrBlobMissing, d.dir)
	}
	f, err := meta.OpenRegular(filepath.Join(d.dir, filepath.FromSlash(name)))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", bundle.ErrPartMissing, err)
	}
	return f, nil
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }

// isTar reports whether head is the start of a tar file.
func isTar(head []byte) bool {
	return len(head) >= 262 && bytes.Equal(head[257:262], []byte("ustar"))
}
