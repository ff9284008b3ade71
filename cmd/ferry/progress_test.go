package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/mattn/go-runewidth"
	"github.com/olareg/olareg"
	oconfig "github.com/olareg/olareg/config"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
)

// slowWriter sends blob bodies at about 16 MiB/s so that a save lasts
// long enough for many frames.
type slowWriter struct {
	http.ResponseWriter
	n *int
}

func (w slowWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	*w.n += n
	for *w.n >= 512<<10 {
		*w.n -= 512 << 10
		time.Sleep(30 * time.Millisecond)
	}
	return n, err
}

type chunk struct {
	at   time.Time
	data []byte
}

var csi = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]`)

// TestProgressFitsTerminal runs save on a pseudo-terminal of 80 columns,
// shrinks it to 50 part way, and checks that no bar line is ever wider
// than the terminal, that bars are labelled by image and layer, and that
// log lines are not drawn over.
func TestProgressFitsTerminal(t *testing.T) {
	reg := olareg.New(oconfig.Config{Storage: oconfig.ConfigStorage{StoreType: oconfig.StoreMem}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") && r.Method == http.MethodGet {
			w = slowWriter{w, new(int)}
		}
		reg.ServeHTTP(w, r)
	}))
	defer func() { srv.Close(); _ = reg.Close() }()
	host := strings.TrimPrefix(srv.URL, "http://")
	rc, _ := registry.New(registry.Options{Registries: []string{host}})
	name := host + "/a-rather-long-organisation/and-an-even-longer-repository-name/app:2026.11.30-build.1234"
	r, _ := ref.New(name)
	if err := regtest.Push(context.Background(), rc, r, regtest.NewBigImage(7, 4, 8<<20)); err != nil {
		t.Fatal(err)
	}

	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 30, Cols: 80}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var chunks []chunk
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 32<<10)
		for {
			n, err := ptmx.Read(buf)
			if n > 0 {
				mu.Lock()
				chunks = append(chunks, chunk{time.Now(), append([]byte(nil), buf[:n]...)})
				mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
	var resized time.Time
	go func() {
		time.Sleep(500 * time.Millisecond)
		mu.Lock()
		resized = time.Now()
		mu.Unlock()
		_ = pty.Setsize(ptmx, &pty.Winsize{Rows: 30, Cols: 50})
	}()
	var stdout bytes.Buffer
	code := run(context.Background(), []string{"ferry", "save", name, "-o", t.TempDir(), "-j", "2"}, strings.NewReader(""), &stdout, tty)
	tty.Close()
	select {
	case <-readDone:
	case <-time.After(5 * time.Second):
	}
	if code != 0 {
		t.Fatalf("save: exit %d", code)
	}
	mu.Lock()
	defer mu.Unlock()
	if resized.IsZero() {
		t.Fatal("the save ended before the resize: make it slower")
	}
	var all strings.Builder
	frames, wide := 0, 0
	for _, c := range chunks {
		all.Write(c.data)
		cols := 80
		if c.at.After(resized.Add(300 * time.Millisecond)) { // a frame after the resize
			cols = 50
		}
		for _, line := range strings.FieldsFunc(csi.ReplaceAllString(string(c.data), ""), func(r rune) bool { return r == '\n' || r == '\r' }) {
			if strings.HasPrefix(line, "time=") || strings.HasPrefix(line, "saved ") {
				continue // a log line (printed above the bars) or the summary
			}
			if strings.Contains(line, "total") {
				frames++
			}
			if w := runewidth.StringWidth(line); w > cols {
				wide++
				if wide < 5 {
					t.Errorf("a %d column line on a %d column terminal: %q", w, cols, line)
				}
			}
		}
	}
	if frames < 5 {
		t.Errorf("%d frames drawn", frames)
	}
	out := csi.ReplaceAllString(all.String(), "")
	for _, want := range []string{"layer 1/4", "layer 4/4", "app:2026.11.30-build.1234", "5/5 blobs", "level=INFO msg=saving"} {
		if !strings.Contains(out, want) {
			t.Errorf("terminal output lacks %q", want)
		}
	}
	if !strings.HasSuffix(stdout.String(), "_meta.yaml\n") {
		t.Errorf("stdout %q", stdout.String())
	}
	if testing.Verbose() {
		_, _ = io.WriteString(os.Stderr, out[max(0, len(out)-3000):])
	}
}
