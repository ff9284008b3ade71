// Package meta defines the versioned meta.yaml schema that describes a ferry
// bundle: which images it holds, the manifests and blobs they need, which tar
// part stores each blob, the parts' sizes and checksums, and for an
// incremental bundle the base bundles whose blobs it skipped.
//
// A meta file is untrusted input on the upload side: Parse checks the schema
// version, rejects unknown fields and validates every digest, name and
// reference before anything else looks at it.
package meta

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"gopkg.in/yaml.v3"
)

// SchemaVersion is the version of the meta.yaml schema this package writes.
// Parse accepts versions 1 through SchemaVersion.
//
// Version 1: parts are one tar stream (compressed as a whole); entries can
// only be found by reading a part from the start.
// Version 2: every stored blob and manifest records Offset and Length,
// the byte range of its entry in the part file; each entry of a compressed
// part is its own compressed frame, so it decodes alone (see the README's
// "Bundle format").
const SchemaVersion = 2

// MaxSize is the largest meta file, one rule for the writer and every
// reader: Write refuses to leave a larger file, Load and Decode refuse one
// before parsing, and decoding a file holds at most this much of decoded
// structures. 192 MiB holds about 60,000 images of five layers (3.2 KB
// of meta file an image), past the 50,000-image mirror goal; only the
// streaming decoder reads files that large (MaxWholeDocument).
const MaxSize = 192 << 20

// Kind is the value of the kind field in every ferry meta file.
const Kind = "ferry-bundle"

// Bundle types.
const (
	TypeFull        = "full"
	TypeIncremental = "incr"
)

// Sentinel errors.
var (
	ErrSchema     = errors.New("unsupported meta schema")
	ErrInvalid    = errors.New("invalid meta file")
	ErrMetaTooBig = errors.New("meta file too large")
	ErrNotRegular = errors.New("not a regular file")
	maxMetaSize   = int64(MaxSize)
	partNameRe    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	repoRe        = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*)*$`)
	tagRe         = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
)

// Meta is the content of a bundle's meta.yaml.
type Meta struct {
	SchemaVersion int          `yaml:"schemaVersion"`
	Kind          string       `yaml:"kind"`
	ID            string       `yaml:"id"`
	Type          string       `yaml:"type"`
	Partial       bool         `yaml:"partial,omitempty"`
	Tool          string       `yaml:"tool"`
	Created       time.Time    `yaml:"created"`
	Platforms     []string     `yaml:"platforms,omitempty"`
	Compression   string       `yaml:"compression"`
	Parts         []Part       `yaml:"parts"`
	Bases         []Base       `yaml:"bases,omitempty"`
	Images        []Image      `yaml:"images"`
	Manifests     []Manifest   `yaml:"manifests"`
	Blobs         []Blob       `yaml:"blobs"`
	BaseBlobs     []BaseBlob   `yaml:"baseBlobs,omitempty"`
	Failed        []FailedItem `yaml:"failed,omitempty"`
}

// Part is one tar file of the bundle.
type Part struct {
	Name   string `yaml:"name"`
	Size   int64  `yaml:"size"`
	SHA256 string `yaml:"sha256"`
}

// Base names a bundle whose blobs this incremental bundle skipped.
type Base struct {
	ID     string `yaml:"id"`
	Meta   string `yaml:"meta"`
	SHA256 string `yaml:"sha256"`
}

// Image is one image of the bundle as the user asked for it.
type Image struct {
	// Source is the reference the image was read from.
	Source string `yaml:"source"`
	// Repository is the target repository path (no registry).
	Repository string `yaml:"repository"`
	// Tag is the tag to set at the target; empty for a digest-only image.
	Tag string `yaml:"tag,omitempty"`
	// Digest and MediaType describe the top manifest as stored in the bundle.
	Digest    digest.Digest `yaml:"digest"`
	MediaType string        `yaml:"mediaType"`
	// SourceDigest is the top manifest's digest at the source; it differs
	// from Digest when an index was filtered to fewer platforms.
	SourceDigest digest.Digest `yaml:"sourceDigest,omitempty"`
	Platforms    []string      `yaml:"platforms,omitempty"`
}

// Manifest is a manifest stored in the bundle. Raw holds its exact bytes
// (base64 in YAML); it is also stored in a part as blobs/sha256/<hex>.
type Manifest struct {
	Digest    digest.Digest `yaml:"digest"`
	MediaType string        `yaml:"mediaType"`
	Size      int64         `yaml:"size"`
	Platform  string        `yaml:"platform,omitempty"`
	Part      string        `yaml:"part"`
	Location  `yaml:",inline"`
	Repos     []string `yaml:"repos"`
	Raw       Raw      `yaml:"raw"`
}

// Location is where an entry is stored in its part file (schema 2; zero in
// schema 1). Offset is the byte offset in the part file of the entry's
// first byte: for an uncompressed part its first tar header block, for a
// compressed part the first byte of the compressed frame that holds the
// entry (its tar header, data and padding). Length is the number of bytes
// of the part file from Offset that hold the entry: header, data and
// padding to 512 bytes uncompressed, the whole frame compressed.
type Location struct {
	Offset int64 `yaml:"offset"`
	Length int64 `yaml:"length"`
}

// Located reports whether l records a place (schema 2).
func (l Location) Located() bool { return l.Length > 0 }

// Blob is a config or layer blob stored in one part of this bundle.
type Blob struct {
	Digest    digest.Digest `yaml:"digest"`
	Size      int64         `yaml:"size"`
	MediaType string        `yaml:"mediaType,omitempty"`
	Part      string        `yaml:"part"`
	Location  `yaml:",inline"`
	Repos     []string `yaml:"repos"`
}

// BaseBlob is a blob an image of this bundle needs that a base bundle
// carried; it is not stored in this bundle.
type BaseBlob struct {
	Digest    digest.Digest `yaml:"digest"`
	Size      int64         `yaml:"size"`
	MediaType string        `yaml:"mediaType,omitempty"`
	Base      string        `yaml:"base"`
	// Repos are repositories that need the blob in this bundle.
	Repos []string `yaml:"repos"`
	// BaseRepos are the repositories the base bundle pushed it to.
	BaseRepos []string `yaml:"baseRepos,omitempty"`
}

// FailedItem records an image a partial (--keep-going) save could not store.
type FailedItem struct {
	Source string `yaml:"source"`
	Error  string `yaml:"error"`
}

// Raw is manifest bytes, stored base64 encoded so that they round-trip
// exactly.
type Raw []byte

// MarshalYAML encodes r as base64.
func (r Raw) MarshalYAML() (any, error) { return base64.StdEncoding.EncodeToString(r), nil }

// UnmarshalYAML decodes base64.
func (r *Raw) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return fmt.Errorf("line %d: manifest raw bytes: %w", n.Line, err)
	}
	*r = b
	return nil
}

// Marshal encodes m as YAML (as Encode does).
func Marshal(m *Meta) ([]byte, error) {
	var buf bytes.Buffer
	if err := Encode(&buf, m); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Encode writes m as YAML to w, the bytes of one yaml.v3 Encode of the
// whole Meta (indent 2), without holding them: the long lists are
// encoded an item at a time. yaml.v3 builds a node tree of what it
// encodes, about 40 times the bytes it writes, so one Encode of a
// 10,000-image meta would need gigabytes.
func Encode(w io.Writer, m *Meta) error { return EncodeWith(w, m, nil) }

// RawSource gives the bytes of the manifest with digest d. A writer that
// keeps manifests on disk rather than in memory passes one to EncodeWith
// and ValidateWith for the manifests whose Raw is nil; each is loaded
// only while it is checked or written.
type RawSource func(d digest.Digest) ([]byte, error)

// EncodeWith is Encode with the bytes of manifests whose Raw is nil taken
// from raw (when not nil), one manifest at a time.
func EncodeWith(w io.Writer, m *Meta, raw RawSource) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	head := metaHead{
		SchemaVersion: m.SchemaVersion, Kind: m.Kind, ID: m.ID, Type: m.Type, Partial: m.Partial,
		Tool: m.Tool, Created: m.Created, Platforms: m.Platforms, Compression: m.Compression,
		Parts: m.Parts, Bases: m.Bases,
	}
	if err := encodeYAML(bw, head); err != nil {
		return err
	}
	for _, err := range []error{
		appendList[Image](bw, "images", m.Images, false, nil),
		appendList(bw, "manifests", m.Manifests, false, func(mf *Manifest) error {
			if mf.Raw != nil || raw == nil {
				return nil
			}
			b, err := raw(mf.Digest)
			mf.Raw = b
			return err
		}),
		appendList[Blob](bw, "blobs", m.Blobs, false, nil),
		appendList[BaseBlob](bw, "baseBlobs", m.BaseBlobs, true, nil),
		appendList[FailedItem](bw, "failed", m.Failed, true, nil),
	} {
		if err != nil {
			return err
		}
	}
	return bw.Flush()
}

// metaHead is Meta without its long lists (same fields, same order).
type metaHead struct {
	SchemaVersion int       `yaml:"schemaVersion"`
	Kind          string    `yaml:"kind"`
	ID            string    `yaml:"id"`
	Type          string    `yaml:"type"`
	Partial       bool      `yaml:"partial,omitempty"`
	Tool          string    `yaml:"tool"`
	Created       time.Time `yaml:"created"`
	Platforms     []string  `yaml:"platforms,omitempty"`
	Compression   string    `yaml:"compression"`
	Parts         []Part    `yaml:"parts"`
	Bases         []Base    `yaml:"bases,omitempty"`
}

func encodeYAML(w io.Writer, v any) error {
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return err
	}
	return enc.Close()
}

// appendList writes "key:" and items as a block sequence, as Encode of
// the whole Meta would, encoding one item at a time; fill, when not nil,
// completes a copy of each item before it is encoded.
func appendList[T any](w *bufio.Writer, key string, items []T, omitEmpty bool, fill func(*T) error) error {
	if len(items) == 0 {
		if !omitEmpty {
			w.WriteString(key + ": []\n")
		}
		return nil
	}
	w.WriteString(key + ":\n")
	var one bytes.Buffer
	for i := range items {
		one.Reset()
		item := items[i : i+1]
		if fill != nil {
			c := []T{items[i]}
			if err := fill(&c[0]); err != nil {
				return err
			}
			item = c
		}
		if err := encodeYAML(&one, item); err != nil {
			return err
		}
		for _, line := range bytes.SplitAfter(one.Bytes(), []byte("\n")) {
			if len(line) > 0 {
				w.WriteString("  ")
				w.Write(line)
			}
		}
	}
	return nil
}

// Parse decodes and validates a meta file. Unknown fields, unknown schema
// versions and malformed content are errors.
func Parse(b []byte) (*Meta, error) {
	if int64(len(b)) > maxMetaSize {
		return nil, fmt.Errorf("%w: %d bytes (at most %d)", ErrMetaTooBig, len(b), maxMetaSize)
	}
	return Decode(bytes.NewReader(b))
}

// OpenRegular opens a file that must be a regular file: a directory, a FIFO
// or a device is refused before it is opened (a FIFO would block, /dev/zero
// never ends), and the opened file is checked again. The open itself does
// not block either (O_NONBLOCK where the system has it): a FIFO put in the
// file's place between the two checks is refused too.
func OpenRegular(file string) (*os.File, error) {
	st, err := os.Stat(file)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w (%s)", file, ErrNotRegular, fileKind(st.Mode()))
	}
	f, err := os.OpenFile(file, os.O_RDONLY|openNonBlock, 0)
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: %w (it changed while it was opened)", file, ErrNotRegular)
	}
	return f, nil
}

func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeDevice != 0:
		return "a device"
	case m&os.ModeSocket != 0:
		return "a socket"
	}
	return "not a regular file"
}

// Load reads and parses the meta file at path, streaming (see Decode).
func Load(file string) (*Meta, error) {
	f, err := OpenRegular(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > maxMetaSize {
		return nil, fmt.Errorf("reading %s: %w: %d bytes (at most %d)", file, ErrMetaTooBig, st.Size(), maxMetaSize)
	}
	m, err := Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return m, nil
}

// FileSHA256 returns the hex sha256 of a file, used to pin base meta files.
func FileSHA256(file string) (string, error) {
	f, err := OpenRegular(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Write stores m as path atomically: a temp file in the same directory is
// written (encoded straight into it), synced and renamed over path.
func Write(file string, m *Meta) error { return WriteTee(file, m, nil, nil) }

// WriteTee is Write that also writes every byte of the file to tee (when
// not nil) as it is written, and calls beforeRename (when not nil) once
// the temp file is complete and synced, before it is renamed to file:
// an error from it leaves no file. A signature of the bytes tee saw can
// thus be written before the meta file appears.
func WriteTee(file string, m *Meta, tee io.Writer, beforeRename func() error) error {
	return WriteWith(file, m, WriteOptions{Tee: tee, BeforeRename: beforeRename})
}

// WriteOptions are the options of WriteWith.
type WriteOptions struct {
	// Tee and BeforeRename: see WriteTee.
	Tee          io.Writer
	BeforeRename func() error
	// Raw supplies the bytes of manifests whose Raw is nil (EncodeWith).
	Raw RawSource
}

// WriteWith is Write with options. A meta file that would be larger
// than MaxSize, which no reader takes, fails with ErrMetaTooBig and leaves
// nothing.
func WriteWith(file string, m *Meta, o WriteOptions) error {
	return writeAtomic(file, func(w io.Writer) error {
		w = &limitWriter{w: w, left: maxMetaSize}
		if o.Tee != nil {
			w = io.MultiWriter(w, o.Tee)
		}
		return EncodeWith(w, m, o.Raw)
	}, o.BeforeRename)
}

// limitWriter fails with ErrMetaTooBig once more than left bytes were
// written.
type limitWriter struct {
	w    io.Writer
	left int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.left {
		return 0, fmt.Errorf("%w: more than %d bytes: the readers would refuse it", ErrMetaTooBig, maxMetaSize)
	}
	l.left -= int64(len(p))
	return l.w.Write(p)
}

// WriteFileAtomic writes b to a temp file beside file and renames it.
func WriteFileAtomic(file string, b []byte) error {
	return writeAtomic(file, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	}, nil)
}

// writeAtomic writes a temp file beside file with write, syncs it and
// renames it to file.
func writeAtomic(file string, write func(io.Writer) error, beforeRename func() error) error {
	tmp, err := CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*.tmp", 0o644)
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if beforeRename != nil {
		if err := beforeRename(); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return err
	}
	return syncDir(filepath.Dir(file))
}

// CreateTemp is os.CreateTemp with the permissions perm, less the umask
// (os.CreateTemp makes 0600 files): a new file, created exclusively
// (O_EXCL, so never a file or link that is already there) in dir, named
// by pattern with its last "*" replaced by a random string.
func CreateTemp(dir, pattern string, perm os.FileMode) (*os.File, error) {
	var f *os.File
	_, err := newTemp(dir, pattern, func(name string) (err error) {
		f, err = os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		return err
	})
	return f, err
}

// MkdirTemp is os.MkdirTemp with the permissions perm, less the umask: a
// new directory (never one that is already there) in dir.
func MkdirTemp(dir, pattern string, perm os.FileMode) (string, error) {
	return newTemp(dir, pattern, func(name string) error { return os.Mkdir(name, perm) })
}

// newTemp calls create with random names made from pattern until one does
// not exist yet, and returns it.
func newTemp(dir, pattern string, create func(name string) error) (string, error) {
	prefix, suffix := pattern, ""
	if i := strings.LastIndex(pattern, "*"); i >= 0 {
		prefix, suffix = pattern[:i], pattern[i+1:]
	}
	for range 100 {
		var r [6]byte
		_, _ = rand.Read(r[:])
		name := filepath.Join(dir, prefix+hex.EncodeToString(r[:])+suffix)
		if err := create(name); !errors.Is(err, os.ErrExist) {
			return name, err
		}
	}
	return "", fmt.Errorf("creating a temporary file in %s: %w", dir, os.ErrExist)
}

// syncDir makes the renames in dir durable (parts renamed before the meta
// file are made durable with it). File systems that cannot sync a
// directory are not an error.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return nil
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) && !errors.Is(err, errors.ErrUnsupported) {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// Validate checks the internal consistency of m.
func (m *Meta) Validate() error { return m.ValidateWith(nil) }

// ValidateWith is Validate for a Meta whose manifests' Raw may be nil:
// their bytes come from raw, one at a time, and are checked the same way.
// Parse never uses it: a meta file always carries the bytes.
func (m *Meta) ValidateWith(raw RawSource) error {
	v := &validator{m: m, raw: raw, goodRepos: map[string]bool{}}
	for _, check := range []func() error{v.checkHeader, v.checkParts, v.checkBases, v.checkManifests, v.checkBlobs, v.checkBaseBlobs, v.checkOverlaps, v.checkImages} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// invalid is an ErrInvalid error.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// validator is one ValidateWith: its checks, in order, and what they
// learn for the checks after them.
type validator struct {
	m         *Meta
	raw       RawSource
	parts     map[string]bool // part names
	bases     map[string]bool // base ids
	goodRepos map[string]bool // checked already: repositories recur
	locs      *locations
	seen      map[digest.Digest]bool // manifests and blobs: each once
	manifests map[digest.Digest]bool // images must point at one of these
}

// checkHeader checks the type and the id.
func (v *validator) checkHeader() error {
	if v.m.Type != TypeFull && v.m.Type != TypeIncremental {
		return invalid("type %q", v.m.Type)
	}
	if !partNameRe.MatchString(v.m.ID) {
		return invalid("id %q", v.m.ID)
	}
	return nil
}

// checkParts checks the parts: names, each once, sizes, sha256s.
func (v *validator) checkParts() error {
	m := v.m
	v.parts = map[string]bool{}
	partSize := map[string]int64{}
	for _, p := range m.Parts {
		partSize[p.Name] = p.Size
		if !partNameRe.MatchString(p.Name) || path.Base(p.Name) != p.Name {
			return invalid("part name %q", p.Name)
		}
		if v.parts[p.Name] {
			return invalid("part %q listed twice", p.Name)
		}
		v.parts[p.Name] = true
		if p.Size < 0 {
			return invalid("part %s: size %d", p.Name, p.Size)
		}
		if b, err := hex.DecodeString(p.SHA256); err != nil || len(b) != sha256.Size {
			return invalid("part %s: sha256 %q", p.Name, p.SHA256)
		}
	}
	v.locs = &locations{schema: m.SchemaVersion, none: m.Compression == "" || m.Compression == "none", partSize: partSize, bad: invalid}
	return nil
}

// checkBases checks the base bundles' ids and sha256s.
func (v *validator) checkBases() error {
	v.bases = map[string]bool{}
	for _, b := range v.m.Bases {
		if !partNameRe.MatchString(b.ID) {
			return invalid("base id %q", b.ID)
		}
		if !partNameRe.MatchString(b.Meta) { // a file name beside this one: no directory, no ../
			return invalid("base %s: meta file name %q", b.ID, b.Meta)
		}
		if v.bases[b.ID] {
			return invalid("base %s listed twice", b.ID)
		}
		if h, err := hex.DecodeString(b.SHA256); err != nil || len(h) != sha256.Size {
			return invalid("base %s: sha256 %q", b.ID, b.SHA256)
		}
		v.bases[b.ID] = true
	}
	return nil
}

// checkRepos checks repository names.
func (v *validator) checkRepos(what entryName, lists ...[]string) error {
	for _, repos := range lists {
		for _, r := range repos {
			if v.goodRepos[r] {
				continue
			}
			if !repoRe.MatchString(r) || len(r) > 255 {
				return invalid("%s: repository %q", what, r)
			}
			v.goodRepos[r] = true
		}
	}
	return nil
}

// checkManifests checks each manifest: digest, bytes (from raw when Raw is
// nil), part, location, repositories, each once.
func (v *validator) checkManifests() error {
	m := v.m
	v.seen = make(map[digest.Digest]bool, len(m.Manifests)+len(m.Blobs))
	v.manifests = make(map[digest.Digest]bool, len(m.Manifests))
	for i, mf := range m.Manifests {
		if err := validDigest(mf.Digest); err != nil {
			return invalid("manifest %d: digest %q: %v", i, mf.Digest, err)
		}
		b := mf.Raw
		if b == nil && v.raw != nil {
			var err error
			if b, err = v.raw(mf.Digest); err != nil {
				return fmt.Errorf("manifest %s: %w", mf.Digest, err)
			}
		}
		if mf.Size != int64(len(b)) {
			return invalid("manifest %s: size %d but %d raw bytes", mf.Digest, mf.Size, len(b))
		}
		if mf.Digest.Algorithm().FromBytes(b) != mf.Digest {
			return invalid("manifest %s: raw bytes do not match the digest", mf.Digest)
		}
		if mf.Part != "" && !v.parts[mf.Part] {
			return invalid("manifest %s: unknown part %q", mf.Digest, mf.Part)
		}
		if err := v.locs.add(entryName{"manifest", mf.Digest}, mf.Part, mf.Size, mf.Location); err != nil {
			return err
		}
		if err := v.checkRepos(entryName{"manifest", mf.Digest}, mf.Repos); err != nil {
			return err
		}
		if v.seen[mf.Digest] {
			return invalid("manifest %s listed twice", mf.Digest)
		}
		v.seen[mf.Digest] = true
		v.manifests[mf.Digest] = true
	}
	return nil
}

// checkBlobs checks each stored blob: digest, size, part, location,
// repositories, each once (and never a manifest too).
func (v *validator) checkBlobs() error {
	for _, b := range v.m.Blobs {
		if err := validDigest(b.Digest); err != nil {
			return invalid("blob digest %q: %v", b.Digest, err)
		}
		if b.Size < 0 {
			return invalid("blob %s: size %d", b.Digest, b.Size)
		}
		if !v.parts[b.Part] {
			return invalid("blob %s: unknown part %q", b.Digest, b.Part)
		}
		if err := v.locs.add(entryName{"blob", b.Digest}, b.Part, b.Size, b.Location); err != nil {
			return err
		}
		if err := v.checkRepos(entryName{"blob", b.Digest}, b.Repos); err != nil {
			return err
		}
		if v.seen[b.Digest] {
			return invalid("blob %s listed twice", b.Digest)
		}
		v.seen[b.Digest] = true
	}
	return nil
}

// checkBaseBlobs checks each base blob: digest, size, base, repositories,
// each once, and never a stored blob too (upload could never push it).
func (v *validator) checkBaseBlobs() error {
	stored := make(map[digest.Digest]bool, len(v.m.Blobs))
	for _, b := range v.m.Blobs {
		stored[b.Digest] = true
	}
	baseSeen := make(map[digest.Digest]bool, len(v.m.BaseBlobs))
	for _, b := range v.m.BaseBlobs {
		if err := validDigest(b.Digest); err != nil {
			return invalid("base blob digest %q: %v", b.Digest, err)
		}
		switch {
		case b.Size < 0:
			return invalid("base blob %s: size %d", b.Digest, b.Size)
		case baseSeen[b.Digest]:
			return invalid("base blob %s listed twice", b.Digest)
		case stored[b.Digest]:
			return invalid("blob %s is both stored and a base blob", b.Digest)
		}
		baseSeen[b.Digest] = true
		if !v.bases[b.Base] {
			return invalid("base blob %s: unknown base %q", b.Digest, b.Base)
		}
		if err := v.checkRepos(entryName{"base blob", b.Digest}, b.Repos, b.BaseRepos); err != nil {
			return err
		}
	}
	return nil
}

// checkOverlaps checks that no two entries of a part overlap.
func (v *validator) checkOverlaps() error { return v.locs.overlaps() }

// checkImages checks each image: digest, repository, tag, and that its
// manifest is in the bundle.
func (v *validator) checkImages() error {
	for _, img := range v.m.Images {
		if err := validDigest(img.Digest); err != nil {
			return invalid("image %s: digest: %v", img.Source, err)
		}
		if !repoRe.MatchString(img.Repository) {
			return invalid("image %s: repository %q", img.Source, img.Repository)
		}
		if img.Tag != "" && !tagRe.MatchString(img.Tag) {
			return invalid("image %s: tag %q", img.Source, img.Tag)
		}
		if !v.manifests[img.Digest] {
			return invalid("image %s: manifest %s not in the bundle", img.Source, img.Digest)
		}
	}
	return nil
}

// validDigest is d.Validate(), without its regular expression for the
// common sha256 digest (a third of the time to load a large meta file).
func validDigest(d digest.Digest) error {
	if s := string(d); len(s) == 71 && s[:7] == "sha256:" {
		ok := true
		for i := 7; i < len(s) && ok; i++ {
			ok = s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f'
		}
		if ok {
			return nil
		}
	}
	return d.Validate()
}

// locations checks the Location of every stored entry: schema 2 entries
// lie inside their part and do not overlap; schema 1 has none.
type locations struct {
	schema   int
	none     bool // uncompressed parts: an entry holds a header and its data
	partSize map[string]int64
	bad      func(string, ...any) error
	byPart   map[string][]span
}

type span struct {
	what     entryName
	off, end int64
}

// entryName names a stored entry in messages ("blob sha256:…"), formatted
// only when one is printed.
type entryName struct {
	kind string
	d    digest.Digest
}

func (e entryName) String() string { return e.kind + " " + string(e.d) }

// tarBlock is the size of a tar header block and of the padding unit.
const tarBlock = 512

func (l *locations) add(what entryName, part string, size int64, loc Location) error {
	if l.schema < 2 {
		if loc != (Location{}) {
			return l.bad("%s: offset and length need schemaVersion 2", what)
		}
		return nil
	}
	if part == "" {
		return nil
	}
	if loc.Offset < 0 || loc.Length <= 0 || loc.Offset > l.partSize[part] || loc.Length > l.partSize[part]-loc.Offset {
		return l.bad("%s: offset %d length %d outside part %s (%d bytes)", what, loc.Offset, loc.Length, part, l.partSize[part])
	}
	if l.none && (loc.Length%tarBlock != 0 || loc.Length-tarBlock < size) {
		return l.bad("%s: length %d cannot hold a tar entry of %d bytes", what, loc.Length, size)
	}
	if l.byPart == nil {
		l.byPart = map[string][]span{}
	}
	l.byPart[part] = append(l.byPart[part], span{what, loc.Offset, loc.Offset + loc.Length})
	return nil
}

func (l *locations) overlaps() error {
	for part, spans := range l.byPart {
		sort.Slice(spans, func(i, j int) bool { return spans[i].off < spans[j].off })
		for i := 1; i < len(spans); i++ {
			if spans[i].off < spans[i-1].end {
				return l.bad("part %s: %s overlaps %s", part, spans[i].what, spans[i-1].what)
			}
		}
	}
	return nil
}

// ValidRepository reports whether s is a valid repository path.
func ValidRepository(s string) bool { return repoRe.MatchString(s) && len(s) <= 255 }

// ValidID reports whether s can be a bundle id, prefix or part name.
func ValidID(s string) bool { return partNameRe.MatchString(s) && len(s) <= 200 }

// ValidTag reports whether s is a valid tag.
func ValidTag(s string) bool { return tagRe.MatchString(s) }

// FileName returns the meta file name for a bundle id.
func FileName(id string) string { return id + "_meta.yaml" }

// ManifestByDigest returns the manifest with digest d, or nil.
func (m *Meta) ManifestByDigest(d digest.Digest) *Manifest {
	for i := range m.Manifests {
		if m.Manifests[i].Digest == d {
			return &m.Manifests[i]
		}
	}
	return nil
}

// TotalBlobBytes is the sum of the sizes of the blobs stored in the bundle.
func (m *Meta) TotalBlobBytes() int64 {
	var n int64
	for _, b := range m.Blobs {
		n += b.Size
	}
	return n
}
