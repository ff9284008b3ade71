package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/registry/regtest"
	"github.com/ferry-oss/ferry/ui"
)

// console is a running ferry ui and a headless Chromium on it.
type console struct {
	url, base string // the printed URL (with the token) and the bare one
	ctx       context.Context
	shots     string // FERRY_UI_SCREENSHOTS: where screenshots go
}

// startConsole runs ferry with args (ending with ui and its flags)
// in-process on a free port until the test ends and returns the URL it
// printed.
func startConsole(t *testing.T, args ...string) (url string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"ferry", "-q"}, append(args, "--addr", "127.0.0.1:0")...), strings.NewReader(""), pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != exitOK {
				t.Errorf("ferry ui exited %d after a graceful stop", code)
			}
		case <-time.After(30 * time.Second):
			t.Error("ferry ui did not stop")
		}
	})
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	_, url, ok := strings.Cut(strings.TrimSpace(line), "ferry console: ")
	if !ok || !strings.Contains(url, "/?token=") {
		t.Fatalf("ferry ui said %q", line)
	}
	return url
}

// newBrowser starts Debian's chromium headless (a fresh profile) and stops
// it when the test ends. Under CI=true a missing chromium fails the test.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	bin := regtest.Need(t, "chromium")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1180, 760),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatal(err)
	}
	return ctx
}

// do runs browser actions or fails the test.
func (c *console) do(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(c.ctx, actions...); err != nil {
		body, _ := chromedp.Run(c.ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("%s: %v\npage:\n%s", what, err, body)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, c *console, expr string) T {
	t.Helper()
	v, err := chromedp.Run(c.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// wait polls a JavaScript expression until it is true: the test waits for
// what the page shows, never for a fixed time.
func wait(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(90*time.Second))
}

// click clicks the element of a CSS selector.
func click(sel string) chromedp.Action[chromedp.Void] { return chromedp.Click(chromedp.CSS(sel)) }

// shot saves a screenshot of the page when FERRY_UI_SCREENSHOTS names a
// directory (the README's pictures come from there).
func (c *console) shot(t *testing.T, name string) {
	t.Helper()
	if c.shots == "" {
		return
	}
	png, err := chromedp.Run(c.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.shots, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// consoleBundles saves into dir a full bundle, an increment of it, and a
// third bundle whose part has one byte flipped, from src.
func consoleBundles(t *testing.T, src *regtest.Source, dir string) (full, incr, broken string) {
	t.Helper()
	full = src.Save(t, dir, bundle.CodecNone, nil, "team/app:1", "library/base:1", "big/one:1")
	incr = src.Save(t, dir, bundle.CodecNone, []string{full}, "team/app:1", "team/tools:1")
	broken = src.Save(t, dir, bundle.CodecNone, nil, "library/multi:1")
	m, err := meta.Load(broken)
	if err != nil {
		t.Fatal(err)
	}
	part := filepath.Join(dir, m.Parts[0].Name)
	b, err := os.ReadFile(part)
	if err != nil {
		t.Fatal(err)
	}
	b[m.Blobs[0].Offset+512] ^= 0xff // the first blob's first byte, same size
	if err := os.WriteFile(part, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return filepath.Base(full), filepath.Base(incr), filepath.Base(broken)
}

// gate holds the first matching request until it is opened: an upload
// stays at a known point while the page is looked at.
type gate struct {
	once sync.Once
	ch   chan struct{}
}

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

func (g *gate) action(w http.ResponseWriter, r *http.Request, next http.Handler) {
	<-g.ch
	next.ServeHTTP(w, r)
}

// TestConsoleBrowser drives ferry ui in a real browser the way an operator
// would: the token, the bundle list, verify (a corrupt bundle fails),
// uploads of a full bundle and its increment to docker-registry with
// progress, the base check and a retry, and both languages.
func TestConsoleBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no browser")
	}
	c := &console{ctx: newBrowser(t), shots: os.Getenv("FERRY_UI_SCREENSHOTS")}
	reg := regtest.StartDistribution(t, regtest.DistributionOptions{})
	proxy := regtest.StartFaultProxy(t, reg.Host)
	g := &gate{ch: make(chan struct{})}
	t.Cleanup(g.open)
	proxy.Add(regtest.Fault{Path: `^/v2/mirror/.*/blobs/uploads/.+`, Times: 1, Action: g.action})

	dir := t.TempDir()
	src := regtest.NewSource(t)
	full, incr, broken := consoleBundles(t, src, dir)
	cfg := filepath.Join(t.TempDir(), "cfg.yaml")
	writeFile(t, cfg, fmt.Sprintf("lang: en_US\ntarget: mirror\nregistries:\n  - name: mirror\n    registry: %s\n    namespace: mirror\n  - name: fresh\n    registry: %s\n    namespace: fresh\n", proxy.Host, proxy.Host))
	c.url = startConsole(t, "--config", cfg, "ui", "--dir", dir)
	c.base, _, _ = strings.Cut(c.url, "/?token=")

	t.Run("token", func(t *testing.T) { consoleToken(t, c) })
	t.Run("bundles", func(t *testing.T) { consoleList(t, c, full, incr, broken) })
	t.Run("verify", func(t *testing.T) { consoleVerify(t, c, full, broken) })
	t.Run("upload", func(t *testing.T) {
		consoleUpload(t, c, g, full, incr)
		if tags := regtest.Tags(t, reg, "mirror/team/tools"); !slices.Contains(tags, "1") {
			t.Errorf("mirror/team/tools tags after the uploads: %v", tags)
		}
	})
	t.Run("save", func(t *testing.T) { consoleSave(t, c, src.Host) })
	t.Run("language", func(t *testing.T) { consoleLanguage(t, c) })
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// consoleToken: without the token the console refuses; with it the token
// moves into an HttpOnly cookie and out of the address bar.
func consoleToken(t *testing.T, c *console) {
	c.do(t, "open without the token", chromedp.Navigate(c.base+"/"))
	if title := eval[string](t, c, `document.querySelector('h1').textContent`); !strings.Contains(title, "access link") {
		t.Errorf("without the token the page says %q", title)
	}
	resp, err := http.Get(c.base + "/api/bundles")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /api/bundles without the token: %d", resp.StatusCode)
	}
	c.do(t, "open the printed URL", chromedp.Navigate(c.url), wait(`document.querySelector('tr[data-file]') !== null`))
	search, jsCookies := eval[string](t, c, `location.search`), eval[string](t, c, `document.cookie`)
	if search != "" || strings.Contains(jsCookies, "ferry_ui_") {
		t.Errorf("after the first load: location.search %q, cookies visible to scripts %q", search, jsCookies)
	}
	res, err := chromedp.Call(c.ctx, network.GetCookies, network.GetCookiesParams{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ck := range res.Cookies {
		if strings.HasPrefix(ck.Name, "ferry_ui_") {
			found = ck.HTTPOnly && ck.SameSite == network.CookieSameSiteStrict
		}
	}
	if !found {
		t.Errorf("no HttpOnly SameSite=Strict token cookie: %+v", res.Cookies)
	}
}

// consoleList: the three bundles, the increment under its full bundle.
func consoleList(t *testing.T, c *console, full, incr, broken string) {
	c.do(t, "list", chromedp.Navigate(c.base+"/#/bundles"),
		wait(fmt.Sprintf(`document.querySelectorAll('tr[data-file]').length === 3 && !!document.querySelector('tr[data-file=%q]')`, broken)))
	if !eval[bool](t, c, fmt.Sprintf(`!!document.querySelector('section[data-root=%q] tr.sub[data-file=%q]')`, full, incr)) {
		t.Error("the increment is not listed under its full bundle")
	}
	c.shot(t, "bundles")
	c.do(t, "open a bundle", click(fmt.Sprintf(`tr[data-file=%q] a`, full)),
		wait(fmt.Sprintf(`document.querySelectorAll('#bundle[data-file=%q] #images tbody tr').length === 3`, full)))
	c.shot(t, "bundle")
	c.do(t, "diff", chromedp.Navigate(c.base+"/#/bundle/"+incr), wait(fmt.Sprintf(`!!document.querySelector('#bundle[data-file=%q] [data-action=diff]')`, incr)),
		click(`[data-action=diff]`), wait(`(document.getElementById('diff-out') || {}).textContent.includes('team/tools:1')`))
	c.shot(t, "diff")
}

// consoleVerify: a good bundle checks out, a corrupt one fails with its
// problems listed.
func consoleVerify(t *testing.T, c *console, full, broken string) {
	c.do(t, "verify the full bundle", chromedp.Navigate(c.base+"/#/bundles"), wait(`!!document.querySelector('tr[data-file] button')`),
		click(fmt.Sprintf(`tr[data-file=%q] button[data-action=verify]`, full)),
		wait(`!!document.querySelector('#result[data-state=ok]')`))
	c.do(t, "verify the corrupt bundle", chromedp.Navigate(c.base+"/#/bundles"), wait(`!!document.querySelector('tr[data-file] button')`),
		click(fmt.Sprintf(`tr[data-file=%q] button[data-action=verify]`, broken)),
		wait(`!!document.querySelector('#result[data-state=failed] #problems li')`))
	if problems := eval[string](t, c, `document.getElementById('problems').textContent`); !strings.Contains(problems, "sha256") && !strings.Contains(problems, "digest") {
		t.Errorf("the corrupt bundle's problems: %q", problems)
	}
	c.shot(t, "verify-failed")
}

// consoleUpload: an increment is refused where its base is missing; the
// full bundle's upload shows progress (one blob held at the registry),
// goes on while the page is away, and lands; then the increment lands,
// and a retry of the refused upload goes through once its base is there.
func consoleUpload(t *testing.T, c *console, g *gate, full, incr string) {
	upload := func(what, file, target string) {
		c.do(t, what, chromedp.Navigate(c.base+"/#/upload/"+file), wait(`!!document.querySelector('#start-upload')`),
			chromedp.SetValue(chromedp.CSS("#target"), target), click("#start-upload"),
			wait(`location.hash.startsWith('#/job/') && !!document.querySelector('#job-state')`))
	}
	upload("upload the increment to an empty target", incr, "fresh")
	c.do(t, "base check fails", wait(`!!document.querySelector('#result[data-state=failed] #base-missing li')`),
		wait(`!!document.querySelector('li[data-step=base][data-base=failed]')`))
	refusedJob := eval[string](t, c, `location.hash`)

	upload("upload the full bundle", full, "mirror")
	c.do(t, "progress moves while a blob is held",
		wait(`(e => e && +e.dataset.finished >= 1 && +e.dataset.finished < +e.dataset.items && +e.dataset.done > 0)(document.getElementById('total'))`),
		wait(`!!document.querySelector('#active span')`))
	c.shot(t, "upload-progress")
	c.do(t, "leave and come back", chromedp.Navigate(c.base+"/#/bundles"), wait(`!!document.querySelector('tr[data-file]')`),
		chromedp.Navigate(c.base+"/#/jobs"), wait(`!!document.querySelector('tr[data-job] [data-state=running]')`),
		click(`tr[data-job] a`), wait(`!!document.querySelector('#job-state[data-state=running]')`))
	g.open()
	c.do(t, "the upload lands", wait(`!!document.querySelector('#result[data-state=ok]')`))
	if result := eval[string](t, c, `document.getElementById('result').textContent`); !strings.Contains(result, "3 image(s)") {
		t.Errorf("result: %q", result)
	}
	c.shot(t, "upload-done")

	upload("upload the increment", incr, "mirror")
	c.do(t, "the increment lands", wait(`!!document.querySelector('#result[data-state=ok]')`),
		wait(`!!document.querySelector('li[data-step=base][data-base=ok]')`))

	upload("upload the full bundle to the empty target", full, "fresh")
	c.do(t, "it lands", wait(`!!document.querySelector('#result[data-state=ok]')`))
	c.do(t, "retry the refused upload", chromedp.Navigate(c.base+"/"+refusedJob), wait(`!!document.querySelector('#retry')`),
		click("#retry"), wait(`location.hash !== `+fmt.Sprintf("%q", refusedJob)+` && !!document.querySelector('#result[data-state=ok]')`))
	c.do(t, "history lists the runs", chromedp.Navigate(c.base+"/#/history"), wait(`document.querySelectorAll('tr[data-job]').length >= 7`))
}

// consoleSave: a bundle saved from a list in the page appears in the
// directory.
func consoleSave(t *testing.T, c *console, src string) {
	c.do(t, "save", chromedp.Navigate(c.base+"/#/save"), wait(`!!document.querySelector('#start-save')`),
		chromedp.SetValue(chromedp.CSS("#images"), src+"/library/base:1\n# a comment\n"+src+"/team/tools:1 -> tools/tools:2\n"),
		chromedp.SetValue(chromedp.CSS("#compression"), "zstd"),
		click("#start-save"), wait(`location.hash.startsWith('#/job/') && !!document.querySelector('#result[data-state=ok]')`))
	c.shot(t, "save-done")
	c.do(t, "the new bundle is listed", click(".actions a.button"), wait(`document.querySelectorAll('#bundle #images tbody tr').length === 2`),
		wait(`document.getElementById('images').textContent.includes('tools/tools:2')`))
}

// consoleLanguage: switching to Chinese changes the page and sticks.
func consoleLanguage(t *testing.T, c *console) {
	switchTo := `(s => { s.value = 'zh_CN'; s.dispatchEvent(new Event('change')); return true })(document.getElementById('lang'))`
	c.do(t, "switch to Chinese", chromedp.Navigate(c.base+"/#/bundles"), wait(`!!document.querySelector('tr[data-file]')`),
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](switchTo))
			return err
		}),
		wait(`document.querySelector('nav a[data-nav=bundles]').textContent === '镜像包' && document.documentElement.lang === 'zh-CN'`),
		wait(`document.querySelector('tr[data-file] button[data-action=verify]').textContent === '校验'`))
	c.shot(t, "bundles-zh")
	c.do(t, "Chinese after a reload", chromedp.Reload(), wait(`document.querySelector('nav a[data-nav=history]').textContent === '历史'`))
	c.do(t, "a job page in Chinese", chromedp.Navigate(c.base+"/#/jobs"), wait(`!!document.querySelector('tr[data-job$="-upload"] a')`),
		click(`tr[data-job$="-upload"] a`), wait(`!!document.querySelector('#result h2') && /完成|失败/.test(document.querySelector('#result h2').textContent)`))
	c.shot(t, "job-zh")
}

// testRun is a ui.Run that keeps what the engine reports.
type testRun struct {
	mu     sync.Mutex
	log    strings.Builder
	total  int64
	begun  int
	labels func(string) string
}

func (r *testRun) SetTotal(bytes int64, _ int) { r.mu.Lock(); r.total = bytes; r.mu.Unlock() }
func (r *testRun) Begin(string, int64) ui.Tracker {
	r.mu.Lock()
	r.begun++
	r.mu.Unlock()
	return nopTracker{}
}
func (r *testRun) Labels(fn func(string) string) { r.labels = fn }
func (r *testRun) Log(target func(string) string) *slog.Logger {
	return slog.New(slog.NewTextHandler(&lockedBuilder{r: r}, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if target != nil && a.Key == "target" {
			a.Value = slog.StringValue(target(a.Value.String()))
		}
		return a
	}}))
}

type lockedBuilder struct{ r *testRun }

func (b *lockedBuilder) Write(p []byte) (int, error) {
	b.r.mu.Lock()
	defer b.r.mu.Unlock()
	return b.r.log.Write(p)
}

type nopTracker struct{}

func (nopTracker) Add(int64)  {}
func (nopTracker) Done(error) {}

// TestConsoleEngineDocker: the console's upload to the Docker engine
// loads the image, and its log names the engine, not Docker Hub.
func TestConsoleEngineDocker(t *testing.T) {
	if testing.Short() {
		t.Skip("starts dockerd")
	}
	d := regtest.StartDockerd(t)
	dir := t.TempDir()
	meta := regtest.NewSource(t).Save(t, dir, bundle.CodecNone, nil, "team/app:1")
	e := &env{cfg: &Config{}, log: slog.New(slog.DiscardHandler)}
	u := &uiEngine{e: e}
	if tg := u.Targets(); len(tg) != 1 || !tg[0].Docker {
		t.Errorf("targets without cfg.yaml: %+v", tg)
	}
	run := &testRun{}
	res, err := u.Upload(context.Background(), ui.UploadRequest{Meta: meta, Target: "docker://" + d.Socket, Platform: "linux/amd64"}, run)
	if err != nil {
		t.Fatalf("upload: %v\n%s", err, run.log.String())
	}
	if res.Images != 1 || run.total == 0 || run.begun == 0 || run.labels == nil {
		t.Errorf("result %+v, progress total %d, %d transfers", res, run.total, run.begun)
	}
	if log := run.log.String(); strings.Contains(log, "docker.io") || !strings.Contains(log, "(docker engine "+d.Socket+")") {
		t.Errorf("the job log reads like a push to Docker Hub:\n%s", log)
	}
	resp, err := d.Client().Get("http://docker/images/team/app:1/json")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("team/app:1 not in the engine: %v %v", err, resp)
	}
	resp.Body.Close()
}
