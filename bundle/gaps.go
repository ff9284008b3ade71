package bundle

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
)

// ErrUnlisted marks content of a part that the meta file does not
// describe: an entry no meta record names, a link or a device, data after
// the end of the archive, or more than the layout files can inflate to.
var ErrUnlisted = errors.New("not described by the meta file")

// layoutFiles are the only entries a schema 2 part holds outside the
// entries the meta file locates (the OCI layout view of the last part),
// with their largest allowed sizes.
var layoutFiles = map[string]int64{"oci-layout": 4 << 10, "index.json": 64 << 20}

// maxGapBytes bounds what the uncovered bytes of a part may decode to: the
// layout files and tar framing. A part that inflates beyond it there is
// stopped as soon as it passes the bound.
const maxGapBytes = 64<<20 + 64<<10

// paxAllowed are the PAX records an entry may carry: the ones a tar
// writer uses for long names, large sizes and precise times. Any other
// (extended attributes such as security.capability, ACLs, link targets)
// is refused.
var paxAllowed = map[string]bool{"path": true, "size": true, "mtime": true, "atime": true, "ctime": true, "uid": true, "gid": true, "uname": true, "gname": true}

// checkHeader refuses a tar entry header that ferry never writes and
// that `tar -x` run as root would turn into a hazard: any type but a
// regular file, permission bits beyond 0755 (setuid, setgid, sticky, group
// or world write), an owner or group other than root (uid and gid 0,
// names empty or "root"), and PAX records other than paxAllowed. The
// error wraps ErrUnlisted and names the entry.
func checkHeader(hdr *tar.Header) error {
	why := ""
	switch {
	case hdr.Typeflag != tar.TypeReg:
		why = fmt.Sprintf("type %q", hdr.Typeflag)
	case hdr.Mode&^0o755 != 0:
		why = fmt.Sprintf("mode %#o", hdr.Mode)
	case hdr.Uid != 0 || hdr.Gid != 0:
		why = fmt.Sprintf("owner %d:%d", hdr.Uid, hdr.Gid)
	case hdr.Uname != "" && hdr.Uname != "root", hdr.Gname != "" && hdr.Gname != "root":
		why = fmt.Sprintf("owner %q:%q", hdr.Uname, hdr.Gname)
	}
	for k := range hdr.PAXRecords {
		if why == "" && !paxAllowed[k] {
			why = fmt.Sprintf("PAX record %q", k)
		}
	}
	if why == "" {
		return nil
	}
	return fmt.Errorf("entry %q (%s): %w", hdr.Name, why, ErrUnlisted)
}

// gaps returns the byte ranges of part p that no entry covers, in order.
func (bd *Bundle) gaps(p meta.Part) [][2]int64 {
	var out [][2]int64
	var at int64
	for e := range bd.partEntries(p.Name) {
		if e.Offset > at {
			out = append(out, [2]int64{at, e.Offset})
		}
		at = max(at, e.Offset+e.Length)
	}
	if p.Size > at {
		out = append(out, [2]int64{at, p.Size})
	}
	return out
}

// checkLayoutFile refuses an entry that is not one of the layout files
// within its size limit, or whose header checkHeader refuses.
func checkLayoutFile(hdr *tar.Header) error {
	limit, ok := layoutFiles[hdr.Name]
	if !ok || hdr.Typeflag != tar.TypeReg || hdr.Size > limit {
		return fmt.Errorf("entry %q (type %q, %d bytes): %w", hdr.Name, hdr.Typeflag, hdr.Size, ErrUnlisted)
	}
	return checkHeader(hdr)
}

// checkGap reads the n bytes of part p at offset off that no entry covers
// and refuses anything but the OCI layout files and the end of the tar
// archive (zeros): a hidden entry, a path such as ../x, a link or a
// device, data behind the archive's end, or a decompression bomb is an
// error wrapping ErrUnlisted that names the part and offset. All n bytes
// are read from r.
func (bd *Bundle) checkGap(r io.Reader, p string, off, n int64) error {
	if n <= 0 {
		return nil
	}
	raw := io.LimitReader(r, n)
	dec, err := Codec(bd.Meta.Compression).NewDecoder(raw)
	if err != nil {
		return fmt.Errorf("part %s at offset %d: %w: %v", p, off, ErrPartCorrupt, err)
	}
	defer dec.Close()
	lim := &boundedReader{r: dec, left: maxGapBytes}
	wrap := func(err error) error {
		if errors.Is(err, ErrUnlisted) {
			return fmt.Errorf("part %s at offset %d: %w", p, off, err)
		}
		return fmt.Errorf("part %s at offset %d: %w: %v", p, off, ErrPartCorrupt, err)
	}
	tr := tar.NewReader(lim)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return wrap(err)
		}
		if err := checkLayoutFile(hdr); err != nil {
			return fmt.Errorf("part %s at offset %d: %w", p, off, err)
		}
	}
	// behind the archive's end marker: only zeros (tar block padding)
	if err := onlyZeros(lim); err != nil {
		return wrap(fmt.Errorf("after the end of the tar archive: %w", err))
	}
	// what the decoder did not need (it would have failed on garbage)
	if _, err := io.Copy(io.Discard, raw); err != nil {
		return fmt.Errorf("part %s: %w", p, err)
	}
	return nil
}

// CheckGaps reads only the bytes of each schema 2 part that no entry of
// the meta file covers (normally just the OCI layout files and the tar
// end) and refuses anything else there (ErrUnlisted). Upload runs it
// before pushing anything; Verify checks the same while it reads whole
// parts. Schema 1 bundles are read whole by both and need no such check.
func (bd *Bundle) CheckGaps(ctx context.Context) error {
	if bd.Meta.SchemaVersion < 2 || bd.store != nil { // a Store checks its files itself
		return nil
	}
	var errs []error
	for _, p := range bd.Meta.Parts {
		gs := bd.gaps(p)
		if len(gs) == 0 {
			continue
		}
		f, err := bd.open(p.Name)
		if err != nil {
			return fmt.Errorf("part %s: %w: %v", p.Name, ErrPartMissing, err)
		}
		for _, g := range gs {
			if err := Codec(bd.Meta.Compression).CheckFrames(f, g[0], g[1]-g[0]); err != nil {
				errs = append(errs, fmt.Errorf("part %s at offset %d: %w", p.Name, g[0], err))
				break
			}
			sec := io.NewSectionReader(f, g[0], g[1]-g[0])
			if err := bd.checkGap(oci.ContextReader(ctx, sec), p.Name, g[0], g[1]-g[0]); err != nil {
				errs = append(errs, err)
				break
			}
		}
		f.Close()
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return errors.Join(errs...)
}

// zeroBufs are onlyZeros' buffers: verify checks the end of every entry's
// frame with it (60,000 entries in a 10,000-image bundle; a buffer each
// was 2 GB of garbage).
var zeroBufs = sync.Pool{New: func() any { return new([32 << 10]byte) }}

// onlyZeros reads r to its end and fails with ErrUnlisted at the first
// byte that is not zero.
func onlyZeros(r io.Reader) error {
	p := zeroBufs.Get().(*[32 << 10]byte)
	defer zeroBufs.Put(p)
	buf := p[:]
	for {
		n, err := r.Read(buf)
		for _, c := range buf[:n] {
			if c != 0 {
				return fmt.Errorf("data: %w", ErrUnlisted)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// boundedReader fails with ErrUnlisted once more than left bytes were read.
type boundedReader struct {
	r    io.Reader
	left int64
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		for range 100 {
			n, err := b.r.Read(one[:])
			if n > 0 {
				return 0, fmt.Errorf("more than %d bytes decoded outside the entries: %w", maxGapBytes, ErrUnlisted)
			}
			if err != nil {
				return 0, err
			}
		}
		return 0, io.ErrNoProgress
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}
