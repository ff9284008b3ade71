package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/regclient/regclient/config"
	"golang.org/x/net/publicsuffix"
)

// ErrUntrustedRealm marks a registry whose token service (the realm of its
// Bearer challenge) is on a host that is not trusted with its credentials.
var ErrUntrustedRealm = errors.New("untrusted token realm")

// realmRe finds the realm of a Bearer challenge.
var realmRe = regexp.MustCompile(`(?i)bearer\s+(?:[^,]*,\s*)*?realm="([^"]*)"`)

// CheckRealms makes sure that no credentials leave for a foreign token
// service. regclient, like Docker, sends a registry's credentials to
// whatever token realm the registry's Bearer challenge names; CheckRealms
// asks each of the given registries that has credentials (from cfg.yaml,
// or the Docker config when that is used) for its challenge, without
// credentials, and refuses a realm that is not trusted for it:
//
//   - trusted: the registry's own host name (any port), a host of the same
//     registrable domain (registry.gitlab.com -> gitlab.com,
//     registry-1.docker.io -> auth.docker.io; docker.io is
//     registry-1.docker.io), and the hosts in Host.TrustedRealms;
//   - never trusted unless listed: a plain-HTTP realm for an HTTPS
//     registry.
//
// A registry that does not answer is not refused here (the transfer then
// reports it). Call it once before a transfer; it costs one request per
// registry with credentials.
func (r *Registry) CheckRealms(ctx context.Context, registries []string) error {
	var dockerHosts map[string]bool
	if r.docker {
		dockerHosts = map[string]bool{}
		if hs, err := config.DockerLoad(); err == nil {
			for _, h := range hs {
				if h.User != "" || h.Pass != "" || h.Token != "" || h.CredHelper != "" {
					dockerHosts[h.Name] = true
					dockerHosts[h.Hostname] = true
				}
			}
		}
	}
	var errs []error
	seen := map[string]bool{}
	for _, name := range registries {
		if seen[name] {
			continue
		}
		seen[name] = true
		h := Host{Registry: name}
		if i := slices.IndexFunc(r.hosts, func(h Host) bool { return h.Registry == name }); i >= 0 {
			h = r.hosts[i]
		}
		if h.User == "" && h.Pass == "" && !dockerHosts[name] && !dockerHosts[dockerHubHost(name)] {
			continue // no credentials to leak
		}
		realm, secure, err := challengeRealm(ctx, h)
		if err != nil || realm == "" {
			r.log.Debug("no token realm to check", "registry", name, "err", err)
			continue
		}
		if err := trustRealm(h, secure, realm); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// challengeRealm GETs /v2/ without credentials and returns the realm of a
// Bearer challenge, and whether the registry was reached over HTTPS.
func challengeRealm(ctx context.Context, h Host) (string, bool, error) {
	secure := true
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	switch h.TLS {
	case TLSDisabled:
		secure = false
	case TLSInsecure:
		tc.InsecureSkipVerify = true //#nosec G402 -- the user chose tls: insecure for this host
	case TLSAuto:
		secure = !IsLoopback(h.Registry)
	}
	if h.CAFile != "" {
		pem, err := os.ReadFile(h.CAFile)
		if err != nil {
			return "", secure, err
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pool.AppendCertsFromPEM(pem)
		tc.RootCAs = pool
	}
	scheme := "https"
	if !secure {
		scheme = "http"
	}
	host := dockerHubHost(h.Registry)
	client := &http.Client{
		Timeout:       15 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+host+"/v2/", nil)
	if err != nil {
		return "", secure, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", secure, err
	}
	resp.Body.Close()
	for _, c := range resp.Header.Values("Www-Authenticate") {
		if m := realmRe.FindStringSubmatch(c); m != nil {
			return m[1], secure, nil
		}
	}
	return "", secure, nil
}

// trustRealm applies CheckRealms' rules to one realm URL.
func trustRealm(h Host, secure bool, realm string) error {
	u, err := url.Parse(realm)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%w: %s names token realm %q, which is not a URL", ErrUntrustedRealm, h.Registry, realm)
	}
	if slices.Contains(h.TrustedRealms, u.Host) || slices.Contains(h.TrustedRealms, u.Hostname()) {
		return nil
	}
	fix := fmt.Sprintf("if that service is the registry's own, add it to this registry's trustedRealms in cfg.yaml (registries: [{registry: %s, trustedRealms: [%s]}])", h.Registry, u.Host)
	if secure && u.Scheme != "https" {
		return fmt.Errorf("%w: %s (HTTPS) sends its credentials' token requests to %s over plain HTTP; not sending the password there: %s", ErrUntrustedRealm, h.Registry, realm, fix)
	}
	if !relatedHost(hostname(dockerHubHost(h.Registry)), u.Hostname()) {
		return fmt.Errorf("%w: %s sends its credentials to the token service %s on another host; not sending the password there: %s", ErrUntrustedRealm, h.Registry, realm, fix)
	}
	return nil
}

// relatedHost reports whether realm is the registry host itself or a host
// of the same registrable domain (public suffix list: registry-1.docker.io
// and auth.docker.io share docker.io; a.co.uk and b.co.uk share nothing).
// IP addresses and single labels must match exactly.
func relatedHost(reg, realm string) bool {
	reg, realm = strings.ToLower(reg), strings.ToLower(realm)
	if reg == realm {
		return true
	}
	if net.ParseIP(reg) != nil || net.ParseIP(realm) != nil {
		return false
	}
	a, err1 := publicsuffix.EffectiveTLDPlusOne(reg)
	b, err2 := publicsuffix.EffectiveTLDPlusOne(realm)
	return err1 == nil && err2 == nil && a == b
}

func hostname(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// dockerHubHost is the API host of a registry name: docker.io is served
// by registry-1.docker.io.
func dockerHubHost(name string) string {
	if name == "docker.io" || name == "index.docker.io" {
		return "registry-1.docker.io"
	}
	return name
}
