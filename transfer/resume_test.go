package transfer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
	"github.com/ferry-oss/ferry/registry/regtest"
	"github.com/ferry-oss/ferry/selection"
	"github.com/ferry-oss/ferry/transfer"
)

// cutSource serves the first `after` blob requests and cancels the save at
// the next one (after == -1: never); it counts requests per digest.
type cutSource struct {
	oci.Source
	after  int64
	cancel context.CancelFunc
	n      atomic.Int64
	mu     sync.Mutex
	gets   map[digest.Digest]int
}

func (c *cutSource) BlobGet(ctx context.Context, r ref.Ref, d descriptor.Descriptor) (io.ReadCloser, error) {
	c.mu.Lock()
	if c.gets == nil {
		c.gets = map[digest.Digest]int{}
	}
	c.gets[d.Digest]++
	c.mu.Unlock()
	if n := c.n.Add(1); c.after >= 0 && n > c.after {
		c.cancel()
		return nil, context.Canceled
	}
	return c.Source.BlobGet(ctx, r, d)
}

type resumeCase struct {
	codec  bundle.Codec
	jobs   int
	split  int64
	single bool
	bases  []string
}

func (c resumeCase) writer(t *testing.T, dir string, mode bundle.ResumeMode, inputs []string) (*bundle.Writer, error) {
	t.Helper()
	return bundle.NewWriter(bundle.WriterOptions{Dir: dir, Codec: c.codec, Parts: c.jobs, SplitSize: c.split, Single: c.single, Bases: c.bases, Tool: "ferry test", Resume: mode, Inputs: inputs})
}

var resumeImages = []string{"team/app:1", "team/tools:1", "library/base:1", "library/multi:1"}

// resumeEnv is a seeded source, the resume tests' images and options,
// and an output directory.
func resumeEnv(t *testing.T, jobs int) (*env, []selection.ImageSpec, transfer.SaveOptions, string) {
	t.Helper()
	e := seeded(t)
	return e, e.specs(t, resumeImages...), transfer.SaveOptions{Jobs: jobs, RetryDelay: time.Millisecond}, t.TempDir()
}

// normalized is a meta's content without times, ids, parts and offsets:
// what a resumed save must share with a clean one.
func normalized(m *meta.Meta) string {
	c := *m
	c.ID, c.Created, c.Parts = "", time.Time{}, nil
	c.Manifests = slices.Clone(m.Manifests)
	for i := range c.Manifests {
		c.Manifests[i].Part, c.Manifests[i].Location = "", meta.Location{}
		sort.Strings(c.Manifests[i].Repos)
	}
	sort.Slice(c.Manifests, func(i, j int) bool { return c.Manifests[i].Digest < c.Manifests[j].Digest })
	c.Blobs = slices.Clone(m.Blobs)
	for i := range c.Blobs {
		c.Blobs[i].Part, c.Blobs[i].Location = "", meta.Location{}
		sort.Strings(c.Blobs[i].Repos)
	}
	return fmt.Sprintf("%+v", c)
}

func verifyMeta(t *testing.T, path string) *meta.Meta {
	t.Helper()
	bd, err := bundle.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := bd.Verify(context.Background(), 2, nil); err != nil {
		t.Fatalf("verify: %v", err)
	}
	return bd.Meta
}

// interrupt runs a save that is cancelled at the (after+1)th blob request.
func interrupt(t *testing.T, e *env, dir string, c resumeCase, specs []selection.ImageSpec, opts transfer.SaveOptions, after int64) *bundle.Writer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := c.writer(t, dir, bundle.ResumeAuto, transfer.SaveInputs(specs, opts))
	if err != nil {
		t.Fatal(err)
	}
	_, err = transfer.Save(ctx, &cutSource{Source: e.reg, after: after, cancel: cancel}, w, specs, opts)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted save: %v", err)
	}
	if metas, _ := filepath.Glob(filepath.Join(dir, "*_meta.yaml")); len(metas) > 0 {
		t.Fatalf("an interrupted save wrote %v", metas)
	}
	if done, _ := filepath.Glob(filepath.Join(dir, "*.tar")); len(done) > 0 {
		t.Fatalf("an interrupted save left parts that look complete: %v", done)
	}
	return w
}

func TestResumeMatchesCleanSave(t *testing.T) {
	e := seeded(t)
	specs := e.specs(t, resumeImages...)
	opts := transfer.SaveOptions{Jobs: 3, RetryDelay: time.Millisecond}
	cases := map[string]resumeCase{
		"none jobs 3":    {codec: bundle.CodecNone, jobs: 3},
		"zstd jobs 1":    {codec: bundle.CodecZstd, jobs: 1},
		"gzip split":     {codec: bundle.CodecGzip, jobs: 2, split: 1},
		"lz4 single":     {codec: bundle.CodecLz4, jobs: 2, single: true},
		"xz jobs 2 cut0": {codec: bundle.CodecXz, jobs: 2},
	}
	// an increment on a full bundle of one of the images
	baseDir := t.TempDir()
	bw, err := bundle.NewWriter(bundle.WriterOptions{Dir: baseDir, Parts: 2})
	if err != nil {
		t.Fatal(err)
	}
	base, err := transfer.Save(context.Background(), e.reg, bw, e.specs(t, "team/app:1"), opts)
	if err != nil {
		t.Fatal(err)
	}
	cases["incremental"] = resumeCase{codec: bundle.CodecZstd, jobs: 2, bases: []string{base.MetaPath}}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			cleanDir, dir := t.TempDir(), t.TempDir()
			w, err := c.writer(t, cleanDir, bundle.ResumeAuto, transfer.SaveInputs(specs, opts))
			if err != nil {
				t.Fatal(err)
			}
			clean, err := transfer.Save(context.Background(), e.reg, w, specs, opts)
			if err != nil {
				t.Fatal(err)
			}
			if left, _ := filepath.Glob(filepath.Join(cleanDir, ".*")); len(left) > 0 {
				t.Fatalf("a committed save left %v", left)
			}
			after := int64(4)
			if strings.HasSuffix(name, "cut0") {
				after = 0
			}
			first := interrupt(t, e, dir, c, specs, opts, after)
			if after > 0 && !first.Suspended() {
				t.Fatal("the interrupted save was not kept for a resume")
			}
			src := &cutSource{Source: e.reg, after: -1}
			w, err = c.writer(t, dir, bundle.ResumeAuto, transfer.SaveInputs(specs, opts))
			if err != nil {
				t.Fatal(err)
			}
			info := w.Resumed()
			if after > 0 && (info.ID != first.ID() || info.Blobs == 0 || info.Dropped != 0) {
				t.Fatalf("resumed %+v, want %s with blobs", info, first.ID())
			}
			res, err := transfer.Save(context.Background(), src, w, specs, opts)
			if err != nil {
				t.Fatal(err)
			}
			if res.Resumed != info.Blobs || res.Blobs+res.Resumed != clean.Blobs || res.Skipped != clean.Skipped {
				t.Errorf("fetched %d + resumed %d (kept %d), a clean save fetched %d", res.Blobs, res.Resumed, info.Blobs, clean.Blobs)
			}
			for d, n := range src.gets {
				if n != 1 || w.Kept(d) {
					t.Errorf("blob %s requested %d times (kept: %v)", d, n, w.Kept(d))
				}
			}
			if len(src.gets) != res.Blobs {
				t.Errorf("%d blobs requested, %d fetched", len(src.gets), res.Blobs)
			}
			got := verifyMeta(t, res.MetaPath)
			if got.ID != first.ID() && after > 0 {
				t.Errorf("resumed bundle is %s, want %s", got.ID, first.ID())
			}
			cleanMeta, err := meta.Load(clean.MetaPath) // the written file (a SaveResult's Meta has no manifest bytes)
			if err != nil {
				t.Fatal(err)
			}
			if a, b := normalized(cleanMeta), normalized(got); a != b {
				t.Errorf("resumed meta differs from a clean one:\nclean   %s\nresumed %s", a, b)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) > 0 {
				t.Errorf("a committed resume left %v", left)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, "*.partial")); len(left) > 0 {
				t.Errorf("a committed resume left %v", left)
			}
		})
	}
}

// TestResumeTwice interrupts a resumed save again: manifests and blobs
// written by either run are kept, none is stored twice.
func TestResumeTwice(t *testing.T) {
	e, specs, opts, dir := resumeEnv(t, 2)
	c := resumeCase{codec: bundle.CodecZstd, jobs: 2}
	interrupt(t, e, dir, c, specs, opts, 3)
	second := interrupt(t, e, dir, c, specs, opts, 3)
	if got := second.Resumed(); got.Blobs != 3 {
		t.Fatalf("second run resumed %+v", got)
	}
	w, err := c.writer(t, dir, bundle.ResumeRequire, transfer.SaveInputs(specs, opts))
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Resumed(); got.Blobs != 6 {
		t.Fatalf("third run resumed %+v, want 6 blobs", got)
	}
	res, err := transfer.Save(context.Background(), e.reg, w, specs, opts)
	if err != nil {
		t.Fatal(err)
	}
	verifyMeta(t, res.MetaPath)
	// once more after the manifests were written: a save cut at commit
	// (no image) keeps them, the next one stores none twice
}

// TestResumeTornJournal: a torn last record is ignored; an entry whose
// bytes are gone from its part (a power loss) is fetched again.
func TestResumeTornJournal(t *testing.T) {
	e := seeded(t)
	specs := e.specs(t, resumeImages...)
	opts := transfer.SaveOptions{Jobs: 1, RetryDelay: time.Millisecond}
	c := resumeCase{codec: bundle.CodecNone, jobs: 1}
	for _, damage := range []string{"torn record", "part cut", "part flipped"} {
		t.Run(damage, func(t *testing.T) {
			dir := t.TempDir()
			first := interrupt(t, e, dir, c, specs, opts, 4)
			journal := filepath.Join(dir, "."+first.ID()+".resume")
			parts, _ := filepath.Glob(filepath.Join(dir, first.ID()+"_*.partial"))
			if len(parts) != 1 {
				t.Fatalf("parts %v", parts)
			}
			st, _ := os.Stat(parts[0])
			dropped := 0
			switch damage {
			case "torn record":
				f, _ := os.OpenFile(journal, os.O_APPEND|os.O_WRONLY, 0)
				_, _ = f.WriteString(`0badc0de {"k":"b","d":"sha256:`)
				f.Close()
			case "part cut":
				_ = os.Truncate(parts[0], st.Size()-100)
				dropped = 1
			case "part flipped":
				b, _ := os.ReadFile(parts[0])
				b[len(b)-600] ^= 0xff // inside the last entry
				_ = os.WriteFile(parts[0], b, 0o644)
				dropped = 1
			}
			w, err := c.writer(t, dir, bundle.ResumeRequire, transfer.SaveInputs(specs, opts))
			if err != nil {
				t.Fatal(err)
			}
			if info := w.Resumed(); info.Blobs != 4-dropped || info.Dropped != dropped {
				t.Fatalf("resumed %+v, want %d kept, %d dropped", info, 4-dropped, dropped)
			}
			src := &cutSource{Source: e.reg, after: -1}
			res, err := transfer.Save(context.Background(), src, w, specs, opts)
			if err != nil {
				t.Fatal(err)
			}
			verifyMeta(t, res.MetaPath)
			if res.Resumed != 4-dropped {
				t.Errorf("resumed %d", res.Resumed)
			}
		})
	}
}

// TestResumeOtherInputs: an interrupted save of other images or options is
// never resumed: ResumeRequire refuses naming it, ResumeAuto starts a new
// bundle and leaves it alone; ResumeFresh discards one of the same inputs.
func TestResumeOtherInputs(t *testing.T) {
	e, specs, opts, dir := resumeEnv(t, 2)
	c := resumeCase{codec: bundle.CodecZstd, jobs: 2}
	first := interrupt(t, e, dir, c, specs, opts, 3)
	journal := filepath.Join(dir, "."+first.ID()+".resume")
	others := map[string]func() (resumeCase, []string){
		"images": func() (resumeCase, []string) { return c, transfer.SaveInputs(specs[:2], opts) },
		"platforms": func() (resumeCase, []string) {
			o := opts
			o.Platforms = mustPlatforms(t, "linux/amd64")
			return c, transfer.SaveInputs(specs, o)
		},
		"referrers": func() (resumeCase, []string) { o := opts; o.Referrers = true; return c, transfer.SaveInputs(specs, o) },
		"codec": func() (resumeCase, []string) {
			c := c
			c.codec = bundle.CodecGzip
			return c, transfer.SaveInputs(specs, opts)
		},
		"split":  func() (resumeCase, []string) { c := c; c.split = 1 << 20; return c, transfer.SaveInputs(specs, opts) },
		"single": func() (resumeCase, []string) { c := c; c.single = true; return c, transfer.SaveInputs(specs, opts) },
	}
	for name, other := range others {
		t.Run(name, func(t *testing.T) {
			oc, inputs := other()
			_, err := oc.writer(t, dir, bundle.ResumeRequire, inputs)
			if !errors.Is(err, bundle.ErrNothingToResume) || !strings.Contains(err.Error(), first.ID()+" (other images or options)") {
				t.Fatalf("err %v", err)
			}
			w, err := oc.writer(t, dir, bundle.ResumeAuto, inputs)
			if err != nil {
				t.Fatal(err)
			}
			if w.ID() == first.ID() || w.Resumed().ID != "" {
				t.Fatalf("resumed %s from other inputs", w.ID())
			}
			w.Abort()
			if _, err := os.Stat(journal); err != nil {
				t.Fatalf("the other save's journal is gone: %v", err)
			}
		})
	}
	// A journal with entries, rewritten to claim other inputs, is refused too.
	// The same inputs, --fresh: the interrupted save is discarded.
	w, err := c.writer(t, dir, bundle.ResumeFresh, transfer.SaveInputs(specs, opts))
	if err != nil {
		t.Fatal(err)
	}
	if w.Resumed().ID != "" {
		t.Fatalf("fresh resumed %s", w.ID())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.partial")); len(left) > 0 {
		t.Fatalf("fresh left %v", left)
	}
	w.Abort()
	if files, _ := os.ReadDir(dir); len(files) != 0 {
		t.Fatalf("an aborted save with nothing written left %v", files)
	}
}

// TestResumeLiveSave: the journal of a save that is still running is never
// resumed (its lock is held).
func TestResumeLiveSave(t *testing.T) {
	_, specs, opts, dir := resumeEnv(t, 2)
	c := resumeCase{codec: bundle.CodecNone, jobs: 2}
	live, err := c.writer(t, dir, bundle.ResumeAuto, transfer.SaveInputs(specs, opts))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Abort()
	_, err = c.writer(t, dir, bundle.ResumeRequire, transfer.SaveInputs(specs, opts))
	if !errors.Is(err, bundle.ErrNothingToResume) || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("err %v", err)
	}
	w, err := c.writer(t, dir, bundle.ResumeAuto, transfer.SaveInputs(specs, opts))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if w.ID() == live.ID() {
		t.Fatal("a second save took the live save's id")
	}
}

// TestJournalIsNoMeta: no reader takes the journal for a meta file.
func TestJournalIsNoMeta(t *testing.T) {
	e, specs, opts, dir := resumeEnv(t, 2)
	first := interrupt(t, e, dir, resumeCase{jobs: 2}, specs, opts, 3)
	journal := filepath.Join(dir, "."+first.ID()+".resume")
	if _, err := bundle.Open(journal); err == nil {
		t.Fatal("the journal opens as a bundle")
	}
	if _, err := meta.Load(journal); err == nil {
		t.Fatal("the journal loads as a meta file")
	}
}

// TestResumeKeepsManifests: manifests written before the interruption are
// kept and not stored twice when the resumed save puts them again.
func TestResumeKeepsManifests(t *testing.T) {
	e := seeded(t)
	img := e.imgs["library/multi:1"]
	r, _ := ref.New("bundle/library/multi:1")
	c := resumeCase{codec: bundle.CodecZstd, jobs: 2}
	dir := t.TempDir()
	inputs := []string{"test"}
	w1, err := c.writer(t, dir, bundle.ResumeAuto, inputs)
	if err != nil {
		t.Fatal(err)
	}
	if err := regtest.Push(context.Background(), w1, r, img); err != nil {
		t.Fatal(err)
	}
	w1.Abort()
	if !w1.Suspended() {
		t.Fatal("not kept for a resume")
	}
	w2, err := c.writer(t, dir, bundle.ResumeRequire, inputs)
	if err != nil {
		t.Fatal(err)
	}
	info := w2.Resumed()
	if info.Manifests != 4 || info.Blobs == 0 || info.Dropped != 0 {
		t.Fatalf("resumed %+v, want the index and 3 children", info)
	}
	if err := regtest.Push(context.Background(), w2, r, img); err != nil {
		t.Fatal(err)
	}
	w2.AddImage(meta.Image{Source: "src/library/multi:1", Repository: r.Repository, Tag: "1", Digest: img.Digest(), MediaType: img.Manifest.GetDescriptor().MediaType})
	m, err := w2.CommitMeta(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := verifyMeta(t, w2.MetaPath())
	if len(m.Manifests) != 4 || len(got.Manifests) != 4 {
		t.Fatalf("%d manifests", len(got.Manifests))
	}
	for _, mf := range got.Manifests {
		if len(mf.Repos) != 1 || mf.Repos[0] != r.Repository {
			t.Errorf("manifest %s repos %v", mf.Digest, mf.Repos)
		}
	}
}

// TestResumeSourceChanged: manifests the interrupted save stored that the
// resumed one does not put again stay listed (they are in the parts) and
// the bundle verifies.
func TestResumeSourceChanged(t *testing.T) {
	e := seeded(t)
	c := resumeCase{codec: bundle.CodecNone, jobs: 1}
	dir := t.TempDir()
	inputs := []string{"test"}
	multi, _ := ref.New("bundle/library/multi:1")
	app, _ := ref.New("bundle/team/app:1")
	w1, err := c.writer(t, dir, bundle.ResumeAuto, inputs)
	if err != nil {
		t.Fatal(err)
	}
	if err := regtest.Push(context.Background(), w1, multi, e.imgs["library/multi:1"]); err != nil {
		t.Fatal(err)
	}
	w1.Abort()
	w2, err := c.writer(t, dir, bundle.ResumeRequire, inputs)
	if err != nil {
		t.Fatal(err)
	}
	img := e.imgs["team/app:1"]
	if err := regtest.Push(context.Background(), w2, app, img); err != nil {
		t.Fatal(err)
	}
	w2.AddImage(meta.Image{Source: "src/team/app:1", Repository: app.Repository, Tag: "1", Digest: img.Digest(), MediaType: img.Manifest.GetDescriptor().MediaType})
	if _, err := w2.CommitMeta(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := verifyMeta(t, w2.MetaPath())
	if len(got.Manifests) != 5 {
		t.Fatalf("%d manifests, want app's and multi's 4", len(got.Manifests))
	}
}

// TestResumeDuplicateEntry: a journal naming one blob in two parts (only a
// damaged one can) keeps it once: the later part is cut there.
func TestResumeDuplicateEntry(t *testing.T) {
	e, specs, opts, dir := resumeEnv(t, 1)
	c := resumeCase{codec: bundle.CodecZstd, jobs: 1, split: 1} // a part per blob
	first := interrupt(t, e, dir, c, specs, opts, 3)
	journal := filepath.Join(dir, "."+first.ID()+".resume")
	raw, err := os.ReadFile(journal)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	var rec1 map[string]any
	if err := json.Unmarshal([]byte(lines[1][9:]), &rec1); err != nil {
		t.Fatal(err)
	}
	// copy part 1's entry to the end of part 3 and journal it there
	p1 := filepath.Join(dir, first.ID()+"_1.tar.zst.partial")
	p3 := filepath.Join(dir, first.ID()+"_3.tar.zst.partial")
	b1, _ := os.ReadFile(p1)
	b3, _ := os.ReadFile(p3)
	off, n := int64(rec1["o"].(float64)), int64(rec1["l"].(float64))
	if err := os.WriteFile(p3, append(b3, b1[off:off+n]...), 0o644); err != nil {
		t.Fatal(err)
	}
	rec1["p"], rec1["o"] = 3, len(b3)
	appendRecord(t, journal, rec1)
	w, err := c.writer(t, dir, bundle.ResumeRequire, transfer.SaveInputs(specs, opts))
	if err != nil {
		t.Fatal(err)
	}
	if info := w.Resumed(); info.Blobs != 3 || info.Dropped != 1 {
		t.Fatalf("resumed %+v, want 3 kept, 1 dropped", info)
	}
	res, err := transfer.Save(context.Background(), e.reg, w, specs, opts)
	if err != nil {
		t.Fatal(err)
	}
	verifyMeta(t, res.MetaPath)
}

// appendRecord appends a record to a resume journal (see resume.go).
func appendRecord(t *testing.T, journal string, rec map[string]any) {
	t.Helper()
	js, _ := json.Marshal(rec)
	f, err := os.OpenFile(journal, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "%08x %s\n", crc32.Checksum(js, crc32.MakeTable(crc32.Castagnoli)), js); err != nil {
		t.Fatal(err)
	}
}

// TestResumeInterruptedCommit: a save killed while its commit renamed the
// parts (the journal says which final name each got) resumes: the parts
// get their partial names back.
func TestResumeInterruptedCommit(t *testing.T) {
	e, specs, opts, dir := resumeEnv(t, 2)
	c := resumeCase{codec: bundle.CodecGzip, jobs: 2, split: 1} // a part per blob
	first := interrupt(t, e, dir, c, specs, opts, 4)
	journal := filepath.Join(dir, "."+first.ID()+".resume")
	parts, _ := filepath.Glob(filepath.Join(dir, first.ID()+"_*.partial"))
	sort.Strings(parts)
	if len(parts) != 4 {
		t.Fatalf("parts %v", parts)
	}
	for i := range parts {
		appendRecord(t, journal, map[string]any{"k": "r", "p": i + 1, "n": i + 1})
	}
	for _, p := range parts[:2] { // renamed; the others not yet
		if err := os.Rename(p, strings.TrimSuffix(p, ".partial")); err != nil {
			t.Fatal(err)
		}
	}
	w, err := c.writer(t, dir, bundle.ResumeRequire, transfer.SaveInputs(specs, opts))
	if err != nil {
		t.Fatal(err)
	}
	if info := w.Resumed(); info.Blobs != 4 || info.Dropped != 0 {
		t.Fatalf("resumed %+v", info)
	}
	res, err := transfer.Save(context.Background(), e.reg, w, specs, opts)
	if err != nil {
		t.Fatal(err)
	}
	verifyMeta(t, res.MetaPath)
}

// TestResumeAfterLinkDrop: the source fails for good after K blobs (a
// FaultProxy answers 503 to every later blob GET, retries used up): the
// save fails and keeps what it wrote; once the link is back the same save
// resumes and asks the source only for the rest.
func TestResumeAfterLinkDrop(t *testing.T) {
	e := seeded(t)
	proxy := regtest.StartFaultProxy(t, e.host)
	reg := newReg(t, proxy.Host)
	var names []string
	for _, n := range resumeImages {
		names = append(names, proxy.Host+"/"+n)
	}
	specs := e.specs(t, names...)
	opts := transfer.SaveOptions{Jobs: 2, Retries: 1, RetryDelay: time.Millisecond}
	c := resumeCase{codec: bundle.CodecZstd, jobs: 2}
	dir := t.TempDir()
	proxy.Add(regtest.Fault{Method: "GET", Path: `/blobs/sha256:`, Action: regtest.After(5, regtest.Status(503, ""))})
	w, err := c.writer(t, dir, bundle.ResumeAuto, transfer.SaveInputs(specs, opts))
	if err != nil {
		t.Fatal(err)
	}
	_, err = transfer.Save(context.Background(), reg, w, specs, opts)
	if !errors.Is(err, oci.ErrImagesFailed) || !w.Suspended() {
		t.Fatalf("err %v, suspended %v", err, w.Suspended())
	}
	proxy.Reset()
	w, err = c.writer(t, dir, bundle.ResumeRequire, transfer.SaveInputs(specs, opts))
	if err != nil {
		t.Fatal(err)
	}
	kept := w.Resumed().Blobs
	res, err := transfer.Save(context.Background(), reg, w, specs, opts)
	if err != nil {
		t.Fatal(err)
	}
	verifyMeta(t, res.MetaPath)
	gets := map[string]int{}
	for _, r := range proxy.Requests(`/blobs/sha256:`) {
		if r.Method == "GET" {
			gets[r.Path]++
		}
	}
	if kept == 0 || res.Resumed != kept || len(gets) != res.Blobs || len(gets)+kept != len(res.Meta.Blobs) {
		t.Errorf("kept %d, resumed %d, fetched %d (%d GETs), bundle has %d blobs", kept, res.Resumed, res.Blobs, len(gets), len(res.Meta.Blobs))
	}
	for p, n := range gets {
		if n != 1 {
			t.Errorf("%s fetched %d times", p, n)
		}
	}
	t.Logf("%d blobs kept, %d fetched after the link came back", kept, len(gets))
}
