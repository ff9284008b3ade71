package ui

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-oss/ferry/i18n"
)

// fakeEngine runs jobs that wait for release and report progress.
type fakeEngine struct {
	release chan struct{}
	fail    error
	mu      sync.Mutex
	calls   []string
}

func (f *fakeEngine) Targets() []Target {
	return []Target{{Name: "mirror", Where: "reg:5000/mirror", Default: true}}
}
func (f *fakeEngine) Inspect(string) (*Detail, error) {
	return &Detail{Images: []Image{}, Referrers: []Referrer{}}, nil
}
func (f *fakeEngine) Signature(string) Signature { return Signature{State: "none"} }

func (f *fakeEngine) work(ctx context.Context, what string, run Run) error {
	f.mu.Lock()
	f.calls = append(f.calls, what)
	f.mu.Unlock()
	run.Log(nil).Info("working", "on", what)
	run.SetTotal(100, 2)
	t := run.Begin("aaaaaaaaaaaa", 50)
	t.Add(50)
	t.Done(nil)
	run.Begin("bbbbbbbbbbbb", 50).Add(10)
	select {
	case <-f.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return f.fail
}

func (f *fakeEngine) Verify(ctx context.Context, metaPath string, run Run) error {
	return f.work(ctx, "verify "+filepath.Base(metaPath), run)
}

func (f *fakeEngine) Upload(ctx context.Context, req UploadRequest, run Run) (*UploadResult, error) {
	err := f.work(ctx, "upload "+filepath.Base(req.Meta)+" "+req.Target, run)
	return &UploadResult{Images: 1, Failed: []Failure{}}, err
}

func (f *fakeEngine) Save(ctx context.Context, req SaveRequest, run Run) (*SaveResult, error) {
	return nil, f.work(ctx, "save", run)
}

// testBundles copies the schema 1 bundles of testdata (a full bundle and
// its increment) into a directory.
func testBundles(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join("..", "testdata", "bundles", "v1-none")
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const (
	fullMeta = "ferry_full_20261101T020000Z_meta.yaml"
	incrMeta = "ferry_incr_20261102T020000Z_meta.yaml"
)

// testConsole serves a console over a real loopback listener.
type testConsole struct {
	srv     *Server
	base    string
	cookie  *http.Cookie
	engine  *fakeEngine
	logs    *bytes.Buffer
	history string
}

func newTestConsole(t *testing.T, dir string) *testConsole {
	t.Helper()
	tc := &testConsole{engine: &fakeEngine{release: make(chan struct{})}, logs: &bytes.Buffer{}, history: filepath.Join(t.TempDir(), "history.jsonl")}
	srv, err := New(Options{Dir: dir, Engine: tc.engine, Lang: i18n.English, History: tc.history,
		Log: slog.New(slog.NewTextHandler(&lockedWriter{w: tc.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l, false, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	tc.srv, tc.base = srv, "http://"+l.Addr().String()
	tc.cookie = &http.Cookie{Name: cookieName(l.Addr().String()), Value: srv.guard.token}
	return tc
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// req sends a request; with auth it carries the cookie, and a POST the
// console's Origin and a JSON body.
func (tc *testConsole) req(t *testing.T, method, path, body string, auth bool, hdr map[string]string) *http.Response {
	t.Helper()
	r, err := http.NewRequest(method, tc.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth {
		r.AddCookie(tc.cookie)
	}
	if method == http.MethodPost {
		r.Header.Set("Origin", tc.base)
		r.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		if v == "" {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
		if k == "Host" {
			r.Host = v
		}
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestGuard(t *testing.T) {
	tc := newTestConsole(t, testBundles(t))
	tests := []struct {
		name         string
		method, path string
		body         string
		auth         bool
		hdr          map[string]string
		want         int
	}{
		{"page without the token", "GET", "/", "", false, nil, http.StatusUnauthorized},
		{"asset without the token", "GET", "/static/app.js", "", false, nil, http.StatusUnauthorized},
		{"api without the token", "GET", "/api/bundles", "", false, nil, http.StatusUnauthorized},
		{"a wrong token", "GET", "/?token=" + strings.Repeat("A", 43), "", false, nil, http.StatusUnauthorized},
		{"the token on another path", "GET", "/api/bundles?token=" + tc.srv.guard.token, "", false, nil, http.StatusUnauthorized},
		{"the token", "GET", "/?token=" + tc.srv.guard.token, "", false, nil, http.StatusOK},
		{"the cookie", "GET", "/api/bundles", "", true, nil, http.StatusOK},
		{"another Host (DNS rebinding)", "GET", "/api/bundles", "", true, map[string]string{"Host": "evil.example:80"}, http.StatusMisdirectedRequest},
		{"localhost", "GET", "/api/bundles", "", true, map[string]string{"Host": "localhost:" + port(tc.base)}, http.StatusOK},
		{"POST without Origin", "POST", "/api/verify", `{"bundle":"` + fullMeta + `"}`, true, map[string]string{"Origin": ""}, http.StatusForbidden},
		{"POST from another origin", "POST", "/api/verify", `{"bundle":"` + fullMeta + `"}`, true, map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden},
		{"POST as a form", "POST", "/api/verify", `bundle=x`, true, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, http.StatusUnsupportedMediaType},
		{"POST without the token", "POST", "/api/verify", `{"bundle":"` + fullMeta + `"}`, false, nil, http.StatusUnauthorized},
		{"GET of a POST endpoint", "GET", "/api/verify", "", true, nil, http.StatusMethodNotAllowed},
		{"a path out of the directory", "POST", "/api/verify", `{"bundle":"../x_meta.yaml"}`, true, nil, http.StatusBadRequest},
		{"not a meta file", "GET", "/api/bundles/passwd", "", true, nil, http.StatusNotFound},
		{"an unknown field", "POST", "/api/verify", `{"bundle":"` + fullMeta + `","user":"x"}`, true, nil, http.StatusBadRequest},
		{"a huge body", "POST", "/api/save", `{"images":"` + strings.Repeat("a", maxBody) + `"}`, true, nil, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := tc.req(t, tt.method, tt.path, tt.body, tt.auth, tt.hdr)
			if resp.StatusCode != tt.want {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("%s %s: %d, want %d: %s", tt.method, tt.path, resp.StatusCode, tt.want, b)
			}
			if csp := resp.Header.Get("Content-Security-Policy"); resp.StatusCode != http.StatusMisdirectedRequest && !strings.Contains(csp, "default-src 'none'") {
				t.Errorf("no CSP: %q", csp)
			}
		})
	}
	t.Run("cookie", func(t *testing.T) {
		resp := tc.req(t, "GET", "/?token="+tc.srv.guard.token, "", false, nil)
		var ck *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == tc.cookie.Name {
				ck = c
			}
		}
		if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Value != tc.srv.guard.token {
			t.Fatalf("token cookie: %+v", ck)
		}
	})
	t.Run("denied page", func(t *testing.T) {
		b, _ := io.ReadAll(tc.req(t, "GET", "/", "", false, nil).Body)
		if !strings.Contains(string(b), "access link") {
			t.Errorf("the 401 page does not say what to do: %s", b)
		}
		b, _ = io.ReadAll(tc.req(t, "GET", "/", "", false, map[string]string{"Cookie": langCookie + "=zh_CN"}).Body)
		if !strings.Contains(string(b), "访问链接") {
			t.Errorf("the 401 page is not in Chinese with ferry_lang=zh_CN: %s", b)
		}
	})
	if strings.Contains(tc.logs.String(), tc.srv.guard.token) {
		t.Error("the token is in the server's log")
	}
}

func port(base string) string {
	_, p, _ := net.SplitHostPort(strings.TrimPrefix(base, "http://"))
	return p
}

func TestAllowedHosts(t *testing.T) {
	lo := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8780}
	h := allowedHosts(lo, false)
	if !h["127.0.0.1:8780"] || !h["localhost:8780"] || h["localhost:8781"] || h["example.com:8780"] {
		t.Errorf("loopback: %v", h)
	}
	if h := allowedHosts(lo, true); h != nil {
		t.Errorf("anyHost: %v", h)
	}
	v6 := &net.TCPAddr{IP: net.IPv6loopback, Port: 1}
	if h := allowedHosts(v6, false); !h["[::1]:1"] || !h["localhost:1"] {
		t.Errorf("::1: %v", h)
	}
}

func TestListing(t *testing.T) {
	dir := testBundles(t)
	tc := newTestConsole(t, dir)
	list := func() Listing {
		var l Listing
		if err := json.NewDecoder(tc.req(t, "GET", "/api/bundles", "", true, nil).Body).Decode(&l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	l := list()
	if len(l.Bundles) != 2 || len(l.Chains) != 1 || len(l.Chains[0].Members) != 2 || l.Chains[0].Root != fullMeta || len(l.Chains[0].Missing) != 0 {
		t.Fatalf("chains: %+v", l.Chains)
	}
	if b := l.Bundles[1]; b.File != incrMeta || b.Chain != fullMeta || !b.Complete || b.Bases[0].State != "ok" {
		t.Errorf("increment: %+v", b)
	}
	// a part gone, the full bundle's meta file gone: the chain says so
	if err := os.Remove(filepath.Join(dir, "ferry_incr_20261102T020000Z_2.tar")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, fullMeta)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "junk_meta.yaml"), []byte("hello: world\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l = list()
	if len(l.Bundles) != 1 || len(l.Chains) != 1 || l.Chains[0].Present || l.Chains[0].Root != "ferry_full_20261101T020000Z" {
		t.Fatalf("without the full bundle: %+v", l.Chains)
	}
	want := []string{fullMeta, "ferry_incr_20261102T020000Z_2.tar"}
	if got := l.Chains[0].Missing; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("missing %v, want %v", got, want)
	}
	if len(l.Unreadable) != 1 || l.Unreadable[0].File != "junk_meta.yaml" {
		t.Errorf("unreadable: %+v", l.Unreadable)
	}
}

func TestDiff(t *testing.T) {
	tc := newTestConsole(t, testBundles(t))
	var d Diff
	if err := json.NewDecoder(tc.req(t, "GET", "/api/diff?new="+incrMeta, "", true, nil).Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	if d.OldID != "ferry_full_20261101T020000Z" || d.NewID != "ferry_incr_20261102T020000Z" || !d.Placeholder {
		t.Fatalf("diff: %+v", d)
	}
	if len(d.Changed)+len(d.Added)+len(d.Removed) == 0 || d.BlobsAdded == 0 {
		t.Errorf("the increment changes nothing? %+v", d)
	}
	if resp := tc.req(t, "GET", "/api/diff?new="+fullMeta, "", true, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("diff of a full bundle against its base: %d", resp.StatusCode)
	}
}

// TestJobs: a job runs in the server, its progress streams as events, the
// page can leave and come back, it ends in the history, a retry runs it
// again.
func TestJobs(t *testing.T) {
	tc := newTestConsole(t, testBundles(t))
	start := func(path, body string) string {
		resp := tc.req(t, "POST", path, body, true, nil)
		var r struct {
			ID       string `json:"id"`
			Existing bool   `json:"existing"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST %s: %d %v", path, resp.StatusCode, err)
		}
		return r.ID
	}
	id := start("/api/upload", `{"bundle":"`+fullMeta+`","target":"mirror"}`)
	if again := start("/api/upload", `{"bundle":"`+fullMeta+`","target":"mirror"}`); again != id {
		t.Errorf("the same upload twice started two jobs: %s, %s", id, again)
	}
	events := tc.req(t, "GET", "/api/jobs/"+id+"/events", "", true, nil)
	sc := bufio.NewScanner(events.Body)
	next := func() JobView {
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var v JobView
				if err := json.Unmarshal([]byte(data), &v); err != nil {
					t.Fatal(err)
				}
				return v
			}
		}
		t.Fatalf("events ended: %v", sc.Err())
		return JobView{}
	}
	v := next()
	for v.Progress.Done < 60 {
		v = next()
	}
	if v.State != stateRunning || v.Phase != "transfer" || v.Progress.Finished != 1 || len(v.Progress.Active) != 1 {
		t.Fatalf("running job: %+v", v)
	}
	close(tc.engine.release)
	for v.State == stateRunning {
		v = next()
	}
	if v.State != stateOK || v.Phase != "done" || !strings.Contains(strings.Join(v.Log, "\n"), "on=\"upload "+fullMeta+" mirror\"") {
		t.Fatalf("ended job: %+v", v)
	}
	// the history file has it; a retry runs it again
	var recs []Record
	if err := json.NewDecoder(tc.req(t, "GET", "/api/history", "", true, nil).Body).Decode(&recs); err != nil || len(recs) != 1 || recs[0].Job != id {
		t.Fatalf("history: %+v %v", recs, err)
	}
	retry := start("/api/jobs/"+id+"/retry", "")
	<-tc.srv.jobs.find(retry).done
	var rv JobView
	if err := json.NewDecoder(tc.req(t, "GET", "/api/jobs/"+retry, "", true, nil).Body).Decode(&rv); err != nil || rv.State != stateOK {
		t.Fatalf("retry: %+v %v", rv, err)
	}
	if rv.RetryOf != id || len(tc.engine.calls) != 2 || tc.engine.calls[1] != tc.engine.calls[0] {
		t.Errorf("retry: %+v, calls %v", rv, tc.engine.calls)
	}
}

// TestJobCancel: canceling ends the job as canceled; a failure keeps its
// message.
func TestJobCancel(t *testing.T) {
	tc := newTestConsole(t, testBundles(t))
	tc.engine.fail = errors.New("disk on fire")
	resp := tc.req(t, "POST", "/api/verify", `{"bundle":"`+incrMeta+`"}`, true, nil)
	var r struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	tc.req(t, "POST", "/api/jobs/"+r.ID+"/cancel", "", true, nil)
	j := tc.srv.jobs.find(r.ID)
	<-j.done
	if v := j.view(false); v.State != stateCanceled {
		t.Errorf("canceled job: %+v", v)
	}
	close(tc.engine.release)
	resp = tc.req(t, "POST", "/api/verify", `{"bundle":"`+fullMeta+`"}`, true, nil)
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	j = tc.srv.jobs.find(r.ID)
	<-j.done
	if v := j.view(false); v.State != stateFailed || v.ErrorCode != "problems" || v.Problems[0] != "disk on fire" {
		t.Errorf("failed job: %+v", v)
	}
}
