package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/regclient/regclient/types/errs"
	"github.com/regclient/regclient/types/ref"
)

// Error is a registry failure that a retry cannot heal, said in one line
// that names the registry, the cause and the fix. It wraps the error it
// explains (errors.Is works on that, e.g. errs.ErrNotFound) and
// errs.ErrNotRetryable, so that callers fail at once instead of retrying.
type Error struct {
	Registry string // host[:port]
	Ref      string // the reference the message starts with, if any
	Msg      string // the line shown to the user
	Err      error
}

func (e *Error) Error() string   { return e.Msg }
func (e *Error) Unwrap() []error { return []error{e.Err, errs.ErrNotRetryable} }

// Classify turns an error of a request to registry into an *Error when it
// cannot heal (TLS mismatch, untrusted certificate, connection refused,
// unknown host, 401/403, invalid name); other errors are returned as they
// are, to be retried.
func Classify(registry string, err error) error {
	cerr, _ := classify(registry, err)
	return cerr
}

// classify is Classify; conn reports an error of the connection (TLS,
// refused, DNS) rather than of an HTTP answer.
func classify(registry string, err error) (_ error, conn bool) {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err, false
	}
	var slow *timeout
	if errors.As(err, &slow) {
		return slow, false // transient, even where regclient's wrapping says 401 (a token request)
	}
	var already *Error
	if errors.As(err, &already) {
		return already, false // said in one line already (a refused realm: transport.go)
	}
	msg := err.Error()
	mk := func(cause, fix string) error {
		s := "registry " + registry + ": " + cause
		if fix != "" {
			s += "; " + fix
		}
		return &Error{Registry: registry, Msg: s, Err: err}
	}
	var rhe tls.RecordHeaderError
	var unknownCA x509.UnknownAuthorityError
	var invalidCert x509.CertificateInvalidError
	var hostErr x509.HostnameError
	var verifyErr *tls.CertificateVerificationError
	var dnsErr *net.DNSError
	switch {
	case strings.Contains(msg, "server gave HTTP response to HTTPS client") || errors.As(err, &rhe):
		return mk("TLS handshake failed: it speaks plain HTTP", `write it http://`+registry+` (or --plain-http), or set "tls: disabled" for it in cfg.yaml registries`), true
	case strings.Contains(msg, "Client sent an HTTP request to an HTTPS server") || strings.Contains(msg, "malformed HTTP response"):
		return mk("it speaks HTTPS but ferry used plain HTTP", `set "tls: enabled" (or "insecure") for it in cfg.yaml registries`), true
	case errors.As(err, &unknownCA) || errors.As(err, &invalidCert) || errors.As(err, &hostErr) || errors.As(err, &verifyErr):
		return mk("TLS certificate not trusted ("+certProblem(err)+")", `give its CA with caFile in cfg.yaml (or --ca-file), or set "tls: insecure" (--insecure)`), true
	case errors.Is(err, syscall.ECONNREFUSED):
		return mk("connection refused", "is the registry running, and is the host:port right?"), true
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return mk("host name not found", "check the registry name"), true
	case errors.Is(err, errs.ErrHTTPUnauthorized) && strings.Contains(msg, "[http 403]"):
		return mk("access denied (HTTP 403)", "the user may not read or write this repository"), false
	case errors.Is(err, errs.ErrHTTPUnauthorized):
		return mk("authentication failed (HTTP 401)", "set user and pass for it in cfg.yaml registries, or docker login"), false
	case strings.Contains(msg, "NAME_INVALID"):
		return mk("invalid repository name (NAME_INVALID)", "repository paths are lowercase letters, digits and . _ - separated by /"), false
	}
	// Any other 4xx but 408 and 429 is the registry saying no: asking
	// again gets the same answer.
	if m := httpStatus.FindStringSubmatch(msg); m != nil && errors.Is(err, errs.ErrHTTPStatus) {
		if code, _ := strconv.Atoi(m[1]); code >= 400 && code < 500 && code != 408 && code != 429 {
			what := "HTTP " + m[1]
			if c := registryCode.FindStringSubmatch(msg); c != nil {
				what += " " + c[1] + ": " + c[2]
			}
			return mk("request refused ("+what+")", ""), false
		}
	}
	return err, false
}

var (
	httpStatus   = regexp.MustCompile(`\[http (\d{3})\]`)
	registryCode = regexp.MustCompile(`"code":\s*"([A-Z_]+)"\s*,\s*"message":\s*"([^"]*)"`)
)

func certProblem(err error) string {
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	switch {
	case errors.As(err, &unknownCA):
		return "signed by an unknown authority"
	case errors.As(err, &hostErr):
		return "issued for another host name"
	}
	return "invalid certificate"
}

// notFound explains a 404 for a manifest: an unknown repository, or a
// missing tag with the tags the repository has.
func (r *Registry) notFound(ctx context.Context, rf ref.Ref, err error) error {
	repo := rf.Registry + "/" + rf.Repository
	name := rf.Repository + ":" + rf.Tag
	if rf.Digest != "" {
		name = rf.Repository + "@" + rf.Digest
		return &Error{Registry: rf.Registry, Ref: name, Msg: name + ": manifest not found in " + repo, Err: err}
	}
	tags, terr := r.listTags(ctx, rf)
	if errors.Is(terr, errs.ErrNotFound) || (terr == nil && len(tags) == 0) {
		return &Error{Registry: rf.Registry, Ref: name, Msg: name + ": repository not found: " + repo, Err: err}
	}
	if terr != nil {
		return &Error{Registry: rf.Registry, Ref: name, Msg: name + ": tag not found in " + repo, Err: err}
	}
	slices.Sort(tags)
	more := ""
	if len(tags) > 10 {
		more = fmt.Sprintf(", … %d more", len(tags)-10)
		tags = tags[:10]
	}
	return &Error{Registry: rf.Registry, Ref: name, Msg: fmt.Sprintf("%s: tag not found in %s (tags: %s%s)", name, repo, strings.Join(tags, ", "), more), Err: err}
}
