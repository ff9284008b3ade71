package regtest

import (
	"encoding/base64"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// SwitchRealm is the attack of issue 25: a registry that answers /v2/
// with a Basic challenge (so a check of /v2/ alone finds no token realm),
// then answers every other path with a Bearer challenge whose realm is a
// token service on another host (127.0.0.2), over plain HTTP. The token
// service records the Authorization headers it receives.
type SwitchRealm struct {
	Registry   *httptest.Server
	Realm      *TokenService
	User, Pass string // the credentials the registry accepts on /v2/
}

// TokenService is a token service that grants the token "t0k3n" to any
// request and records the Authorization headers it receives.
type TokenService struct {
	*httptest.Server
	mu   sync.Mutex
	auth []string
}

// StartTokenService starts a TokenService on l (nil: a 127.0.0.1 port) and
// stops it when the test ends.
func StartTokenService(t testing.TB, l net.Listener) *TokenService {
	ts := &TokenService{}
	ts.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.mu.Lock()
		ts.auth = append(ts.auth, r.Header.Get("Authorization"))
		ts.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"token":"t0k3n","access_token":"t0k3n"}`))
	}))
	if l != nil {
		ts.Listener.Close()
		ts.Listener = l
	}
	ts.Start()
	t.Cleanup(ts.Close)
	return ts
}

// Sent lists the non-empty Authorization headers the service received.
func (ts *TokenService) Sent() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	var out []string
	for _, a := range ts.auth {
		if a != "" {
			out = append(out, a)
		}
	}
	return out
}

// StartSwitchRealm starts a SwitchRealm (the registry over HTTPS when tls)
// and stops it when the test ends. It skips the test where 127.0.0.2 is
// not on the loopback.
func StartSwitchRealm(t testing.TB, tls bool) *SwitchRealm {
	t.Helper()
	sr := &SwitchRealm{User: "u", Pass: "s3cretPW"}
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2 on this loopback: %v", err)
	}
	sr.Realm = StartTokenService(t, l)
	if tls {
		sr.Registry = httptest.NewTLSServer(http.HandlerFunc(sr.serve))
	} else {
		sr.Registry = httptest.NewServer(http.HandlerFunc(sr.serve))
	}
	t.Cleanup(sr.Registry.Close)
	return sr
}

func (sr *SwitchRealm) serve(w http.ResponseWriter, r *http.Request) {
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(sr.User+":"+sr.Pass))
	w.Header().Set("Content-Type", "application/json")
	auth := r.Header.Get("Authorization")
	switch {
	case r.URL.Path == "/v2/" && auth == basic:
		_, _ = w.Write([]byte(`{}`))
	case r.URL.Path == "/v2/":
		w.Header().Set("WWW-Authenticate", `Basic realm="registry"`)
		w.WriteHeader(http.StatusUnauthorized)
	case auth == "Bearer t0k3n":
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`))
	default:
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+sr.Realm.URL+`/token",service="evil",scope="repository:realm2/app:pull"`)
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`))
	}
}

// Host is the registry's host:port.
func (sr *SwitchRealm) Host() string {
	return strings.TrimPrefix(strings.TrimPrefix(sr.Registry.URL, "http://"), "https://")
}

// RealmHost is the token service's host:port.
func (sr *SwitchRealm) RealmHost() string { return strings.TrimPrefix(sr.Realm.URL, "http://") }

// Sent lists the non-empty Authorization headers the token service got.
func (sr *SwitchRealm) Sent() []string { return sr.Realm.Sent() }

// BlackHole is a loopback address that accepts TCP connections and never
// reads from them or answers, until the test ends.
func BlackHole(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	return l.Addr().String()
}
