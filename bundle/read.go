package bundle

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"iter"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/ref"
	"golang.org/x/sync/errgroup"

	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
)

// Bundle is a bundle opened for reading: its meta file and directory.
//
// Random access (schema 2): Stat and Entries say where every stored blob
// and manifest lies (part, offset, length) and which repositories need it;
// OpenBlob reads one blob from its offset, decoding only its own frame, and
// checks its size and digest as it streams. Schema 1 bundles have no
// offsets: OpenBlob then reads the blob's part from the start up to the
// blob. BlobGet (the Source method) is OpenBlob.
type Bundle struct {
	Meta     *meta.Meta
	MetaPath string
	Dir      string

	indexOnce sync.Once
	index     map[digest.Digest]indexRef // where each stored entry's record is in Meta
	byPart    map[string][]indexRef      // each part's entries, by offset
	mansOnce  sync.Once                  // Manifest's index of Meta.Manifests
	mans      map[digest.Digest]*meta.Manifest
	refsOnce  sync.Once // ReferrersOf(Meta), for Referrers
	refs      map[digest.Digest][]digest.Digest
	tagged    map[string]digest.Digest // image tags (cosign-style referrers)
	refsErr   error
	// openPart opens a part file (tests count the bytes read).
	openPart func(path string) (partFile, error)
	// store reads the data files of another tool's bundle (foreign.go).
	store Store
}

// partFile is an open part: read sequentially or at offsets.
type partFile interface {
	io.Reader
	io.ReaderAt
	io.Closer
}

// Entry is a blob or manifest stored in a part of the bundle.
type Entry struct {
	// Descriptor has the digest, size and media type.
	Descriptor descriptor.Descriptor
	// Manifest is true for a manifest (its bytes are in the meta file too).
	Manifest bool
	// Part is the part file's name, in the bundle's directory.
	Part string
	// Location is the entry's byte range in the part; zero in schema 1.
	meta.Location
	// Repos are the repositories (as in the meta file, before any rename
	// at the target) whose images need the entry.
	Repos []string
}

func (bd *Bundle) open(name string) (partFile, error) {
	path := filepath.Join(bd.Dir, name)
	if bd.openPart != nil {
		return bd.openPart(path)
	}
	return meta.OpenRegular(path) // a FIFO or device must not block or never end
}

// indexRef is a stored entry's record in Meta: Manifests[i] or Blobs[i].
// The index holds these rather than Entries (a few bytes an entry, not a
// descriptor of a few hundred: 10,000 images store 60,000 entries).
type indexRef struct {
	manifest bool
	i        int32
}

func (bd *Bundle) entry(r indexRef) Entry {
	if r.manifest {
		mf := &bd.Meta.Manifests[r.i]
		return Entry{Descriptor: descriptor.Descriptor{MediaType: mf.MediaType, Digest: mf.Digest, Size: mf.Size}, Manifest: true, Part: mf.Part, Location: mf.Location, Repos: mf.Repos}
	}
	b := &bd.Meta.Blobs[r.i]
	return Entry{Descriptor: descriptor.Descriptor{MediaType: b.MediaType, Digest: b.Digest, Size: b.Size}, Part: b.Part, Location: b.Location, Repos: b.Repos}
}

func (bd *Bundle) buildIndex() {
	m := bd.Meta
	bd.index = make(map[digest.Digest]indexRef, len(m.Manifests)+len(m.Blobs))
	for i, mf := range m.Manifests {
		if mf.Part != "" {
			bd.index[mf.Digest] = indexRef{manifest: true, i: int32(i)}
		}
	}
	for i, b := range m.Blobs {
		bd.index[b.Digest] = indexRef{i: int32(i)} // a blob wins over a manifest of the same digest
	}
	bd.byPart = map[string][]indexRef{}
	for _, r := range bd.index {
		part, _ := bd.where(r)
		bd.byPart[part] = append(bd.byPart[part], r)
	}
	for _, refs := range bd.byPart {
		sort.Slice(refs, func(i, j int) bool {
			_, a := bd.where(refs[i])
			_, b := bd.where(refs[j])
			if a != b {
				return a < b
			}
			return bd.digestOf(refs[i]) < bd.digestOf(refs[j])
		})
	}
}

// storedBlob is the record of the stored blob d, which the index has (an
// entry of partEntries that is not a manifest).
func (bd *Bundle) storedBlob(d digest.Digest) *meta.Blob {
	return &bd.Meta.Blobs[bd.index[d].i]
}

// where is the part and offset of r's entry.
func (bd *Bundle) where(r indexRef) (string, int64) {
	if r.manifest {
		mf := &bd.Meta.Manifests[r.i]
		return mf.Part, mf.Offset
	}
	b := &bd.Meta.Blobs[r.i]
	return b.Part, b.Offset
}

func (bd *Bundle) digestOf(r indexRef) digest.Digest {
	if r.manifest {
		return bd.Meta.Manifests[r.i].Digest
	}
	return bd.Meta.Blobs[r.i].Digest
}

// partEntries yields the entries stored in part, by offset, one at a
// time (a part of 10,000 images holds 60,000 entries: no list of them).
func (bd *Bundle) partEntries(part string) iter.Seq[Entry] {
	bd.indexOnce.Do(bd.buildIndex)
	refs := bd.byPart[part]
	return func(yield func(Entry) bool) {
		for _, r := range refs {
			if !yield(bd.entry(r)) {
				return
			}
		}
	}
}

// Manifest returns the bundle's manifest with digest d, or nil: Meta's
// ManifestByDigest through a map built once (a 10,000-image bundle looks
// up every manifest; a scan for each would be quadratic).
func (bd *Bundle) Manifest(d digest.Digest) *meta.Manifest {
	bd.mansOnce.Do(func() {
		bd.mans = make(map[digest.Digest]*meta.Manifest, len(bd.Meta.Manifests))
		for i := range bd.Meta.Manifests {
			if mf := &bd.Meta.Manifests[i]; bd.mans[mf.Digest] == nil {
				bd.mans[mf.Digest] = mf // the first, as ManifestByDigest
			}
		}
	})
	return bd.mans[d]
}

// Stat returns the stored blob or manifest with digest d; the error wraps
// ErrBlobMissing when the bundle does not store it (a base blob of an
// increment is not stored).
func (bd *Bundle) Stat(d digest.Digest) (Entry, error) {
	bd.indexOnce.Do(bd.buildIndex)
	r, ok := bd.index[d]
	if !ok {
		return Entry{}, fmt.Errorf("blob %s: %w", d, ErrBlobMissing)
	}
	return bd.entry(r), nil
}

// Entries lists every stored blob and manifest, by part and offset.
func (bd *Bundle) Entries() []Entry {
	bd.indexOnce.Do(bd.buildIndex)
	out := make([]Entry, 0, len(bd.index))
	for _, r := range bd.index {
		out = append(out, bd.entry(r))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Part != out[j].Part {
			return out[i].Part < out[j].Part
		}
		if out[i].Offset != out[j].Offset {
			return out[i].Offset < out[j].Offset
		}
		return out[i].Descriptor.Digest < out[j].Descriptor.Digest
	})
	return out
}

// OpenBlob opens a stored blob or manifest by digest. The reader yields
// exactly its bytes and fails (oci.ErrSizeMismatch, ErrDigestMismatch) at EOF
// when they do not match; a part whose entry at the recorded offset is not
// this blob fails with ErrPartCorrupt. The caller closes it.
func (bd *Bundle) OpenBlob(ctx context.Context, d digest.Digest) (io.ReadCloser, error) {
	e, err := bd.Stat(d)
	if err != nil {
		return nil, err
	}
	if bd.store != nil {
		return bd.store.OpenBlob(ctx, e)
	}
	if !e.Located() {
		return bd.scanBlob(ctx, e)
	}
	f, err := bd.open(e.Part)
	if err != nil {
		return nil, fmt.Errorf("blob %s: part %s: %w: %v", d, e.Part, ErrPartMissing, err)
	}
	if err := Codec(bd.Meta.Compression).CheckFrames(f, e.Offset, e.Length); err != nil {
		f.Close()
		return nil, fmt.Errorf("blob %s: part %s at offset %d: %w", d, e.Part, e.Offset, err)
	}
	r, closeDec, err := bd.entryReader(io.NewSectionReader(f, e.Offset, e.Length), e)
	if err != nil {
		f.Close()
		return nil, err
	}
	return readCloser{oci.ContextReader(ctx, r), func() error {
		closeDec()
		return f.Close()
	}}, nil
}

// OpenBlobFrom reads stored blob d from byte start to its end WITHOUT
// checking its digest: for a caller that read and checked the whole blob
// before (serve remembers which blobs passed) and now serves a range of
// it. The entry's tar header (name, size, mode, owner) is checked. An
// uncompressed schema 2 entry is read from the part at the range's
// offset; a compressed one is decoded from its frame's start, the bytes
// before start discarded (not hashed). A schema 1 blob is read (and
// checked) from its part's start.
func (bd *Bundle) OpenBlobFrom(ctx context.Context, d digest.Digest, start int64) (io.ReadCloser, error) {
	e, err := bd.Stat(d)
	if err != nil {
		return nil, err
	}
	if start < 0 || start > e.Descriptor.Size {
		return nil, fmt.Errorf("blob %s: start %d outside its %d bytes", d, start, e.Descriptor.Size)
	}
	if !e.Located() {
		rc, err := bd.OpenBlob(ctx, d)
		if err == nil {
			_, err = io.CopyN(io.Discard, rc, start)
		}
		return rc, err
	}
	f, err := bd.open(e.Part)
	if err != nil {
		return nil, fmt.Errorf("blob %s: part %s: %w: %v", d, e.Part, ErrPartMissing, err)
	}
	codec := Codec(bd.Meta.Compression)
	if err := codec.CheckFrames(f, e.Offset, e.Length); err != nil {
		f.Close()
		return nil, fmt.Errorf("blob %s: part %s at offset %d: %w", d, e.Part, e.Offset, err)
	}
	cr := &countingReader{r: io.NewSectionReader(f, e.Offset, e.Length), h: nopHash{}}
	dec, err := codec.NewFrameDecoder(cr)
	if err != nil {
		f.Close()
		return nil, err
	}
	tr := tar.NewReader(dec)
	hdr, err := tr.Next()
	if err == nil {
		err = checkEntryHeader(hdr, e)
	}
	if err == nil && codec == CodecNone {
		dec.Close() // the data is bytes [offset+header, +size) of the part
		sec := io.NewSectionReader(f, e.Offset+cr.n+start, e.Descriptor.Size-start)
		return readCloser{oci.ContextReader(ctx, sec), f.Close}, nil
	}
	if err == nil {
		_, err = io.CopyN(io.Discard, tr, start)
	}
	if err != nil {
		dec.Close()
		f.Close()
		return nil, fmt.Errorf("blob %s: part %s at offset %d: %w", d, e.Part, e.Offset, err)
	}
	return readCloser{oci.ContextReader(ctx, io.LimitReader(tr, e.Descriptor.Size-start)), func() error {
		dec.Close()
		return f.Close()
	}}, nil
}

// checkEntryHeader checks that hdr is the header of entry e: its name,
// size, type, mode and owner.
func checkEntryHeader(hdr *tar.Header, e Entry) error {
	if dg, ok := digestFromPath(hdr.Name); !ok || dg != e.Descriptor.Digest || hdr.Size != e.Descriptor.Size || hdr.Typeflag != tar.TypeReg {
		return fmt.Errorf("%w: entry %q of %d bytes", ErrPartCorrupt, hdr.Name, hdr.Size)
	}
	return checkHeader(hdr)
}

// nopHash is a hash.Hash that hashes nothing (a countingReader that only
// counts).
type nopHash struct{ hash.Hash }

func (nopHash) Write(p []byte) (int, error) { return len(p), nil }

// entryReader decodes the entry stored in sec (its frame, or its tar
// header and data uncompressed) and returns its data, size and digest
// checked.
func (bd *Bundle) entryReader(sec io.Reader, e Entry) (io.Reader, func(), error) {
	dec, err := Codec(bd.Meta.Compression).NewFrameDecoder(sec)
	if err != nil {
		return nil, nil, fmt.Errorf("blob %s: part %s: %w", e.Descriptor.Digest, e.Part, err)
	}
	tr := tar.NewReader(dec)
	hdr, err := tr.Next()
	if err != nil {
		dec.Close()
		return nil, nil, fmt.Errorf("blob %s: part %s at offset %d: %w: %v", e.Descriptor.Digest, e.Part, e.Offset, ErrPartCorrupt, err)
	}
	if err := checkEntryHeader(hdr, e); err != nil {
		dec.Close()
		return nil, nil, fmt.Errorf("blob %s: part %s at offset %d: %w", e.Descriptor.Digest, e.Part, e.Offset, err)
	}
	return &entryRest{Reader: oci.VerifyReader(tr, e.Descriptor), tr: tr, dec: dec, e: e}, func() { dec.Close() }, nil
}

// entryRest is an entry's reader that can also check, once the entry was
// read, that its frame holds nothing else (no second, hidden tar entry).
type entryRest struct {
	io.Reader
	tr  *tar.Reader
	dec io.Reader
	e   Entry
}

// checkRest refuses anything in the entry's frame after the entry but tar
// padding (an end marker's zeros).
func (r *entryRest) checkRest() error {
	hdr, err := r.tr.Next()
	switch {
	case err == nil:
		return fmt.Errorf("part %s at offset %d: entry %q after blob %s in its frame: %w", r.e.Part, r.e.Offset, hdr.Name, r.e.Descriptor.Digest, ErrUnlisted)
	case err != io.EOF:
		return fmt.Errorf("part %s at offset %d: after blob %s: %w: %v", r.e.Part, r.e.Offset, r.e.Descriptor.Digest, ErrPartCorrupt, err)
	}
	if err := onlyZeros(&boundedReader{r: r.dec, left: 64 << 10}); err != nil {
		if errors.Is(err, ErrUnlisted) {
			return fmt.Errorf("part %s at offset %d: after blob %s in its frame: %w", r.e.Part, r.e.Offset, r.e.Descriptor.Digest, err)
		}
		return fmt.Errorf("part %s at offset %d: after blob %s: %w", r.e.Part, r.e.Offset, r.e.Descriptor.Digest, err)
	}
	return nil
}

// Open loads and validates the meta file of a bundle.
func Open(metaPath string) (*Bundle, error) {
	if f, err := foreignFormat(metaPath); err != nil {
		return nil, err
	} else if f != nil {
		return openForeign(f, metaPath)
	}
	m, err := meta.Load(metaPath)
	if err != nil {
		return nil, err
	}
	return &Bundle{Meta: m, MetaPath: metaPath, Dir: filepath.Dir(metaPath)}, nil
}

// BlobFunc receives one blob of a part. r yields exactly the blob's bytes
// and fails at EOF when they do not match the meta file. Whatever the
// function leaves unread is read (and so checked) after it returns.
type BlobFunc func(b *meta.Blob, r io.Reader) error

// CheckParts checks, without reading them, that every part is present with
// the size the meta file gives.
func (bd *Bundle) CheckParts() error {
	var errs []error
	for _, p := range bd.Meta.Parts {
		st, err := os.Stat(filepath.Join(bd.Dir, p.Name))
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("part %s: %w (holds %s)", p.Name, ErrPartMissing, bd.partContents(p.Name)))
		case st.Size() != p.Size:
			errs = append(errs, fmt.Errorf("part %s: %w: %d bytes, meta says %d (holds %s)", p.Name, oci.ErrSizeMismatch, st.Size(), p.Size, bd.partContents(p.Name)))
		}
	}
	return errors.Join(errs...)
}

func (bd *Bundle) partContents(part string) string {
	var names []string
	var n int
	for _, b := range bd.Meta.Blobs {
		if b.Part == part {
			n++
			if len(names) < 5 {
				names = append(names, b.Digest.Encoded()[:12])
			}
		}
	}
	if n == 0 {
		return "no blobs"
	}
	s := fmt.Sprintf("%d blob(s): %s", n, strings.Join(names, " "))
	if n > len(names) {
		s += " …"
	}
	return s
}

type countingReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}

// ReadPart streams one part: it checks every entry the meta file lists for
// this part (blobs through fn, manifests against their digests), that none
// is missing, and the part's size and sha256 at the end.
//
// In a schema 2 bundle every entry is decoded on its own from its offset
// (so the offsets are checked too) in one sequential pass over the file.
func (bd *Bundle) ReadPart(ctx context.Context, p meta.Part, fn BlobFunc) error {
	if bd.store != nil {
		return bd.store.ReadPart(ctx, p, fn)
	}
	if bd.Meta.SchemaVersion >= 2 {
		return bd.readPartLocated(ctx, p, fn)
	}
	return bd.readPartScanned(ctx, p, fn)
}

// readPartScanned is ReadPart for a schema 1 part, which can only be read
// from the start: every entry it lists is checked as the tar reaches it.
func (bd *Bundle) readPartScanned(ctx context.Context, p meta.Part, fn BlobFunc) error {
	blobs, manifests := bd.listedIn(p.Name)
	f, err := bd.open(p.Name)
	if err != nil {
		return fmt.Errorf("part %s: %w: %v", p.Name, ErrPartMissing, err)
	}
	defer f.Close()
	if err := Codec(bd.Meta.Compression).CheckFrames(f, 0, p.Size); err != nil {
		return fmt.Errorf("part %s: %w", p.Name, err)
	}
	cr := &countingReader{r: bufio.NewReaderSize(oci.ContextReader(ctx, f), 1<<20), h: sha256.New()}
	dec, err := Codec(bd.Meta.Compression).NewDecoder(cr)
	if err != nil {
		return fmt.Errorf("part %s: %w", p.Name, err)
	}
	defer dec.Close()
	seen := map[digest.Digest]bool{}
	if err := readEntries(tar.NewReader(dec), blobs, manifests, seen, fn); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("part %s: %w", p.Name, err)
	}
	// behind the tar end: only zeros (padding), bounded as a gap is
	if err := onlyZeros(&boundedReader{r: dec, left: maxGapBytes}); err != nil {
		if errors.Is(err, ErrUnlisted) {
			return fmt.Errorf("part %s: after the end of the tar archive: %w", p.Name, err)
		}
		return fmt.Errorf("part %s: %w: %v", p.Name, ErrPartCorrupt, err)
	}
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return fmt.Errorf("part %s: %w", p.Name, err)
	}
	var missing []string
	for dg := range blobs {
		if !seen[dg] {
			missing = append(missing, dg.String())
		}
	}
	for dg := range manifests {
		if !seen[dg] {
			missing = append(missing, dg.String())
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("part %s: %w: %s", p.Name, ErrBlobMissing, strings.Join(missing, ", "))
	}
	return checkPartSum(cr, p)
}

// listedIn is what the meta file lists in part: its blobs and manifests.
func (bd *Bundle) listedIn(part string) (map[digest.Digest]*meta.Blob, map[digest.Digest]*meta.Manifest) {
	blobs := map[digest.Digest]*meta.Blob{}
	for i := range bd.Meta.Blobs {
		if b := &bd.Meta.Blobs[i]; b.Part == part {
			blobs[b.Digest] = b
		}
	}
	manifests := map[digest.Digest]*meta.Manifest{}
	for i := range bd.Meta.Manifests {
		if m := &bd.Meta.Manifests[i]; m.Part == part {
			manifests[m.Digest] = m
		}
	}
	return blobs, manifests
}

// checkPartSum checks the size and sha256 of part p, read through cr.
func checkPartSum(cr *countingReader, p meta.Part) error {
	if cr.n != p.Size {
		return fmt.Errorf("part %s: %w: read %d bytes, meta says %d", p.Name, oci.ErrSizeMismatch, cr.n, p.Size)
	}
	if sum := hex.EncodeToString(cr.h.Sum(nil)); sum != p.SHA256 {
		return fmt.Errorf("part %s: %w: sha256 %s, meta says %s", p.Name, ErrPartCorrupt, sum, p.SHA256)
	}
	return nil
}

// readEntries reads the entries of a schema 1 part with schema 2's
// rules: every entry is a regular file that checkHeader accepts, and is
// either a blob or manifest the meta file lists for this part (stored
// once: seen records it) or one of the layout files within its size
// limit; anything else (an unlisted blob, ../ or absolute paths, links,
// devices, directories) is refused with ErrUnlisted. Blobs go through fn,
// manifests are checked against their digests.
func readEntries(tr *tar.Reader, blobs map[digest.Digest]*meta.Blob, manifests map[digest.Digest]*meta.Manifest, seen map[digest.Digest]bool, fn BlobFunc) error {
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrPartCorrupt, err)
		}
		if err := checkHeader(hdr); err != nil {
			return err
		}
		dg, ok := digestFromPath(hdr.Name)
		b, isBlob := blobs[dg]
		m, isManifest := manifests[dg]
		switch {
		case !ok || (!isBlob && !isManifest):
			if err := checkLayoutFile(hdr); err != nil {
				return err
			}
			continue
		case seen[dg]:
			return fmt.Errorf("entry %q stored a second time: %w", hdr.Name, ErrUnlisted)
		}
		seen[dg] = true
		if isBlob {
			if hdr.Size != b.Size {
				return fmt.Errorf("blob %s: %w: entry has %d bytes, meta says %d", dg, oci.ErrSizeMismatch, hdr.Size, b.Size)
			}
			vr := oci.VerifyReader(io.LimitReader(tr, hdr.Size), descriptor.Descriptor{Digest: b.Digest, Size: b.Size})
			if err := fn(b, vr); err != nil {
				return err
			}
			if _, err := io.Copy(io.Discard, vr); err != nil {
				return err
			}
			continue
		}
		vr := oci.VerifyReader(io.LimitReader(tr, hdr.Size), descriptor.Descriptor{Digest: m.Digest, Size: m.Size})
		if _, err := io.Copy(io.Discard, vr); err != nil {
			return fmt.Errorf("manifest: %w", err)
		}
	}
}

// readPartLocated is ReadPart for a schema 2 part.
func (bd *Bundle) readPartLocated(ctx context.Context, p meta.Part, fn BlobFunc) error {
	f, err := bd.open(p.Name)
	if err != nil {
		return fmt.Errorf("part %s: %w: %v", p.Name, ErrPartMissing, err)
	}
	defer f.Close()
	if err := Codec(bd.Meta.Compression).CheckFrames(f, 0, p.Size); err != nil {
		return fmt.Errorf("part %s: %w", p.Name, err)
	}
	cr := &countingReader{r: bufio.NewReaderSize(oci.ContextReader(ctx, f), 256<<10), h: sha256.New()}
	fail := func(err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("part %s: %w", p.Name, err)
	}
	for e := range bd.partEntries(p.Name) { // sorted by offset, not overlapping (meta.Validate)
		if err := bd.checkGap(cr, p.Name, cr.n, e.Offset-cr.n); err != nil { // nothing the meta file does not name
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		lr := io.LimitReader(cr, e.Length)
		r, closeDec, err := bd.entryReader(lr, e)
		if err != nil {
			return fail(err)
		}
		if !e.Manifest {
			err = fn(bd.storedBlob(e.Descriptor.Digest), r)
		}
		if err == nil {
			_, err = io.Copy(io.Discard, r)
		}
		if err == nil {
			err = r.(*entryRest).checkRest() // verify: nothing hidden in the frame
		}
		closeDec()
		if err != nil {
			return fail(err)
		}
		if _, err := io.Copy(io.Discard, lr); err != nil { // the rest of the frame
			return fail(err)
		}
	}
	if err := bd.checkGap(cr, p.Name, cr.n, p.Size-cr.n); err != nil { // the layout files and the tar end
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return fail(err)
	}
	return checkPartSum(cr, p)
}

func digestFromPath(name string) (digest.Digest, bool) {
	name = strings.TrimPrefix(name, "./")
	rest, ok := strings.CutPrefix(name, "blobs/")
	if !ok {
		return "", false
	}
	algo, enc, ok := strings.Cut(rest, "/")
	if !ok {
		return "", false
	}
	d := digest.NewDigestFromEncoded(digest.Algorithm(algo), enc)
	if d.Validate() != nil {
		return "", false
	}
	return d, true
}

// Verify checks a bundle offline: parts present with the right size and
// sha256, every blob's and manifest's digest, and that every manifest's
// references resolve to a blob of the bundle or a base blob. It returns
// every problem found, joined; nil means OK.
func (bd *Bundle) Verify(ctx context.Context, jobs int, prog oci.Progress) error {
	var problems []error
	if err := bd.CheckRefs(); err != nil {
		problems = append(problems, err)
	}
	prog = oci.OrNop(prog)
	prog.SetTotal(bd.Meta.TotalBlobBytes(), len(bd.Meta.Blobs))
	present := bd.CheckParts()
	if present != nil {
		problems = append(problems, present)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(jobs, 1))
	errCh := make(chan error, len(bd.Meta.Parts))
	for _, p := range bd.Meta.Parts {
		if _, err := os.Stat(filepath.Join(bd.Dir, p.Name)); err != nil {
			continue // reported above
		}
		g.Go(func() error {
			err := bd.ReadPart(gctx, p, func(b *meta.Blob, r io.Reader) error {
				t := prog.Begin(b.Digest.Encoded()[:12], b.Size)
				_, err := io.Copy(io.Discard, oci.TrackReader(r, t))
				t.Done(err)
				return err
			})
			if err != nil {
				errCh <- err
			}
			return nil
		})
	}
	_ = g.Wait()
	close(errCh)
	for err := range errCh {
		problems = append(problems, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.Join(problems...)
}

// CheckRefs checks that every manifest's references resolve inside the
// bundle: child manifests to manifests, config and layers to blobs or base
// blobs, and every image to its manifest.
func (bd *Bundle) CheckRefs() error { return bd.checkRefs(nil) }

// checkRefs is CheckRefs with the bytes of manifests whose Raw is nil
// taken from raw (a Writer's spool).
func (bd *Bundle) checkRefs(raw meta.RawSource) error {
	have := map[digest.Digest]bool{}
	for _, b := range bd.Meta.Blobs {
		have[b.Digest] = true
	}
	for _, b := range bd.Meta.BaseBlobs {
		have[b.Digest] = true
	}
	mans := map[digest.Digest]bool{}
	for _, m := range bd.Meta.Manifests {
		mans[m.Digest] = true
	}
	var problems []error
	for _, mf := range bd.Meta.Manifests {
		if mf.Raw == nil && raw != nil {
			b, err := raw(mf.Digest)
			if err != nil {
				problems = append(problems, err)
				continue
			}
			mf.Raw = b
		}
		m, err := ParseManifest(mf)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		refs, children, err := oci.References(m)
		if err != nil {
			problems = append(problems, fmt.Errorf("manifest %s: %w", mf.Digest, err))
			continue
		}
		for _, d := range refs {
			if !have[d.Digest] {
				problems = append(problems, fmt.Errorf("manifest %s: %w: %s", mf.Digest, ErrBlobMissing, d.Digest))
			}
		}
		for _, d := range children {
			if !mans[d.Digest] {
				problems = append(problems, fmt.Errorf("manifest %s: %w: child manifest %s", mf.Digest, ErrBlobMissing, d.Digest))
			}
		}
	}
	return errors.Join(problems...)
}

// ParseManifest turns a manifest of a meta file into a regclient manifest,
// checking its digest.
func ParseManifest(mf meta.Manifest) (manifest.Manifest, error) {
	m, err := manifest.New(manifest.WithRaw(mf.Raw), manifest.WithDesc(descriptor.Descriptor{MediaType: mf.MediaType, Digest: mf.Digest, Size: mf.Size}))
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", mf.Digest, err)
	}
	return m, nil
}

// The bundle is also a Source: ManifestGet answers from the meta file,
// BlobGet is OpenBlob.
var _ oci.Source = (*Bundle)(nil)

// ManifestGet returns a manifest of the bundle by digest, or by the tag of
// an image of r's repository.
func (bd *Bundle) ManifestGet(_ context.Context, r ref.Ref) (manifest.Manifest, error) {
	dg := digest.Digest(r.Digest)
	if dg == "" {
		for _, img := range bd.Meta.Images {
			if img.Repository == r.Repository && img.Tag == r.Tag {
				dg = img.Digest
			}
		}
	}
	mf := bd.Manifest(dg)
	if mf == nil {
		return nil, fmt.Errorf("manifest %s: %w", r.CommonName(), ErrBlobMissing)
	}
	return ParseManifest(*mf)
}

// BlobGet returns a blob of the bundle (OpenBlob); the repository does not
// matter. Its size and digest are checked at EOF.
func (bd *Bundle) BlobGet(ctx context.Context, _ ref.Ref, d descriptor.Descriptor) (io.ReadCloser, error) {
	return bd.OpenBlob(ctx, d.Digest)
}

// scanBlob reads a schema 1 part from the start up to the blob.
func (bd *Bundle) scanBlob(ctx context.Context, e Entry) (io.ReadCloser, error) {
	d := e.Descriptor
	f, err := bd.open(e.Part)
	if err != nil {
		return nil, fmt.Errorf("blob %s: part %s: %w", d.Digest, e.Part, ErrPartMissing)
	}
	if err := Codec(bd.Meta.Compression).CheckFrames(f, 0, bd.partSize(e.Part)); err != nil {
		f.Close()
		return nil, fmt.Errorf("blob %s: part %s: %w", d.Digest, e.Part, err)
	}
	dec, err := Codec(bd.Meta.Compression).NewDecoder(bufio.NewReader(f))
	if err != nil {
		f.Close()
		return nil, err
	}
	tr := tar.NewReader(dec)
	for {
		hdr, err := tr.Next()
		if err != nil {
			dec.Close()
			f.Close()
			if err == io.EOF {
				return nil, fmt.Errorf("blob %s: %w in part %s", d.Digest, ErrBlobMissing, e.Part)
			}
			return nil, fmt.Errorf("blob %s: part %s: %w: %v", d.Digest, e.Part, ErrPartCorrupt, err)
		}
		if err := checkHeader(hdr); err != nil {
			dec.Close()
			f.Close()
			return nil, fmt.Errorf("blob %s: part %s: %w", d.Digest, e.Part, err)
		}
		if dg, ok := digestFromPath(hdr.Name); ok && dg == d.Digest {
			return readCloser{oci.VerifyReader(oci.ContextReader(ctx, tr), d), func() error {
				dec.Close()
				return f.Close()
			}}, nil
		}
	}
}

// partSize is the size the meta file gives part name.
func (bd *Bundle) partSize(name string) int64 {
	for _, p := range bd.Meta.Parts {
		if p.Name == name {
			return p.Size
		}
	}
	return 0
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }
