// Package ui is ferry's operator console: a web app, embedded in the
// binary, that lists the bundles of a directory and verifies, uploads and
// saves them as jobs that outlive the page, in English or Chinese.
//
// The server is for one user on one machine: it listens on loopback, every
// request must carry a random token (first in the URL the command prints,
// then in an HttpOnly SameSite=Strict cookie), a request's Host must be the
// console's own, and state changes are JSON POSTs from the console's own
// origin. The page never holds a credential: it names targets, and the
// Engine takes their credentials from cfg.yaml or the Docker config.
package ui

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"golang.org/x/text/language"

	"github.com/ferry-oss/ferry/i18n"
	"github.com/ferry-oss/ferry/internal/httpserve"
	"github.com/ferry-oss/ferry/meta"
)

//go:embed web
var webFS embed.FS

// Options configure New.
type Options struct {
	// Dir is the directory of bundles the console shows, and where save
	// writes.
	Dir string
	// Engine does the work.
	Engine Engine
	// Load reads a meta file (default meta.Load).
	Load func(path string) (*meta.Meta, error)
	// Lang is the page's language until the user picks another.
	Lang language.Tag
	// History is the file runs are recorded in (JSON lines); "" keeps
	// them in memory only.
	History string
	// Version is shown in the page's footer.
	Version string
	// Log receives the server's own log; the token never reaches it.
	Log *slog.Logger
	// Token is the access token; "" makes a random one.
	Token string
	// MaxJobs bounds the jobs that run at once (default 4).
	MaxJobs int
}

// Server is the console.
type Server struct {
	opts    Options
	guard   *guard
	bundles *catalog
	jobs    *jobs
	static  fs.FS
}

// New makes the console; Serve runs it.
func New(opts Options) (*Server, error) {
	if opts.Engine == nil {
		return nil, errors.New("ui: no engine")
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Load == nil {
		opts.Load = meta.Load
	}
	if opts.MaxJobs <= 0 {
		opts.MaxJobs = 4
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	opts.Dir = dir
	token := opts.Token
	if token == "" {
		if token, err = newToken(); err != nil {
			return nil, err
		}
	}
	static, _ := fs.Sub(webFS, "web")
	s := &Server{opts: opts, static: static}
	s.guard = &guard{token: token}
	s.bundles = newCatalog(dir, opts.Load, opts.Engine)
	s.jobs = newJobs(opts.Engine, newHistory(opts.History, opts.Log), opts.Log, opts.MaxJobs)
	return s, nil
}

// URL is the address to open: it carries the token.
func (s *Server) URL(addr net.Addr) string {
	return "http://" + addr.String() + "/?token=" + s.guard.token
}

// Handler serves the console for requests to addr (the Host header must
// name it, unless anyHost: a console listening beyond loopback).
func (s *Server) Handler(addr net.Addr, anyHost bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.index)
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(s.static)))
	mux.HandleFunc("GET /api/session", s.session)
	mux.HandleFunc("GET /api/i18n", s.messages)
	mux.HandleFunc("GET /api/bundles", s.listBundles)
	mux.HandleFunc("GET /api/bundles/{file}", s.bundleDetail)
	mux.HandleFunc("GET /api/diff", s.diff)
	mux.HandleFunc("GET /api/jobs", s.jobs.list)
	mux.HandleFunc("GET /api/jobs/{id}", s.jobs.get)
	mux.HandleFunc("GET /api/jobs/{id}/events", s.jobs.events)
	mux.HandleFunc("POST /api/jobs/{id}/cancel", s.jobs.cancelJob)
	mux.HandleFunc("POST /api/jobs/{id}/retry", s.retry)
	mux.HandleFunc("POST /api/verify", s.startVerify)
	mux.HandleFunc("POST /api/upload", s.startUpload)
	mux.HandleFunc("POST /api/save", s.startSave)
	mux.HandleFunc("GET /api/history", s.jobs.historyList)
	return s.guard.wrap(mux, allowedHosts(addr, anyHost), s.opts.Lang)
}

// Serve answers on l until ctx ends, lets requests finish for up to
// grace, and cancels the running jobs. Slow clients are cut off: headers
// must arrive within 10 s, request bodies within 30 s.
func (s *Server) Serve(ctx context.Context, l net.Listener, anyHost bool, grace time.Duration) error {
	srv := &http.Server{
		Handler:           s.Handler(l.Addr(), anyHost),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	err := httpserve.Run(ctx, srv, l, grace)
	s.jobs.stop() // cancels what runs: nothing is left looking complete
	return err
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	b, err := fs.ReadFile(s.static, "index.html")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(b)
}

// session is what the page needs first: language, directory, targets.
func (s *Server) session(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"lang":    i18n.Code(pageLang(r, s.opts.Lang)),
		"langs":   []string{i18n.Code(i18n.English), i18n.Code(i18n.Chinese)},
		"dir":     s.opts.Dir,
		"version": s.opts.Version,
		"targets": s.opts.Engine.Targets(),
	})
}

// messages are the page's strings in the language asked for (?lang=),
// else the page's language.
func (s *Server) messages(w http.ResponseWriter, r *http.Request) {
	t := pageLang(r, s.opts.Lang)
	if q := r.URL.Query().Get("lang"); q != "" {
		t, _ = i18n.Parse(q)
	}
	writeJSON(w, http.StatusOK, map[string]any{"lang": i18n.Code(t), "messages": i18n.UI(t)})
}

// pageLang is the language the user picked (the ferry_lang cookie), else
// def.
func pageLang(r *http.Request, def language.Tag) language.Tag {
	if c, err := r.Cookie(langCookie); err == nil {
		if t, ok := i18n.Parse(c.Value); ok {
			return t
		}
	}
	return def
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// apiError answers with {"error": code, "detail": text}; the page
// translates code.
func apiError(w http.ResponseWriter, status int, code string, detail error) {
	body := map[string]string{"error": code}
	if detail != nil {
		body["detail"] = detail.Error()
	}
	writeJSON(w, status, body)
}

// decode reads a JSON request body into v.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("request body: %w", err)
	}
	return nil
}
