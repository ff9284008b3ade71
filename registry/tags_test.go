package registry_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/registry"
)

// hostileTags is a registry whose tag listing of team/app is one of:
// "endless" (a page of one tag and a Link to the next, forever), "huge"
// (one chunked page that never ends), "announced" (a Content-Length of
// 1.6 GB), "slow" (endless pages, 100 ms each). written counts the bytes
// it sent.
func hostileTags(t *testing.T, kind string, written *atomic.Int64) string {
	t.Helper()
	done := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/tags/list") {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		switch kind {
		case "endless", "slow":
			if kind == "slow" {
				time.Sleep(100 * time.Millisecond)
			}
			w.Header().Set("Link", fmt.Sprintf(`</v2/team/app/tags/list?page=%d>; rel="next"`, page+1))
			n, _ := fmt.Fprintf(w, `{"name":"team/app","tags":["t%d"]}`, page)
			written.Add(int64(n))
		case "huge":
			n, _ := w.Write([]byte(`{"name":"team/app","tags":["a"`))
			written.Add(int64(n))
			chunk := bytes.Repeat([]byte(`,"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"`), 2048)
			for {
				select {
				case <-done:
					return
				default:
				}
				n, err := w.Write(chunk)
				written.Add(int64(n))
				if err != nil {
					return
				}
			}
		case "announced":
			w.Header().Set("Content-Length", "1600000000")
			w.WriteHeader(http.StatusOK)
			n, _ := w.Write([]byte(`{"name":"team/app","tags":["a"`))
			written.Add(int64(n))
			w.(http.Flusher).Flush()
			select {
			case <-done:
			case <-r.Context().Done():
			}
		}
	}))
	t.Cleanup(func() { once.Do(func() { close(done) }); srv.Close() })
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestTagListBounded (issue 25, item 2): a registry's tag listing is
// bounded in pages, bytes and time; what was read until the cut is kept,
// and a warning says what cut it. Endless pagination ran 19,516 pages in
// 90 s before, and a 1.6 GB page ran out of memory. Here the limits are
// 50 pages, 1 MiB and 1 s (defaults: registry.DefaultTagLimits).
func TestTagListBounded(t *testing.T) {
	tests := []struct {
		kind     string
		wantTags int    // -1: any
		cut      string // in the warning
	}{
		{"endless", 50, "limit=\"50 pages\""},
		{"huge", 0, "limit=\"1048576 bytes\""},
		{"announced", 0, "limit=\"1048576 bytes\""},
		{"slow", -1, "not done within 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			var written atomic.Int64
			host := hostileTags(t, tt.kind, &written)
			var logs bytes.Buffer
			reg, err := registry.New(registry.Options{Registries: []string{host}, Log: slog.New(slog.NewTextHandler(&logs, nil)),
				Tags: registry.TagLimits{Pages: 50, Bytes: 1 << 20, Time: time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			r, _ := ref.New(host + "/team/app")
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			tags, err := reg.TagList(context.Background(), r)
			took := time.Since(start)
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d tags, err %v, %v, %d KiB allocated, %d KiB sent by the server; %s", len(tags), err, took.Round(time.Millisecond), alloc>>10, written.Load()>>10, logs.String())
			if err != nil {
				t.Fatalf("err %v: a cut listing keeps what it read", err)
			}
			if tt.wantTags >= 0 && len(tags) != tt.wantTags {
				t.Errorf("%d tags, want %d", len(tags), tt.wantTags)
			}
			if !strings.Contains(logs.String(), "tag list cut short") || !strings.Contains(logs.String(), tt.cut) {
				t.Errorf("warning %q, want one naming %s", logs.String(), tt.cut)
			}
			if took > 10*time.Second {
				t.Errorf("took %v", took)
			}
			if alloc > 64<<20 {
				t.Errorf("%d MiB allocated for a 1 MiB limit", alloc>>20)
			}
		})
	}
	// the cosign tag lookup of Referrers goes through the same bounds
	t.Run("referrers", func(t *testing.T) {
		var written atomic.Int64
		host := hostileTags(t, "endless", &written)
		var logs bytes.Buffer
		reg, err := registry.New(registry.Options{Registries: []string{host}, Log: slog.New(slog.NewTextHandler(&logs, nil)),
			Tags: registry.TagLimits{Pages: 20}})
		if err != nil {
			t.Fatal(err)
		}
		r, _ := ref.New(host + "/team/app")
		_, _ = reg.Referrers(context.Background(), r, descriptor.Descriptor{Digest: digest.FromString("x"), Size: 1})
		if !strings.Contains(logs.String(), "20 pages") {
			t.Errorf("warning %q, want the page limit", logs.String())
		}
	})
}
