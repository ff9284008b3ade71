package registry_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/regclient/regclient"
	"github.com/regclient/regclient/config"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
)

// realmRegistry is a registry stub whose Bearer challenge names a token
// realm elsewhere; the realm records the Authorization headers it gets.
type realmRegistry struct {
	reg   *httptest.Server
	realm *regtest.TokenService
}

func newRealmRegistry(t *testing.T, realmHost func(realm *httptest.Server) string) *realmRegistry {
	rr := &realmRegistry{realm: regtest.StartTokenService(t, nil)}
	rr.reg = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t0k3n" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+realmHost(rr.realm.Server)+`/token",service="stub",scope="repository:team/app:pull"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`))
	}))
	t.Cleanup(rr.reg.Close)
	return rr
}

// TestRegclientSendsCredentialsToAnyRealm documents regclient's behaviour
// (and Docker's): the registry's credentials go to whatever token realm its
// challenge names, here another host over plain HTTP. This is why ferry's
// transport checks every challenge (TestEveryChallengeChecked).
func TestRegclientSendsCredentialsToAnyRealm(t *testing.T) {
	rr := newRealmRegistry(t, func(r *httptest.Server) string { return strings.Replace(r.URL, "127.0.0.1", "localhost", 1) })
	host := strings.TrimPrefix(rr.reg.URL, "http://")
	ch := config.HostNewName(host)
	ch.TLS, ch.User, ch.Pass = config.TLSDisabled, "ferry", "realm-Secret-42"
	rc := regclient.New(regclient.WithConfigHost(*ch))
	r, _ := ref.New(host + "/team/app:1")
	_, _ = rc.ManifestGet(context.Background(), r)
	if sent := rr.realm.Sent(); len(sent) == 0 || !strings.HasPrefix(sent[0], "Basic ") {
		t.Fatalf("realm got %q: regclient no longer sends credentials to a foreign realm; ferry's checks may be relaxed", sent)
	}
}

// TestCheckRealms: a realm on another host, or over plain HTTP for an HTTPS
// registry, is refused before any credential is sent, unless cfg.yaml
// trusts it; the registry's own host (another port) is trusted.
func TestCheckRealms(t *testing.T) {
	tests := []struct {
		name    string
		tls     bool
		realm   func(r *httptest.Server) string
		trusted func(r *httptest.Server) []string
		creds   bool
		want    string // "" : accepted
	}{
		{"another host", false, func(r *httptest.Server) string { return strings.Replace(r.URL, "127.0.0.1", "localhost", 1) }, nil, true, "another host"},
		{"another host, trusted", false, func(r *httptest.Server) string { return strings.Replace(r.URL, "127.0.0.1", "localhost", 1) },
			func(r *httptest.Server) []string {
				return []string{strings.Replace(strings.TrimPrefix(r.URL, "http://"), "127.0.0.1", "localhost", 1)}
			}, true, ""},
		{"same host, another port", false, func(r *httptest.Server) string { return r.URL }, nil, true, ""},
		{"plain http realm for https registry", true, func(r *httptest.Server) string { return r.URL }, nil, true, "plain HTTP"},
		{"no credentials", false, func(r *httptest.Server) string { return strings.Replace(r.URL, "127.0.0.1", "localhost", 1) }, nil, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rr := newRealmRegistry(t, tt.realm)
			if tt.tls {
				rr.reg.Close()
				h := rr.reg.Config.Handler
				rr.reg = httptest.NewTLSServer(h)
				t.Cleanup(rr.reg.Close)
			}
			host := strings.TrimPrefix(strings.TrimPrefix(rr.reg.URL, "http://"), "https://")
			h := registry.Host{Registry: host}
			if tt.creds {
				h.User, h.Pass = "ferry", "realm-Secret-42"
			}
			if tt.tls {
				h.TLS = registry.TLSInsecure
			}
			if tt.trusted != nil {
				h.TrustedRealms = tt.trusted(rr.realm.Server)
			}
			reg, err := registry.New(registry.Options{Hosts: []registry.Host{h}})
			if err != nil {
				t.Fatal(err)
			}
			err = reg.CheckRealms(context.Background(), []string{host})
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
			} else if !errors.Is(err, registry.ErrUntrustedRealm) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "trustedRealms") {
				t.Fatalf("err %v, want ErrUntrustedRealm mentioning %q and the fix", err, tt.want)
			}
			if sent := rr.realm.Sent(); len(sent) != 0 {
				t.Errorf("CheckRealms sent Authorization %q to the realm", sent)
			}
		})
	}
}
