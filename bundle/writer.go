package bundle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"
	"unique"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/mediatype"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/internal/spool"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
)

// WriterOptions configure a bundle Writer.
type WriterOptions struct {
	// Dir is the output directory; it must exist.
	Dir string
	// Prefix starts every file name of the bundle (default "ferry").
	Prefix string
	// Codec compresses whole parts.
	Codec Codec
	// Parts is how many parts are written at once (one per worker); 1
	// with Single.
	Parts int
	// SplitSize starts a new part at the next blob boundary once a part
	// reaches this many bytes; 0 means no limit.
	SplitSize int64
	// Single writes exactly one part.
	Single bool
	// Platforms is recorded in the meta file.
	Platforms []string
	// Bases are the meta files of earlier bundles whose blobs are skipped.
	Bases []string
	// Tool is the tool name and version recorded in the meta file.
	Tool string
	// Now returns the creation time (default time.Now).
	Now func() time.Time
	// Log receives debug messages (default discard).
	Log *slog.Logger
	// SignMeta, when set, signs the meta file's bytes (read to EOF as they
	// are written); the signature is written next to it (sign.SigPath)
	// before the meta file itself.
	SignMeta func(metaFile io.Reader) ([]byte, error)
	// Resume says what to do with an interrupted save of the same inputs
	// in Dir and whether this save keeps a resume journal (see resume.go).
	Resume ResumeMode
	// Inputs are the caller's inputs that change the bundle's content
	// (transfer.SaveInputs); with the Writer's own options they decide which
	// interrupted save may be resumed.
	Inputs []string
}

// slot is one part being written; at most Parts slots exist, each used by
// one put at a time.
type slot struct {
	pw   *partWriter
	busy bool
}

type partRec struct {
	seq      int
	pw       *partWriter
	finished bool
	size     int64
	sha      string
}

// newPartMin is the size from which an entry may open a part of its own
// when every open part is busy; smaller entries wait for an open part, so
// small bundles get one part and no part is opened for a manifest.
const newPartMin = 1 << 20

// Writer writes a bundle. It is the bundle's Sink: BlobPut and
// ManifestPut stream into tar parts, Commit finishes the parts, renames
// them from *.partial to their final names and writes the meta file last.
// Abort removes everything written. Writer is safe for concurrent use by
// BlobPut and ManifestPut callers.
type Writer struct {
	opts    WriterOptions
	id      string
	created time.Time
	lock    string   // reservation of the id, removed by Commit and Abort
	lockf   *os.File // lock's file, flocked while the Writer lives
	renamed []string // parts renamed to their final names by commit
	unnamed []string // their partial names, in the same order
	seq     int      // parts started

	mu        sync.Mutex
	cond      *sync.Cond // a slot got free
	slots     []*slot
	parts     []*partRec
	blobs     map[digest.Digest]*meta.Blob
	manifests []*meta.Manifest
	mindex    map[digest.Digest]*meta.Manifest
	raws      *spool.Spool                // manifest bytes, kept out of memory until the meta file is written
	rawAt     map[digest.Digest]spool.Loc // where each manifest's bytes are in raws
	platforms map[digest.Digest]string    // index children's platforms
	repos     map[digest.Digest][]string  // blob -> repositories that need it
	base      map[digest.Digest]*meta.BaseBlob
	bases     []meta.Base
	images    []meta.Image
	failed    []meta.FailedItem
	done      bool

	// resume (resume.go)
	key           string     // resumeKey, when a journal is kept
	jmu           sync.Mutex // journal, journaled
	journal       *os.File   // .<id>.resume, appended per entry
	journaled     int        // entries the journal records
	kept          map[digest.Digest]bool
	keptManifests map[digest.Digest]*meta.Manifest // kept, not put again yet
	resumeInfo    ResumeInfo
	suspended     bool
}

var _ oci.Sink = (*Writer)(nil)

// NewWriter prepares a bundle in opts.Dir. Base meta files are loaded now.
func NewWriter(opts WriterOptions) (*Writer, error) {
	if opts.Prefix == "" {
		opts.Prefix = "ferry"
	}
	if !meta.ValidID(opts.Prefix) {
		return nil, fmt.Errorf("invalid prefix %q", opts.Prefix)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Single || opts.Parts < 1 {
		opts.Parts = 1
	}
	if opts.Single {
		opts.SplitSize = 0
	}
	if opts.Codec == "" {
		opts.Codec = CodecNone
	}
	w := &Writer{
		opts:      opts,
		created:   opts.Now().UTC().Truncate(time.Second),
		blobs:     map[digest.Digest]*meta.Blob{},
		mindex:    map[digest.Digest]*meta.Manifest{},
		rawAt:     map[digest.Digest]spool.Loc{},
		platforms: map[digest.Digest]string{},
		repos:     map[digest.Digest][]string{},
		base:      map[digest.Digest]*meta.BaseBlob{},

		kept:          map[digest.Digest]bool{},
		keptManifests: map[digest.Digest]*meta.Manifest{},
	}
	w.cond = sync.NewCond(&w.mu)
	for range opts.Parts {
		w.slots = append(w.slots, &slot{})
	}
	if err := w.loadBases(); err != nil {
		return nil, err
	}
	typ := meta.TypeFull
	if len(w.bases) > 0 {
		typ = meta.TypeIncremental
	}
	if opts.Resume != ResumeOff {
		resumed, err := w.resumeInterrupted(typ)
		if err != nil {
			return nil, err
		}
		if resumed {
			return w, nil
		}
	}
	if err := w.reserveID(typ); err != nil {
		return nil, err
	}
	if opts.Resume != ResumeOff {
		if err := w.startJournal(); err != nil {
			w.unlock()
			return nil, err
		}
	}
	return w, nil
}

// reserveID picks the bundle id <prefix>_<type>_<UTC second>: the creation
// second, or the next second no file of the directory uses, so that saves
// started in the same second (cron jobs, scripts) never collide and ids
// sort in the order the saves started. The id is reserved by creating
// .<id>.lock exclusively; Commit and Abort remove it.
func (w *Writer) reserveID(typ string) error {
	for i := range 3600 {
		id := fmt.Sprintf("%s_%s_%s", w.opts.Prefix, typ, w.created.Add(time.Duration(i)*time.Second).Format("20060102T150405Z"))
		if used, _ := filepath.Glob(filepath.Join(w.opts.Dir, id+"_*")); len(used) > 0 {
			continue
		}
		lock := filepath.Join(w.opts.Dir, "."+id+".lock")
		f, err := os.OpenFile(lock, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reserving bundle id: %w", err)
		}
		if err := tryLock(f); errors.Is(err, errLocked) { // a resume of another process took it
			_ = f.Close()
			continue
		} else if err != nil { // no locks on this file system: the file alone reserves the id
			w.opts.Log.Debug("lock file not locked", "file", lock, "err", err)
		}
		w.id, w.lock, w.lockf = id, lock, f
		return nil
	}
	return fmt.Errorf("no free bundle id for %s_%s in %s", w.opts.Prefix, typ, w.opts.Dir)
}

func (w *Writer) unlock() {
	if w.lock != "" {
		_ = os.Remove(w.lock)
	}
	if w.lockf != nil {
		w.lockf.Close()
		w.lockf = nil
	}
}

func (w *Writer) loadBases() error {
	seen := map[string]bool{}
	for _, file := range w.opts.Bases {
		bm, err := LoadBase(file)
		if err != nil {
			return fmt.Errorf("loading base: %w", err)
		}
		sum, err := meta.FileSHA256(file)
		if err != nil {
			return fmt.Errorf("loading base: %w", err)
		}
		if !seen[bm.ID] {
			seen[bm.ID] = true
			w.bases = append(w.bases, meta.Base{ID: bm.ID, Meta: filepath.Base(file), SHA256: sum})
		}
		for _, b := range bm.Bases { // an increment's own bases are needed too
			if !seen[b.ID] {
				seen[b.ID] = true
				w.bases = append(w.bases, b)
			}
		}
		for _, b := range bm.Blobs {
			if _, ok := w.base[b.Digest]; !ok {
				w.base[b.Digest] = &meta.BaseBlob{Digest: b.Digest, Size: b.Size, MediaType: b.MediaType, Base: bm.ID, BaseRepos: b.Repos}
			}
		}
		for _, b := range bm.BaseBlobs {
			if _, ok := w.base[b.Digest]; !ok {
				w.base[b.Digest] = &meta.BaseBlob{Digest: b.Digest, Size: b.Size, MediaType: b.MediaType, Base: b.Base, BaseRepos: b.BaseRepos}
			}
		}
	}
	return nil
}

// ID is the bundle id: <prefix>_<full|incr>_<UTC timestamp>.
func (w *Writer) ID() string { return w.id }

// Dir is the output directory.
func (w *Writer) Dir() string { return w.opts.Dir }

// MetaPath is where Commit writes the meta file.
func (w *Writer) MetaPath() string { return filepath.Join(w.opts.Dir, meta.FileName(w.id)) }

// BlobExists reports whether the bundle stores d or a base bundle carried it.
func (w *Writer) BlobExists(_ context.Context, _ ref.Ref, d descriptor.Descriptor) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, stored := w.blobs[d.Digest]
	_, based := w.base[d.Digest]
	return stored || based, nil
}

// BlobMount is a no-op: a bundle records which repositories need a blob
// from the manifests put into it.
func (w *Writer) BlobMount(context.Context, ref.Ref, ref.Ref, descriptor.Descriptor) error {
	return nil
}

// BlobPut streams d into a part. rdr is checked against d's size and digest;
// on any error the blob is not recorded.
func (w *Writer) BlobPut(ctx context.Context, _ ref.Ref, d descriptor.Descriptor, rdr io.Reader) error {
	if err := d.Digest.Validate(); err != nil {
		return fmt.Errorf("storing blob: %w", err)
	}
	part, loc, err := w.put(ctx, "b", d, rdr)
	if err != nil {
		return fmt.Errorf("storing blob %s: %w", d.Digest, err)
	}
	w.mu.Lock()
	w.blobs[d.Digest] = &meta.Blob{Digest: d.Digest, Size: d.Size, MediaType: unique.Make(d.MediaType).Value(), Part: part, Location: loc}
	w.mu.Unlock()
	return nil
}

// put writes an entry (kind "b" blob or "m" manifest, for the journal)
// into a part and returns the part's partial file name (renamed to its
// final name by Commit) and the entry's location.
func (w *Writer) put(ctx context.Context, kind string, d descriptor.Descriptor, rdr io.Reader) (string, meta.Location, error) {
	s, err := w.acquire(ctx, d.Size)
	if err != nil {
		return "", meta.Location{}, err
	}
	defer w.release(s)
	if s.pw != nil && w.opts.SplitSize > 0 && s.pw.size() >= w.opts.SplitSize && s.pw.count > 0 {
		if err := w.finishPart(s.pw); err != nil {
			return "", meta.Location{}, err
		}
		w.setPart(s, nil)
	}
	if s.pw == nil {
		pw, err := w.newPart()
		if err != nil {
			return "", meta.Location{}, err
		}
		w.setPart(s, pw)
	}
	loc, err := s.pw.add(BlobPath(d.Digest), d.Size, oci.Checked(ctx, rdr, d))
	if err != nil {
		return "", meta.Location{}, err
	}
	w.journalPut(kind, s.pw, d, loc)
	return filepath.Base(s.pw.path), loc, nil
}

// acquire takes a slot for an entry of size bytes: an idle slot with an
// open part if there is one; else an idle unopened slot when the entry is
// big (or no part is open yet); else it waits for a slot to get free.
func (w *Writer) acquire(ctx context.Context, size int64) (*slot, error) {
	defer w.wakeOnDone(ctx)()
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if w.done {
			return nil, fmt.Errorf("bundle %s: writer closed", w.id)
		}
		var open, free *slot
		opened := false
		for _, s := range w.slots {
			opened = opened || s.pw != nil || s.busy // a busy slot has or gets a part
			switch {
			case s.busy:
			case s.pw != nil && open == nil:
				open = s
			case s.pw == nil && free == nil:
				free = s
			}
		}
		if open == nil && free != nil && (size >= newPartMin || !opened) {
			open = free
		}
		if open != nil {
			open.busy = true
			return open, nil
		}
		w.cond.Wait()
	}
}

// setPart sets the part of a slot the caller holds; acquire reads it.
func (w *Writer) setPart(s *slot, pw *partWriter) {
	w.mu.Lock()
	s.pw = pw
	w.mu.Unlock()
}

func (w *Writer) release(s *slot) {
	w.mu.Lock()
	s.busy = false
	w.cond.Broadcast()
	w.mu.Unlock()
}

// wakeOnDone wakes the waiters of w.cond when ctx ends, so that they see
// ctx's error; call the returned function when done waiting.
func (w *Writer) wakeOnDone(ctx context.Context) func() bool {
	return context.AfterFunc(ctx, func() {
		w.mu.Lock()
		w.cond.Broadcast()
		w.mu.Unlock()
	})
}

// takeAll waits until no put runs and marks every slot busy.
func (w *Writer) takeAll(ctx context.Context) error {
	defer w.wakeOnDone(ctx)()
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		busy := false
		for _, s := range w.slots {
			busy = busy || s.busy
		}
		if !busy {
			for _, s := range w.slots {
				s.busy = true
			}
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		w.cond.Wait()
	}
}

func (w *Writer) releaseAll() {
	w.mu.Lock()
	for _, s := range w.slots {
		s.busy = false
	}
	w.cond.Broadcast()
	w.mu.Unlock()
}

func (w *Writer) newPart() (*partWriter, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return nil, fmt.Errorf("bundle %s: writer closed", w.id)
	}
	w.seq++
	seq := w.seq
	pw, err := newPartWriter(filepath.Join(w.opts.Dir, partName(w.id, seq, w.opts.Codec)), w.opts.Codec, w.created)
	if err != nil {
		return nil, err
	}
	pw.seq = seq
	w.parts = append(w.parts, &partRec{seq: seq, pw: pw})
	w.opts.Log.Debug("part started", "part", filepath.Base(pw.path))
	return pw, nil
}

func (w *Writer) finishPart(pw *partWriter) error {
	size, sum, err := pw.finish()
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.parts {
		if p.pw == pw {
			p.finished, p.size, p.sha = true, size, sum
		}
	}
	w.opts.Log.Debug("part finished", "part", filepath.Base(pw.path), "size", size)
	return nil
}

// ManifestPut stores a manifest (once) and records which repository needs
// it and the blobs it references. A put by tag only records the repository.
func (w *Writer) ManifestPut(ctx context.Context, r ref.Ref, m manifest.Manifest) error {
	raw, err := m.RawBody()
	if err != nil {
		return fmt.Errorf("storing manifest: %w", err)
	}
	d := m.GetDescriptor()
	if d.Digest == "" {
		d.Digest = digest.FromBytes(raw)
	}
	if d.Digest.Algorithm().FromBytes(raw) != d.Digest {
		return fmt.Errorf("storing manifest %s: %w", d.Digest, oci.ErrDigestMismatch)
	}
	w.mu.Lock()
	mf, ok := w.mindex[d.Digest]
	if kept := w.keptManifests[d.Digest]; !ok && kept != nil { // stored by the interrupted save
		delete(w.keptManifests, d.Digest)
		mf, ok = kept, true
		w.mindex[d.Digest] = mf
		w.manifests = append(w.manifests, mf)
	}
	w.mu.Unlock()
	if !ok {
		d.Size = int64(len(raw))
		part, loc, err := w.put(ctx, "m", d, bytesReader(raw))
		if err != nil {
			return fmt.Errorf("storing manifest %s: %w", d.Digest, err)
		}
		at, err := w.spoolRaw(raw)
		if err != nil {
			return fmt.Errorf("storing manifest %s: %w", d.Digest, err)
		}
		mf = &meta.Manifest{Digest: d.Digest, MediaType: unique.Make(d.MediaType).Value(), Size: d.Size, Part: part, Location: loc}
		w.mu.Lock()
		if prev, dup := w.mindex[d.Digest]; dup {
			mf = prev
		} else {
			w.mindex[d.Digest] = mf
			w.rawAt[d.Digest] = at
			w.manifests = append(w.manifests, mf)
		}
		w.mu.Unlock()
	}
	blobs, children, err := oci.References(m)
	if err != nil {
		return fmt.Errorf("storing manifest %s: %w", d.Digest, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	mf.Repos = addUnique(mf.Repos, r.Repository)
	for _, c := range children {
		if c.Platform != nil {
			w.platforms[c.Digest] = c.Platform.String()
		}
	}
	for _, b := range blobs {
		w.repos[b.Digest] = addUnique(w.repos[b.Digest], r.Repository)
	}
	return nil
}

// AddImage records an image whose manifests were put.
func (w *Writer) AddImage(img meta.Image) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.images = append(w.images, img)
}

// AddFailure records an image that could not be saved; the meta file is
// then marked partial.
func (w *Writer) AddFailure(source string, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failed = append(w.failed, meta.FailedItem{Source: source, Error: err.Error()})
}

// Commit writes the OCI layout files, finishes and renames every part and
// writes the meta file last. It returns the meta file's path.
func (w *Writer) Commit(ctx context.Context) error {
	_, err := w.CommitMeta(ctx)
	return err
}

// CommitMeta is Commit returning the written meta; its manifests' Raw
// is nil (they were written to the file from the spool).
func (w *Writer) CommitMeta(ctx context.Context) (*meta.Meta, error) {
	if err := w.takeAll(ctx); err != nil {
		return nil, err
	}
	m, err := w.commit(ctx)
	if err != nil {
		w.abortLocked()
		return nil, err
	}
	w.closeRaws()
	w.unlock()
	w.releaseAll()
	return m, nil
}

// commit does the work of CommitMeta; every slot is taken. In stages: the
// meta of what was put (buildMeta), the OCI layout files and every part
// finished (finishParts), the parts renamed to their final names
// (renameParts), the meta checked and written last.
func (w *Writer) commit(ctx context.Context) (*meta.Meta, error) {
	m, err := w.buildMeta()
	if err != nil {
		return nil, err
	}
	if err := w.finishParts(m); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := w.renameParts(m); err != nil {
		return nil, err
	}
	if err := m.ValidateWith(w.manifestRaw); err != nil {
		return nil, fmt.Errorf("bundle %s: %w", w.id, err)
	}
	if err := w.checkOrphans(m); err != nil {
		return nil, err
	}
	if err := w.writeMeta(m); err != nil {
		return nil, fmt.Errorf("writing meta: %w", err)
	}
	w.removeJournal()
	return m, nil
}

// finishParts writes the OCI layout files of m into the last open part
// holding entries (or a new one) and finishes every open part; a part
// that holds no entry (every entry it got failed) is dropped.
func (w *Writer) finishParts(m *meta.Meta) error {
	var last *slot
	for _, s := range w.slots {
		if s.pw != nil && (last == nil || s.pw.count > 0) {
			last = s
		}
	}
	if last == nil {
		pw, err := w.newPart()
		if err != nil {
			return err
		}
		last = w.slots[0]
		w.setPart(last, pw)
	}
	layout := []byte(`{"imageLayoutVersion":"1.0.0"}`)
	idx, err := ociIndex(m)
	if err != nil {
		return err
	}
	if _, err := last.pw.add("oci-layout", int64(len(layout)), bytesReader(layout)); err != nil {
		return err
	}
	if _, err := last.pw.add("index.json", int64(len(idx)), bytesReader(idx)); err != nil {
		return err
	}
	for _, s := range w.slots {
		if s.pw == nil {
			continue
		}
		if s.pw.count == 0 { // every entry it got failed: no empty part
			w.dropPart(s.pw)
		} else if err := w.finishPart(s.pw); err != nil {
			return err
		}
		w.setPart(s, nil)
	}
	return nil
}

// renameParts gives the finished parts their final names, <id>_<N>, N
// from 1 in the order parts were started (journaled first), and records
// them, and where each entry is, in m.
func (w *Writer) renameParts(m *meta.Meta) error {
	w.mu.Lock()
	w.done = true
	parts := slices.Clone(w.parts)
	w.mu.Unlock()
	if err := w.journalRenames(parts); err != nil {
		return err
	}
	names := map[string]string{}
	for _, p := range parts {
		if !p.finished {
			continue
		}
		name := partName(w.id, len(m.Parts)+1, w.opts.Codec)
		if err := os.Rename(p.pw.path+PartialSuffix, filepath.Join(w.opts.Dir, name)); err != nil {
			return fmt.Errorf("renaming part: %w", err)
		}
		w.renamed = append(w.renamed, filepath.Join(w.opts.Dir, name))
		w.unnamed = append(w.unnamed, p.pw.path+PartialSuffix)
		names[filepath.Base(p.pw.path)] = name
		m.Parts = append(m.Parts, meta.Part{Name: name, Size: p.size, SHA256: p.sha})
	}
	for i := range m.Manifests {
		m.Manifests[i].Part = names[m.Manifests[i].Part]
	}
	for i := range m.Blobs {
		m.Blobs[i].Part = names[m.Blobs[i].Part]
	}
	return nil
}

func (w *Writer) buildMeta() (*meta.Meta, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := &meta.Meta{
		SchemaVersion: meta.SchemaVersion,
		Kind:          meta.Kind,
		ID:            w.id,
		Type:          meta.TypeFull,
		Partial:       len(w.failed) > 0,
		Tool:          w.opts.Tool,
		Created:       w.created,
		Platforms:     w.opts.Platforms,
		Compression:   string(w.opts.Codec),
		Bases:         w.bases,
		Images:        w.images,
		Failed:        w.failed,
	}
	if len(w.bases) > 0 {
		m.Type = meta.TypeIncremental
	}
	if len(m.Images) == 0 {
		return nil, fmt.Errorf("bundle %s: %w: no image was saved", w.id, oci.ErrImagesFailed)
	}
	sort.SliceStable(m.Images, func(i, j int) bool { return m.Images[i].Source < m.Images[j].Source })
	for _, mf := range w.manifests {
		c := *mf
		c.Platform = w.platforms[c.Digest]
		m.Manifests = append(m.Manifests, c)
	}
	// Manifests an interrupted save stored that this one did not put
	// again (the source changed in between) are in the parts: list them.
	var orphans []meta.Manifest
	for _, mf := range w.keptManifests {
		orphans = append(orphans, *mf)
	}
	sort.Slice(orphans, func(i, j int) bool { return orphans[i].Digest < orphans[j].Digest })
	m.Manifests = append(m.Manifests, orphans...)
	for dg, b := range w.blobs {
		c := *b
		c.Repos = w.repos[dg]
		m.Blobs = append(m.Blobs, c)
	}
	sort.Slice(m.Blobs, func(i, j int) bool { return m.Blobs[i].Digest < m.Blobs[j].Digest })
	for dg, repos := range w.repos {
		if _, ok := w.blobs[dg]; ok {
			continue
		}
		bb, ok := w.base[dg]
		if !ok {
			return nil, fmt.Errorf("bundle %s: %w: %s", w.id, ErrBlobMissing, dg)
		}
		c := *bb
		c.Repos = repos
		m.BaseBlobs = append(m.BaseBlobs, c)
	}
	sort.Slice(m.BaseBlobs, func(i, j int) bool { return m.BaseBlobs[i].Digest < m.BaseBlobs[j].Digest })
	// m holds it all now: a bundle of 10,000 images need not keep two
	// copies of its records while the meta file is written.
	w.blobs, w.repos, w.mindex = map[digest.Digest]*meta.Blob{}, map[digest.Digest][]string{}, map[digest.Digest]*meta.Manifest{}
	w.manifests, w.images, w.platforms = nil, nil, map[digest.Digest]string{}
	return m, nil
}

// spoolRaw keeps a manifest's bytes in a spool file in the output
// directory (hidden, unlinked at once) until the meta file is written:
// 10,000 images' manifests are megabytes that memory need not hold.
func (w *Writer) spoolRaw(raw []byte) (spool.Loc, error) {
	w.mu.Lock()
	if w.raws == nil {
		s, err := spool.New(w.opts.Dir)
		if err != nil {
			w.mu.Unlock()
			return spool.Loc{}, err
		}
		w.raws = s
	}
	s := w.raws
	w.mu.Unlock()
	return s.Write(raw)
}

// manifestRaw reads a manifest's bytes back from the spool.
func (w *Writer) manifestRaw(d digest.Digest) ([]byte, error) {
	w.mu.Lock()
	at, ok := w.rawAt[d]
	s := w.raws
	w.mu.Unlock()
	if !ok || s == nil {
		return nil, fmt.Errorf("manifest %s: %w", d, ErrBlobMissing)
	}
	raw, err := s.Read(at)
	if err != nil {
		return nil, err
	}
	if d.Algorithm().FromBytes(raw) != d {
		return nil, fmt.Errorf("manifest %s: spooled bytes: %w", d, oci.ErrDigestMismatch)
	}
	return raw, nil
}

// closeRaws removes the manifest spool.
func (w *Writer) closeRaws() {
	w.mu.Lock()
	s := w.raws
	w.raws = nil
	w.mu.Unlock()
	if s != nil {
		s.Close()
	}
}

// Abort removes every part written so far. It waits for running puts.
func (w *Writer) Abort() {
	_ = w.takeAll(context.Background())
	w.abortLocked()
}

// abortLocked removes every part; every slot is taken. It releases them.
func (w *Writer) abortLocked() {
	w.mu.Lock()
	w.done = true
	parts := slices.Clone(w.parts)
	w.mu.Unlock()
	w.closeRaws() // a resume reads kept manifests back from the parts
	if w.resumable() && w.renameBack() {
		w.suspend(parts)
		return
	}
	w.removeJournal()
	for _, p := range parts {
		if !p.finished {
			p.pw.abort()
		}
		os.Remove(p.pw.path + PartialSuffix)
	}
	for _, f := range w.renamed {
		os.Remove(f)
	}
	for _, s := range w.slots {
		w.setPart(s, nil)
	}
	w.unlock()
	w.releaseAll()
}

// dropPart removes a part that holds no entry.
func (w *Writer) dropPart(pw *partWriter) {
	pw.abort()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.parts = slices.DeleteFunc(w.parts, func(p *partRec) bool { return p.pw == pw })
}

// ociIndex builds index.json for the OCI image layout view of the bundle.
// Each image's org.opencontainers.image.ref.name is LayoutName: unique per
// image, so that skopeo (oci:DIR:NAME) picks exactly that image.
func ociIndex(m *meta.Meta) ([]byte, error) {
	type desc struct {
		MediaType   string            `json:"mediaType"`
		Digest      digest.Digest     `json:"digest"`
		Size        int64             `json:"size"`
		Annotations map[string]string `json:"annotations,omitempty"`
	}
	idx := struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Manifests     []desc `json:"manifests"`
	}{SchemaVersion: 2, MediaType: mediatype.OCI1ManifestList, Manifests: []desc{}}
	for _, img := range m.Images {
		mf := m.ManifestByDigest(img.Digest)
		if mf == nil {
			continue
		}
		name := LayoutName(img)
		idx.Manifests = append(idx.Manifests, desc{MediaType: mf.MediaType, Digest: mf.Digest, Size: mf.Size, Annotations: map[string]string{
			"org.opencontainers.image.ref.name": name,
			"io.containerd.image.name":          name,
		}})
	}
	return json.Marshal(idx)
}

// LayoutName is an image's name in the bundle's OCI layout (index.json's
// org.opencontainers.image.ref.name): repository:tag, or
// repository@digest for an image saved by digest.
func LayoutName(img meta.Image) string {
	if img.Tag != "" {
		return img.Repository + ":" + img.Tag
	}
	return img.Repository + "@" + img.Digest.String()
}

func addUnique(list []string, s string) []string {
	if s == "" || slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
