package bundle

// Resumable saves.
//
// A Writer whose WriterOptions.Resume is set keeps a journal, .<id>.resume,
// next to its partial parts. It has one line per record, each
//
//	<crc32c of the JSON, 8 hex digits> <JSON>\n
//
// The first record is the header (bundle id, creation time, and a sha256 of
// every input that changes the bundle's content: resumeKey); every further
// record is one entry (blob or manifest) completely written into a part:
// kind, digest, size, media type, part number, offset and length. A record
// is appended with one write after the entry's bytes were handed to the
// kernel, so a killed process (kill -9 included) leaves a journal whose
// records all name bytes that are in the part; a torn or damaged record
// (bad checksum, no newline) ends the journal there.
//
// Nothing is fsynced per entry (two fsyncs per blob would cost more than
// fetching small blobs): instead a resume reads every journaled entry back
// from its part (decodes its frame, checks its size and digest and that
// the entries follow each other from offset 0), cuts each part after its
// last good entry, re-hashes the kept bytes for the part's sha256 and
// rewrites the journal (temp file, fsync, rename) before appending to it.
// So a power loss that dropped data or records costs a re-fetch, never a
// wrong bundle.
//
// The interrupted save never looks complete: its parts keep their .partial
// names, it has no meta file, and the journal is not a meta file. The
// lock file .<id>.lock is held (flock) by the live save: a journal whose
// lock another process holds is never resumed.

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"golang.org/x/sync/errgroup"

	"github.com/ferry-oss/ferry/internal/asyncfile"
	"github.com/ferry-oss/ferry/internal/spool"
	"github.com/ferry-oss/ferry/meta"
)

// ResumeMode says what NewWriter does with an interrupted save in Dir.
type ResumeMode int

const (
	// ResumeOff keeps no journal: Abort removes everything (the default).
	ResumeOff ResumeMode = iota
	// ResumeAuto continues an interrupted save of the same inputs when
	// Dir holds one, and starts a new bundle otherwise. Every save keeps a
	// journal, and Abort keeps what was written for a later resume.
	ResumeAuto
	// ResumeRequire is ResumeAuto failing with ErrNothingToResume when
	// there is no interrupted save of the same inputs.
	ResumeRequire
	// ResumeFresh discards interrupted saves of the same inputs and starts
	// a new bundle (with a journal).
	ResumeFresh
)

// ErrNothingToResume: ResumeRequire found no interrupted save of the same
// inputs.
var ErrNothingToResume = errors.New("no interrupted save of these images and options to resume")

// errLocked: another process holds a lock file.
var errLocked = errors.New("locked by another process")

// journalSuffix ends the journal's name, .<id>.resume.
const journalSuffix = ".resume"

const (
	journalVersion = 1
	maxJournalLine = 4 << 10
	maxJournalPart = 1 << 20
	// maxResumedManifest bounds a manifest read back from a part.
	maxResumedManifest = 8 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// journalHeader is a journal's first record.
type journalHeader struct {
	Ferry   string    `json:"ferry"` // always "resume"
	V       int       `json:"v"`
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	Inputs  string    `json:"inputs"` // resumeKey
}

// journalEntry is one entry completely written into a part.
type journalEntry struct {
	Kind      string        `json:"k"` // "b" blob, "m" manifest
	Digest    digest.Digest `json:"d"`
	Size      int64         `json:"s"`
	MediaType string        `json:"t,omitempty"`
	Part      int           `json:"p"` // the part's number in its partial name
	Offset    int64         `json:"o"`
	Length    int64         `json:"l"`
	// Final is, in a rename record (kind "r", written when commit begins),
	// the final number part Part gets.
	Final int `json:"n,omitempty"`
}

func (e journalEntry) desc() descriptor.Descriptor {
	return descriptor.Descriptor{MediaType: e.MediaType, Digest: e.Digest, Size: e.Size}
}

// encodeRecord is one journal line.
func encodeRecord(v any) []byte {
	js, _ := json.Marshal(v) // plain structs: cannot fail
	return fmt.Appendf(nil, "%08x %s\n", crc32.Checksum(js, castagnoli), js)
}

// errJournal: the file is not a journal this version can resume.
var errJournal = errors.New("not a ferry resume journal")

// parseJournal reads a journal: its header and the entries of its valid
// prefix. A record that is torn, damaged or invalid ends the journal (it
// and everything after it are ignored); only an unusable header is an
// error. r is untrusted.
func parseJournal(r io.Reader) (journalHeader, []journalEntry, error) {
	br := bufio.NewReaderSize(r, maxJournalLine)
	var hdr journalHeader
	line, ok := readRecord(br)
	if !ok || json.Unmarshal(line, &hdr) != nil || !hdr.valid() {
		return journalHeader{}, nil, errJournal
	}
	var out []journalEntry
	for {
		line, ok := readRecord(br)
		if !ok {
			return hdr, out, nil
		}
		var e journalEntry
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if dec.Decode(&e) != nil || !e.valid() {
			return hdr, out, nil
		}
		out = append(out, e)
	}
}

// readRecord returns the JSON of the next record whose checksum holds.
func readRecord(br *bufio.Reader) ([]byte, bool) {
	line, err := br.ReadSlice('\n')
	if err != nil || len(line) < 11 || line[8] != ' ' {
		return nil, false
	}
	sum, err := strconv.ParseUint(string(line[:8]), 16, 32)
	js := line[9 : len(line)-1]
	if err != nil || uint32(sum) != crc32.Checksum(js, castagnoli) {
		return nil, false
	}
	return js, true
}

func (h journalHeader) valid() bool {
	_, err := hex.DecodeString(h.Inputs)
	return h.Ferry == "resume" && h.V == journalVersion && meta.ValidID(h.ID) && !h.Created.IsZero() && len(h.Inputs) == 64 && err == nil
}

func (e journalEntry) valid() bool {
	if e.Kind == "r" {
		return e.Part >= 1 && e.Part <= maxJournalPart && e.Final >= 1 && e.Final <= maxJournalPart &&
			e.Digest == "" && e.Size == 0 && e.MediaType == "" && e.Offset == 0 && e.Length == 0
	}
	return (e.Kind == "b" || e.Kind == "m") && e.Final == 0 && e.Digest.Validate() == nil && e.Size >= 0 &&
		e.Part >= 1 && e.Part <= maxJournalPart && e.Offset >= 0 && e.Length > 0 && e.Offset <= 1<<62 && e.Length <= 1<<62 &&
		len(e.MediaType) <= 255 && (e.Kind == "b" || e.Size <= maxResumedManifest)
}

// resumeKey hashes every input that changes the bundle's content: the
// caller's Inputs and the Writer's prefix, codec, split, platforms and
// bases (by their meta files' sha256).
func (w *Writer) resumeKey() string {
	h := sha256.New()
	fmt.Fprintf(h, "ferry-resume %d\nprefix=%s\ncodec=%s\nsingle=%t\nsplit=%d\n", journalVersion, w.opts.Prefix, w.opts.Codec, w.opts.Single, w.opts.SplitSize)
	for _, p := range w.opts.Platforms {
		fmt.Fprintf(h, "platform-name=%s\n", p)
	}
	for _, b := range w.bases {
		fmt.Fprintf(h, "base=%s %s\n", b.ID, b.SHA256)
	}
	for _, in := range w.opts.Inputs {
		fmt.Fprintf(h, "input=%q\n", in)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ResumeInfo says what a Writer kept from an interrupted save.
type ResumeInfo struct {
	// ID is the resumed bundle's id; empty when nothing was resumed.
	ID string
	// Blobs and Bytes count the blobs kept; Manifests the manifests.
	Blobs     int
	Bytes     int64
	Manifests int
	// Dropped counts journaled entries that did not read back intact
	// (a torn tail, a power loss): they are fetched again.
	Dropped int
}

// Resumed says what was kept from an interrupted save (zero when the
// Writer started a new bundle).
func (w *Writer) Resumed() ResumeInfo { return w.resumeInfo }

// Kept reports whether blob d was kept from the interrupted save.
func (w *Writer) Kept(d digest.Digest) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.kept[d]
}

// Suspended reports whether Abort kept the parts and journal for a resume.
func (w *Writer) Suspended() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.suspended
}

func (w *Writer) journalPath(id string) string {
	return filepath.Join(w.opts.Dir, "."+id+journalSuffix)
}

func (w *Writer) lockPath(id string) string {
	return filepath.Join(w.opts.Dir, "."+id+".lock")
}

// lockExisting takes the lock of an interrupted save's id; errLocked when
// a live process holds it.
func (w *Writer) lockExisting(id string) (*os.File, error) {
	path := w.lockPath(id)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := tryLock(f); err != nil {
		f.Close()
		return nil, err
	}
	// The holder may have removed the file between our open and lock.
	st, err1 := f.Stat()
	cur, err2 := os.Stat(path)
	if err1 != nil || err2 != nil || !os.SameFile(st, cur) {
		f.Close()
		return nil, errLocked
	}
	return f, nil
}

// resumeInterrupted looks for an interrupted save of the same inputs in
// Dir (newest first) and, per the Resume mode, continues it (true),
// discards it, or fails.
func (w *Writer) resumeInterrupted(typ string) (bool, error) {
	w.key = w.resumeKey()
	journals, _ := filepath.Glob(filepath.Join(w.opts.Dir, "."+w.opts.Prefix+"_"+typ+"_*"+journalSuffix))
	sort.Sort(sort.Reverse(sort.StringSlice(journals)))
	var others []string
	for _, j := range journals {
		id := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(j), "."), journalSuffix)
		if !meta.ValidID(id) {
			continue
		}
		hdr, entries, err := readJournal(j)
		if err != nil || hdr.ID != id {
			others = append(others, id+" (its journal is unreadable)")
			continue
		}
		if hdr.Inputs != w.key {
			others = append(others, id+" (other images or options)")
			continue
		}
		lockf, err := w.lockExisting(id)
		if err != nil {
			others = append(others, fmt.Sprintf("%s (%v)", id, err))
			continue
		}
		release := func() {
			_ = os.Remove(w.lockPath(id))
			lockf.Close()
		}
		w.removeMetaTemps(id)
		if _, err := os.Stat(filepath.Join(w.opts.Dir, meta.FileName(id))); err == nil {
			_ = os.Remove(j) // it was committed: the journal is stale
			release()
			continue
		}
		var renames []journalEntry
		entries = slices.DeleteFunc(entries, func(e journalEntry) bool {
			if e.Kind == "r" {
				renames = append(renames, e)
			}
			return e.Kind == "r"
		})
		w.undoRenames(id, renames)
		if final, _ := filepath.Glob(filepath.Join(w.opts.Dir, id+"_*.tar"+w.opts.Codec.Ext())); len(final) > 0 {
			others = append(others, id+" (its commit was interrupted: not resumable)")
			release()
			continue
		}
		if w.opts.Resume == ResumeFresh {
			w.discard(id)
			release()
			w.opts.Log.Info("discarded an interrupted save", "bundle", id)
			continue
		}
		w.id, w.created, w.lock, w.lockf = id, hdr.Created.UTC(), w.lockPath(id), lockf
		if err := w.reopen(entries); err != nil {
			w.closeJournal()
			w.unlock()
			return false, fmt.Errorf("resuming %s: %w", id, err)
		}
		return true, nil
	}
	if w.opts.Resume == ResumeRequire {
		msg := "in " + w.opts.Dir
		if len(others) > 0 {
			msg += "; found " + strings.Join(others, ", ")
		}
		return false, fmt.Errorf("%w %s", ErrNothingToResume, msg)
	}
	for _, o := range others {
		w.opts.Log.Info("an interrupted save is left alone", "bundle", o)
	}
	return false, nil
}

func readJournal(path string) (journalHeader, []journalEntry, error) {
	f, err := meta.OpenRegular(path)
	if err != nil {
		return journalHeader{}, nil, err
	}
	defer f.Close()
	return parseJournal(f)
}

// discard removes an interrupted save's partial parts and journal (its
// lock is held).
func (w *Writer) discard(id string) {
	parts, _ := filepath.Glob(filepath.Join(w.opts.Dir, id+"_*.tar*"+PartialSuffix))
	for _, p := range parts {
		_ = os.Remove(p)
	}
	w.removeJournalTemps(id)
	_ = os.Remove(w.journalPath(id))
}

// removeMetaTemps removes the temp files of a meta file (and its
// signature) that a save killed while writing them left (its lock is
// held): hidden, never taken for a meta file, but litter.
func (w *Writer) removeMetaTemps(id string) {
	tmps, _ := filepath.Glob(filepath.Join(w.opts.Dir, "."+meta.FileName(id)+".*.tmp"))
	for _, t := range tmps {
		_ = os.Remove(t)
	}
}

// removeJournalTemps removes temp files a killed journal rewrite left.
func (w *Writer) removeJournalTemps(id string) {
	tmps, _ := filepath.Glob(w.journalPath(id) + ".tmp*")
	for _, t := range tmps {
		_ = os.Remove(t)
	}
}

// partSeq is the part number of a partial part's file name, 0 if none.
func partSeq(id, name string) int {
	rest, ok := strings.CutPrefix(name, id+"_")
	if !ok || !strings.HasSuffix(rest, PartialSuffix) {
		return 0
	}
	n, _, _ := strings.Cut(rest, ".")
	seq, err := strconv.Atoi(n)
	if err != nil || seq < 1 {
		return 0
	}
	return seq
}

// keptEntry is a journaled entry that read back intact.
type keptEntry struct {
	journalEntry
	part string    // the part's name without PartialSuffix
	raw  spool.Loc // a manifest's bytes, in the Writer's spool
}

// reopen checks every journaled entry of the interrupted save w.id against
// its part, cuts each part after its last good entry, reopens the parts
// for appending, rewrites the journal with the entries kept and records
// them as stored.
func (w *Writer) reopen(entries []journalEntry) error {
	byPart, maxSeq := w.journaledParts(entries)
	results, err := w.reopenParts(byPart)
	if err != nil {
		return err
	}
	pws, kept, err := keepFirst(results)
	if err != nil {
		return err
	}
	if err := w.rewriteJournal(kept); err != nil {
		return closeParts(pws, err)
	}
	info := w.recordKept(kept, len(entries))
	w.seq = maxSeq
	if err := w.placeParts(pws); err != nil {
		return closeParts(pws, err)
	}
	w.opts.Log.Debug("resumed", "bundle", w.id, "blobs", info.Blobs, "manifests", info.Manifests, "dropped", info.Dropped, "parts", len(pws))
	return nil
}

// reopened is a partial part reopened for appending and the entries of
// it that read back intact.
type reopened struct {
	pw   *partWriter
	good []keptEntry
}

// journaledParts groups the entries by part and removes the partial parts
// that nothing was journaled of (and temp files of the journal); maxSeq
// is the highest part number in use.
func (w *Writer) journaledParts(entries []journalEntry) (byPart map[int][]journalEntry, maxSeq int) {
	byPart = map[int][]journalEntry{}
	for _, e := range entries {
		byPart[e.Part] = append(byPart[e.Part], e)
		maxSeq = max(maxSeq, e.Part)
	}
	w.removeJournalTemps(w.id)
	files, _ := filepath.Glob(filepath.Join(w.opts.Dir, w.id+"_*.tar*"+PartialSuffix))
	for _, f := range files {
		seq := partSeq(w.id, filepath.Base(f))
		maxSeq = max(maxSeq, seq)
		if _, ok := byPart[seq]; !ok {
			_ = os.Remove(f) // nothing of it was journaled
		}
	}
	return byPart, maxSeq
}

// reopenParts checks the parts in parallel (reading them back is most of
// a resume's time), in part order.
func (w *Writer) reopenParts(byPart map[int][]journalEntry) ([]reopened, error) {
	seqs := make([]int, 0, len(byPart))
	for seq := range byPart {
		seqs = append(seqs, seq)
	}
	sort.Ints(seqs)
	results := make([]reopened, len(seqs))
	var g errgroup.Group
	g.SetLimit(max(1, w.opts.Parts))
	for i, seq := range seqs {
		g.Go(func() error {
			path := filepath.Join(w.opts.Dir, partName(w.id, seq, w.opts.Codec))
			pw, good, err := reopenPart(path, w.opts.Codec, w.created, byPart[seq], w.spoolRaw)
			if pw != nil {
				pw.seq = seq
			}
			results[i] = reopened{pw, good}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		var pws []*partWriter
		for _, r := range results {
			if r.pw != nil {
				pws = append(pws, r.pw)
			}
		}
		return nil, closeParts(pws, err)
	}
	return results, nil
}

// keepFirst keeps each digest in the first part that holds it: a digest
// kept by an earlier part cuts a later part there (a journal never has
// one twice unless damaged). It returns the parts that keep entries and
// the entries.
func keepFirst(results []reopened) ([]*partWriter, []keptEntry, error) {
	var pws []*partWriter
	var kept []keptEntry
	seen := map[digest.Digest]bool{}
	for _, r := range results {
		if r.pw == nil {
			continue
		}
		j := 0
		for j < len(r.good) && !seen[r.good[j].Digest] {
			seen[r.good[j].Digest] = true
			j++
		}
		switch {
		case j == 0:
			r.pw.abort()
			continue
		case j < len(r.good):
			if err := r.pw.rollback(r.good[j].Offset); err != nil {
				r.pw.abort()
				return nil, nil, closeParts(pws, err)
			}
			r.pw.count, r.good = j, r.good[:j]
		}
		pws = append(pws, r.pw)
		kept = append(kept, r.good...)
	}
	return pws, kept, nil
}

// closeParts closes reopened parts (keeping their files) and returns err.
func closeParts(pws []*partWriter, err error) error {
	for _, pw := range pws {
		_ = pw.af.Close()
		pw.f.Close()
	}
	return err
}

// recordKept records the kept entries as stored, of the journaled ones.
func (w *Writer) recordKept(kept []keptEntry, journaled int) ResumeInfo {
	info := ResumeInfo{ID: w.id, Dropped: journaled - len(kept)}
	for _, k := range kept {
		loc := meta.Location{Offset: k.Offset, Length: k.Length}
		if k.Kind == "b" {
			w.blobs[k.Digest] = &meta.Blob{Digest: k.Digest, Size: k.Size, MediaType: k.MediaType, Part: k.part, Location: loc}
			w.kept[k.Digest] = true
			info.Blobs++
			info.Bytes += k.Size
		} else {
			w.keptManifests[k.Digest] = &meta.Manifest{Digest: k.Digest, MediaType: k.MediaType, Size: k.Size, Part: k.part, Location: loc}
			w.rawAt[k.Digest] = k.raw
			info.Manifests++
		}
	}
	w.journaled = len(kept)
	w.resumeInfo = info
	return info
}

// placeParts gives the reopened parts to free slots to append to; a part
// that is full (SplitSize), or finds no free slot, is finished.
func (w *Writer) placeParts(pws []*partWriter) error {
	free := slices.Clone(w.slots)
	for _, pw := range pws {
		w.parts = append(w.parts, &partRec{seq: pw.seq, pw: pw})
		if (w.opts.SplitSize > 0 && pw.size() >= w.opts.SplitSize) || len(free) == 0 {
			if err := w.finishPart(pw); err != nil {
				return err
			}
			continue
		}
		free[0].pw, free = pw, free[1:]
	}
	return nil
}

// reopenPart checks the journaled entries of one partial part in offset
// order (each must start where the one before ended, from 0, and decode
// to its digest; a digest the part holds already ends it too), truncates the part
// after the last good one and returns it open for appending with its
// sha256 state restored; nil when nothing of it is kept (the file is then
// removed).
func reopenPart(path string, codec Codec, mtime time.Time, entries []journalEntry, keepRaw func([]byte) (spool.Loc, error)) (*partWriter, []keptEntry, error) {
	f, err := os.OpenFile(path+PartialSuffix, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reopening part: %w", err)
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].Offset < entries[j].Offset })
	h := sha256.New()
	var at int64
	var good []keptEntry
	seen := map[digest.Digest]bool{}
	name := filepath.Base(path)
	for _, e := range entries {
		if e.Offset != at || seen[e.Digest] {
			break
		}
		snap, err := h.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			f.Close()
			return nil, nil, err
		}
		raw, err := checkEntry(f, codec, name, e, h)
		if err != nil {
			if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(snap); err != nil {
				f.Close()
				return nil, nil, err
			}
			break
		}
		k := keptEntry{journalEntry: e, part: name}
		if e.Kind == "m" {
			if k.raw, err = keepRaw(raw); err != nil {
				f.Close()
				return nil, nil, err
			}
		}
		seen[e.Digest] = true
		good = append(good, k)
		at += e.Length
	}
	if len(good) == 0 {
		f.Close()
		_ = os.Remove(path + PartialSuffix)
		return nil, nil, nil
	}
	if err := f.Truncate(at); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("reopening part: %w", err)
	}
	if _, err := f.Seek(at, io.SeekStart); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("reopening part: %w", err)
	}
	fe, err := codec.NewFrameEncoder()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	pw := &partWriter{path: path, f: f, wb: asyncfile.NewWriteback(f, at), fe: fe, mtime: mtime, count: len(good)}
	pw.af = asyncfile.New(pw.wb)
	pw.af.Reset(h, at)
	pw.tw = tar.NewWriter(fe)
	return pw, good, nil
}

// checkEntry reads one journaled entry back from the part (its whole
// frame, hashed into h) and checks it like verify does; it returns a
// manifest's bytes.
func checkEntry(f *os.File, codec Codec, part string, e journalEntry, h hash.Hash) ([]byte, error) {
	if err := codec.CheckFrames(f, e.Offset, e.Length); err != nil {
		return nil, err
	}
	cr := &countingReader{r: io.NewSectionReader(f, e.Offset, e.Length), h: h}
	bd := &Bundle{Meta: &meta.Meta{Compression: string(codec)}}
	r, closeDec, err := bd.entryReader(cr, Entry{Descriptor: e.desc(), Manifest: e.Kind == "m", Part: part, Location: meta.Location{Offset: e.Offset, Length: e.Length}})
	if err != nil {
		return nil, err
	}
	defer closeDec()
	var raw []byte
	if e.Kind == "m" {
		raw, err = io.ReadAll(r)
	} else {
		_, err = io.Copy(io.Discard, r)
	}
	if err == nil {
		err = r.(*entryRest).checkRest()
	}
	if err == nil {
		_, err = io.Copy(io.Discard, cr) // the rest of the frame, for the hash
	}
	if err == nil && cr.n != e.Length {
		err = fmt.Errorf("%w: entry %s ends at %d of %d bytes", ErrPartCorrupt, e.Digest, cr.n, e.Length)
	}
	return raw, err
}

// startJournal creates the journal of a new bundle: its header, written
// before any entry.
func (w *Writer) startJournal() error {
	if w.key == "" {
		w.key = w.resumeKey()
	}
	return w.rewriteJournal(nil)
}

// rewriteJournal writes the journal anew (header and entries) by temp file,
// fsync and rename, and opens it for appending.
func (w *Writer) rewriteJournal(entries []keptEntry) error {
	path := w.journalPath(w.id)
	var b bytes.Buffer
	b.Write(encodeRecord(journalHeader{Ferry: "resume", V: journalVersion, ID: w.id, Created: w.created, Inputs: w.key}))
	for _, e := range entries {
		b.Write(encodeRecord(e.journalEntry))
	}
	if err := writeFileAtomic(path, b.Bytes()); err != nil {
		return fmt.Errorf("writing the resume journal: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("writing the resume journal: %w", err)
	}
	w.journal = f
	return nil
}

// writeFileAtomic writes path by temp file, fsync and rename, and syncs
// the directory.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// journalPut records an entry add just wrote into pw (the caller holds
// pw's slot). Its bytes are handed to the kernel first, so the record
// never names bytes a killed process did not write. A journal that cannot
// be written is closed (what it has stays valid) and the save goes on.
func (w *Writer) journalPut(kind string, pw *partWriter, d descriptor.Descriptor, loc meta.Location) {
	if w.key == "" {
		return // no journal kept
	}
	if err := pw.af.Flush(); err != nil {
		return // the part is broken: the put fails on its next write
	}
	w.jmu.Lock()
	defer w.jmu.Unlock()
	if w.journal == nil {
		return
	}
	rec := encodeRecord(journalEntry{Kind: kind, Digest: d.Digest, Size: d.Size, MediaType: d.MediaType, Part: pw.seq, Offset: loc.Offset, Length: loc.Length})
	if _, err := w.journal.Write(rec); err != nil {
		w.opts.Log.Warn("resume journal not writable: a resume of this save keeps only what it recorded so far", "err", err)
		w.journal.Close()
		w.journal = nil
		return
	}
	w.journaled++
}

func (w *Writer) closeJournal() {
	w.jmu.Lock()
	defer w.jmu.Unlock()
	if w.journal != nil {
		_ = w.journal.Sync()
		w.journal.Close()
		w.journal = nil
	}
}

// removeJournal ends the journal of a committed or discarded bundle.
func (w *Writer) removeJournal() {
	w.closeJournal()
	if w.key != "" && w.id != "" {
		_ = os.Remove(w.journalPath(w.id))
	}
}

// resumable reports whether Abort keeps the save for a resume: a journal
// with entries.
func (w *Writer) resumable() bool {
	w.jmu.Lock()
	defer w.jmu.Unlock()
	return w.journal != nil && w.journaled > 0
}

// renameBack gives parts a failed commit renamed their partial names again;
// false if one cannot be (the save is then not resumable).
func (w *Writer) renameBack() bool {
	for i, f := range w.renamed {
		if err := os.Rename(f, w.unnamed[i]); err != nil {
			return false
		}
	}
	w.renamed, w.unnamed = nil, nil
	return true
}

// journalRenames records, before commit renames the finished parts, the
// final number each gets (from 1, in the order parts were started, as
// commit names them) and syncs the journal: a resume of a save killed
// while renaming gives them their partial names back.
func (w *Writer) journalRenames(parts []*partRec) error {
	if w.key == "" {
		return nil
	}
	w.jmu.Lock()
	defer w.jmu.Unlock()
	if w.journal == nil {
		return nil
	}
	var b []byte
	n := 0
	for _, p := range parts {
		if p.finished {
			n++
			b = append(b, encodeRecord(journalEntry{Kind: "r", Part: p.pw.seq, Final: n})...)
		}
	}
	_, err := w.journal.Write(b)
	if err == nil {
		err = w.journal.Sync()
	}
	if err != nil {
		return fmt.Errorf("writing the resume journal: %w", err)
	}
	return nil
}

// undoRenames gives the parts of an interrupted commit (journal records
// "r") their partial names back.
func (w *Writer) undoRenames(id string, renames []journalEntry) {
	for _, r := range renames {
		final := filepath.Join(w.opts.Dir, partName(id, r.Final, w.opts.Codec))
		partial := filepath.Join(w.opts.Dir, partName(id, r.Part, w.opts.Codec)) + PartialSuffix
		if _, err := os.Lstat(partial); errors.Is(err, fs.ErrNotExist) {
			_ = os.Rename(final, partial)
		}
	}
}

// checkOrphans: manifests kept from the interrupted save that this save
// did not put again (the source changed in between) are listed in m; their
// references must resolve too, or the bundle would not verify.
func (w *Writer) checkOrphans(m *meta.Meta) error {
	w.mu.Lock()
	n := len(w.keptManifests)
	w.mu.Unlock()
	if n == 0 {
		return nil
	}
	if err := (&Bundle{Meta: m}).checkRefs(w.manifestRaw); err != nil {
		return fmt.Errorf("bundle %s: the source changed since the interrupted save this one resumed (%d manifest(s) it stored are used by no image now): %w; save again with --fresh", w.id, n, err)
	}
	return nil
}

// suspend ends an aborted save keeping it resumable: parts holding entries
// are synced and closed under their partial names, empty ones removed,
// the journal synced; the lock is released. Every slot is taken.
func (w *Writer) suspend(parts []*partRec) {
	for _, p := range parts {
		if p.finished {
			continue
		}
		if p.pw.count == 0 {
			p.pw.abort()
			continue
		}
		_ = p.pw.af.Close()
		_ = p.pw.f.Sync()
		p.pw.f.Close()
	}
	w.closeJournal()
	for _, s := range w.slots {
		w.setPart(s, nil)
	}
	w.mu.Lock()
	w.suspended = true
	w.mu.Unlock()
	w.opts.Log.Info("interrupted save kept for a resume", "bundle", w.id, "entries", w.journaled)
	w.unlock()
	w.releaseAll()
}
