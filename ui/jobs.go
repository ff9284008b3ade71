package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Job states.
const (
	stateRunning  = "running"
	stateOK       = "ok"
	stateFailed   = "failed"
	stateCanceled = "canceled"
)

// maxLogLines bounds the log lines a job keeps.
const maxLogLines = 300

// keepJobs bounds the finished jobs kept in memory (the history file
// keeps them all).
const keepJobs = 100

// job is a verify, upload or save running in the server: it goes on
// when the page is closed; the page reads its state by id.
type job struct {
	id, kind, bundle, target string
	req                      any // what the page asked for (a retry asks again)
	retryOf                  string
	prog                     *progress
	cancel                   context.CancelFunc
	done                     chan struct{}

	mu        sync.Mutex
	state     string
	started   time.Time
	ended     time.Time
	result    any
	errMsg    string
	errCode   string
	problems  []string
	baseCheck string
	logs      []string
	endPhase  string // the phase the job was at when it ended
}

// JobView is a job as the page reads it.
type JobView struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	Bundle    string    `json:"bundle"`
	Target    string    `json:"target,omitempty"`
	State     string    `json:"state"`
	Phase     string    `json:"phase"`
	BaseCheck string    `json:"baseCheck,omitempty"`
	Started   time.Time `json:"started"`
	Ended     time.Time `json:"ended,omitzero"`
	Progress  Snapshot  `json:"progress"`
	Result    any       `json:"result,omitempty"`
	Error     string    `json:"error,omitempty"`
	ErrorCode string    `json:"errorCode,omitempty"`
	Problems  []string  `json:"problems,omitempty"`
	Log       []string  `json:"log"`
	RetryOf   string    `json:"retryOf,omitempty"`
}

func (j *job) view(withLog bool) JobView {
	snap := j.prog.snapshot()
	j.mu.Lock()
	defer j.mu.Unlock()
	v := JobView{ID: j.id, Kind: j.kind, Bundle: j.bundle, Target: j.target, State: j.state, BaseCheck: j.baseCheck,
		Started: j.started, Ended: j.ended, Progress: snap, Result: j.result, Error: j.errMsg, ErrorCode: j.errCode,
		Problems: j.problems, Log: []string{}, RetryOf: j.retryOf}
	if withLog {
		v.Log = append(v.Log, j.logs...)
	}
	v.Phase = phase(j.kind, j.state, snap)
	if j.state != stateRunning {
		v.Phase = j.endPhase
	}
	if j.baseCheck == "pending" && snap.Started {
		v.BaseCheck = "ok" // upload checks the base blobs before it counts the blobs to push
	}
	return v
}

// phase names the stage a running job is at: check (before the
// transfer's total is known), transfer, finish (every transfer done:
// manifests, tags, the meta file).
func phase(kind, state string, s Snapshot) string {
	switch {
	case state != stateRunning:
		return "done"
	case !s.Started:
		return "check"
	case s.Finished+s.Failed < s.Items || len(s.Active) > 0 || kind == "verify":
		return "transfer"
	}
	return "finish"
}

// Write takes the job's log lines (slog's text handler writes one a call).
func (j *job) Write(b []byte) (int, error) {
	line := strings.TrimRight(string(b), "\n")
	j.mu.Lock()
	defer j.mu.Unlock()
	j.logs = append(j.logs, line)
	if len(j.logs) > maxLogLines {
		j.logs = append(j.logs[:0:0], j.logs[len(j.logs)-maxLogLines:]...)
	}
	return len(b), nil
}

func (j *job) finished() bool {
	select {
	case <-j.done:
		return true
	default:
		return false
	}
}

// jobs are the console's jobs, running and recent.
type jobs struct {
	engine  Engine
	history *history
	log     *slog.Logger
	ctx     context.Context
	stopAll context.CancelFunc
	slots   chan struct{}
	wg      sync.WaitGroup

	mu     sync.Mutex
	prefix string // unique per console start: ids in the history file stay apart
	seq    int
	byID   map[string]*job
	order  []*job
}

func newJobs(e Engine, h *history, log *slog.Logger, max int) *jobs {
	ctx, cancel := context.WithCancel(context.Background())
	return &jobs{engine: e, history: h, log: log, ctx: ctx, stopAll: cancel, slots: make(chan struct{}, max), byID: map[string]*job{},
		prefix: strconv.FormatInt(time.Now().Unix(), 36)}
}

var errBusy = errors.New("too many jobs running")

// work is what a job does; it may set the job's result and error code.
type work func(ctx context.Context, j *job) error

// start runs w as a new job, or returns the running job of the same
// kind, bundle and target (existing true).
func (js *jobs) start(kind, bundle, target string, req any, w work) (j *job, existing bool, err error) {
	js.mu.Lock()
	defer js.mu.Unlock()
	for _, o := range js.order {
		if o.kind != kind || o.finished() {
			continue
		}
		o.mu.Lock()
		same := o.bundle == bundle && o.target == target
		o.mu.Unlock()
		if same {
			return o, true, nil
		}
	}
	select {
	case js.slots <- struct{}{}:
	default:
		return nil, false, errBusy
	}
	js.seq++
	ctx, cancel := context.WithCancel(js.ctx)
	j = &job{id: fmt.Sprintf("%s-%d-%s", js.prefix, js.seq, kind), kind: kind, bundle: bundle, target: target, req: req,
		cancel: cancel, done: make(chan struct{}), state: stateRunning, started: time.Now()}
	j.prog = newProgress(j)
	js.byID[j.id] = j
	js.order = append(js.order, j)
	js.trim()
	js.wg.Add(1)
	go js.run(ctx, j, w)
	return j, false, nil
}

func (js *jobs) run(ctx context.Context, j *job, w work) {
	defer js.wg.Done()
	defer func() { <-js.slots }()
	js.log.Info("job started", "job", j.id, "bundle", j.bundle, "target", j.target)
	err := w(ctx, j)
	j.prog.stop()
	j.mu.Lock()
	j.ended = time.Now()
	j.endPhase = phase(j.kind, stateRunning, j.prog.snapshot())
	if err == nil {
		j.endPhase = "done"
	}
	switch {
	case err == nil:
		j.state = stateOK
	case ctx.Err() != nil:
		j.state, j.errMsg = stateCanceled, err.Error()
	default:
		j.state, j.errMsg = stateFailed, err.Error()
	}
	j.mu.Unlock()
	j.cancel()
	close(j.done)
	js.log.Info("job ended", "job", j.id, "state", j.state)
	js.history.add(j.view(false))
}

// trim forgets the oldest finished jobs beyond keepJobs.
func (js *jobs) trim() {
	for len(js.order) > keepJobs {
		i := 0
		for i < len(js.order) && !js.order[i].finished() {
			i++
		}
		if i == len(js.order) {
			return
		}
		delete(js.byID, js.order[i].id)
		js.order = append(js.order[:i], js.order[i+1:]...)
	}
}

// stop cancels every job and waits for them to end.
func (js *jobs) stop() {
	js.stopAll()
	js.wg.Wait()
}

func (js *jobs) find(id string) *job {
	js.mu.Lock()
	defer js.mu.Unlock()
	return js.byID[id]
}

func (js *jobs) list(w http.ResponseWriter, r *http.Request) {
	js.mu.Lock()
	order := append([]*job(nil), js.order...)
	js.mu.Unlock()
	out := make([]JobView, 0, len(order))
	for i := len(order) - 1; i >= 0; i-- {
		out = append(out, order[i].view(false))
	}
	writeJSON(w, http.StatusOK, out)
}

func (js *jobs) get(w http.ResponseWriter, r *http.Request) {
	j := js.find(r.PathValue("id"))
	if j == nil {
		apiError(w, http.StatusNotFound, "no-job", nil)
		return
	}
	writeJSON(w, http.StatusOK, j.view(true))
}

func (js *jobs) cancelJob(w http.ResponseWriter, r *http.Request) {
	j := js.find(r.PathValue("id"))
	if j == nil {
		apiError(w, http.StatusNotFound, "no-job", nil)
		return
	}
	j.cancel()
	writeJSON(w, http.StatusOK, map[string]string{"id": j.id})
}

// events streams the job's state (server-sent events) whenever it
// changes, at most four times a second, until the job ends or the page
// goes away; the page's EventSource reconnects by itself.
func (js *jobs) events(w http.ResponseWriter, r *http.Request) {
	j := js.find(r.PathValue("id"))
	if j == nil {
		apiError(w, http.StatusNotFound, "no-job", nil)
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{}) // a long response: the server's read timeout must not end it
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last []byte
	lastSent := time.Now()
	for {
		end := j.finished()
		b, _ := json.Marshal(j.view(true))
		switch {
		case !bytes.Equal(b, last):
			fmt.Fprintf(w, "data: %s\n\n", b)
			last, lastSent = b, time.Now()
		case time.Since(lastSent) > 15*time.Second:
			fmt.Fprint(w, ": ping\n\n")
			lastSent = time.Now()
		}
		if end {
			fmt.Fprint(w, "event: end\ndata: {}\n\n")
		}
		if rc.Flush() != nil || end {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-j.done:
		case <-tick.C:
		}
	}
}

func (js *jobs) historyList(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, js.history.list())
}
