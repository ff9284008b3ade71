package registry

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// challenge is one challenge of a WWW-Authenticate header: its scheme
// (lower case) and its parameters in order (keys lower case; a key may
// repeat).
type challenge struct {
	scheme string
	params [][2]string
}

// maxChallengeHeader bounds what parseChallenges reads of one header.
const maxChallengeHeader = 16 << 10

var errChallenge = errors.New("malformed WWW-Authenticate challenge")

// parseChallenges parses a WWW-Authenticate value (RFC 9110 11.6.1): a
// comma-separated list whose elements are a scheme (optionally followed
// by a token68 or by its first key=value parameter) or a further
// key=value parameter of the challenge before; a value is a token or a
// quoted string (with \ escapes). Anything else is an error: a header
// ferry cannot read is not followed.
func parseChallenges(v string) ([]challenge, error) {
	if len(v) > maxChallengeHeader {
		return nil, fmt.Errorf("%w: %d bytes", errChallenge, len(v))
	}
	var out []challenge
	p := &challengeParser{s: v}
	for {
		p.skip(", \t")
		if p.end() {
			return out, nil
		}
		first := p.token()
		p.skip(" \t")
		switch {
		case first == "":
			return nil, p.unexpected()
		case p.at('=') && !p.token68Ends():
			if len(out) == 0 {
				return nil, fmt.Errorf("%w: parameter %q before any scheme", errChallenge, first)
			}
			if err := p.param(&out[len(out)-1], first); err != nil {
				return nil, err
			}
		case p.at('='):
			return nil, p.unexpected()
		default:
			out = append(out, challenge{scheme: strings.ToLower(first)})
			if err := p.schemeRest(&out[len(out)-1]); err != nil {
				return nil, err
			}
		}
		p.skip(" \t")
		if !p.end() && !p.at(',') {
			return nil, p.unexpected()
		}
	}
}

type challengeParser struct {
	s string
	i int
}

func (p *challengeParser) end() bool      { return p.i >= len(p.s) }
func (p *challengeParser) at(c byte) bool { return !p.end() && p.s[p.i] == c }
func (p *challengeParser) unexpected() error {
	if p.end() {
		return fmt.Errorf("%w: unexpected end", errChallenge)
	}
	return fmt.Errorf("%w: unexpected %q at %d", errChallenge, p.s[p.i], p.i)
}

func (p *challengeParser) skip(set string) {
	for !p.end() && strings.IndexByte(set, p.s[p.i]) >= 0 {
		p.i++
	}
}

// token reads an RFC 9110 token (or a token68 but its trailing '=').
func (p *challengeParser) token() string {
	start := p.i
	for !p.end() && isTokenChar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

// token68Ends reports whether the '=' at p.i ends a token68 (more '='
// follow, or nothing up to the next comma) rather than starting a value.
func (p *challengeParser) token68Ends() bool {
	j := p.i
	for j < len(p.s) && p.s[j] == '=' {
		j++
	}
	n := j - p.i
	for j < len(p.s) && (p.s[j] == ' ' || p.s[j] == '\t') {
		j++
	}
	return n > 1 || j == len(p.s) || p.s[j] == ','
}

// schemeRest reads what may follow a scheme in its element: a token68 or
// the challenge's first parameter.
func (p *challengeParser) schemeRest(c *challenge) error {
	if p.end() || p.at(',') {
		return nil
	}
	tok := p.token()
	if tok == "" {
		return p.unexpected()
	}
	p.skip(" \t")
	if p.at('=') && !p.token68Ends() {
		return p.param(c, tok)
	}
	p.skip("=") // a token68
	return nil
}

// param reads "= value" after key and adds it to c.
func (p *challengeParser) param(c *challenge, key string) error {
	p.i++ // '='
	p.skip(" \t")
	val, err := p.value()
	if err != nil {
		return err
	}
	c.params = append(c.params, [2]string{strings.ToLower(key), val})
	return nil
}

// value reads a token or a quoted string.
func (p *challengeParser) value() (string, error) {
	if !p.at('"') {
		if v := p.token(); v != "" {
			return v, nil
		}
		return "", fmt.Errorf("%w: missing value at %d", errChallenge, p.i)
	}
	var b strings.Builder
	for p.i++; !p.end(); p.i++ {
		switch c := p.s[p.i]; c {
		case '"':
			p.i++
			return b.String(), nil
		case '\\':
			if p.i++; p.end() {
				return "", fmt.Errorf("%w: unterminated escape", errChallenge)
			}
			b.WriteByte(p.s[p.i])
		default:
			b.WriteByte(c)
		}
	}
	return "", fmt.Errorf("%w: unterminated quoted string", errChallenge)
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~/", c) >= 0
}

// bearerRealms lists the realm of every Bearer challenge in headers.
func bearerRealms(headers []string) ([]string, error) {
	var realms []string
	for _, h := range headers {
		cs, err := parseChallenges(h)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			if c.scheme != "bearer" {
				continue
			}
			for _, kv := range c.params {
				if kv[0] == "realm" {
					realms = append(realms, kv[1])
				}
			}
		}
	}
	return realms, nil
}

// checkChallenge runs on every 401 before regclient sees it. The host that
// answered may receive tokens from then on. For a registry that has
// credentials, each Bearer realm must be trusted for it (trustRealm);
// a realm that is not, or a challenge ferry cannot read, fails the request
// with ErrUntrustedRealm before regclient can send the credentials there.
// A trusted realm (and any realm, for TLS settings) is remembered.
func (t *transport) checkChallenge(resp *http.Response) error {
	u := resp.Request.URL
	t.mu.Lock()
	_, isRealm := t.realmOf[u.Host]
	t.mu.Unlock()
	if !isRealm {
		t.learn(u.Host, true, "") // a registry: its tokens go back to it
	}
	realms, perr := bearerRealms(resp.Header.Values("Www-Authenticate"))
	credentialed := t.creds != nil && t.creds(u.Host)
	h, ok := t.hosts[u.Host]
	if !ok {
		h = Host{Registry: u.Host}
	}
	if perr != nil {
		if !credentialed {
			return nil // regclient refuses it too; no credential to keep
		}
		return &Error{Registry: h.Registry, Err: fmt.Errorf("%w: %w", ErrUntrustedRealm, perr),
			Msg: fmt.Sprintf("%v: %s: %v; not sending its credentials anywhere", ErrUntrustedRealm, h.Registry, perr)}
	}
	for _, realm := range realms {
		ru, err := u.Parse(realm)
		if err == nil && credentialed {
			err = trustRealm(h, u.Scheme == "https", ru)
		}
		if err != nil && credentialed {
			return &Error{Registry: h.Registry, Msg: err.Error(), Err: err}
		}
		if err == nil {
			t.learn(ru.Host, credentialed, u.Host)
		}
	}
	return nil
}
