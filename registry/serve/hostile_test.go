package serve_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/registry/regtest"
	"github.com/ferry-oss/ferry/registry/serve"
)

// startWith serves the bundles with opts on a free loopback port until
// the test ends and returns host:port.
func startWith(t testing.TB, opts serve.Options, metas ...string) string {
	t.Helper()
	set, err := bundle.OpenSet(metas...)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := serve.New(set, opts)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve.Serve(ctx, l, reg, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return l.Addr().String()
}

// stalled sends a GET for path, reads the status line (the stream has
// begun) and then stops reading.
func stalled(t *testing.T, host, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.Contains(line, " 200 ") {
		t.Fatalf("stalled client: %q %v", line, err)
	}
	return c
}

// eventually polls f until it is true (up to a minute: a loaded machine).
func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readChars is this process's bytes read by read and pread calls
// (/proc/self/io rchar).
func readChars(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Skip("no /proc/self/io")
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Skip("no rchar")
	return 0
}

// TestHostileClients: clients that ask for a 32 MiB blob and never read
// hold at most Options.StreamMemory of streams (more get 503 with
// Retry-After) and are cut after Options.WriteTimeout; a Range request
// of a blob that passed its check reads only what it sends (40 one-byte
// ranges of the 32 MiB blob read well under one blob, not 40).
func TestHostileClients(t *testing.T) {
	src := regtest.NewSource(t)
	huge := regtest.NewBigImage(9, 1, 32<<20)
	r, _ := ref.New(src.Host + "/big/huge:1")
	if err := regtest.Push(context.Background(), src.Reg, r, huge); err != nil {
		t.Fatal(err)
	}
	src.Images["big/huge:1"] = huge
	dir := t.TempDir()
	none := src.Save(t, dir, bundle.CodecNone, nil, "big/huge:1")
	blob := huge.Big[0].Desc.Digest.String()
	path := "/v2/big/huge/blobs/" + blob
	get := func(host string, hdr ...string) *http.Response {
		req, _ := http.NewRequest("GET", "http://"+host+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}

	t.Run("stream cap", func(t *testing.T) {
		host := startWith(t, serve.Options{StreamMemory: 2 * serve.StreamCost(bundle.CodecNone), WriteTimeout: time.Hour}, none)
		a, b := stalled(t, host, path), stalled(t, host, path)
		resp := get(host)
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("a third GET while two clients hold the streams: %d, want 503", resp.StatusCode)
		}
		if resp.Header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
		a.Close()
		b.Close()
		eventually(t, "the streams are released when the clients go", func() bool { return get(host).StatusCode == http.StatusOK })
	})

	t.Run("write deadline", func(t *testing.T) {
		host := startWith(t, serve.Options{StreamMemory: serve.StreamCost(bundle.CodecNone), WriteTimeout: 300 * time.Millisecond}, none)
		c := stalled(t, host, path)
		eventually(t, "the client that stopped reading is cut and its stream released", func() bool { return get(host).StatusCode == http.StatusOK })
		c.SetReadDeadline(time.Now().Add(time.Minute))
		n, err := io.Copy(io.Discard, c)
		if err != nil || n >= 32<<20 {
			t.Errorf("the stalled client read %d bytes (%v): it was not cut", n, err)
		}
	})

	t.Run("ranges of a checked blob", func(t *testing.T) {
		host := startWith(t, serve.Options{}, none)
		if resp := get(host); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET: %d", resp.StatusCode)
		}
		before := readChars(t)
		for range 40 {
			if resp := get(host, "Range", "bytes=0-0"); resp.StatusCode != http.StatusPartialContent {
				t.Fatalf("range: %d", resp.StatusCode)
			}
		}
		if n := readChars(t) - before; n > 8<<20 {
			t.Errorf("40 one-byte ranges of a checked 32 MiB blob read %d MB", n>>20)
		}
	})
}

// TestRangesAfterCheck: once a blob passed, its ranges come from the
// part directly, byte for byte the blob's, for every codec; a part
// changed after the check is not trusted (the range is checked again and
// fails).
func TestRangesAfterCheck(t *testing.T) {
	src := regtest.NewSource(t)
	data, _ := io.ReadAll(src.Images["big/one:1"].Big[0].Reader())
	blob := src.Images["big/one:1"].Big[0].Desc.Digest.String()
	for _, c := range []bundle.Codec{bundle.CodecNone, bundle.CodecZstd, bundle.CodecGzip} {
		t.Run(string(c), func(t *testing.T) {
			dir := t.TempDir()
			mp := src.Save(t, dir, c, nil, "big/one:1")
			host := start(t, "", mp)
			url := "http://" + host + "/v2/big/one/blobs/" + blob
			if r := do(t, "GET", url); r.status != 200 || !bytes.Equal(r.body, data) {
				t.Fatalf("GET: %d", r.status)
			}
			for _, rg := range [][2]int{{0, 0}, {1000, 1999}, {len(data) - 10, len(data) - 1}} {
				r := do(t, "GET", url, "Range", fmt.Sprintf("bytes=%d-%d", rg[0], rg[1]))
				if r.status != 206 || !bytes.Equal(r.body, data[rg[0]:rg[1]+1]) {
					t.Errorf("range %v: %d, %d bytes", rg, r.status, len(r.body))
				}
			}
			if c != bundle.CodecNone {
				return
			}
			// a byte of the blob flipped in the part after the check
			m, _ := meta.Load(mp)
			for _, p := range m.Parts {
				file := filepath.Join(dir, p.Name)
				b, _ := os.ReadFile(file)
				if i := bytes.Index(b, data); i >= 0 {
					b[i+5] ^= 0x55
					if err := os.WriteFile(file, b, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			if r := do(t, "GET", url, "Range", "bytes=0-9"); r.err == nil && r.status < 300 {
				t.Errorf("a range of a blob whose part changed after its check: %d, %q", r.status, r.body)
			}
		})
	}
}
