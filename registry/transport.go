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
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/regclient/regclient"
)

// ErrTimeout marks a request that a registry or token service did not
// answer in time (see Net). It is transient: callers retry it.
var ErrTimeout = errors.New("registry too slow")

// Net bounds the time of every request to a registry or a token service:
// pings, manifests, tags, referrers, tokens and blobs. A zero field takes
// DefaultNet's value; a negative one turns that bound off.
type Net struct {
	// Dial bounds connecting, and the TLS handshake.
	Dial time.Duration
	// Header bounds the wait for a response's headers once the request
	// is sent. The request that ends a blob upload gets UploadHeader
	// instead (default: 10 times Header): a registry may check the whole
	// blob before it answers.
	Header       time.Duration
	UploadHeader time.Duration
	// Idle ends a response body that sends nothing for this long.
	Idle time.Duration
	// MinRate (bytes a second) ends a response body that delivers less
	// than this while ferry waits for it, measured over each Idle of
	// waiting (a source that drips a byte every 2 s). Needs Idle.
	MinRate int64
	// Request bounds every request but a blob transfer (manifests, tags,
	// referrers, tokens, pings) from its start to its last byte.
	Request time.Duration
}

// DefaultNet are the bounds a Registry uses by default.
var DefaultNet = Net{
	Dial:         30 * time.Second,
	Header:       60 * time.Second,
	UploadHeader: 10 * time.Minute,
	Idle:         60 * time.Second,
	MinRate:      1024,
	Request:      5 * time.Minute,
}

// withDefaults fills zero fields from DefaultNet and turns negative ones
// into 0 (off).
func (n Net) withDefaults() Net {
	pick := func(v, def time.Duration) time.Duration {
		switch {
		case v < 0:
			return 0
		case v == 0:
			return def
		}
		return v
	}
	n.Dial = pick(n.Dial, DefaultNet.Dial)
	n.Header = pick(n.Header, DefaultNet.Header)
	n.UploadHeader = max(pick(n.UploadHeader, 10*n.Header), n.Header)
	n.Idle = pick(n.Idle, DefaultNet.Idle)
	n.Request = pick(n.Request, DefaultNet.Request)
	n.MinRate = int64(pick(time.Duration(n.MinRate), time.Duration(DefaultNet.MinRate)))
	return n
}

// transport is the http.RoundTripper under regclient (and CheckRealms):
//
//   - it checks every 401 challenge before regclient can follow it to a
//     token service with credentials (challenge.go);
//   - it refuses a request that carries credentials to a host that is
//     neither a registry nor a token realm checked for one;
//   - it bounds each request's time (Net) and tag listings (tags.go);
//   - it owns the TLS settings of each host (regclient only applies its
//     own to an *http.Transport, which leaves no place for the checks).
//
// A token service's request, and a redirect's, use the TLS settings of the
// registry that sent the client there.
type transport struct {
	net      Net
	hosts    map[string]Host           // configured hosts, by API host
	conns    map[string]*hostConns     // their connections, by API host
	fallback *hostConns                // any other host
	creds    func(apiHost string) bool // whether credentials exist for a registry

	mu      sync.Mutex
	realmOf map[string]string // realm host -> API host of the registry that named it
	allowed map[string]bool   // hosts that may receive an Authorization header
}

// hostConns are the connections to one host: uploads wait longer for
// their answer.
type hostConns struct{ plain, upload *http.Transport }

// maxLearned bounds realmOf and allowed: a hostile registry naming a new
// realm in every challenge cannot grow them without end.
const maxLearned = 1024

func newTransport(hosts []Host, n Net, dockerCerts bool, creds func(string) bool) (*transport, error) {
	t := &transport{
		net: n.withDefaults(), hosts: map[string]Host{}, conns: map[string]*hostConns{},
		creds: creds, realmOf: map[string]string{}, allowed: map[string]bool{},
	}
	var err error
	if t.fallback, err = t.connsFor(Host{TLS: TLSEnabled}, nil); err != nil {
		return nil, err
	}
	for _, h := range hosts {
		api := dockerHubHost(h.Registry)
		t.hosts[api] = h
		t.allowed[api] = true
		var certs []string
		if dockerCerts {
			certs = []string{filepath.Join(regclient.DockerCertDir, api)}
		}
		if t.conns[api], err = t.connsFor(h, certs); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// connsFor builds the transports for h: its TLS settings, and dial and
// header timeouts; certDirs hold extra CA certificates (*.crt).
func (t *transport) connsFor(h Host, certDirs []string) (*hostConns, error) {
	tc, err := tlsConfig(h, certDirs)
	if err != nil {
		return nil, err
	}
	mk := func(header time.Duration) *http.Transport {
		base := http.DefaultTransport.(*http.Transport).Clone()
		base.DialContext = (&net.Dialer{Timeout: t.net.Dial, KeepAlive: 30 * time.Second}).DialContext
		base.TLSHandshakeTimeout = t.net.Dial
		base.ResponseHeaderTimeout = header
		base.TLSClientConfig = tc
		return base
	}
	return &hostConns{plain: mk(t.net.Header), upload: mk(t.net.UploadHeader)}, nil
}

// tlsConfig is h's TLS configuration: no checks for TLSInsecure, else the
// system's CAs plus h.CAFile and the *.crt files of certDirs.
func tlsConfig(h Host, certDirs []string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if h.TLS == TLSInsecure {
		tc.InsecureSkipVerify = true //#nosec G402 -- the user chose tls: insecure for this host
		return tc, nil
	}
	var pems [][]byte
	if h.CAFile != "" {
		pem, err := os.ReadFile(h.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: CA file: %v", ErrConfig, h.Registry, err)
		}
		pems = append(pems, pem)
	}
	for _, dir := range certDirs {
		files, _ := filepath.Glob(filepath.Join(dir, "*.crt"))
		for _, f := range files {
			if pem, err := os.ReadFile(f); err == nil {
				pems = append(pems, pem)
			}
		}
	}
	if len(pems) == 0 {
		return tc, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	for _, pem := range pems {
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: %s: no PEM certificate in its CA file", ErrConfig, h.Registry)
		}
	}
	tc.RootCAs = pool
	return tc, nil
}

// RoundTrip runs one request within the checks and bounds above.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.mayCarry(req); err != nil {
		return nil, err
	}
	budget := tagBudgetOf(req)
	if budget != nil && !budget.page() {
		return endOfTags(req), nil
	}
	ctx, cancel := context.WithCancelCause(req.Context())
	w, wreq := t.watch(req, ctx, cancel)
	resp, err := t.pick(req).RoundTrip(wreq)
	if w.send != nil {
		w.send.stop() // sent, or no longer wanted
	}
	if err == nil && resp.StatusCode == http.StatusUnauthorized {
		if err = t.checkChallenge(resp); err != nil {
			resp.Body.Close()
		}
	}
	if err != nil {
		err = w.explain(err)
		w.end()
		return nil, err
	}
	if budget != nil && resp.StatusCode == http.StatusOK && !budget.fits(resp) {
		resp.Body.Close()
		w.end()
		return endOfTags(req), nil
	}
	resp.Body = &watchedBody{rc: resp.Body, w: w, budget: budget}
	return resp, nil
}

// pick chooses the connections for req: those of its registry (a token
// service's or a redirect's request: of the registry that sent it there).
func (t *transport) pick(req *http.Request) *http.Transport {
	first := req
	for first.Response != nil && first.Response.Request != nil {
		first = first.Response.Request
	}
	host := first.URL.Host
	t.mu.Lock()
	if reg, ok := t.realmOf[host]; ok {
		host = reg
	}
	t.mu.Unlock()
	c := t.conns[host]
	if c == nil {
		c = t.fallback
	}
	if isUpload(req) {
		return c.upload
	}
	return c.plain
}

// mayCarry refuses a request that carries credentials (an Authorization
// header, or a token request's form) to a host that is neither a
// configured registry, nor a registry that challenged ferry, nor a token
// realm checked for one: whatever path led there, no password leaves
// for a host nobody checked.
func (t *transport) mayCarry(req *http.Request) error {
	form := req.Method == http.MethodPost && strings.HasPrefix(req.Header.Get("Content-Type"), "application/x-www-form-urlencoded")
	if req.Header.Get("Authorization") == "" && !form {
		return nil
	}
	t.mu.Lock()
	ok := t.allowed[req.URL.Host]
	t.mu.Unlock()
	if ok {
		return nil
	}
	return &Error{Registry: req.URL.Host, Err: ErrUntrustedRealm,
		Msg: fmt.Sprintf("%v: not sending credentials to %s, which no registry's challenge named (trustedRealms in cfg.yaml lists the token services a registry may use)", ErrUntrustedRealm, req.URL.Host)}
}

// learn records what a challenge taught: that host may receive
// credentials (allow), and that it is a token realm of registry (an API
// host; "" for none), whose TLS settings its requests use.
func (t *transport) learn(host string, allow bool, registry string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if allow && len(t.allowed) < maxLearned {
		t.allowed[host] = true
	}
	if _, configured := t.conns[host]; registry != "" && registry != host && !configured && len(t.realmOf) < maxLearned {
		t.realmOf[host] = registry
	}
}

// isUpload: a blob upload's PUT or PATCH, which a registry may answer
// only after it checked the whole blob.
func isUpload(req *http.Request) bool {
	return (req.Method == http.MethodPut || req.Method == http.MethodPatch) && strings.Contains(req.URL.Path, "/blobs/uploads/")
}

// isBlob: a blob transfer, which Net.Request does not bound (its size
// is not ferry's to choose; Idle and MinRate watch it).
func isBlob(u *url.URL) bool { return strings.Contains(u.Path, "/blobs/") }
