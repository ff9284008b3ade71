package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mattn/go-runewidth"
	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/ref"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/internal/safe"
	"github.com/ferry-oss/ferry/oci"
)

// progress renders oci.Progress: on a terminal, multi-bar progress
// drawn by vbauerster/mpb (a bar per active blob labelled by image and
// layer, and a total bar with bytes, rate, blob count and ETA; every line
// fits the terminal width, re-read at each frame); otherwise a log line
// every 5 s. Stop must be called once the job ends.
type progress struct {
	log    *slog.Logger
	bars   *mpb.Progress // nil: log lines
	labels *labeler
	start  time.Time

	total    atomic.Int64
	items    atomic.Int64
	done     atomic.Int64
	finished atomic.Int64

	mu       sync.Mutex
	totalBar *mpb.Bar
	active   map[*tracker]bool
	stopped  bool
	stop     chan struct{}
	wg       sync.WaitGroup
}

type tracker struct {
	p    *progress
	name string
	size int64
	n    atomic.Int64
	bar  *mpb.Bar
}

// newProgress draws bars on term, or logs when term is nil.
func newProgress(term io.Writer, log *slog.Logger, labels *labeler) *progress {
	p := &progress{log: log, labels: labels, start: time.Now(), stop: make(chan struct{}), active: map[*tracker]bool{}}
	if term != nil {
		p.bars = mpb.New(mpb.WithOutput(term), mpb.WithWidth(40), mpb.WithRefreshRate(150*time.Millisecond), mpb.WithAutoRefresh())
		return p
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.logLine(false)
			case <-p.stop:
				p.logLine(true)
				return
			}
		}
	}()
	return p
}

func (p *progress) SetTotal(bytes int64, items int) {
	p.total.Store(bytes)
	p.items.Store(int64(items))
	p.start = time.Now()
	if p.bars == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	if p.totalBar == nil {
		p.totalBar = p.bars.AddBar(max(bytes, 1),
			mpb.BarPriority(math.MaxInt), // the last line
			mpb.PrependDecorators(decor.Any(func(decor.Statistics) string { return "total" })),
			mpb.AppendDecorators(decor.Any(func(s decor.Statistics) string { return p.fitSummary(s.AvailableWidth - 14) })),
		)
	} else {
		p.totalBar.SetTotal(max(bytes, 1), false)
	}
}

func (p *progress) Begin(name string, size int64) oci.Tracker {
	t := &tracker{p: p, name: name, size: size}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.active[t] = true
	if p.bars != nil && !p.stopped {
		label := p.labels.label(name)
		t.bar = p.bars.AddBar(max(size, 1),
			mpb.BarRemoveOnComplete(),
			mpb.PrependDecorators(decor.Any(func(s decor.Statistics) string {
				// the label gets what is left of a third of the line
				return fit(label, max(12, s.AvailableWidth/3))
			})),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
				return formatSize(t.n.Load()) + " / " + formatSize(t.size)
			})),
		)
	}
	return t
}

// fit cuts s to width columns, keeping its end (the layer number).
func fit(s string, width int) string {
	if runewidth.StringWidth(s) <= width {
		return runewidth.FillRight(s, width)
	}
	r := []rune(s)
	for len(r) > 0 && runewidth.StringWidth(string(r))+1 > width {
		r = r[1:]
	}
	return "…" + string(r)
}

func (t *tracker) Add(n int64) {
	t.n.Add(n)
	t.p.done.Add(n)
	if t.bar != nil {
		t.bar.IncrInt64(n)
		t.p.totalBar.SetCurrent(t.p.done.Load())
	}
}

func (t *tracker) Done(err error) {
	p := t.p
	p.mu.Lock()
	delete(p.active, t)
	p.mu.Unlock()
	if err != nil {
		// bytes of a failed transfer may be sent again
		p.done.Add(-t.n.Load())
		if t.bar != nil {
			t.bar.Abort(true)
		}
		return
	}
	p.finished.Add(1)
	if t.bar != nil {
		t.bar.SetTotal(max(t.size, 1), true) // complete: the bar is removed
		p.totalBar.SetCurrent(p.done.Load())
		return
	}
	p.log.Debug("blob done", "blob", p.labels.label(t.name), "size", t.size)
}

// Stop draws the last state and ends rendering.
func (p *progress) Stop() {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	p.stopped = true
	if p.bars != nil {
		for t := range p.active {
			if t.bar != nil {
				t.bar.Abort(true)
			}
		}
		if p.totalBar != nil {
			p.totalBar.SetCurrent(p.done.Load())
			p.totalBar.SetTotal(max(p.total.Load(), p.done.Load(), 1), true)
		}
	}
	p.mu.Unlock()
	if p.bars != nil {
		p.bars.Wait()
		return
	}
	close(p.stop)
	p.wg.Wait()
}

// fitSummary is the longest form of the summary that fits width columns
// (the ETA, then the rate, then the blob count are dropped first).
func (p *progress) fitSummary(width int) string {
	forms := p.summaryForms()
	for _, f := range forms {
		if runewidth.StringWidth(f) <= width {
			return f
		}
	}
	return forms[len(forms)-1]
}

func (p *progress) summary() string { return p.summaryForms()[0] }

// summaryForms are the summary from the longest to the shortest form.
func (p *progress) summaryForms() []string {
	done, total := p.done.Load(), p.total.Load()
	el := time.Since(p.start)
	rate := float64(done) / max(el.Seconds(), 0.001)
	bytes := formatSize(done) + " / " + formatSize(total)
	count := fmt.Sprintf("%d/%d blobs", p.finished.Load(), p.items.Load())
	withRate := bytes + "  " + formatSize(int64(rate)) + "/s  " + count
	forms := []string{withRate, bytes + "  " + count, bytes}
	if rate > 0 && total > done {
		eta := time.Duration(float64(total-done) / rate * float64(time.Second))
		forms = append([]string{withRate + "  ETA " + eta.Round(time.Second).String()}, forms...)
	}
	return forms
}

func (p *progress) logLine(final bool) {
	if p.items.Load() == 0 && p.total.Load() == 0 {
		return
	}
	if p.done.Load() > 0 || final {
		p.log.Info("progress", "status", p.summary())
	}
}

// logWriter is where log lines go: while bars are drawn, mpb prints them
// above the bars.
type logWriter struct {
	mu sync.Mutex
	w  io.Writer
	p  *progress
}

func (l *logWriter) setProgress(p *progress) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.p = p
}

func (l *logWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	p := l.p
	l.mu.Unlock()
	if p != nil && p.bars != nil {
		if n, err := p.bars.Write(b); err == nil {
			return n, nil
		}
		// the bars are gone: write directly
	}
	return l.w.Write(b)
}

// labeler names blobs for progress bars by image and layer
// ("team/app:1 layer 2/3"), keyed by the name bundle gives a transfer (the
// first 12 hex digits of the digest).
type labeler struct {
	mu        sync.Mutex
	labels    map[string]string
	platforms map[digest.Digest]string // index children seen
}

func newLabeler() *labeler {
	return &labeler{labels: map[string]string{}, platforms: map[digest.Digest]string{}}
}

// manifest labels the blobs of m, a manifest of image name: an index
// notes its children's platforms, an image manifest labels its config and
// layers.
func (l *labeler) manifest(name string, m manifest.Manifest) {
	if l == nil {
		return
	}
	blobs, children, err := oci.References(m)
	if err != nil {
		return
	}
	l.mu.Lock()
	for _, c := range children {
		if c.Platform != nil {
			l.platforms[c.Digest] = c.Platform.String()
		}
	}
	plat := l.platforms[m.GetDescriptor().Digest]
	l.mu.Unlock()
	if _, isImage := m.(manifest.Imager); !isImage {
		return
	}
	hexes := make([]string, len(blobs))
	for i, b := range blobs {
		hexes[i] = b.Digest.Encoded()
	}
	l.add(name, plat, hexes)
}

// showsLabels reports whether something shows blob labels (bars on a
// terminal, debug logs): 10,000 images' labels are not built for nothing.
func (e *env) showsLabels() bool { return e.term || e.level <= slog.LevelDebug }

// labels is a labeler when labels are shown, else nil.
func (e *env) labels() *labeler {
	if !e.showsLabels() {
		return nil
	}
	return newLabeler()
}

// labelsFromMeta labels every blob of a bundle's images, when labels are
// shown.
func (e *env) labelsFromMeta(bd *bundle.Bundle) *labeler {
	if !e.showsLabels() {
		return nil
	}
	return labelsFromMeta(bd)
}

// labelsFromMeta labels every blob of a bundle's images.
func labelsFromMeta(bd *bundle.Bundle) *labeler {
	l := newLabeler()
	for _, img := range bd.Meta.Images {
		name := img.Repository + ":" + img.Tag
		if img.Tag == "" {
			name = img.Repository + "@" + short(img.Digest.String())
		}
		eachManifest(bd, img.Digest, func(mm manifest.Manifest, _ []descriptor.Descriptor) { l.manifest(name, mm) })
	}
	return l
}

// labelSource labels blobs as save resolves manifests.
type labelSource struct {
	oci.Source
	l *labeler
}

// Referrers passes through to a source that lists referrers (save's
// Referrers option must see through the wrapper); others have none.
func (s labelSource) Referrers(ctx context.Context, r ref.Ref, d descriptor.Descriptor) ([]oci.Referrer, error) {
	if rs, ok := s.Source.(oci.ReferrerSource); ok {
		return rs.Referrers(ctx, r, d)
	}
	return nil, nil
}

func (s labelSource) ManifestGet(ctx context.Context, r ref.Ref) (manifest.Manifest, error) {
	m, err := s.Source.ManifestGet(ctx, r)
	if err == nil {
		name := r.Repository + ":" + r.Tag
		if r.Tag == "" {
			name = r.Repository
		}
		s.l.manifest(name, m)
	}
	return m, err
}

// add labels the blobs of an image manifest of image name.
func (l *labeler) add(name, platform string, blobs []string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if platform != "" {
		name += " " + platform
	}
	name = safe.Line(name)
	for i, hex := range blobs {
		key := hex[:min(12, len(hex))]
		if _, ok := l.labels[key]; ok {
			continue // shared: the first image names it
		}
		if i == 0 {
			l.labels[key] = name + " config"
		} else {
			l.labels[key] = fmt.Sprintf("%s layer %d/%d", name, i, len(blobs)-1)
		}
	}
}

func (l *labeler) label(key string) string {
	if l == nil {
		return key
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if s, ok := l.labels[key]; ok {
		return s
	}
	return key
}
