package ui

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"html/template"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/text/language"

	"github.com/ferry-oss/ferry/i18n"
)

// langCookie holds the language the user picked (not a secret).
const langCookie = "ferry_lang"

// maxBody bounds a request body (a save's image list is the largest).
const maxBody = 4 << 20

// guard admits the console's user: the token (URL once, then a cookie),
// the Host, and for state changes the Origin and a JSON body.
type guard struct {
	token string
}

func newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// cookieName is per port: two consoles on one host keep their own.
func cookieName(host string) string {
	_, port, _ := net.SplitHostPort(host)
	return "ferry_ui_" + port
}

func (g *guard) valid(s string) bool {
	return s != "" && subtle.ConstantTimeCompare([]byte(s), []byte(g.token)) == 1
}

// allowedHosts are the Host header values of requests to addr: the
// address itself and, on loopback, localhost with its port. nil admits
// any (anyHost: a console reached by a name the server cannot know).
func allowedHosts(addr net.Addr, anyHost bool) map[string]bool {
	if anyHost {
		return nil
	}
	hosts := map[string]bool{addr.String(): true}
	if ta, ok := addr.(*net.TCPAddr); ok && ta.IP.IsLoopback() {
		hosts[net.JoinHostPort("localhost", strconv.Itoa(ta.Port))] = true
	}
	return hosts
}

// wrap puts the checks in front of h. A request to "/" with ?token= that
// is right sets the cookie and gets the page (which drops the token from
// its URL); any other request needs the cookie.
func (g *guard) wrap(h http.Handler, hosts map[string]bool, lang language.Tag) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w.Header())
		if hosts != nil && !hosts[r.Host] {
			http.Error(w, "wrong Host", http.StatusMisdirectedRequest) // DNS rebinding
			return
		}
		authed := false
		if c, err := r.Cookie(cookieName(r.Host)); err == nil && g.valid(c.Value) {
			authed = true
		}
		if q := r.URL.Query().Get("token"); q != "" && r.URL.Path == "/" && r.Method == http.MethodGet && g.valid(q) {
			http.SetCookie(w, &http.Cookie{Name: cookieName(r.Host), Value: g.token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
			authed = true
		}
		if !authed {
			deny(w, pageLang(r, lang))
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if !sameOrigin(r) {
				http.Error(w, "cross-origin request refused", http.StatusForbidden)
				return
			}
			if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" && r.ContentLength != 0 {
				http.Error(w, "want application/json", http.StatusUnsupportedMediaType)
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		}
		h.ServeHTTP(w, r)
	})
}

// sameOrigin: the request comes from a page of this console. Browsers
// send Origin with every POST; Sec-Fetch-Site where they do not.
func sameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		return o == "http://"+r.Host
	}
	return r.Header.Get("Sec-Fetch-Site") == "same-origin"
}

func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

var denyPage = template.Must(template.New("deny").Parse(`<!doctype html>
<html lang="{{.Lang}}"><head><meta charset="utf-8"><title>ferry</title></head>
<body><h1>{{.Title}}</h1><p>{{.Text}}</p></body></html>
`))

// deny answers 401 with a page that says how to get in.
func deny(w http.ResponseWriter, lang language.Tag) {
	p := i18n.New(lang)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusUnauthorized)
	_ = denyPage.Execute(w, map[string]string{
		"Lang":  strings.ReplaceAll(i18n.Code(lang), "_", "-"),
		"Title": p.Sprintf("ui.denied.title"),
		"Text":  p.Sprintf("ui.denied.text"),
	})
}
