package imagetransmit

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
)

// kind is how a data file stores its entries.
type kind int

const (
	kindTar      kind = iota // a plain tar: entries read at their offsets
	kindStream               // a tar compressed whole: entries read from the start
	kindSquashfs             // a squashfs image: files, some layers unpacked
)

// dataFile is one data file of the bundle, indexed.
type dataFile struct {
	name  string
	kind  kind
	codec bundle.Codec // kindStream
	// entries by digest: the first entry of each blob (kindTar: data
	// offset; kindSquashfs: how it is stored)
	entries map[digest.Digest]entry
	sq      *squashfsFile // kindSquashfs
}

type entry struct {
	name      string
	off, size int64 // kindTar: data bytes in the file; size for all
	split     bool  // kindSquashfs: a layer unpacked with its tar-split
}

// store reads an image-transmit bundle's data files (bundle.Store).
type store struct {
	dir     string
	files   map[string]*dataFile
	missing []string   // data files the meta names that are not there
	m       *meta.Meta // set by Open once converted
}

var _ bundle.Store = (*store)(nil)

// openStore indexes every data file that is present: a plain tar by its
// headers (archive/tar seeks over the data), a compressed one by reading
// it once, a squashfs image by its directory. An entry that is not a blob
// (<hex>.json, .raw, .tar, .tar.gz) is refused.
func openStore(dir string, im *itMeta) (*store, error) {
	st := &store{dir: dir, files: map[string]*dataFile{}}
	for _, name := range slices.Sorted(maps.Keys(im.Datafiles)) {
		path := filepath.Join(dir, name)
		if !exists(path) {
			st.missing = append(st.missing, name)
			continue
		}
		df, err := indexFile(path)
		if err != nil {
			return nil, fmt.Errorf("data file %s: %w", name, err)
		}
		st.files[name] = df
	}
	return st, nil
}

// indexFile tells a data file's kind by its first bytes, whatever its name
// or the meta file's compressor say, and indexes it.
func indexFile(path string) (*dataFile, error) {
	f, err := meta.OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	head := make([]byte, 8)
	n, _ := io.ReadFull(f, head)
	df := &dataFile{name: filepath.Base(path), entries: map[digest.Digest]entry{}}
	switch codec, sq := sniff(head[:n]); {
	case sq:
		df.kind = kindSquashfs
		df.sq, err = indexSquashfs(f, df.entries)
		return df, err
	case codec != bundle.CodecNone:
		df.kind, df.codec = kindStream, codec
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	err = df.walk(context.Background(), f, func(e entry, hdr *tar.Header, _ io.Reader) error {
		if _, ok := df.entries[digestOf(e.name[:64])]; !ok {
			df.entries[digestOf(e.name[:64])] = e
		}
		return nil
	})
	return df, err
}

// sniff reads a data file's magic bytes.
func sniff(head []byte) (bundle.Codec, bool) {
	switch {
	case bytes.HasPrefix(head, []byte("hsqs")):
		return "", true
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return bundle.CodecZstd, false
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return bundle.CodecGzip, false
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return bundle.CodecXz, false
	case bytes.HasPrefix(head, []byte{0x04, 0x22, 0x4d, 0x18}):
		return bundle.CodecLz4, false
	}
	return bundle.CodecNone, false
}

// walk reads a tar data file (plain or compressed) from r, its start, and
// calls fn for every entry with its data (nil for a plain tar read from a
// file: archive/tar seeks over what fn leaves unread). Entries that are
// not blobs are refused.
func (df *dataFile) walk(ctx context.Context, r io.Reader, fn func(e entry, hdr *tar.Header, data io.Reader) error) error {
	counted := &countReader{r: oci.ContextReader(ctx, r)}
	var src io.Reader = counted
	if df.kind == kindStream {
		dec, err := df.codec.NewDecoder(bufio.NewReaderSize(counted, 256<<10))
		if err != nil {
			return fmt.Errorf("%w: %v", bundle.ErrPartCorrupt, err)
		}
		defer dec.Close()
		src = dec
	} else if f, ok := r.(io.ReadSeeker); ok {
		src = seekCounter{counted, f}
	}
	tr := tar.NewReader(src)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w: %v", bundle.ErrPartCorrupt, err)
		}
		_, ok := hexOfEntry(hdr.Name)
		if !ok || (hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeRegA) || hdr.Size < 0 {
			return fmt.Errorf("entry %q: %w: not a blob image-transmit writes (<hex>.json, .raw, .tar, .tar.gz)", hdr.Name, bundle.ErrUnlisted)
		}
		e := entry{name: strings.TrimPrefix(hdr.Name, "./"), size: hdr.Size}
		if df.kind == kindTar {
			e.off = counted.n // the header is read: the data starts here
		}
		if err := fn(e, hdr, tr); err != nil {
			return err
		}
	}
}

// countReader counts the bytes read from r (a plain tar's offsets).
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// seekCounter lets archive/tar seek over entry data in a plain tar file
// while the count stays the file offset.
type seekCounter struct {
	*countReader
	f io.Seeker
}

func (s seekCounter) Seek(off int64, whence int) (int64, error) {
	n, err := s.f.Seek(off, whence)
	if err == nil {
		s.n = n
	}
	return n, err
}

// partOf is the data file that holds blob d.
func (st *store) partOf(d digest.Digest) (string, bool) {
	for _, n := range slices.Sorted(maps.Keys(st.files)) {
		if _, ok := st.files[n].entries[d]; ok {
			return n, true
		}
	}
	return "", false
}

// missingPart names a data file that is not there: a blob the bundle
// carried that no present data file holds was in it (CheckParts says so).
func (st *store) missingPart() (string, bool) {
	if len(st.missing) == 0 {
		return "", false
	}
	return st.missing[0], true
}

// OpenBlob opens a blob from its data file, its size and digest checked
// at EOF.
func (st *store) OpenBlob(ctx context.Context, e bundle.Entry) (io.ReadCloser, error) {
	df, ok := st.files[e.Part]
	if !ok {
		return nil, fmt.Errorf("blob %s: data file %s: %w", e.Descriptor.Digest, e.Part, bundle.ErrPartMissing)
	}
	en, ok := df.entries[e.Descriptor.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w in data file %s", e.Descriptor.Digest, bundle.ErrBlobMissing, e.Part)
	}
	d := e.Descriptor
	if en.size != d.Size && !en.split {
		return nil, fmt.Errorf("blob %s: data file %s: %w: entry has %d bytes, manifest says %d", d.Digest, e.Part, oci.ErrSizeMismatch, en.size, d.Size)
	}
	switch df.kind {
	case kindSquashfs:
		return df.sq.open(ctx, en, d)
	case kindTar:
		f, err := meta.OpenRegular(filepath.Join(st.dir, e.Part))
		if err != nil {
			return nil, fmt.Errorf("blob %s: data file %s: %w: %v", d.Digest, e.Part, bundle.ErrPartMissing, err)
		}
		r := oci.VerifyReader(oci.ContextReader(ctx, io.NewSectionReader(f, en.off, en.size)), d)
		return readCloser{r, f.Close}, nil
	}
	return st.scan(ctx, df, en, d)
}

// scan reads a compressed data file from the start up to the blob.
func (st *store) scan(ctx context.Context, df *dataFile, en entry, d descriptor.Descriptor) (io.ReadCloser, error) {
	f, err := meta.OpenRegular(filepath.Join(st.dir, df.name))
	if err != nil {
		return nil, fmt.Errorf("blob %s: data file %s: %w: %v", d.Digest, df.name, bundle.ErrPartMissing, err)
	}
	dec, err := df.codec.NewDecoder(bufio.NewReaderSize(f, 256<<10))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("data file %s: %w: %v", df.name, bundle.ErrPartCorrupt, err)
	}
	closeAll := func() error { dec.Close(); return f.Close() }
	tr := tar.NewReader(dec)
	for {
		hdr, err := tr.Next()
		if err != nil {
			closeAll()
			if err == io.EOF {
				err = bundle.ErrBlobMissing
			}
			return nil, fmt.Errorf("blob %s: data file %s: %w", d.Digest, df.name, err)
		}
		if hdr.Name == en.name || hdr.Name == "./"+en.name {
			return readCloser{oci.VerifyReader(oci.ContextReader(ctx, io.LimitReader(tr, hdr.Size)), d), closeAll}, nil
		}
	}
}

// ReadPart reads a whole data file: every blob the meta stores in it goes
// to fn; every other entry (a copy of a blob, one no image uses) is read
// and checked against the digest it is named after.
func (st *store) ReadPart(ctx context.Context, p meta.Part, fn bundle.BlobFunc) error {
	df, ok := st.files[p.Name]
	if !ok {
		return fmt.Errorf("data file %s: %w", p.Name, bundle.ErrPartMissing)
	}
	want := map[digest.Digest]*meta.Blob{}
	for i := range st.m.Blobs {
		if b := &st.m.Blobs[i]; b.Part == p.Name {
			want[b.Digest] = b
		}
	}
	var err error
	if df.kind == kindSquashfs {
		err = df.sq.each(ctx, df.entries, want, fn)
	} else {
		err = st.readTar(ctx, df, want, fn)
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("data file %s: %w", p.Name, err)
	}
	if len(want) > 0 {
		var names []string
		for d := range want {
			names = append(names, d.String())
		}
		sort.Strings(names)
		return fmt.Errorf("data file %s: %w: %v", p.Name, bundle.ErrBlobMissing, names)
	}
	return nil
}

// readTar streams a tar data file for ReadPart; want loses each blob
// given to fn.
func (st *store) readTar(ctx context.Context, df *dataFile, want map[digest.Digest]*meta.Blob, fn bundle.BlobFunc) error {
	f, err := meta.OpenRegular(filepath.Join(st.dir, df.name))
	if err != nil {
		return fmt.Errorf("%w: %v", bundle.ErrPartMissing, err)
	}
	defer f.Close()
	var r io.Reader = bufio.NewReaderSize(f, 256<<10) // read every byte: no seeking
	return df.walk(ctx, r, func(e entry, _ *tar.Header, data io.Reader) error {
		dg := digestOf(e.name[:64])
		if b, ok := want[dg]; ok {
			delete(want, dg)
			vr := oci.VerifyReader(io.LimitReader(data, e.size), descriptor.Descriptor{Digest: b.Digest, Size: b.Size})
			if e.size != b.Size {
				return fmt.Errorf("blob %s: %w: entry has %d bytes, manifest says %d", dg, oci.ErrSizeMismatch, e.size, b.Size)
			}
			if err := fn(b, vr); err != nil {
				return err
			}
			_, err := io.Copy(io.Discard, vr)
			return err
		}
		return checkNamed(dg, e, data)
	})
}

// checkNamed reads an entry no image needs and checks it hashes to the
// digest it is named after.
func checkNamed(dg digest.Digest, e entry, data io.Reader) error {
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(data, e.size))
	if err != nil {
		return err
	}
	if n != e.size || digest.NewDigest(digest.SHA256, h) != dg {
		return fmt.Errorf("entry %s: %w", e.name, oci.ErrDigestMismatch)
	}
	return nil
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }
