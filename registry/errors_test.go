package registry_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/regclient/regclient/types/errs"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
)

// TestErrorsFailFast: against real servers, errors that cannot heal fail
// at once (no retries, even with Retries: 3), as one *registry.Error line
// naming the registry, the cause and the fix; they wrap
// errs.ErrNotRetryable.
func TestErrorsFailFast(t *testing.T) {
	plain, stop := regtest.Olareg()
	defer stop()
	tlsSrv := httptest.NewUnstartedServer(http.NotFoundHandler())
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake errors are the point
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	tlsHost := strings.TrimPrefix(tlsSrv.URL, "https://")
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	down := l.Addr().String()
	l.Close()
	tests := []struct {
		name string
		host registry.Host
		want []string
	}{
		{"connection refused", registry.Host{Registry: down}, []string{"registry " + down + ": connection refused", "is the registry running"}},
		{"tls on plain http", registry.Host{Registry: plain, TLS: registry.TLSEnabled}, []string{"registry " + plain + ": TLS handshake failed: it speaks plain HTTP", `set "tls: disabled"`}},
		{"plain http on tls", registry.Host{Registry: tlsHost, TLS: registry.TLSDisabled}, []string{"speaks HTTPS", `set "tls: enabled"`}},
		{"untrusted certificate", registry.Host{Registry: tlsHost, TLS: registry.TLSEnabled}, []string{"certificate not trusted", "caFile"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg, err := registry.New(registry.Options{Hosts: []registry.Host{tt.host}, Retries: 3})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			checkErr := reg.Check(context.Background(), tt.host.Registry)
			r, _ := ref.New(tt.host.Registry + "/team/app:1")
			_, getErr := reg.ManifestGet(context.Background(), r)
			if el := time.Since(start); el > 3*time.Second {
				t.Errorf("took %s", el)
			}
			for _, err := range []error{checkErr, getErr} {
				var re *registry.Error
				if !errors.As(err, &re) || !errors.Is(err, errs.ErrNotRetryable) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("error %v (%T), want a one-line *registry.Error", err, err)
				}
				for _, w := range tt.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%q lacks %q", err, w)
					}
				}
			}
		})
	}
}

// TestNotFound tells a missing tag (with the tags there are) from a
// missing repository.
func TestNotFound(t *testing.T) {
	host, stop := regtest.Olareg()
	defer stop()
	reg, _ := registry.New(registry.Options{Registries: []string{host}})
	imgs := regtest.Fixtures()
	for _, n := range []string{"team/app:1", "team/app:2"} {
		r, _ := ref.New(host + "/" + n)
		img := imgs["team/app:1"]
		if err := regtest.Push(context.Background(), reg, r, img); err != nil {
			t.Fatal(err)
		}
	}
	for in, want := range map[string]string{
		"team/app:9": "team/app:9: tag not found in " + host + "/team/app (tags: 1, 2)",
		"team/ap:1":  "team/ap:1: repository not found: " + host + "/team/ap",
	} {
		r, _ := ref.New(host + "/" + in)
		_, err := reg.ManifestGet(context.Background(), r)
		if err == nil || err.Error() != want || !errors.Is(err, errs.ErrNotFound) {
			t.Errorf("%s: %v, want %q wrapping ErrNotFound", in, err, want)
		}
	}
}

// TestRegclientLogsLowered: regclient's warnings go to debug; errors stay.
func TestRegclientLogsLowered(t *testing.T) {
	var buf strings.Builder
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	l := registry.QuietForTest(log)
	l.Warn("Failed to handle auth request")
	l.Error("broken")
	if got := buf.String(); strings.Contains(got, "auth request") || !strings.Contains(got, "broken") || !strings.Contains(got, "component=regclient") {
		t.Fatalf("logged:\n%s", got)
	}
}

// TestClassifyStatus: 4xx answers but 408 and 429 do not heal; 5xx,
// 408, 429 and plain network hiccups are left to retry.
func TestClassifyStatus(t *testing.T) {
	body := `{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid","detail":{}}]}`
	tests := []struct {
		err  error
		want string // "" = left alone
	}{
		{fmt.Errorf("request failed: %w: %s", fmt.Errorf("%w: Bad Request [http 400]", errs.ErrHTTPStatus), body), "registry r:1: request refused (HTTP 400 MANIFEST_INVALID: manifest invalid)"},
		{fmt.Errorf("%w: Method Not Allowed [http 405]", errs.ErrHTTPStatus), "registry r:1: request refused (HTTP 405)"},
		{fmt.Errorf("%w: Too Many Requests [http 429]", errs.ErrHTTPStatus), ""},
		{fmt.Errorf("%w: Request Timeout [http 408]", errs.ErrHTTPStatus), ""},
		{fmt.Errorf("%w: Service Unavailable [http 503]", errs.ErrHTTPStatus), ""},
		{fmt.Errorf("%w [http 401]", errs.ErrHTTPUnauthorized), "registry r:1: authentication failed (HTTP 401); set user and pass for it in cfg.yaml registries, or docker login"},
		{fmt.Errorf("%w [http 403]", errs.ErrHTTPUnauthorized), "registry r:1: access denied (HTTP 403); the user may not read or write this repository"},
		{io.ErrUnexpectedEOF, ""},
	}
	for _, tt := range tests {
		got := registry.Classify("r:1", tt.err)
		var re *registry.Error
		isRE := errors.As(got, &re)
		if tt.want == "" && (isRE || got != tt.err) {
			t.Errorf("%v: classified as %v", tt.err, got)
		}
		if tt.want != "" && (!isRE || got.Error() != tt.want || !errors.Is(got, errs.ErrNotRetryable) || !errors.Is(got, tt.err)) {
			t.Errorf("%v: %v, want %q", tt.err, got, tt.want)
		}
	}
}

// TestCheckSendsNoCredentials: the ping before work never carries the
// configured credentials (CheckRealms decides where they may go).
func TestCheckSendsNoCredentials(t *testing.T) {
	var auth []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = append(auth, r.Header.Get("Authorization"))
		w.Header().Set("WWW-Authenticate", `Basic realm="r"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	reg, err := registry.New(registry.Options{Hosts: []registry.Host{{Registry: host, User: "u", Pass: "secret"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Check(context.Background(), host); err != nil {
		t.Fatalf("a 401 to the ping is left to the real requests: %v", err)
	}
	if len(auth) == 0 {
		t.Fatal("no ping reached the registry")
	}
	for _, a := range auth {
		if a != "" {
			t.Fatalf("the ping sent Authorization: %q", a)
		}
	}
}
