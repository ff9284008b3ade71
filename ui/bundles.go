package ui

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ferry-oss/ferry/meta"
)

// Bundle is a bundle of the directory as the page lists it.
type Bundle struct {
	File        string    `json:"file"` // the meta file's name
	ID          string    `json:"id"`
	Type        string    `json:"type"`
	Created     time.Time `json:"created"`
	Tool        string    `json:"tool"`
	Schema      int       `json:"schema"`
	Partial     bool      `json:"partial"`
	Compression string    `json:"compression"`
	Platforms   []string  `json:"platforms"`
	Images      int       `json:"images"`
	Blobs       int       `json:"blobs"`
	BlobBytes   int64     `json:"blobBytes"`
	BaseBlobs   int       `json:"baseBlobs"`
	Size        int64     `json:"size"` // parts on disk
	Parts       []Part    `json:"parts"`
	Bases       []Base    `json:"bases"`
	Failed      []Failure `json:"failed"`
	Signature   Signature `json:"signature"`
	// Chain is the file of the full bundle this one builds on (its own
	// for a full bundle), or the id of a full bundle not in the directory.
	Chain string `json:"chain"`
	// Complete: every part is here with its size, every base meta file
	// too (with the content the increment recorded).
	Complete bool `json:"complete"`
}

// Part is a part file and whether it is here with its size.
type Part struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// State: ok, missing, size (another size than the meta file says).
	State string `json:"state"`
}

// Base is a base bundle of an increment and whether its meta file is in
// the directory.
type Base struct {
	ID   string `json:"id"`
	Meta string `json:"meta"`
	// File is the base's meta file here; State: ok, missing, different
	// (a file of that name whose sha256 is not the recorded one).
	File  string `json:"file,omitempty"`
	State string `json:"state"`
	Type  string `json:"type,omitempty"`
}

// Chain is a full bundle and the increments that build on it.
type Chain struct {
	// Root is the full bundle's file, or its id when it is not here.
	Root    string   `json:"root"`
	Present bool     `json:"present"`
	Members []string `json:"members"` // files, oldest first, the root included
	// Missing lists what the chain lacks: base meta files, parts.
	Missing []string `json:"missing"`
}

// Unreadable is a meta file that could not be read.
type Unreadable struct {
	File  string `json:"file"`
	Error string `json:"error"`
}

// Listing is the directory as the page shows it.
type Listing struct {
	Dir        string       `json:"dir"`
	Bundles    []Bundle     `json:"bundles"`
	Chains     []Chain      `json:"chains"`
	Unreadable []Unreadable `json:"unreadable"`
}

var metaName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*_meta\.yaml$`)

// errNoBundle: a file name that is not a meta file of the directory.
var errNoBundle = errors.New("no such bundle")

// catalog reads the directory's meta files, each once per change
// (modification time and size), and keeps a summary of each.
type catalog struct {
	dir    string
	load   func(string) (*meta.Meta, error)
	engine Engine

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	mod  time.Time
	size int64
	m    *summary
	sum  string // the file's sha256, when asked for
	sig  *Signature
	err  error
}

// summary is what the catalog keeps of a meta file: all of it but the
// lists of images, manifests and blobs, which it counts (a directory of
// 10,000-image bundles is not held in memory).
type summary struct {
	meta.Meta
	images, blobs, baseBlobs int
	blobBytes                int64
}

func summarize(m *meta.Meta) *summary {
	s := &summary{Meta: *m, images: len(m.Images), blobs: len(m.Blobs), baseBlobs: len(m.BaseBlobs), blobBytes: m.TotalBlobBytes()}
	s.Images, s.Manifests, s.Blobs, s.BaseBlobs = nil, nil, nil, nil
	return s
}

func newCatalog(dir string, load func(string) (*meta.Meta, error), e Engine) *catalog {
	return &catalog{dir: dir, load: load, engine: e, cache: map[string]cached{}}
}

// path is the meta file name's path in the directory; the name must be a
// plain meta file name (no directory, no "..").
func (c *catalog) path(file string) (string, error) {
	if !metaName.MatchString(file) {
		return "", fmt.Errorf("%w: %q", errNoBundle, file)
	}
	return filepath.Join(c.dir, file), nil
}

// meta is the summary of a meta file of the directory (cached).
func (c *catalog) meta(file string) (*summary, error) {
	e, err := c.entry(file, false)
	if err != nil {
		return nil, err
	}
	return e.m, e.err
}

// full reads a meta file of the directory whole (not cached).
func (c *catalog) full(file string) (*meta.Meta, error) {
	p, err := c.path(file)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(p); err != nil {
		return nil, fmt.Errorf("%w: %s", errNoBundle, file)
	}
	return c.load(p)
}

func (c *catalog) entry(file string, withSum bool) (cached, error) {
	p, err := c.path(file)
	if err != nil {
		return cached{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return cached{}, fmt.Errorf("%w: %s", errNoBundle, file)
	}
	c.mu.Lock()
	e, ok := c.cache[file]
	c.mu.Unlock()
	if !ok || !e.mod.Equal(fi.ModTime()) || e.size != fi.Size() {
		e = cached{mod: fi.ModTime(), size: fi.Size()}
		var m *meta.Meta
		if m, e.err = c.load(p); e.err == nil {
			e.m = summarize(m)
		}
	}
	if withSum && e.sum == "" {
		e.sum, _ = meta.FileSHA256(p)
	}
	c.mu.Lock()
	c.cache[file] = e
	c.mu.Unlock()
	return e, nil
}

// list reads every meta file of the directory.
func (c *catalog) list() (*Listing, error) {
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return nil, err
	}
	l := &Listing{Dir: c.dir, Bundles: []Bundle{}, Chains: []Chain{}, Unreadable: []Unreadable{}}
	for _, de := range ents {
		if de.IsDir() || !metaName.MatchString(de.Name()) {
			continue
		}
		m, err := c.meta(de.Name())
		if err != nil {
			l.Unreadable = append(l.Unreadable, Unreadable{File: de.Name(), Error: err.Error()})
			continue
		}
		l.Bundles = append(l.Bundles, c.describe(de.Name(), m))
	}
	slices.SortFunc(l.Bundles, func(a, b Bundle) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.File, b.File))
	})
	l.Chains = chains(l.Bundles)
	return l, nil
}

// describe is a bundle's row: counts, parts and bases checked against the
// directory, signature.
func (c *catalog) describe(file string, m *summary) Bundle {
	b := Bundle{
		File: file, ID: m.ID, Type: m.Type, Created: m.Created, Tool: m.Tool, Schema: m.SchemaVersion,
		Partial: m.Partial, Compression: m.Compression, Platforms: orEmpty(m.Platforms),
		Images: m.images, Blobs: m.blobs, BlobBytes: m.blobBytes, BaseBlobs: m.baseBlobs,
		Parts: []Part{}, Bases: []Base{}, Failed: []Failure{}, Complete: true,
	}
	for _, p := range m.Parts {
		part := Part{Name: p.Name, Size: p.Size, SHA256: p.SHA256, State: "ok"}
		fi, err := os.Stat(filepath.Join(c.dir, filepath.Base(p.Name)))
		switch {
		case err != nil:
			part.State = "missing"
		case fi.Size() != p.Size:
			part.State = "size"
		}
		b.Complete = b.Complete && part.State == "ok"
		b.Size += p.Size
		b.Parts = append(b.Parts, part)
	}
	for _, base := range m.Bases {
		bb := c.base(base)
		b.Complete = b.Complete && bb.State == "ok"
		b.Bases = append(b.Bases, bb)
	}
	for _, f := range m.Failed {
		b.Failed = append(b.Failed, Failure{Image: f.Source, Error: f.Error})
	}
	b.Signature = c.signature(file)
	return b
}

// signature is the meta file's signature status, checked once per
// version of the meta file.
func (c *catalog) signature(file string) Signature {
	c.mu.Lock()
	e := c.cache[file]
	c.mu.Unlock()
	if e.sig != nil {
		return *e.sig
	}
	sig := c.engine.Signature(filepath.Join(c.dir, file))
	c.mu.Lock()
	if e, ok := c.cache[file]; ok {
		e.sig = &sig
		c.cache[file] = e
	}
	c.mu.Unlock()
	return sig
}

// base finds a base bundle's meta file in the directory, by the name the
// increment recorded, and checks it is the same file.
func (c *catalog) base(base meta.Base) Base {
	b := Base{ID: base.ID, Meta: base.Meta, State: "missing"}
	name := filepath.Base(base.Meta)
	e, err := c.entry(name, true)
	if err != nil || e.err != nil {
		return b
	}
	b.File, b.Type = name, e.m.Type
	b.State = "ok"
	if base.SHA256 != "" && e.sum != base.SHA256 {
		b.State = "different"
	}
	return b
}

// chains groups bundles under the full bundle they build on: an
// increment's full base (the first base of type full, or the first base
// whose meta file is missing), a full bundle is its own root.
func chains(bundles []Bundle) []Chain {
	byRoot := map[string]*Chain{}
	var order []string
	for i := range bundles {
		b := &bundles[i]
		root, present := b.File, true
		if b.Type != "full" {
			root, present = rootOf(b)
		}
		b.Chain = root
		ch := byRoot[root]
		if ch == nil {
			ch = &Chain{Root: root, Present: present, Members: []string{}, Missing: []string{}}
			byRoot[root] = ch
			order = append(order, root)
		}
		ch.Members = append(ch.Members, b.File)
		ch.Missing = appendMissing(ch.Missing, b)
	}
	out := make([]Chain, 0, len(order))
	for _, r := range order {
		out = append(out, *byRoot[r])
	}
	return out
}

func rootOf(b *Bundle) (string, bool) {
	for _, base := range b.Bases {
		if base.Type == "full" && base.State != "missing" {
			return base.File, true
		}
	}
	for _, base := range b.Bases {
		if base.State == "missing" && strings.Contains(base.ID, "_full_") {
			return base.ID, false
		}
	}
	if len(b.Bases) > 0 {
		return b.Bases[0].ID, false
	}
	return b.File, true
}

// appendMissing adds what b lacks: base meta files and parts.
func appendMissing(missing []string, b *Bundle) []string {
	add := func(s string) {
		if !slices.Contains(missing, s) {
			missing = append(missing, s)
		}
	}
	for _, base := range b.Bases {
		if base.State != "ok" {
			add(base.Meta)
		}
	}
	for _, p := range b.Parts {
		if p.State != "ok" {
			add(p.Name)
		}
	}
	return missing
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (s *Server) listBundles(w http.ResponseWriter, r *http.Request) {
	l, err := s.bundles.list()
	if err != nil {
		apiError(w, http.StatusInternalServerError, "dir", err)
		return
	}
	writeJSON(w, http.StatusOK, l)
}

// bundleDetail is one bundle: its row, images and referrers.
func (s *Server) bundleDetail(w http.ResponseWriter, r *http.Request) {
	file := r.PathValue("file")
	m, err := s.bundles.meta(file)
	if errors.Is(err, errNoBundle) {
		apiError(w, http.StatusNotFound, "no-bundle", err)
		return
	}
	if err != nil {
		apiError(w, http.StatusUnprocessableEntity, "unreadable", err)
		return
	}
	p, _ := s.bundles.path(file)
	d, err := s.opts.Engine.Inspect(p)
	if err != nil {
		apiError(w, http.StatusUnprocessableEntity, "unreadable", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"bundle": s.bundles.describe(file, m), "detail": d})
}
