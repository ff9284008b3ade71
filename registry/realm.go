package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/regclient/regclient/config"
	"golang.org/x/net/publicsuffix"
)

// ErrUntrustedRealm marks a registry whose token service (the realm of its
// Bearer challenge) is on a host that is not trusted with its credentials.
var ErrUntrustedRealm = errors.New("untrusted token realm")

// credSet knows which registries (by API host) have credentials: from
// cfg.yaml, or from the Docker config (read once, when first asked: it
// may run credential helpers).
type credSet struct {
	cfg    map[string]bool
	docker bool
	once   sync.Once
	hosts  map[string]bool
}

func newCredSet(hosts []Host, docker bool) *credSet {
	c := &credSet{cfg: map[string]bool{}, docker: docker}
	for _, h := range hosts {
		if h.User != "" || h.Pass != "" {
			c.cfg[dockerHubHost(h.Registry)] = true
		}
	}
	return c
}

func (c *credSet) has(apiHost string) bool {
	if c.cfg[apiHost] || !c.docker {
		return c.cfg[apiHost]
	}
	c.once.Do(func() {
		c.hosts = map[string]bool{}
		hs, _ := config.DockerLoad()
		for _, h := range hs {
			if h.User != "" || h.Pass != "" || h.Token != "" || h.CredHelper != "" {
				c.hosts[dockerHubHost(h.Name)] = true
				c.hosts[h.Hostname] = true
			}
		}
	})
	return c.hosts[apiHost]
}

// CheckRealms makes sure, before a transfer, that no credentials leave
// for a foreign token service. regclient, like Docker, sends a registry's
// credentials to whatever token realm the registry's Bearer challenge
// names; ferry's transport checks the challenge of every 401, on every
// request, before regclient can follow it (checkChallenge), and
// CheckRealms runs that check on each registry's /v2/ at once, so that a
// refusal comes before any work. The rules (trustRealm):
//
//   - trusted: the registry's own host name (any port), a host of the same
//     registrable domain (registry.gitlab.com -> gitlab.com,
//     registry-1.docker.io -> auth.docker.io; docker.io is
//     registry-1.docker.io), and the hosts in Host.TrustedRealms;
//   - never trusted: a plain-HTTP realm for an HTTPS registry, whatever
//     TrustedRealms says.
//
// Only registries with credentials (from cfg.yaml, or the Docker config
// when that is used) are checked: an anonymous token request leaks
// nothing. A registry that does not answer is not refused here (the
// transfer then reports it). It costs one request per registry with
// credentials.
func (r *Registry) CheckRealms(ctx context.Context, registries []string) error {
	var errs []error
	seen := map[string]bool{}
	client := &http.Client{
		Transport:     r.tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	for _, name := range registries {
		if seen[name] {
			continue
		}
		seen[name] = true
		if !r.creds.has(dockerHubHost(name)) {
			continue // no credentials to leak
		}
		err := r.askChallenge(ctx, client, name)
		if errors.Is(err, ErrUntrustedRealm) {
			errs = append(errs, err)
		} else if err != nil {
			r.log.Debug("no token realm to check", "registry", name, "err", err)
		}
	}
	return errors.Join(errs...)
}

// askChallenge GETs name's /v2/ without credentials through the
// transport, which checks the challenge.
func (r *Registry) askChallenge(ctx context.Context, client *http.Client, name string) error {
	h := Host{Registry: name}
	if i := slices.IndexFunc(r.hosts, func(h Host) bool { return h.Registry == name }); i >= 0 {
		h = r.hosts[i]
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.scheme()+"://"+dockerHubHost(name)+"/v2/", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return e
		}
		return err
	}
	return resp.Body.Close()
}

// scheme is how h is reached: http or https.
func (h Host) scheme() string {
	if h.TLS == TLSDisabled || (h.TLS == TLSAuto && IsLoopback(h.Registry)) {
		return "http"
	}
	return "https"
}

// trustRealm applies CheckRealms' rules to one realm URL of registry h,
// reached over HTTPS when secure.
func trustRealm(h Host, secure bool, u *url.URL) error {
	if u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("%w: %s names token realm %q, which is not an HTTP URL", ErrUntrustedRealm, h.Registry, u.String())
	}
	fix := fmt.Sprintf("if that service is the registry's own, add it to this registry's trustedRealms in cfg.yaml (registries: [{registry: %s, trustedRealms: [%s]}])", h.Registry, u.Host)
	if secure && u.Scheme != "https" {
		return fmt.Errorf("%w: %s (HTTPS) sends its credentials' token requests to %s over plain HTTP; not sending the password there (never over plain HTTP, whatever trustedRealms says)", ErrUntrustedRealm, h.Registry, u.String())
	}
	if slices.Contains(h.TrustedRealms, u.Host) || slices.Contains(h.TrustedRealms, u.Hostname()) {
		return nil
	}
	if !relatedHost(hostname(dockerHubHost(h.Registry)), u.Hostname()) {
		return fmt.Errorf("%w: %s sends its credentials to the token service %s on another host; not sending the password there: %s", ErrUntrustedRealm, h.Registry, u.String(), fix)
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
