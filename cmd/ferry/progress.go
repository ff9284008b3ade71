package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-oss/ferry/bundle"
)

// progress renders bundle.Progress: bars on a terminal, log lines
// otherwise. Stop must be called once the job ends.
type progress struct {
	out   io.Writer // terminal, or nil for log lines
	log   *slog.Logger
	start time.Time

	total    atomic.Int64
	items    atomic.Int64
	done     atomic.Int64
	finished atomic.Int64

	mu     sync.Mutex
	active []*tracker
	lines  int
	stop   chan struct{}
	wg     sync.WaitGroup
}

type tracker struct {
	p    *progress
	name string
	size int64
	n    atomic.Int64
}

func newProgress(term io.Writer, log *slog.Logger) *progress {
	p := &progress{out: term, log: log, start: time.Now(), stop: make(chan struct{})}
	interval := 5 * time.Second
	if term != nil {
		interval = 200 * time.Millisecond
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.render(false)
			case <-p.stop:
				p.render(true)
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
}

func (p *progress) Begin(name string, size int64) bundle.Tracker {
	t := &tracker{p: p, name: name, size: size}
	p.mu.Lock()
	p.active = append(p.active, t)
	p.mu.Unlock()
	return t
}

func (t *tracker) Add(n int64) {
	t.n.Add(n)
	t.p.done.Add(n)
}

func (t *tracker) Done(err error) {
	p := t.p
	p.mu.Lock()
	for i, a := range p.active {
		if a == t {
			p.active = append(p.active[:i], p.active[i+1:]...)
			break
		}
	}
	p.mu.Unlock()
	if err != nil {
		// bytes of a failed transfer may be sent again
		p.done.Add(-t.n.Load())
		return
	}
	p.finished.Add(1)
	if p.out == nil {
		p.log.Debug("blob done", "blob", t.name, "size", t.size)
	}
}

// Stop draws the last state and ends rendering.
func (p *progress) Stop() {
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	p.wg.Wait()
}

func (p *progress) summary() string {
	done, total := p.done.Load(), p.total.Load()
	el := time.Since(p.start)
	rate := float64(done) / max(el.Seconds(), 0.001)
	s := fmt.Sprintf("%s / %s  %s/s  %d/%d blobs", formatSize(done), formatSize(total), formatSize(int64(rate)), p.finished.Load(), p.items.Load())
	if rate > 0 && total > done {
		eta := time.Duration(float64(total-done) / rate * float64(time.Second))
		s += "  ETA " + eta.Round(time.Second).String()
	}
	return s
}

func (p *progress) render(final bool) {
	if p.items.Load() == 0 && p.total.Load() == 0 {
		return
	}
	if p.out == nil {
		if p.done.Load() > 0 || final {
			p.log.Info("progress", "status", p.summary())
		}
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	if p.lines > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.lines)
	}
	lines := 0
	if !final {
		for i, t := range p.active {
			if i == 8 {
				fmt.Fprintf(&b, "\x1b[2K  … %d more\n", len(p.active)-8)
				lines++
				break
			}
			fmt.Fprintf(&b, "\x1b[2K  %-12s %s %s / %s\n", t.name, bar(t.n.Load(), t.size, 30), formatSize(t.n.Load()), formatSize(t.size))
			lines++
		}
	}
	fmt.Fprintf(&b, "\x1b[2K%s %s\n", bar(p.done.Load(), p.total.Load(), 30), p.summary())
	lines++
	b.WriteString("\x1b[J") // erase what a taller previous frame left below
	p.lines = lines
	io.WriteString(p.out, b.String())
}

// logWriter is where log lines go: while bars are drawn it erases them
// first, so a log line never lands in the middle of the bars; the next
// frame draws them again below it.
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
	if p == nil {
		return l.w.Write(b)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lines > 0 {
		fmt.Fprintf(l.w, "\x1b[%dA\x1b[J", p.lines) // up, erase to the end of the screen
		p.lines = 0
	}
	return l.w.Write(b)
}

func bar(n, total int64, width int) string {
	if total <= 0 {
		total = 1
	}
	fill := min(int(float64(n)/float64(total)*float64(width)), width)
	return "[" + strings.Repeat("=", fill) + strings.Repeat(" ", width-fill) + "]"
}
