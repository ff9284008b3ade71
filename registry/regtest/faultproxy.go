package regtest

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// FaultProxy is a plain-HTTP reverse proxy on a loopback port in front of a
// registry (olareg, docker-registry, or any URL) that injects faults into
// chosen requests. Each Fault matches a method and a path and applies to
// its first Times matching requests; every request is recorded, so a test
// can count retries, Range requests and Authorization headers.
//
// Faults that change a response body (Cut, Stall, Flip) pass the upstream
// response through and act on its body as it streams: nothing is buffered.
type FaultProxy struct {
	// Host is the proxy's host:port, for references and registry clients.
	Host string
	// URL is the proxy's base URL (http://Host).
	URL string

	srv   *httptest.Server
	proxy *httputil.ReverseProxy

	mu     sync.Mutex
	faults []*Fault
	reqs   []Request
}

// Fault is one fault to inject.
type Fault struct {
	// Method matches the request method; "" matches any.
	Method string
	// Path is a regular expression matched against the request path, e.g.
	// `/blobs/sha256:` or `/manifests/v1$`; "" matches any.
	Path string
	// Times is how many matching requests get the fault; 0 means all.
	Times int
	// Action is what happens to a matching request.
	Action Action

	re   *regexp.Regexp
	hits int
}

// Action injects a fault into one request; next serves it from upstream.
type Action func(w http.ResponseWriter, r *http.Request, next http.Handler)

// Request is a request the proxy saw.
type Request struct {
	Method, Path string
	Range        string // the Range header, if any
	Auth         bool   // an Authorization header was sent
	Faulted      bool   // a Fault acted on it
	At           time.Time
}

// StartFaultProxy starts a proxy in front of upstream (a URL such as
// http://127.0.0.1:5000, or a bare host:port meaning plain HTTP) and stops
// it when the test ends.
func StartFaultProxy(t testing.TB, upstream string) *FaultProxy {
	t.Helper()
	if !strings.Contains(upstream, "://") {
		upstream = "http://" + upstream
	}
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	p := &FaultProxy{proxy: httputil.NewSingleHostReverseProxy(u)}
	p.proxy.ErrorLog = log.New(io.Discard, "", 0) // injected cuts are expected
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	p.URL = p.srv.URL
	p.Host = strings.TrimPrefix(p.srv.URL, "http://")
	t.Cleanup(p.srv.Close)
	return p
}

// Add installs faults, matched in the order added.
func (p *FaultProxy) Add(faults ...Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range faults {
		f.re = regexp.MustCompile(f.Path)
		p.faults = append(p.faults, &f)
	}
}

// Reset removes every fault and forgets the requests seen.
func (p *FaultProxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults, p.reqs = nil, nil
}

// Requests returns the requests seen so far whose path matches pattern
// ("" for all).
func (p *FaultProxy) Requests(pattern string) []Request {
	re := regexp.MustCompile(pattern)
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Request
	for _, r := range p.reqs {
		if re.MatchString(r.Path) {
			out = append(out, r)
		}
	}
	return out
}

func (p *FaultProxy) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	var act Action
	for _, f := range p.faults {
		if (f.Method == "" || f.Method == r.Method) && f.re.MatchString(r.URL.Path) && (f.Times == 0 || f.hits < f.Times) {
			f.hits++
			act = f.Action
			break
		}
	}
	p.reqs = append(p.reqs, Request{Method: r.Method, Path: r.URL.Path, Range: r.Header.Get("Range"), Auth: r.Header.Get("Authorization") != "", Faulted: act != nil, At: time.Now()})
	p.mu.Unlock()
	if act == nil {
		p.proxy.ServeHTTP(w, r)
		return
	}
	act(w, r, p.proxy)
}

// Status answers with an HTTP status and an OCI error body, without asking
// upstream. retryAfter, when not empty, is sent as Retry-After.
func Status(code int, retryAfter string) Action {
	return func(w http.ResponseWriter, _ *http.Request, _ http.Handler) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"errors":[{"code":"UNKNOWN","message":"injected %d"}]}`, code)
	}
}

// Cut passes the response through and breaks the connection after n body
// bytes (the client sees an unexpected EOF: Content-Length promised more).
func Cut(n int64) Action {
	return bodyAction(func(off int64, b []byte, w io.Writer) (int, error) {
		if off+int64(len(b)) > n {
			b = b[:max(0, n-off)]
			_, _ = w.Write(b)
			return 0, errCut
		}
		return w.Write(b)
	})
}

// Stall passes the first n body bytes through, then one byte per every
// until the client gives up (or the body ends).
func Stall(n int64, every time.Duration) Action {
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		bodyAction(func(off int64, b []byte, out io.Writer) (int, error) {
			written := 0
			for i := range b {
				if off+int64(i) >= n {
					if f, ok := out.(http.Flusher); ok {
						f.Flush()
					}
					select {
					case <-r.Context().Done():
						return written, errCut
					case <-time.After(every):
					}
				}
				if _, err := out.Write(b[i : i+1]); err != nil {
					return written, err
				}
				written++
			}
			return written, nil
		})(w, r, next)
	}
}

// Flip passes the response through with the body byte at offset off
// inverted (a registry serving wrong bytes for a digest).
func Flip(off int64) Action {
	return bodyAction(func(o int64, b []byte, w io.Writer) (int, error) {
		if off >= o && off < o+int64(len(b)) {
			c := append([]byte(nil), b...)
			c[off-o] ^= 0xff
			return w.Write(c)
		}
		return w.Write(b)
	})
}

// Replace answers with status 200, the given content type and body,
// without asking upstream (a manifest that lies, a huge index).
func Replace(contentType string, body []byte) Action {
	return func(w http.ResponseWriter, r *http.Request, _ http.Handler) {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write(body)
		}
	}
}

// Redirect answers 307 with Location set to base plus the request's path
// and query (a registry handing blob downloads to a storage backend).
func Redirect(base string) Action {
	return func(w http.ResponseWriter, r *http.Request, _ http.Handler) {
		loc := strings.TrimSuffix(base, "/") + r.URL.RequestURI()
		http.Redirect(w, r, loc, http.StatusTemporaryRedirect)
	}
}

var errCut = fmt.Errorf("regtest: connection cut")

// bodyAction serves a request from upstream while fn filters the response
// body. off is the offset of b in the body. An error from fn ends the
// response there: what was written is flushed and the connection closed, so
// the client sees a body shorter than its Content-Length.
func bodyAction(fn func(off int64, b []byte, w io.Writer) (int, error)) Action {
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		next.ServeHTTP(&filterWriter{ResponseWriter: w, fn: fn}, r)
	}
}

type filterWriter struct {
	http.ResponseWriter
	fn  func(off int64, b []byte, w io.Writer) (int, error)
	off int64
	err error
}

func (f *filterWriter) Write(b []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	n, err := f.fn(f.off, b, f.ResponseWriter)
	f.off += int64(n)
	if err != nil {
		f.err = err
		f.cut()
		return n, err // ReverseProxy then aborts the handler
	}
	return len(b), nil
}

// cut flushes what was written and closes the connection.
func (f *filterWriter) cut() {
	f.Flush()
	if hj, ok := f.ResponseWriter.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
		}
	}
}

func (f *filterWriter) Flush() {
	if fl, ok := f.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
}

// Hangup reads up to n bytes of the request body, then closes the
// connection without an answer: a target that dies in the middle of an
// upload.
func Hangup(n int64) Action {
	return func(w http.ResponseWriter, r *http.Request, _ http.Handler) {
		_, _ = io.CopyN(io.Discard, r.Body, n)
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
}

// After passes the first n matching requests through and applies act to
// the ones after them.
func After(n int, act Action) Action {
	var mu sync.Mutex
	seen := 0
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		mu.Lock()
		seen++
		pass := seen <= n
		mu.Unlock()
		if pass {
			next.ServeHTTP(w, r)
			return
		}
		act(w, r, next)
	}
}

// SetHeader passes the response through with header key set to value
// when upstream answers 200 (a registry that reports another digest or
// size for a blob than the one it was sent).
func SetHeader(key, value string) Action {
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		next.ServeHTTP(&headerWriter{ResponseWriter: w, key: key, value: value}, r)
	}
}

type headerWriter struct {
	http.ResponseWriter
	key, value string
}

func (h *headerWriter) WriteHeader(code int) {
	if code == http.StatusOK {
		h.Header().Set(h.key, h.value)
	}
	h.ResponseWriter.WriteHeader(code)
}
