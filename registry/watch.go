package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"time"
)

// reqWatch bounds one request's time (Net): a deadline for the whole of a
// request that is not a blob transfer; while its body is sent, an idle
// timer and a minimum rate on what the registry takes; while the
// response body is read, the same on what it sends. A bound that fires
// cancels the request's context with a *timeout as its cause; cause and
// explain turn the error the request then returns into that timeout.
type reqWatch struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	net    Net
	what   string        // "GET host/path", for messages
	header time.Duration // the header timeout of its connections
	total  *time.Timer
	send   *idleWatch // the request body: the registry taking it
	recv   *idleWatch // the response body: the registry sending it
	once   sync.Once
}

// timeout is the cause a reqWatch cancels with.
type timeout struct{ msg string }

func (e *timeout) Error() string { return e.msg }
func (e *timeout) Unwrap() error { return ErrTimeout }

// watch starts the bounds of req, whose context is ctx; it returns req
// with ctx (and a trace that ends the send watch once req is written).
func (t *transport) watch(req *http.Request, ctx context.Context, cancel context.CancelCauseFunc) (*reqWatch, *http.Request) {
	w := &reqWatch{ctx: ctx, cancel: cancel, net: t.net, what: req.Method + " " + req.URL.Host + req.URL.Path, header: t.net.Header}
	if isUpload(req) {
		w.header = t.net.UploadHeader
	}
	fire := func(msg string) { w.cancel(&timeout{fmt.Sprintf("%v: %s: %s", ErrTimeout, w.what, msg)}) }
	if t.net.Request > 0 && !isBlob(req.URL) {
		w.total = time.AfterFunc(t.net.Request, func() { fire(fmt.Sprintf("not done within %v", w.net.Request)) })
	}
	w.recv = &idleWatch{idle: t.net.Idle, minRate: t.net.MinRate, fire: fire, verb: "received"}
	if req.Body == nil || req.Body == http.NoBody {
		return w, req.WithContext(ctx)
	}
	w.send = &idleWatch{idle: t.net.Idle, minRate: t.net.MinRate, fire: fire, verb: "taken by the registry"}
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { w.send.stop() }})
	req = req.WithContext(ctx)
	req.Body = &sentBody{rc: req.Body, w: w.send}
	return w, req
}

// cause returns the timeout that ended the request, if one did, for the
// error err it ended with.
func (w *reqWatch) cause(err error) error {
	var to *timeout
	if c := context.Cause(w.ctx); errors.As(c, &to) {
		return to
	}
	return err
}

// explain is cause for an error of the round trip itself, where the
// transport's own dial, TLS handshake and header timeouts are said in the
// same terms.
func (w *reqWatch) explain(err error) error {
	if c := w.cause(err); c != err || w.ctx.Err() != nil {
		return c
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		return err
	}
	var op *net.OpError
	switch {
	case errors.As(err, &op) && op.Op == "dial":
		return &timeout{fmt.Sprintf("%v: %s: could not connect within %v", ErrTimeout, w.what, w.net.Dial)}
	case strings.Contains(err.Error(), "awaiting response headers"):
		return &timeout{fmt.Sprintf("%v: %s: no response headers within %v", ErrTimeout, w.what, w.header)}
	}
	return &timeout{fmt.Sprintf("%v: %s: %v", ErrTimeout, w.what, err)}
}

// end stops the timers and releases the request's context.
func (w *reqWatch) end() {
	w.once.Do(func() {
		w.recv.stop()
		if w.send != nil {
			w.send.stop()
		}
		if w.total != nil {
			w.total.Stop()
		}
		w.cancel(nil)
	})
}

// idleWatch watches one direction of a request: waiting for the network
// (wait, then done) may not last Idle at a stretch, and once the waits
// add up to Idle, the bytes they moved must make MinRate.
type idleWatch struct {
	idle    time.Duration
	minRate int64
	fire    func(msg string)
	verb    string // "received", for messages

	mu      sync.Mutex
	timer   *time.Timer
	waiting bool
	since   time.Time
	waited  time.Duration // waiting time in the current rate window
	moved   int64         // bytes in the current rate window
	stopped bool
}

// wait starts a wait for the network.
func (iw *idleWatch) wait() {
	if iw.idle <= 0 {
		return
	}
	iw.mu.Lock()
	defer iw.mu.Unlock()
	if iw.stopped {
		return
	}
	iw.waiting, iw.since = true, time.Now()
	if iw.timer == nil {
		iw.timer = time.AfterFunc(iw.idle, iw.check)
	} else {
		iw.timer.Reset(iw.idle)
	}
}

// check runs when the timer fires: a wait begun Idle ago ends the request
// (a timer reset meanwhile only re-arms it).
func (iw *idleWatch) check() {
	iw.mu.Lock()
	if !iw.waiting || iw.stopped {
		iw.mu.Unlock()
		return
	}
	if left := iw.idle - time.Since(iw.since); left > 0 {
		iw.timer.Reset(left)
		iw.mu.Unlock()
		return
	}
	iw.mu.Unlock()
	iw.fire(fmt.Sprintf("nothing %s for %v", iw.verb, iw.idle))
}

// done ends a wait that moved n bytes; an error if the rate window is full
// and the bytes fall short of MinRate (the request is then ended).
func (iw *idleWatch) done(n int) error {
	if iw.idle <= 0 {
		return nil
	}
	iw.mu.Lock()
	if !iw.waiting {
		iw.mu.Unlock()
		return nil
	}
	iw.waiting = false
	iw.waited += time.Since(iw.since)
	iw.moved += int64(n)
	waited, moved := iw.waited, iw.moved
	full := waited >= iw.idle
	if full {
		iw.waited, iw.moved = 0, 0
	}
	iw.mu.Unlock()
	if !full || iw.minRate <= 0 || float64(moved) >= float64(iw.minRate)*waited.Seconds() {
		return nil
	}
	msg := fmt.Sprintf("%d bytes %s in %v of waiting, under the minimum rate of %d B/s", moved, iw.verb, waited.Round(time.Millisecond), iw.minRate)
	iw.fire(msg)
	return errors.New(msg) // the caller returns the cause
}

// stop ends the watch for good.
func (iw *idleWatch) stop() {
	iw.mu.Lock()
	iw.stopped, iw.waiting = true, false
	if iw.timer != nil {
		iw.timer.Stop()
	}
	iw.mu.Unlock()
}

// watchedBody is a response body under its request's reqWatch (and, for
// a tag listing, its tagBudget).
type watchedBody struct {
	rc     io.ReadCloser
	w      *reqWatch
	budget *tagBudget
}

func (b *watchedBody) Read(p []byte) (int, error) {
	b.w.recv.wait()
	n, err := b.rc.Read(p)
	if slow := b.w.recv.done(n); slow != nil && err == nil {
		err = slow
	}
	if err != nil && err != io.EOF {
		err = b.w.cause(err)
	}
	if err == nil && b.budget != nil {
		err = b.budget.read(n)
	}
	if err == io.EOF && b.w.total != nil {
		b.w.total.Stop()
	}
	return n, err
}

func (b *watchedBody) Close() error {
	err := b.rc.Close()
	b.w.end()
	return err
}

// sentBody is a request body under its request's send watch: the time
// between the transport taking one piece and asking for the next is
// waiting for the registry (time in rc.Read is the caller's own).
type sentBody struct {
	rc   io.ReadCloser
	w    *idleWatch
	last int
}

func (b *sentBody) Read(p []byte) (int, error) {
	if err := b.w.done(b.last); err != nil {
		return 0, err
	}
	n, err := b.rc.Read(p)
	b.last = n
	if err == nil || err == io.EOF {
		b.w.wait() // at EOF: until the request is written (WroteRequest)
	}
	return n, err
}

func (b *sentBody) Close() error { return b.rc.Close() }
