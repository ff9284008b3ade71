package registry_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
)

// testNet are short bounds, so that the tests of hostile servers stay
// fast: a server that never answers costs 300 ms a try, not minutes.
var testNet = registry.Net{Dial: 300 * time.Millisecond, Header: 300 * time.Millisecond, Idle: 300 * time.Millisecond, MinRate: 1024, Request: 2 * time.Second}

// fullBacklog is a listener whose accept queue is full and never drained:
// the kernel drops new SYNs, so connecting hangs (Linux).
func fullBacklog(t testing.TB) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("needs Linux's listen backlog")
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	// fill the queue: these connections complete, the next SYNs are dropped
	for range 4 {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return addr
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Skip("the accept queue did not fill")
	return ""
}

// stuck is a registry whose handler, for the paths match selects, does
// what act says: "headers" sends headers (and a length) and no body,
// "drip" sends a byte every 50 ms; other paths get a plain 200 to /v2/.
func stuck(t testing.TB, match, act string) string {
	t.Helper()
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		if !strings.Contains(r.URL.Path, match) {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Header().Set("Content-Length", "100000")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for act == "drip" {
			select {
			case <-done:
				return
			case <-r.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := w.Write([]byte("{")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
		select {
		case <-done:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(done); srv.Close() })
	return strings.TrimPrefix(srv.URL, "http://")
}

// hangingRealm is a registry whose Bearer realm (on its own host, so
// trusted) never answers the token request.
func hangingRealm(t testing.TB) string {
	t.Helper()
	done := make(chan struct{})
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			select {
			case <-done:
			case <-r.Context().Done():
			}
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+srv.URL+`/token",service="x"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(func() { close(done); srv.Close() })
	return strings.TrimPrefix(srv.URL, "http://")
}

var blob = descriptor.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromString("x"), Size: 100000}

func getManifest(ctx context.Context, reg *registry.Registry, host string) error {
	r, _ := ref.New(host + "/team/app:1")
	_, err := reg.ManifestGet(ctx, r)
	return err
}

func listTags(ctx context.Context, reg *registry.Registry, host string) error {
	r, _ := ref.New(host + "/team/app")
	_, err := reg.TagList(ctx, r)
	return err
}

func referrers(ctx context.Context, reg *registry.Registry, host string) error {
	r, _ := ref.New(host + "/team/app")
	_, err := reg.Referrers(ctx, r, blob)
	return err
}

func readBlob(ctx context.Context, reg *registry.Registry, host string) error {
	r, _ := ref.New(host + "/team/app")
	rc, err := reg.BlobGet(ctx, r, blob)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}

func ping(ctx context.Context, reg *registry.Registry, host string) error {
	return reg.Check(ctx, host)
}

// TestHostileServersTimeOut (issue 23, item 5): a registry that accepts
// TCP and never answers, one that cannot be connected to, one that sends
// headers and no body, one that drips a byte every 50 ms, and a token
// service that never answers: every request (ping, manifest, tags,
// referrers, token, blob) ends with ErrTimeout within its bounds, never
// hangs. Net's bounds are short here (300 ms); the defaults are in
// registry.DefaultNet.
func TestHostileServersTimeOut(t *testing.T) {
	tests := []struct {
		name   string
		server func(t testing.TB) string
		op     func(context.Context, *registry.Registry, string) error
		want   string
	}{
		{"no answer: ping", regtest.BlackHole, ping, ""}, // Check leaves timeouts to the transfer's requests
		{"no answer: manifest", regtest.BlackHole, getManifest, "no response headers"},
		{"no answer: tags", regtest.BlackHole, listTags, "no response headers"},
		{"no answer: referrers", regtest.BlackHole, referrers, "no response headers"},
		{"no answer: blob", regtest.BlackHole, readBlob, "no response headers"},
		{"cannot connect: manifest", fullBacklog, getManifest, "could not connect"},
		{"headers, no body: manifest", func(t testing.TB) string { return stuck(t, "/manifests/", "headers") }, getManifest, "nothing received"},
		{"headers, no body: tags", func(t testing.TB) string { return stuck(t, "/tags/list", "headers") }, listTags, "nothing received"},
		{"headers, no body: blob", func(t testing.TB) string { return stuck(t, "/blobs/", "headers") }, readBlob, "nothing received"},
		{"drip: blob", func(t testing.TB) string { return stuck(t, "/blobs/", "drip") }, readBlob, "minimum rate"},
		{"drip: manifest", func(t testing.TB) string { return stuck(t, "/manifests/", "drip") }, getManifest, "minimum rate"},
		{"token service never answers", hangingRealm, getManifest, "no response headers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host := tt.server(t)
			reg, err := registry.New(registry.Options{Registries: []string{host}, Net: testNet, Retries: 0, RetryDelay: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			done := make(chan error, 1)
			go func() { done <- tt.op(context.Background(), reg, host) }()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("still waiting after 30 s")
			}
			took := time.Since(start)
			t.Logf("%v after %v", err, took.Round(time.Millisecond))
			if tt.want == "" {
				if err != nil {
					t.Errorf("err %v", err)
				}
				return
			}
			if !errors.Is(err, registry.ErrTimeout) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v, want ErrTimeout saying %q", err, tt.want)
			}
		})
	}
}

// TestDripUnderRequestDeadline: with no minimum rate, a manifest that
// drips forever is still ended by Net.Request (the deadline of every
// request but a blob transfer).
func TestDripUnderRequestDeadline(t *testing.T) {
	host := stuck(t, "/manifests/", "drip")
	n := testNet
	n.MinRate = -1
	n.Request = time.Second
	reg, err := registry.New(registry.Options{Registries: []string{host}, Net: n})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = getManifest(context.Background(), reg, host)
	if !errors.Is(err, registry.ErrTimeout) || !strings.Contains(err.Error(), "not done within 1s") {
		t.Errorf("err %v, want the request deadline", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %v", took)
	}
}

// stalledTarget is a registry that starts blob uploads, then takes the
// body of the upload's PUT or PATCH per act: "stall" reads nothing,
// "drip" 64 KiB every 50 ms (1.3 MB/s).
func stalledTarget(t *testing.T, act string) string {
	t.Helper()
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/":
		case r.Method == http.MethodHead:
			w.WriteHeader(http.StatusNotFound)
		case r.Method == http.MethodPost:
			w.Header().Set("Location", "/v2/team/app/blobs/uploads/u1")
			w.WriteHeader(http.StatusAccepted)
		default:
			b := make([]byte, 64<<10)
			for act == "drip" {
				select {
				case <-done:
					return
				case <-time.After(50 * time.Millisecond):
				}
				if _, err := io.ReadFull(r.Body, b); err != nil {
					return
				}
			}
			<-done
		}
	}))
	t.Cleanup(func() { close(done); srv.Close() })
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestStalledTargetTimesOut (issue 23, item 5): an upload to a registry
// that stops taking the blob, or takes it slower than the minimum rate
// (16 MiB/s here), ends with ErrTimeout (idle, or the minimum rate)
// instead of hanging.
func TestStalledTargetTimesOut(t *testing.T) {
	const size = 64 << 20 // more than the socket buffers hold
	h := sha256.New()
	_, _ = io.CopyN(h, zeros{}, size)
	d := descriptor.Descriptor{MediaType: "application/octet-stream", Digest: digest.NewDigest(digest.SHA256, h), Size: size}
	for _, tt := range []struct{ act, want string }{{"stall", "nothing taken by the registry"}, {"drip", "minimum rate"}} {
		t.Run(tt.act, func(t *testing.T) {
			host := stalledTarget(t, tt.act)
			n := testNet
			if tt.act == "drip" {
				// the kernel wakes a blocked writer only once half of
				// what it queued is sent: whole seconds at this rate
				n.Idle, n.MinRate = 3*time.Second, 16<<20
			}
			reg, err := registry.New(registry.Options{Registries: []string{host}, Net: n})
			if err != nil {
				t.Fatal(err)
			}
			r, _ := ref.New(host + "/team/app")
			done := make(chan error, 1)
			go func() { done <- reg.BlobPut(context.Background(), r, d, io.LimitReader(zeros{}, size)) }()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("still uploading after 30 s")
			}
			t.Log(err)
			if !errors.Is(err, registry.ErrTimeout) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v, want ErrTimeout saying %q", err, tt.want)
			}
		})
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
