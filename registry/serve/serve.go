// Package serve is a read-only OCI distribution registry served straight
// from ferry bundle parts: nothing is unpacked. Several bundles are served
// at once (an increment with its bases, see bundle.Set), with repositories
// named as an upload would name them at a target (the meta file's target
// repositories, under an optional namespace).
//
// It answers the pull side of the OCI distribution spec: /v2/, manifests
// by tag and digest, blobs (with single Range requests), tag lists and the
// catalog, with n/last pagination. Every write is answered 405 with an OCI
// error body (code UNSUPPORTED).
//
// Every blob's digest is checked while it streams out, and the last chunk
// of a response is held back until the check passed: a corrupt part makes
// the server abort the response (the client sees a truncated body and an
// error), never a complete body with wrong bytes. A Range request of a
// blob not yet checked reads the whole blob for that reason, sending only
// the asked-for bytes; a blob that passed is remembered (with its part
// file's identity, size and time), and later ranges of it read only what
// they send.
//
// Hostile clients are bounded: the blob streams served at once may hold
// Options.StreamMemory (copy buffers and decoders; past it a GET gets 503
// with Retry-After), and a client that stops reading is cut after
// Options.WriteTimeout.
package serve

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/ref"
	"golang.org/x/sync/semaphore"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/internal/httpserve"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
)

// ErrNamespace is returned by New for a namespace that is not a valid
// repository path.
var ErrNamespace = errors.New("invalid namespace")

// Options configure New.
type Options struct {
	// Namespace is put in front of every repository, like upload's
	// --target REGISTRY/NAMESPACE.
	Namespace string
	// Log receives the access log (one line per request, at Info) and
	// aborted responses (at Warn). Nil discards.
	Log *slog.Logger
	// StreamMemory bounds the memory of the blob streams served at once:
	// each costs StreamCost (its copy buffers and its part codec's
	// decoder); a blob GET past it is answered 503 with Retry-After.
	// Zero is DefaultStreamMemory.
	StreamMemory int64
	// WriteTimeout cuts a response whose client did not take one write
	// (256 KiB at most) within it: a client that stopped reading. Zero is
	// DefaultWriteTimeout.
	WriteTimeout time.Duration
}

// Defaults of Options. 128 MiB serves about 220 uncompressed or gzip
// streams at once, or 14 zstd or xz ones (their 8 MiB windows); with the
// meta files and connections, 200 parallel pulls stay under 256 MB.
const (
	DefaultStreamMemory = 128 << 20
	DefaultWriteTimeout = 60 * time.Second
)

// streamBuffers is what one blob stream holds besides its decoder: the
// two chunk buffers of copyVerified and the frame reader's buffer.
const streamBuffers = 2*chunk + 64<<10

// StreamCost is the memory one stream of a blob stored with codec c is
// counted for against Options.StreamMemory.
func StreamCost(c bundle.Codec) int64 { return streamBuffers + c.DecoderMemory() }

// Registry is an http.Handler serving a bundle.Set read-only.
type Registry struct {
	set          *bundle.Set
	repos        map[string]*repo
	names        []string // sorted repository names
	log          *slog.Logger
	streams      *semaphore.Weighted
	writeTimeout time.Duration
	verified     sync.Map // digest.Digest -> os.FileInfo of its part when it passed
}

type repo struct {
	tags      map[string]digest.Digest
	manifests map[digest.Digest]bool
	blobs     map[digest.Digest]bool
}

// maxDepth bounds nested indexes.
const maxDepth = 8

// New builds the repositories of set: every image's repository with its
// tag, the manifests it reaches and their blobs, plus the repositories the
// meta files list for each manifest and blob. It fails when a manifest an
// image needs, or a blob one of them references, is in none of the
// bundles.
func New(set *bundle.Set, opts Options) (*Registry, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	ns := strings.Trim(opts.Namespace, "/")
	if ns != "" && !meta.ValidRepository(ns) {
		return nil, fmt.Errorf("%w: %q", ErrNamespace, opts.Namespace)
	}
	g := &Registry{set: set, repos: map[string]*repo{}, log: opts.Log,
		streams:      semaphore.NewWeighted(cmp.Or(opts.StreamMemory, DefaultStreamMemory)),
		writeTimeout: cmp.Or(opts.WriteTimeout, DefaultWriteTimeout)}
	name := func(r string) (string, error) {
		if ns != "" {
			r = ns + "/" + r
		}
		if !meta.ValidRepository(r) {
			return "", fmt.Errorf("%w: repository %q", ErrNamespace, r)
		}
		return r, nil
	}
	get := func(r string) (*repo, error) {
		n, err := name(r)
		if err != nil {
			return nil, err
		}
		rp := g.repos[n]
		if rp == nil {
			rp = &repo{tags: map[string]digest.Digest{}, manifests: map[digest.Digest]bool{}, blobs: map[digest.Digest]bool{}}
			g.repos[n] = rp
		}
		return rp, nil
	}
	for _, img := range set.Images() {
		rp, err := get(img.Repository)
		if err != nil {
			return nil, err
		}
		if img.Tag != "" {
			rp.tags[img.Tag] = img.Digest
		}
		if err := g.walk(rp, img.Digest, 0); err != nil {
			return nil, fmt.Errorf("image %s: %w", img.Source, err)
		}
	}
	for _, bd := range set.Bundles {
		for _, mf := range bd.Meta.Manifests {
			for _, r := range mf.Repos {
				rp, err := get(r)
				if err != nil {
					return nil, err
				}
				if err := g.walk(rp, mf.Digest, 0); err != nil {
					return nil, err
				}
			}
		}
		for _, b := range bd.Meta.Blobs {
			for _, r := range b.Repos {
				rp, err := get(r)
				if err != nil {
					return nil, err
				}
				rp.blobs[b.Digest] = true
			}
		}
	}
	for n := range g.repos {
		g.names = append(g.names, n)
	}
	slices.Sort(g.names)
	return g, nil
}

// walk adds manifest dg, its children and their blobs to rp.
func (g *Registry) walk(rp *repo, dg digest.Digest, depth int) error {
	if rp.manifests[dg] {
		return nil
	}
	mf := g.set.Manifest(dg)
	if mf == nil {
		return fmt.Errorf("manifest %s: %w", dg, bundle.ErrBlobMissing)
	}
	if depth > maxDepth {
		return fmt.Errorf("manifest %s: %w: indexes nested too deep", dg, oci.ErrUnsupported)
	}
	m, err := bundle.ParseManifest(*mf)
	if err != nil {
		return err
	}
	blobs, children, err := oci.References(m)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", dg, err)
	}
	rp.manifests[dg] = true
	for _, d := range blobs {
		if _, ok := g.set.Blob(d.Digest); !ok {
			return fmt.Errorf("manifest %s: blob %s: %w (in none of the given bundles)", dg, d.Digest, bundle.ErrBlobMissing)
		}
		rp.blobs[d.Digest] = true
	}
	for _, c := range children {
		if err := g.walk(rp, c.Digest, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// Repositories lists the served repositories, sorted.
func (g *Registry) Repositories() []string { return slices.Clone(g.names) }

// Tags lists the tags of a repository, sorted.
func (g *Registry) Tags(repository string) []string {
	rp := g.repos[repository]
	if rp == nil {
		return nil
	}
	tags := make([]string, 0, len(rp.tags))
	for t := range rp.tags {
		tags = append(tags, t)
	}
	slices.Sort(tags)
	return tags
}

// OCI error codes (distribution spec).
const (
	codeBlobUnknown     = "BLOB_UNKNOWN"
	codeManifestUnknown = "MANIFEST_UNKNOWN"
	codeNameUnknown     = "NAME_UNKNOWN"
	codeNameInvalid     = "NAME_INVALID"
	codeDigestInvalid   = "DIGEST_INVALID"
	codeUnsupported     = "UNSUPPORTED"
	codeRangeInvalid    = "RANGE_INVALID"
)

type errorBody struct {
	Errors []errorEntry `json:"errors"`
}

type errorEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

func writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string, detail any) {
	b, _ := json.Marshal(errorBody{Errors: []errorEntry{{Code: code, Message: msg, Detail: detail}}})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}

// ServeHTTP answers the read side of the distribution API.
func (g *Registry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	p := r.URL.Path
	if !strings.HasPrefix(p+"/", "/v2/") {
		writeError(w, r, http.StatusNotFound, codeUnsupported, "not a registry API path", map[string]string{"path": p})
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, r, http.StatusMethodNotAllowed, codeUnsupported, "ferry serve is read-only", map[string]string{"method": r.Method})
		return
	}
	if p == "/v2" || p == "/v2/" {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "2")
		if r.Method == http.MethodGet {
			_, _ = io.WriteString(w, "{}")
		}
		return
	}
	if p == "/v2/_catalog" {
		g.list(w, r, "repositories", "", g.names)
		return
	}
	parts := strings.Split(strings.TrimPrefix(p, "/v2/"), "/")
	n := len(parts)
	if n < 3 {
		writeError(w, r, http.StatusNotFound, codeNameUnknown, "repository name not known to registry", nil)
		return
	}
	var kind, arg string
	var nameParts []string
	switch {
	case parts[n-2] == "tags" && parts[n-1] == "list":
		kind, nameParts = "tags", parts[:n-2]
	case parts[n-2] == "manifests", parts[n-2] == "blobs", parts[n-2] == "referrers":
		kind, arg, nameParts = parts[n-2], parts[n-1], parts[:n-2]
	case n >= 4 && parts[n-3] == "blobs" && parts[n-2] == "uploads":
		writeError(w, r, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", nil)
		return
	default:
		writeError(w, r, http.StatusNotFound, codeNameUnknown, "repository name not known to registry", nil)
		return
	}
	name := strings.Join(nameParts, "/")
	if !meta.ValidRepository(name) {
		writeError(w, r, http.StatusBadRequest, codeNameInvalid, "invalid repository name", map[string]string{"name": name})
		return
	}
	rp := g.repos[name]
	if rp == nil {
		writeError(w, r, http.StatusNotFound, codeNameUnknown, "repository name not known to registry", map[string]string{"name": name})
		return
	}
	switch kind {
	case "tags":
		g.list(w, r, "tags", name, g.Tags(name))
	case "manifests":
		g.manifest(w, r, rp, arg)
	case "blobs":
		g.blob(w, r, rp, arg)
	case "referrers":
		g.referrers(w, r, rp, arg)
	}
}

// list answers the catalog or a tag list, with n/last pagination and a
// Link header to the next page.
func (g *Registry) list(w http.ResponseWriter, r *http.Request, key, name string, all []string) {
	q := r.URL.Query()
	if last := q.Get("last"); last != "" {
		i, _ := slices.BinarySearch(all, last)
		for i < len(all) && all[i] <= last {
			i++
		}
		all = all[i:]
	}
	if ns := q.Get("n"); ns != "" {
		n, err := strconv.Atoi(ns)
		if err != nil || n < 0 {
			writeError(w, r, http.StatusBadRequest, "PAGINATION_NUMBER_INVALID", "invalid number of results requested", map[string]string{"n": ns})
			return
		}
		if n < len(all) {
			all = all[:n]
			if n > 0 {
				next := url.Values{"n": {ns}, "last": {all[n-1]}}
				w.Header().Set("Link", fmt.Sprintf("<%s?%s>; rel=\"next\"", r.URL.Path, next.Encode()))
			}
		}
	}
	body := map[string]any{key: append([]string{}, all...)}
	if name != "" {
		body["name"] = name
	}
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	if r.Method == http.MethodGet {
		_, _ = w.Write(b)
	}
}

func (g *Registry) manifest(w http.ResponseWriter, r *http.Request, rp *repo, reference string) {
	var dg digest.Digest
	if strings.Contains(reference, ":") {
		d, err := digest.Parse(reference)
		if err != nil {
			writeError(w, r, http.StatusBadRequest, codeDigestInvalid, "provided digest did not match uploaded content", map[string]string{"digest": reference})
			return
		}
		dg = d
	} else if !meta.ValidTag(reference) {
		writeError(w, r, http.StatusBadRequest, "TAG_INVALID", "manifest tag did not match URI", map[string]string{"tag": reference})
		return
	} else {
		dg = rp.tags[reference]
	}
	mf := g.set.Manifest(dg)
	if dg == "" || !rp.manifests[dg] || mf == nil {
		writeError(w, r, http.StatusNotFound, codeManifestUnknown, "manifest unknown to registry", map[string]string{"reference": reference})
		return
	}
	h := w.Header()
	h.Set("Content-Type", mf.MediaType)
	h.Set("Content-Length", strconv.FormatInt(mf.Size, 10))
	h.Set("Docker-Content-Digest", mf.Digest.String())
	h.Set("Etag", `"`+mf.Digest.String()+`"`)
	if r.Method == http.MethodGet {
		_, _ = w.Write(mf.Raw) // checked against its digest when the meta file was parsed
	}
}

func (g *Registry) blob(w http.ResponseWriter, r *http.Request, rp *repo, arg string) {
	dg, err := digest.Parse(arg)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, codeDigestInvalid, "provided digest did not match uploaded content", map[string]string{"digest": arg})
		return
	}
	var size, cost int64
	var open func() (io.ReadCloser, error)
	var stamp func() os.FileInfo // the part's identity now
	if bd, b, ok := g.set.Stored(dg); ok && rp.blobs[dg] {
		size, cost = b.Size, StreamCost(bundle.Codec(bd.Meta.Compression))
		open = func() (io.ReadCloser, error) {
			return g.set.BlobGet(r.Context(), ref.Ref{}, descriptor.Descriptor{MediaType: b.MediaType, Digest: b.Digest, Size: b.Size})
		}
		stamp = func() os.FileInfo {
			st, _ := os.Stat(filepath.Join(bd.Dir, b.Part))
			return st
		}
	} else if mf := g.set.Manifest(dg); mf != nil && rp.manifests[dg] {
		// manifests are blobs too (distribution serves them here)
		size = mf.Size
		open = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(mf.Raw)), nil }
	} else {
		writeError(w, r, http.StatusNotFound, codeBlobUnknown, "blob unknown to registry", map[string]string{"digest": arg})
		return
	}
	h := w.Header()
	h.Set("Docker-Content-Digest", dg.String())
	h.Set("Etag", `"`+dg.String()+`"`)
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Type", "application/octet-stream")
	start, length, status := int64(0), size, http.StatusOK
	if rh := r.Header.Get("Range"); rh != "" {
		s, l, ok := parseRange(rh, size)
		if !ok {
			h.Del("Content-Type")
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
			writeError(w, r, http.StatusRequestedRangeNotSatisfiable, codeRangeInvalid, "requested range not satisfiable", map[string]string{"range": rh})
			return
		}
		if s >= 0 {
			start, length, status = s, l, http.StatusPartialContent
			h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+length-1, size))
		}
	}
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return
	}
	if cost > 0 {
		if !g.streams.TryAcquire(cost) {
			h.Del("Content-Length")
			h.Del("Content-Range")
			h.Set("Retry-After", "1")
			writeError(w, r, http.StatusServiceUnavailable, "UNAVAILABLE", "too many blob downloads at once; retry", nil)
			return
		}
		defer g.streams.Release(cost)
	}
	dw := &deadlineWriter{rc: http.NewResponseController(w), w: w, timeout: g.writeTimeout}
	if status == http.StatusPartialContent && g.passed(dg, stamp) {
		g.sendRange(w, dw, r, dg, start, length)
		return
	}
	rc, err := open()
	if err != nil {
		g.log.Warn("opening blob", "digest", dg, "err", err)
		h.Del("Content-Length")
		h.Del("Content-Range")
		writeError(w, r, http.StatusInternalServerError, codeBlobUnknown, "blob could not be read", map[string]string{"digest": arg})
		return
	}
	defer rc.Close()
	var st os.FileInfo // the part as it was when the blob was read
	if stamp != nil {
		st = stamp()
	}
	hw := &headerWriter{w: dw, rw: w, status: status}
	err = copyVerified(hw, rc, start, length)
	if err == nil && st != nil {
		g.verified.Store(dg, st) // the whole blob passed its digest check
	}
	if err != nil {
		if r.Context().Err() != nil {
			return // the client went away
		}
		g.log.Error("blob failed its check while streaming: response aborted", "digest", dg, "repository", strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v2/"), "/blobs/"+arg), "err", err)
		if !hw.wrote {
			h.Del("Content-Length")
			h.Del("Content-Range")
			h.Del("Docker-Content-Digest")
			writeError(w, r, http.StatusInternalServerError, codeBlobUnknown, "blob failed its digest check", map[string]string{"digest": arg})
			return
		}
		panic(http.ErrAbortHandler) // the client sees a truncated body
	}
}

// headerWriter sends the status line with the first byte of the body.
type headerWriter struct {
	w      io.Writer
	rw     http.ResponseWriter
	status int
	wrote  bool
}

func (hw *headerWriter) Write(p []byte) (int, error) {
	if !hw.wrote {
		hw.wrote = true
		hw.rw.WriteHeader(hw.status)
	}
	return hw.w.Write(p)
}

// deadlineWriter gives every write to the client its own deadline: a
// client that stops reading is cut after timeout, its stream released.
type deadlineWriter struct {
	rc      *http.ResponseController
	w       io.Writer
	timeout time.Duration
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	_ = d.rc.SetWriteDeadline(time.Now().Add(d.timeout))
	return d.w.Write(p)
}

// passed reports whether blob dg passed its digest check in full before,
// from the part file it is still read from (same file, size and time).
func (g *Registry) passed(dg digest.Digest, stamp func() os.FileInfo) bool {
	v, ok := g.verified.Load(dg)
	if !ok || stamp == nil {
		return false
	}
	then, now := v.(os.FileInfo), stamp()
	return now != nil && os.SameFile(then, now) && then.Size() == now.Size() && then.ModTime().Equal(now.ModTime())
}

// sendRange sends bytes [start, start+length) of a blob that passed its
// digest check before, reading only those bytes (a compressed entry:
// decoding up to them, not hashing).
func (g *Registry) sendRange(w http.ResponseWriter, dw io.Writer, r *http.Request, dg digest.Digest, start, length int64) {
	rc, err := g.set.OpenBlobFrom(r.Context(), dg, start)
	if err != nil {
		g.verified.Delete(dg)
		g.log.Warn("opening blob", "digest", dg, "err", err)
		w.Header().Del("Content-Length")
		w.Header().Del("Content-Range")
		writeError(w, r, http.StatusInternalServerError, codeBlobUnknown, "blob could not be read", map[string]string{"digest": dg.String()})
		return
	}
	defer rc.Close()
	w.WriteHeader(http.StatusPartialContent)
	if _, err := io.CopyN(dw, rc, length); err != nil {
		if r.Context().Err() == nil {
			g.verified.Delete(dg)
			g.log.Error("blob range failed while streaming: response aborted", "digest", dg, "err", err)
		}
		panic(http.ErrAbortHandler)
	}
}

// chunk is how much of a response is held back until the blob's digest
// was checked.
const chunk = 256 << 10

// discard is io.Discard without its ReadFrom (which reads in 8 KiB
// steps), so that io.CopyBuffer uses the chunk buffers.
var discard = struct{ io.Writer }{io.Discard}

var bufPool = sync.Pool{New: func() any { return &[2][]byte{make([]byte, chunk), make([]byte, chunk)} }}

// copyVerified reads all of r (which fails at EOF on a digest or size
// mismatch) and writes bytes [start, start+length) of it to w. The last
// chunk written is held back until r reached a clean EOF, so that a blob
// failing its check never yields a complete response.
func copyVerified(w io.Writer, r io.Reader, start, length int64) error {
	bufs := bufPool.Get().(*[2][]byte)
	defer bufPool.Put(bufs)
	a, b := bufs[0], bufs[1]
	if start > 0 {
		if _, err := io.CopyBuffer(discard, io.LimitReader(r, start), a); err != nil {
			return err
		}
	}
	var held []byte
	for length > 0 {
		n, err := io.ReadFull(r, a[:min(int64(len(a)), length)])
		if err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				err = io.ErrUnexpectedEOF // the reader checks sizes: not reached
			}
			return err
		}
		if held != nil {
			if _, err := w.Write(held); err != nil {
				return err
			}
		}
		held = a[:n]
		a, b = b, a
		length -= int64(n)
	}
	// Read the rest of the blob: its digest is checked at EOF.
	if _, err := io.CopyBuffer(discard, r, a); err != nil {
		return err
	}
	if len(held) > 0 {
		_, err := w.Write(held)
		return err
	}
	return nil
}

// parseRange parses a single byte range of a blob of size bytes. It
// returns start -1 for a header to ignore (several ranges, other units),
// and ok false for a range that cannot be satisfied.
func parseRange(h string, size int64) (start, length int64, ok bool) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return -1, 0, true
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false
	}
	if first == "" { // suffix: the last N bytes
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n <= 0 || size == 0 {
			return 0, 0, false
		}
		n = min(n, size)
		return size - n, n, true
	}
	s, err := strconv.ParseInt(first, 10, 64)
	if err != nil || s < 0 || s >= size {
		return 0, 0, false
	}
	e := size - 1
	if last != "" {
		if e, err = strconv.ParseInt(last, 10, 64); err != nil || e < s {
			return 0, 0, false
		}
		e = min(e, size-1)
	}
	return s, e - s + 1, true
}

// referrers answers the OCI 1.1 referrers API from the manifests of the
// repository whose subject is the given digest.
func (g *Registry) referrers(w http.ResponseWriter, r *http.Request, rp *repo, arg string) {
	dg, err := digest.Parse(arg)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, codeDigestInvalid, "invalid digest", map[string]string{"digest": arg})
		return
	}
	type desc struct {
		MediaType    string            `json:"mediaType"`
		Digest       digest.Digest     `json:"digest"`
		Size         int64             `json:"size"`
		ArtifactType string            `json:"artifactType,omitempty"`
		Annotations  map[string]string `json:"annotations,omitempty"`
	}
	filter := r.URL.Query().Get("artifactType")
	list := []desc{}
	for m := range rp.manifests {
		mf := g.set.Manifest(m)
		var doc struct {
			Subject *struct {
				Digest digest.Digest `json:"digest"`
			} `json:"subject"`
			Annotations map[string]string `json:"annotations"`
		}
		if json.Unmarshal(mf.Raw, &doc) != nil || doc.Subject == nil || doc.Subject.Digest != dg {
			continue
		}
		at := oci.ArtifactType(mf.MediaType, mf.Raw)
		if filter != "" && at != filter {
			continue
		}
		list = append(list, desc{MediaType: mf.MediaType, Digest: mf.Digest, Size: mf.Size, ArtifactType: at, Annotations: doc.Annotations})
	}
	slices.SortFunc(list, func(a, b desc) int { return strings.Compare(a.Digest.String(), b.Digest.String()) })
	b, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": list})
	h := w.Header()
	h.Set("Content-Type", "application/vnd.oci.image.index.v1+json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	if filter != "" {
		h.Set("OCI-Filters-Applied", "artifactType")
	}
	if r.Method == http.MethodGet {
		_, _ = w.Write(b)
	}
}

// AccessLog wraps h with one log line per request: method, path, status,
// bytes sent, duration, client. An aborted response is logged as such.
func AccessLog(h http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			v := recover()
			attrs := []any{"method", r.Method, "path", r.URL.RequestURI(), "status", sw.status, "bytes", sw.n, "duration", time.Since(start).Round(time.Microsecond), "remote", r.RemoteAddr, "agent", r.UserAgent()}
			if v != nil {
				log.Warn("request aborted", attrs...)
				panic(v)
			}
			log.Info("request", attrs...)
		}()
		h.ServeHTTP(sw, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
	n      int64
	wrote  bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (write
// deadlines).
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) Write(p []byte) (int, error) {
	s.wrote = true
	n, err := s.ResponseWriter.Write(p)
	s.n += int64(n)
	return n, err
}

// Serve serves h on l until ctx ends, then shuts down gracefully: it stops
// accepting, lets running requests finish for up to grace, then closes
// what is left.
func Serve(ctx context.Context, l net.Listener, h http.Handler, grace time.Duration) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          nil,
	}
	return httpserve.Run(ctx, srv, l, grace)
}
