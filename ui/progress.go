package ui

import (
	"cmp"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// progress is a job's Run: ferry's progress callbacks kept as counters
// and the transfers in flight, read by the page as snapshots.
type progress struct {
	out io.Writer // the job's log

	total    atomic.Int64
	items    atomic.Int64
	done     atomic.Int64
	finished atomic.Int64
	failed   atomic.Int64
	totalSet atomic.Bool

	mu     sync.Mutex
	start  time.Time
	end    time.Time // when the job ended: the rate stops there
	active map[*transfer]bool
	labels func(string) string
}

type transfer struct {
	p     *progress
	name  string
	size  int64
	n     atomic.Int64
	begun time.Time
}

func newProgress(out io.Writer) *progress {
	return &progress{out: out, active: map[*transfer]bool{}, start: time.Now()}
}

// Log is a text logger into the job's log, without times (the page has
// them), at Info.
func (p *progress) Log(targetName func(string) string) *slog.Logger {
	return slog.New(slog.NewTextHandler(p.out, &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		switch {
		case len(groups) == 0 && a.Key == slog.TimeKey:
			return slog.Attr{}
		case targetName != nil && a.Key == "target" && a.Value.Kind() == slog.KindString:
			a.Value = slog.StringValue(targetName(a.Value.String()))
		}
		return a
	}}))
}

func (p *progress) Labels(fn func(string) string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.labels = fn
}

func (p *progress) SetTotal(bytes int64, items int) {
	p.total.Store(bytes)
	p.items.Store(int64(items))
	p.mu.Lock()
	p.start = time.Now()
	p.mu.Unlock()
	p.totalSet.Store(true)
}

func (p *progress) Begin(name string, size int64) Tracker {
	t := &transfer{p: p, name: name, size: size, begun: time.Now()}
	p.mu.Lock()
	p.active[t] = true
	p.mu.Unlock()
	return t
}

func (t *transfer) Add(n int64) {
	t.n.Add(n)
	t.p.done.Add(n)
}

func (t *transfer) Done(err error) {
	p := t.p
	p.mu.Lock()
	delete(p.active, t)
	p.mu.Unlock()
	if err != nil {
		p.done.Add(-t.n.Load()) // may be sent again
		p.failed.Add(1)
		return
	}
	p.finished.Add(1)
}

// stop ends the clock of the rate.
func (p *progress) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.end = time.Now()
}

// Snapshot is the progress as the page shows it.
type Snapshot struct {
	// Started: the total is known (the checks before it passed).
	Started  bool     `json:"started"`
	Total    int64    `json:"total"`
	Items    int64    `json:"items"`
	Done     int64    `json:"done"`
	Finished int64    `json:"finished"`
	Failed   int64    `json:"failed"`
	Rate     float64  `json:"rate"` // bytes per second
	ETA      float64  `json:"eta"`  // seconds; 0 unknown
	Active   []Active `json:"active"`
}

// Active is a transfer in flight.
type Active struct {
	Name  string `json:"name"`
	Label string `json:"label"`
	Size  int64  `json:"size"`
	Done  int64  `json:"done"`
}

// maxActive bounds the transfers a snapshot lists.
const maxActive = 16

func (p *progress) snapshot() Snapshot {
	s := Snapshot{Started: p.totalSet.Load(), Total: p.total.Load(), Items: p.items.Load(), Done: p.done.Load(),
		Finished: p.finished.Load(), Failed: p.failed.Load(), Active: []Active{}}
	p.mu.Lock()
	el := time.Since(p.start).Seconds()
	if !p.end.IsZero() {
		el = p.end.Sub(p.start).Seconds()
	}
	label := p.labels
	var ts []*transfer
	for t := range p.active {
		ts = append(ts, t)
	}
	p.mu.Unlock()
	slices.SortFunc(ts, func(a, b *transfer) int { return cmp.Or(a.begun.Compare(b.begun), cmp.Compare(a.name, b.name)) })
	for _, t := range ts[:min(len(ts), maxActive)] {
		a := Active{Name: t.name, Label: t.name, Size: t.size, Done: t.n.Load()}
		if label != nil {
			a.Label = label(t.name)
		}
		s.Active = append(s.Active, a)
	}
	if el > 0 && s.Done > 0 {
		s.Rate = float64(s.Done) / el
		if s.Total > s.Done {
			s.ETA = float64(s.Total-s.Done) / s.Rate
		}
	}
	return s
}
