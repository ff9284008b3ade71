package registry

import (
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestParseChallenges(t *testing.T) {
	tests := []struct {
		in     string
		realms []string // Bearer realms; nil with err
		err    bool
	}{
		{`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull"`, []string{"https://auth.docker.io/token"}, false},
		{`Basic realm="Registry Realm"`, nil, false},
		{`Basic realm="x", Bearer realm="https://a/t"`, []string{"https://a/t"}, false},
		{`bEaReR REALM="https://a/t"`, []string{"https://a/t"}, false},
		{`Bearer realm="https://a/t",realm="http://evil/t"`, []string{"https://a/t", "http://evil/t"}, false},
		{`Bearer service="x,realm=\"https://good/\"",realm="http://evil/t"`, []string{"http://evil/t"}, false},
		{`Bearer realm="http:\/\/evil/t"`, []string{"http://evil/t"}, false},
		{`Negotiate abc==, Bearer realm="https://a/t"`, []string{"https://a/t"}, false},
		{`Bearer realm=token`, []string{"token"}, false},
		{`Bearer realm="https://a/t`, nil, true},
		{`Bearer realm=https://a/t`, nil, true},
		{`realm="https://a/t"`, nil, true},
		{`Bearer realm="a" junk`, nil, true},
		{`Bearer realm=`, nil, false}, // a token68, no realm
		{``, nil, false},
	}
	for _, tt := range tests {
		got, err := bearerRealms([]string{tt.in})
		if (err != nil) != tt.err || !reflect.DeepEqual(got, tt.realms) {
			t.Errorf("bearerRealms(%s) = %q, %v; want %q, error %v", tt.in, got, err, tt.realms, tt.err)
		}
	}
}

// FuzzParseChallenges: no panic, bounded work, and what is parsed says
// the same once written back and parsed again.
func FuzzParseChallenges(f *testing.F) {
	f.Add(`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull"`)
	f.Add(`Basic realm="x", Bearer realm="h\"t", Negotiate abc==`)
	f.Fuzz(func(t *testing.T, s string) {
		cs, err := parseChallenges(s)
		if err != nil {
			return
		}
		var parts []string
		for _, c := range cs {
			part := c.scheme
			for i, kv := range c.params {
				sep := ","
				if i == 0 {
					sep = " "
				}
				part += sep + kv[0] + `="` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(kv[1]) + `"`
			}
			parts = append(parts, part)
		}
		again, err := parseChallenges(strings.Join(parts, ", "))
		if err != nil {
			t.Fatalf("%q: parsed as %q, which does not parse again: %v", s, parts, err)
		}
		// a token68 is dropped, and a scheme without parameters is kept
		if len(again) != len(cs) {
			t.Fatalf("%q: %d challenges, %d once rewritten", s, len(cs), len(again))
		}
		for i := range cs {
			if again[i].scheme != cs[i].scheme || !reflect.DeepEqual(again[i].params, cs[i].params) {
				t.Fatalf("%q: challenge %d %+v, rewritten %+v", s, i, cs[i], again[i])
			}
		}
	})
}

// TestCredentialsOnlyToCheckedHosts: whatever path led there, a request
// carrying credentials (an Authorization header, a token request's form)
// to a host that is neither a configured registry, nor a registry that
// challenged ferry, nor a checked realm is refused before it is sent.
func TestCredentialsOnlyToCheckedHosts(t *testing.T) {
	tr, err := newTransport([]Host{{Registry: "reg.example:5000"}}, Net{}, false, func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	tr.learn("auth.example", true, "reg.example:5000")
	tests := []struct {
		method, url, auth, ctype string
		refused                  bool
	}{
		{"GET", "https://evil.example/token", "Basic dTpw", "", true},
		{"POST", "https://evil.example/token", "", "application/x-www-form-urlencoded", true},
		{"GET", "https://evil.example/token", "", "", false},
		{"GET", "https://reg.example:5000/v2/", "Basic dTpw", "", false},
		{"GET", "https://auth.example/token", "Basic dTpw", "", false},
	}
	for _, tt := range tests {
		u, _ := url.Parse(tt.url)
		req := &http.Request{Method: tt.method, URL: u, Header: http.Header{}}
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		if tt.ctype != "" {
			req.Header.Set("Content-Type", tt.ctype)
		}
		if err := tr.mayCarry(req); (err != nil) != tt.refused {
			t.Errorf("%s %s auth %q: err %v, refused want %v", tt.method, tt.url, tt.auth, err, tt.refused)
		}
	}
}
