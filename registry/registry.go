// Package registry connects ferry to OCI registries through regclient. A
// Registry is both a oci.Source (save reads from it) and a oci.Sink
// (upload writes to it). Credentials come from the host configuration
// (cfg.yaml), the Docker config and its credential helpers; they are never
// logged.
package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient"
	"github.com/regclient/regclient/config"
	"github.com/regclient/regclient/scheme/reg"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/errs"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/oci"
)

// Sentinel errors.
var (
	ErrConfig = errors.New("registry configuration")
)

// TLS modes of a host.
const (
	TLSAuto     = ""         // enabled, except plain HTTP for loopback hosts
	TLSEnabled  = "enabled"  // HTTPS with certificate checks
	TLSInsecure = "insecure" // HTTPS without certificate checks
	TLSDisabled = "disabled" // plain HTTP
)

// Host configures one registry host.
type Host struct {
	// Registry is host[:port].
	Registry string
	// TLS is one of the TLS* modes.
	TLS string
	// CAFile is a PEM file with the CA (or self-signed certificate) that
	// signed the registry's certificate.
	CAFile string
	// User and Pass log in with basic auth or a token service.
	User string
	Pass string
	// TrustedRealms are token realm hosts (host[:port]) other than the
	// registry's own that may receive its credentials (see CheckRealms).
	TrustedRealms []string
}

// Options configure New.
type Options struct {
	Hosts []Host
	// Registries are hosts to use with default settings unless Hosts
	// configures them (loopback hosts then use plain HTTP).
	Registries []string
	// DockerConfig reads credentials and certificates from the Docker
	// config (~/.docker/config.json, credential helpers, certs.d).
	DockerConfig bool
	// Retries is how often regclient retries a request.
	Retries int
	// RetryDelay is the first backoff delay (default 500ms).
	RetryDelay time.Duration
	// Concurrency is the number of requests to one host at once.
	Concurrency int
	UserAgent   string
	Log         *slog.Logger
	// Net bounds the time of every request (zero: DefaultNet).
	Net Net
	// Tags bound each tag listing (zero: DefaultTagLimits).
	Tags TagLimits
}

// Registry is a regclient-backed Source and Sink.
type Registry struct {
	rc        *regclient.RegClient
	ping      *regclient.RegClient // the same hosts, no retries: fails fast
	log       *slog.Logger
	tags      tagCache   // repository tag lists for Referrers (referrers.go)
	tagLimits TagLimits  // bounds of each tag listing (tags.go)
	hosts     []Host     // every configured host, for CheckRealms (realm.go)
	creds     *credSet   // which registries have credentials
	tr        *transport // under regclient: challenges, timeouts, TLS (transport.go)
	opts      Options    // as given to New (httpFallback builds the clients again)
}

var (
	_ oci.Source = (*Registry)(nil)
	_ oci.Sink   = (*Registry)(nil)
)

// New builds a Registry. Hosts not listed get defaults (TLSAuto).
func New(opts Options) (*Registry, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = 500 * time.Millisecond
	}
	if opts.Concurrency < 1 {
		opts.Concurrency = 4
	}
	all := append([]Host{}, opts.Hosts...)
	for _, name := range opts.Registries {
		if !slices.ContainsFunc(all, func(h Host) bool { return h.Registry == name }) {
			all = append(all, Host{Registry: name})
		}
	}
	var hosts []config.Host
	for _, h := range all {
		ch, err := h.config(opts.Concurrency)
		if err != nil {
			return nil, err
		}
		hosts = append(hosts, ch)
	}
	r := &Registry{log: opts.Log, hosts: all, creds: newCredSet(all, opts.DockerConfig), tagLimits: opts.Tags.withDefaults(), opts: opts}
	var err error
	if r.tr, err = newTransport(all, opts.Net, opts.DockerConfig, r.creds.has); err != nil {
		return nil, err
	}
	r.rc, r.ping = clients(opts, hosts, r.tr)
	return r, nil
}

// clients builds the regclient of a Registry, and the one of its ping
// (no credentials, no retries), both on transport t (regclient applies its
// own TLS settings only to an *http.Transport: t applies them instead,
// the Docker certs.d included).
func clients(opts Options, hosts []config.Host, t *transport) (rc, ping *regclient.RegClient) {
	rcOpts := []regclient.Opt{
		regclient.WithSlog(quiet(opts.Log)),
		regclient.WithRegOpts(reg.WithHTTPClient(&http.Client{Transport: t})),
	}
	if opts.UserAgent != "" {
		rcOpts = append(rcOpts, regclient.WithUserAgent(opts.UserAgent))
	}
	anonymous := make([]config.Host, len(hosts))
	for i, h := range hosts {
		h.User, h.Pass, h.Token, h.CredHelper = "", "", "", ""
		anonymous[i] = h
	}
	ping = regclient.New(append(slices.Clone(rcOpts), regclient.WithConfigHost(anonymous...),
		regclient.WithRegOpts(reg.WithRetryLimit(1), reg.WithDelay(time.Millisecond, time.Millisecond)))...)
	if opts.DockerConfig {
		rcOpts = append(rcOpts, regclient.WithDockerCreds())
	}
	// ferry retries whole operations itself (transfer.SaveOptions.Retries,
	// UploadOptions.Retries); regclient gets a short leash so the two do
	// not multiply into minutes of waiting.
	rc = regclient.New(append(rcOpts, regclient.WithConfigHost(hosts...), regclient.WithRegOpts(
		reg.WithRetryLimit(min(max(opts.Retries, 1), 2)), // regclient takes 0 as its default, 5
		reg.WithDelay(opts.RetryDelay, 4*opts.RetryDelay),
	))...)
	return rc, ping
}

func (h Host) config(concurrency int) (config.Host, error) {
	if h.Registry == "" || strings.ContainsAny(h.Registry, "/ ") {
		return config.Host{}, fmt.Errorf("%w: registry %q", ErrConfig, h.Registry)
	}
	ch := *config.HostNewName(h.Registry)
	ch.ReqConcurrent = int64(concurrency)
	switch h.TLS {
	case TLSAuto:
		if IsLoopback(h.Registry) {
			ch.TLS = config.TLSDisabled
		} else {
			ch.TLS = config.TLSEnabled
		}
	case TLSEnabled:
		ch.TLS = config.TLSEnabled
	case TLSInsecure:
		ch.TLS = config.TLSInsecure
	case TLSDisabled:
		ch.TLS = config.TLSDisabled
	default:
		return config.Host{}, fmt.Errorf("%w: %s: tls %q (want enabled, insecure or disabled)", ErrConfig, h.Registry, h.TLS)
	}
	ch.User, ch.Pass = h.User, h.Pass
	return ch, nil
}

// IsLoopback reports whether a registry host[:port] is on this machine.
func IsLoopback(registry string) bool {
	host := registry
	if h, _, err := net.SplitHostPort(registry); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// ManifestGet fetches a manifest and checks it against the digest in r.
func (r *Registry) ManifestGet(ctx context.Context, rf ref.Ref) (manifest.Manifest, error) {
	m, err := r.rc.ManifestGet(ctx, rf)
	if errors.Is(err, errs.ErrNotFound) {
		return nil, r.notFound(ctx, rf, err)
	}
	if err != nil {
		return nil, Classify(rf.Registry, err)
	}
	raw, err := m.RawBody()
	if err != nil {
		return nil, err
	}
	d := m.GetDescriptor()
	if d.Digest.Algorithm().FromBytes(raw) != d.Digest || (rf.Digest != "" && digest.Digest(rf.Digest) != d.Digest) {
		return nil, fmt.Errorf("manifest %s: %w", rf.CommonName(), oci.ErrDigestMismatch)
	}
	return m, nil
}

// BlobGet opens a blob; regclient's reader checks its size and digest at
// EOF (and the bundle Writer checks both again as it stores the blob).
func (r *Registry) BlobGet(ctx context.Context, rf ref.Ref, d descriptor.Descriptor) (io.ReadCloser, error) {
	rd, err := r.rc.BlobGet(ctx, rf, d)
	if err != nil {
		return nil, Classify(rf.Registry, err)
	}
	return rd, nil
}

// BlobExists is a HEAD request; not found is (false, nil).
func (r *Registry) BlobExists(ctx context.Context, rf ref.Ref, d descriptor.Descriptor) (bool, error) {
	br, err := r.rc.BlobHead(ctx, rf, d)
	if err != nil {
		if errors.Is(err, errs.ErrNotFound) {
			return false, nil
		}
		return false, Classify(rf.Registry, err)
	}
	defer br.Close()
	if err := servedAs(br.RawHeaders(), d); err != nil {
		return false, fmt.Errorf("blob %s in %s: %w", d.Digest, rf.CommonName(), err)
	}
	return true, nil
}

// servedAs checks what a registry says of a blob it has (the HEAD
// answer's Content-Length and Docker-Content-Digest, where it sends them)
// against d: a registry that serves other bytes than it was given is
// caught before a manifest points at them.
func servedAs(h http.Header, d descriptor.Descriptor) error {
	if dg := h.Get("Docker-Content-Digest"); dg != "" && d.Digest != "" && dg != d.Digest.String() {
		return fmt.Errorf("%w: the registry serves it as %s", oci.ErrDigestMismatch, dg)
	}
	if cl := h.Get("Content-Length"); cl != "" && d.Size > 0 {
		// 0: some registries send no length on HEAD
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n != 0 && n != d.Size {
			return fmt.Errorf("%w: the registry serves %d bytes, want %d", oci.ErrSizeMismatch, n, d.Size)
		}
	}
	return nil
}

// BlobMount asks the registry to mount d from another repository.
func (r *Registry) BlobMount(ctx context.Context, from, to ref.Ref, d descriptor.Descriptor) error {
	return Classify(to.Registry, r.rc.BlobMount(ctx, from, to, d))
}

// BlobPut uploads d; the registry checks the digest before it commits.
func (r *Registry) BlobPut(ctx context.Context, rf ref.Ref, d descriptor.Descriptor, rdr io.Reader) error {
	got, err := r.rc.BlobPut(ctx, rf, d, rdr)
	if err != nil {
		return Classify(rf.Registry, err)
	}
	if got.Digest != d.Digest {
		return fmt.Errorf("blob %s: registry stored %s: %w", d.Digest, got.Digest, oci.ErrDigestMismatch)
	}
	return nil
}

// ManifestPut pushes a manifest by r's tag or digest.
func (r *Registry) ManifestPut(ctx context.Context, rf ref.Ref, m manifest.Manifest) error {
	return Classify(rf.Registry, r.rc.ManifestPut(ctx, rf, m))
}

// Check pings each registry once, without retries and without
// credentials (it may run before CheckRealms), so that a registry
// that cannot work (not running, TLS mismatch, untrusted certificate,
// unknown host) fails at once with an *Error before any work starts.
// HTTP answers (401, 403, 404 to /v2/) and timeouts are left to the real
// requests, which classify them too and retry what is transient. Last, it
// refuses untrusted token realms (CheckRealms) before any credential is
// sent.
func (r *Registry) Check(ctx context.Context, registries ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for _, host := range registries {
		rf, err := ref.NewHost(host)
		if err != nil {
			return fmt.Errorf("%w: registry %q: %v", ErrConfig, host, err)
		}
		_, err = r.ping.Ping(ctx, rf)
		if err == nil {
			continue
		}
		if cerr, conn := classify(host, err); conn {
			if r.httpFallback(ctx, host, cerr) {
				continue
			}
			return cerr
		}
		r.log.Debug("ping", "registry", host, "err", err)
	}
	return r.CheckRealms(ctx, registries)
}

// Commit is a no-op: a registry makes each put visible as it lands.
func (r *Registry) Commit(context.Context) error { return nil }

// quiet lowers regclient's info and warning messages to debug: what goes
// wrong comes back as an error that ferry reports once, in one line.
func quiet(l *slog.Logger) *slog.Logger {
	return slog.New(lowered{l.Handler()}).With("component", "regclient")
}

type lowered struct{ slog.Handler }

func (h lowered) Enabled(ctx context.Context, l slog.Level) bool {
	if l < slog.LevelError {
		l = slog.LevelDebug
	}
	return h.Handler.Enabled(ctx, l)
}

func (h lowered) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelError {
		r.Level = slog.LevelDebug
	}
	return h.Handler.Handle(ctx, r)
}

func (h lowered) WithAttrs(as []slog.Attr) slog.Handler { return lowered{h.Handler.WithAttrs(as)} }
func (h lowered) WithGroup(g string) slog.Handler       { return lowered{h.Handler.WithGroup(g)} }
