package registry

import (
	"context"
	"errors"
	"strings"

	"github.com/regclient/regclient/types/ref"
)

// httpFallback switches a host set to TLSInsecure (--insecure: "do not
// check its certificate") to plain HTTP when it answered the TLS
// handshake in plain HTTP, and pings it again: --insecure never breaks a
// registry that speaks plain HTTP, loopback or not (Docker's
// insecure-registries and crane --insecure behave so). It reports whether
// the host now works.
func (r *Registry) httpFallback(ctx context.Context, host string, cerr error) bool {
	var e *Error
	if !errors.As(cerr, &e) || !strings.Contains(e.Msg, "speaks plain HTTP") {
		return false
	}
	i := -1
	for j, h := range r.opts.Hosts {
		if h.Registry == host {
			i = j
		}
	}
	if i < 0 || r.opts.Hosts[i].TLS != TLSInsecure {
		return false
	}
	opts := r.opts
	opts.Hosts = append([]Host(nil), opts.Hosts...)
	opts.Hosts[i].TLS = TLSDisabled
	nr, err := New(opts)
	if err != nil {
		return false
	}
	rf, err := ref.NewHost(host)
	if err != nil {
		return false
	}
	if _, err := nr.ping.Ping(ctx, rf); err != nil {
		if _, conn := classify(host, err); conn {
			return false
		}
	}
	r.rc, r.ping, r.hosts, r.creds, r.tr, r.opts = nr.rc, nr.ping, nr.hosts, nr.creds, nr.tr, nr.opts
	r.log.Info("registry speaks plain HTTP: using http:// (--insecure)", "registry", host)
	return true
}
