package archive

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/platform"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
)

// Image is one image to export.
type Image struct {
	// From is where src has it: a repository reference with the top
	// manifest's digest (an index or an image manifest).
	From ref.Ref
	// Names are the tagged names it gets in the archive.
	Names []ref.Ref
}

// Options configure Export.
type Options struct {
	// Platform picks one image manifest of every index (nested indexes
	// too). A docker-archive needs one; for the OCI formats nil keeps
	// whole indexes.
	Platform *platform.Platform
	// RequirePlatform makes an image that is not an index and is of
	// another platform than Platform an error (the user asked for that
	// platform); otherwise such an image is exported as it is.
	RequirePlatform bool
	// Progress receives per-blob progress; nil means none.
	Progress oci.Progress
}

// Result summarizes an export.
type Result struct {
	Images, Manifests, Blobs int
	Bytes                    int64
}

type plan struct {
	img       Image
	manifests []manifest.Manifest // children first, referrers after their subject
	top       manifest.Manifest   // the one to name
	tagged    []taggedRef         // cosign-style referrers: tags next to each name
}

type taggedRef struct {
	tag string
	m   manifest.Manifest
}

// Export copies images from src into sink: all their blobs (each once,
// digest-checked while streaming), then their manifests (children first)
// and names, then Commit.
func Export(ctx context.Context, src oci.Source, sink oci.Sink, images []Image, opts Options) (*Result, error) {
	_, isOCI := sink.(*OCIWriter)
	x := &exporter{src: src, opts: opts, isOCI: isOCI, from: map[digest.Digest]ref.Ref{}}
	var plans []plan
	for _, img := range images {
		if isOCI && len(img.Names) == 0 {
			return nil, fmt.Errorf("image %s: %w: an OCI layout lists images by tagged name", img.From.CommonName(), oci.ErrUnsupported)
		}
		p := plan{img: img}
		if err := x.walk(ctx, &p, map[digest.Digest]bool{}, img.From, 0, true); err != nil {
			return nil, fmt.Errorf("image %s: %w", img.From.CommonName(), err)
		}
		plans = append(plans, p)
	}
	res := &Result{}
	if err := x.copyBlobs(ctx, sink, res); err != nil {
		return nil, err
	}
	if err := writeImages(ctx, sink, plans, res); err != nil {
		return nil, err
	}
	if err := sink.Commit(ctx); err != nil {
		return nil, err
	}
	return res, nil
}

// exporter is what the stages of one Export share: the blobs of every
// image, each once, and where each is read from.
type exporter struct {
	src   oci.Source
	opts  Options
	isOCI bool
	blobs []descriptor.Descriptor
	from  map[digest.Digest]ref.Ref
	total int64
}

// walk adds the manifest at r to p after its children (with a Platform,
// only the child of that platform) and its blobs to x, then, for an OCI
// layout, what refers to it; top marks the manifest the image's names
// point at.
func (x *exporter) walk(ctx context.Context, p *plan, seen map[digest.Digest]bool, r ref.Ref, depth int, top bool) error {
	opts := x.opts
	if depth > 8 {
		return fmt.Errorf("manifest %s: %w: indexes nested too deep", r.Digest, oci.ErrUnsupported)
	}
	m, err := x.src.ManifestGet(ctx, r)
	if err != nil {
		return err
	}
	refs, children, err := oci.References(m)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", r.Digest, err)
	}
	if len(children) > 0 && opts.Platform != nil {
		d, err := manifest.GetPlatformDesc(m, opts.Platform)
		if err != nil {
			return fmt.Errorf("manifest %s: %w: %s (%v)", r.Digest, oci.ErrPlatformMismatch, opts.Platform, err)
		}
		return x.walk(ctx, p, seen, r.SetDigest(d.Digest.String()), depth+1, top) // the chosen child is named
	}
	for _, c := range children {
		if err := x.walk(ctx, p, seen, r.SetDigest(c.Digest.String()), depth+1, false); err != nil {
			return err
		}
	}
	if len(children) == 0 && depth == 0 && opts.RequirePlatform && opts.Platform != nil && len(refs) > 0 {
		plat, err := oci.ConfigPlatform(ctx, x.src, r, refs[0])
		if err != nil {
			return err
		}
		if plat != nil && !platform.Match(*opts.Platform, *plat) {
			return fmt.Errorf("%w: image is %s, wanted %s", oci.ErrPlatformMismatch, plat, opts.Platform)
		}
	}
	for _, d := range refs {
		if _, ok := x.from[d.Digest]; !ok {
			x.from[d.Digest] = r
			x.blobs = append(x.blobs, d)
			x.total += d.Size
		}
	}
	if !seen[m.GetDescriptor().Digest] {
		seen[m.GetDescriptor().Digest] = true
		p.manifests = append(p.manifests, m)
	}
	if top {
		p.top = m
	}
	return x.walkReferrers(ctx, p, seen, r, m, depth)
}

// walkReferrers adds, for an OCI layout (index.json lists them), what
// refers to m, and the tags of cosign-style referrers.
func (x *exporter) walkReferrers(ctx context.Context, p *plan, seen map[digest.Digest]bool, r ref.Ref, m manifest.Manifest, depth int) error {
	rs, ok := x.src.(oci.ReferrerSource)
	if !ok || !x.isOCI {
		return nil
	}
	list, err := rs.Referrers(ctx, r, m.GetDescriptor())
	if err != nil {
		return fmt.Errorf("referrers of %s: %w", m.GetDescriptor().Digest, err)
	}
	for _, rf := range list {
		if seen[rf.Desc.Digest] {
			continue
		}
		if err := x.walk(ctx, p, seen, r.SetDigest(rf.Desc.Digest.String()), depth+1, false); err != nil {
			return fmt.Errorf("referrer %s: %w", rf.Desc.Digest, err)
		}
		if rf.Tag != "" {
			p.tagged = append(p.tagged, taggedRef{tag: rf.Tag, m: p.manifests[len(p.manifests)-1]})
		}
	}
	return nil
}

// copyBlobs copies every blob the sink lacks.
func (x *exporter) copyBlobs(ctx context.Context, sink oci.Sink, res *Result) error {
	prog := x.opts.Progress
	if prog != nil {
		prog.SetTotal(x.total, len(x.blobs))
	}
	for _, d := range x.blobs {
		if ok, err := sink.BlobExists(ctx, x.from[d.Digest], d); err == nil && ok {
			continue
		}
		if err := copyBlob(ctx, x.src, sink, x.from[d.Digest], d, prog); err != nil {
			return err
		}
		res.Blobs++
		res.Bytes += d.Size
	}
	return nil
}

// writeImages puts each image's manifests, children first, then its
// names (and next to each name the tags of its cosign-style referrers).
func writeImages(ctx context.Context, sink oci.Sink, plans []plan, res *Result) error {
	for _, p := range plans {
		for _, m := range p.manifests {
			if err := sink.ManifestPut(ctx, p.img.From.SetDigest(m.GetDescriptor().Digest.String()), m); err != nil {
				return fmt.Errorf("image %s: %w", p.img.From.CommonName(), err)
			}
			res.Manifests++
		}
		for _, n := range p.img.Names {
			if err := sink.ManifestPut(ctx, n, p.top); err != nil {
				return fmt.Errorf("image %s: naming %s: %w", p.img.From.CommonName(), n.CommonName(), err)
			}
			for _, tr := range p.tagged {
				if err := sink.ManifestPut(ctx, n.SetTag(tr.tag), tr.m); err != nil {
					return fmt.Errorf("image %s: naming %s: %w", p.img.From.CommonName(), n.SetTag(tr.tag).CommonName(), err)
				}
			}
		}
		res.Images++
	}
	return nil
}

func copyBlob(ctx context.Context, src oci.Source, sink oci.Sink, r ref.Ref, d descriptor.Descriptor, prog oci.Progress) (err error) {
	rc, err := src.BlobGet(ctx, r, d)
	if err != nil {
		return fmt.Errorf("reading blob %s: %w", d.Digest, err)
	}
	defer rc.Close()
	var rdr io.Reader = rc
	if prog != nil {
		t := prog.Begin(d.Digest.Encoded()[:12], d.Size)
		defer func() { t.Done(err) }()
		rdr = &trackReader{r: rc, t: t}
	}
	return sink.BlobPut(ctx, r, d, rdr)
}

type trackReader struct {
	r io.Reader
	t oci.Tracker
}

func (tr *trackReader) Read(p []byte) (int, error) {
	n, err := tr.r.Read(p)
	tr.t.Add(int64(n))
	return n, err
}

// ExportTo streams images from src as an archive (docker-archive or
// oci-archive) to w, e.g. a pipe into `docker load`. A failure leaves a
// stream without its last entry (manifest.json, index.json), which
// loaders reject.
func ExportTo(ctx context.Context, src oci.Source, images []Image, w io.Writer, f Format, opts Options) (*Result, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	var sink oci.Sink
	switch f {
	case DockerArchive:
		sink = NewDockerWriter(bw)
	case OCIArchive:
		sink = NewOCIWriter(bw)
	default:
		return nil, fmt.Errorf("%w: %s is not a stream", ErrFormat, f)
	}
	res, err := Export(ctx, src, sink, images, opts)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// ErrOutputIsInput is returned by ExportFile for an output path that
// names one of the files it reads.
var ErrOutputIsInput = errors.New("the output is one of the bundle's own files")

// ExportFile writes images from src to path in format f: into a
// temporary file (or directory) beside path, created exclusively (never
// a file or link that is already there: a planted PATH.partial is left
// alone), synced and renamed to path when complete; on any failure the
// temporary output, and only it, is removed. An oci directory must not
// exist yet; an archive file is replaced. A path that is one of src's
// own files (a *bundle.Set's meta files, signatures and parts) is
// refused before anything is written.
func ExportFile(ctx context.Context, src oci.Source, images []Image, path string, f Format, opts Options) (*Result, error) {
	if _, err := ParseFormat(string(f)); err != nil {
		return nil, err
	}
	if err := notAnInput(src, path); err != nil {
		return nil, err
	}
	dir, pattern := filepath.Dir(path), "."+filepath.Base(path)+".*.partial"
	if f == OCILayout {
		if _, err := os.Lstat(path); err == nil {
			return nil, fmt.Errorf("%s exists: an oci layout is written into a new directory", path)
		}
		tmp, err := meta.MkdirTemp(dir, pattern, 0o755)
		if err != nil {
			return nil, err
		}
		res, err := Export(ctx, src, NewOCIDir(tmp), images, opts)
		if err == nil {
			err = os.Rename(tmp, path)
		}
		if err != nil {
			_ = os.RemoveAll(tmp) // made by MkdirTemp above: ours
			return nil, err
		}
		return res, nil
	}
	file, err := meta.CreateTemp(dir, pattern, 0o644)
	if err != nil {
		return nil, err
	}
	res, err := ExportTo(ctx, src, images, file, f, opts)
	if err == nil {
		err = file.Sync()
	}
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(file.Name(), path)
	}
	if err != nil {
		_ = os.Remove(file.Name())
		return nil, err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return res, nil
}

// notAnInput refuses an output path that is (or links to) one of the
// files src reads.
func notAnInput(src oci.Source, path string) error {
	s, ok := src.(interface{ Files() []string })
	if !ok {
		return nil
	}
	out, err := os.Stat(path)
	if err != nil {
		return nil // nothing there yet: not an input
	}
	for _, in := range s.Files() {
		if st, err := os.Stat(in); err == nil && os.SameFile(out, st) {
			return fmt.Errorf("-o %s: %w (%s)", path, ErrOutputIsInput, in)
		}
	}
	return nil
}
