package meta

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// Decoding a meta file.
//
// yaml.v3 builds a node tree of the whole document before it decodes it,
// about 14 times the file's size (a 32 MB meta file of 10,000 images took
// 450 MB). Decode therefore splits the block-style YAML that Marshal
// writes into chunks: one per top-level key, and for the long lists one
// per list item, each prefixed by its key line ("blobs:\n  - digest: …"),
// and decodes each chunk with yaml.v3 into a Meta with the same strict
// field rules as a whole-document decode. Only the decoded structs and one
// chunk are held at a time.
//
// The splitter is conservative: it accepts only lines whose structure it
// fully understands (spaces for indentation, "key:" or "key: value" with
// an optional "- " in front, single-line scalars: plain ones of a safe
// character set, quoted ones that close on their line, "[]" and "{}").
// Any other line (comments, blank lines, flow collections, anchors,
// aliases, tags, block scalars, multi-line scalars, document markers,
// directives, tabs, a BOM, CRLF, a duplicate top-level key) and any chunk
// yaml.v3 refuses make it fall back to the whole-document decoder, so the
// answer (value or error) is always the whole-document decoder's.

// errFallBack is returned by the fast path for input it does not handle.
var errFallBack = errors.New("meta: fall back to the whole-document decoder")

// fallBack is errFallBack with the line that caused it and why.
type fallBack struct {
	line int
	why  string
}

func (f *fallBack) Error() string { return fmt.Sprintf("line %d: %s", f.line, f.why) }
func (f *fallBack) Unwrap() error { return errFallBack }

// MaxWholeDocument is the largest meta file read by the whole-document
// decoder, the fall back for a file in another layout than ferry writes
// (comments, flow style, anchors...): yaml.v3 builds a node tree of the
// whole document first, up to about 95 times the file's size (a flow list
// of one-letter items). 1 MiB keeps that under 100 MB; a larger file
// must be in the layout ferry writes, which streams.
const MaxWholeDocument = 1 << 20

// maxLine bounds one line of a meta file: the longest ferry writes is a
// manifest's raw bytes, base64 of at most 8 MiB (what save accepts).
const maxLine = 16 << 20

// maxChunkLines bounds the lines of one list item, or of one top-level
// value that is not a long list, that the fast path hands to yaml.v3 (a
// node tree of a few hundred bytes a line); a longer one falls back.
const maxChunkLines = 10000

// listKeys are the top-level keys whose block sequences are decoded an
// item at a time.
var listKeys = map[string]bool{"parts": true, "bases": true, "images": true, "manifests": true, "blobs": true, "baseBlobs": true, "failed": true}

// metaFields maps each top-level key to the index of its field in Meta.
var metaFields = func() map[string]int {
	t := reflect.TypeOf(Meta{})
	f := map[string]int{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		f[name] = i
	}
	return f
}()

// Decode reads a meta file from r (at most MaxSize bytes) and validates
// it as Parse does. It holds only the decoded Meta and one list item at a
// time; only for a file it falls back on (see above) does it hold the
// whole file and its node tree, as Parse always did. The fall back reads r
// again from where Decode started when r is an io.Seeker; otherwise Decode
// keeps a copy of the bytes it read.
func Decode(r io.Reader) (*Meta, error) { return decode(r, nil) }

// DecodeTee is Decode that also writes every byte it parses to a writer,
// for a signature check over exactly the bytes parsed: start is called
// each time decoding starts from the beginning of r (a second time when
// the fast path falls back and reads r again) and returns the writer for
// the bytes that follow; the last writer has seen exactly the bytes the
// result was decoded from. DecodeTee reads r to its end (at most
// MaxSize+1 bytes) even when the content is invalid.
func DecodeTee(r io.ReadSeeker, start func() io.Writer) (*Meta, error) {
	return decode(r, start)
}

func decode(r io.Reader, start func() io.Writer) (*Meta, error) {
	seeker, _ := r.(io.Seeker)
	var origin int64
	if seeker != nil {
		var err error
		if origin, err = seeker.Seek(0, io.SeekCurrent); err != nil {
			seeker = nil
		}
	}
	src := r
	if start != nil {
		src = io.TeeReader(src, start())
	}
	var kept *keptBytes
	if seeker == nil {
		kept = &keptBytes{limit: MaxWholeDocument}
		src = io.TeeReader(src, kept)
	}
	lim := &io.LimitedReader{R: src, N: maxMetaSize + 1}
	m, err := decodeFast(lim)
	switch {
	case err == nil:
		if err := check(m); err != nil {
			return nil, err
		}
		return m, nil
	case errors.Is(err, ErrMetaTooBig):
		return nil, err
	case !errors.Is(err, errFallBack):
		return nil, err
	}
	// The rest of this pass: its size decides, and a tee sees every byte.
	if _, err := io.Copy(io.Discard, lim); err != nil {
		return nil, err
	}
	if lim.N <= 0 {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrMetaTooBig, maxMetaSize)
	}
	if n := maxMetaSize + 1 - lim.N; n > MaxWholeDocument {
		return nil, fmt.Errorf("%w: %v: a meta file in another layout than ferry writes is read only up to %d bytes (this one has %d)", ErrInvalid, err, MaxWholeDocument, n)
	}
	// The whole-document decoder, on the whole input.
	var b []byte
	if seeker != nil {
		if _, err := seeker.Seek(origin, io.SeekStart); err != nil {
			return nil, err
		}
		src = r
		if start != nil {
			src = io.TeeReader(src, start())
		}
		if b, err = io.ReadAll(io.LimitReader(src, maxMetaSize+1)); err != nil {
			return nil, err
		}
	} else {
		b = kept.b
	}
	if int64(len(b)) > maxMetaSize {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrMetaTooBig, maxMetaSize)
	}
	return parseWhole(b)
}

// keptBytes keeps the first limit bytes written to it.
type keptBytes struct {
	b     []byte
	limit int
}

func (k *keptBytes) Write(p []byte) (int, error) {
	if room := k.limit - len(k.b); room > 0 {
		k.b = append(k.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// parseWhole decodes b with one yaml.v3 Decode of the whole document.
func parseWhole(b []byte) (*Meta, error) {
	var m Meta
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: empty document", ErrInvalid)
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	in := interner{}
	in.meta(&m)
	in.lists(&m)
	if err := check(&m); err != nil {
		return nil, err
	}
	return &m, nil
}

// check validates a decoded Meta: kind, schema version, consistency.
func check(m *Meta) error {
	if m.Kind != Kind {
		return fmt.Errorf("%w: kind %q, want %q", ErrInvalid, m.Kind, Kind)
	}
	if m.SchemaVersion < 1 || m.SchemaVersion > SchemaVersion {
		return fmt.Errorf("%w: schemaVersion %d (this ferry reads 1 to %d)", ErrSchema, m.SchemaVersion, SchemaVersion)
	}
	return m.Validate()
}

// fastDecoder is the splitting decoder's state.
type fastDecoder struct {
	m       Meta
	out     reflect.Value // &m, elem
	seen    map[string]bool
	key     string // current top-level key
	field   int    // its field in Meta
	split   bool   // its items are decoded one at a time
	keyLine []byte // its line, the prefix of every item chunk
	chunk   []byte // the chunk being collected
	inItem  bool
	lines   []int // offsets in chunk of an item's lines
	nlines  int   // lines in chunk
	lineNo  int   // of the input, from 1
	cost    int64 // estimated bytes of the decoded Meta so far
	in      interner
}

// fall is a fallBack at the current line.
func (d *fastDecoder) fall(why string) error { return &fallBack{d.lineNo, why} }

// decodeFast decodes r with the splitter; errFallBack when it cannot.
func decodeFast(r *io.LimitedReader) (*Meta, error) {
	d := &fastDecoder{seen: map[string]bool{}, in: interner{}}
	d.out = reflect.ValueOf(&d.m).Elem()
	br := bufio.NewReaderSize(r, 64<<10)
	var long []byte // a line longer than br's buffer
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(long) == 0 { // the start of a long line: an unknown key is refused before the rest is read
				if kerr := d.unknownKey(line, d.lineNo+1); kerr != nil {
					return nil, kerr
				}
			}
			if len(long)+len(line) > maxLine {
				return nil, fmt.Errorf("%w: line %d is longer than %d bytes (the longest ferry writes holds an 8 MiB manifest)", ErrInvalid, d.lineNo+1, maxLine)
			}
			long = append(long, line...)
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		if long != nil {
			line = append(long, line...)
			long = long[:0]
		}
		if r.N <= 0 {
			return nil, fmt.Errorf("%w: more than %d bytes", ErrMetaTooBig, maxMetaSize)
		}
		if len(line) > 0 {
			d.lineNo++
			if perr := d.line(line); perr != nil {
				return nil, perr
			}
		}
		if err != nil { // EOF
			break
		}
	}
	if err := d.flush(); err != nil {
		return nil, err
	}
	if len(d.seen) == 0 {
		return nil, d.fall("no top-level key")
	}
	d.in.meta(&d.m)
	d.in.lists(&d.m) // lists set whole ("images: []"); items are interned already
	return &d.m, nil
}

// line takes one line of input (with its "\n", if any).
func (d *fastDecoder) line(raw []byte) error {
	if err := d.unknownKey(raw, d.lineNo); err != nil {
		return err
	}
	li, ok := simpleLine(bytes.TrimSuffix(raw, []byte("\n")))
	if !ok {
		return d.fall(lineKind(raw))
	}
	indent, item, hasValue := li.indent, li.item, li.hasValue
	switch {
	case indent == 0:
		if item || len(li.key) == 0 {
			return d.fall("a list or scalar at the top level")
		}
		key := string(li.key)
		if err := d.flush(); err != nil {
			return err
		}
		f := metaFields[key] // known: unknownKey checked
		if d.seen[key] {
			return d.fall("a key given twice") // an error: the whole decoder says which
		}
		d.seen[key], d.key, d.field = true, key, f
		d.split = listKeys[key] && !hasValue
		d.inItem = false
		if d.split {
			d.keyLine = append(d.keyLine[:0], raw...)
			if raw[len(raw)-1] != '\n' {
				d.keyLine = append(d.keyLine, '\n')
			}
			return nil
		}
		d.chunk = append(d.chunk[:0], raw...)
		d.nlines = 1
	case d.key == "":
		return d.fall("an indented first line")
	case !d.split:
		if d.nlines++; d.nlines > maxChunkLines {
			return d.fall(fmt.Sprintf("a value of more than %d lines", maxChunkLines))
		}
		d.chunk = append(d.chunk, raw...)
	case indent == 2 && item:
		if err := d.flush(); err != nil {
			return err
		}
		d.inItem = true
		d.chunk = append(append(d.chunk[:0], d.keyLine...), raw...)
		d.lines = append(d.lines[:0], len(d.keyLine))
	case indent > 2 && d.inItem:
		if len(d.lines) >= maxChunkLines {
			return d.fall(fmt.Sprintf("a list item of more than %d lines", maxChunkLines))
		}
		d.lines = append(d.lines, len(d.chunk))
		d.chunk = append(d.chunk, raw...)
	default:
		return d.fall("an indentation ferry does not write")
	}
	return nil
}

// errUnknownKey marks an unknown top-level key, refused by the fast path
// before yaml.v3 builds any tree (the whole-document decoder would refuse
// it as well, after building the tree of the whole file).
var errUnknownKey = errors.New("unknown top-level field")

// unknownKey refuses a line that starts a top-level key Meta does not
// have, whatever its value (a flow list of millions of items). Every line
// before it was one the splitter follows, so a key at column 0 is a key
// of the top-level mapping.
func (d *fastDecoder) unknownKey(raw []byte, lineNo int) error {
	n := identLen(raw)
	if n == 0 || n == len(raw) || raw[n] != ':' || (n+1 < len(raw) && raw[n+1] != ' ' && raw[n+1] != '\n') {
		return nil
	}
	if _, known := metaFields[string(raw[:n])]; known {
		return nil
	}
	return fmt.Errorf("%w: line %d: %w %q", ErrInvalid, lineNo, errUnknownKey, raw[:n])
}

// flush decodes the chunk collected and merges it into d.m.
func (d *fastDecoder) flush() error {
	if len(d.chunk) == 0 {
		return nil
	}
	dst := d.out.Field(d.field)
	if d.split {
		elem := reflect.New(dst.Type().Elem()).Elem()
		if d.handItem(elem) {
			d.chunk = d.chunk[:0]
			dst.Set(reflect.Append(dst, elem))
			d.in.item(dst.Index(dst.Len() - 1).Addr().Interface())
			return d.spend(elem)
		}
	}
	var part Meta
	dec := yaml.NewDecoder(bytes.NewReader(d.chunk))
	dec.KnownFields(true)
	err := dec.Decode(&part)
	d.chunk = d.chunk[:0]
	if err != nil {
		return d.fall("YAML the splitter passes on") // the whole decoder gives the error, with its line numbers
	}
	v := reflect.ValueOf(&part).Elem().Field(d.field)
	if !d.split {
		dst.Set(v)
		return d.spend(v)
	}
	if v.Len() != 1 {
		return d.fall("a list item the splitter cannot tell apart")
	}
	dst.Set(reflect.Append(dst, v.Index(0)))
	d.in.item(dst.Index(dst.Len() - 1).Addr().Interface())
	return d.spend(v.Index(0))
}

// spend adds what v holds to the decoded Meta's estimated size and
// refuses a file whose decoded Meta would grow past the meta file limit
// (tiny list items of large structs: a 14-byte "- source: a" line is a
// 120-byte Image): however a file under the limit is shaped, decoding it
// holds no more than that.
func (d *fastDecoder) spend(v reflect.Value) error {
	d.cost += sizeOf(v)
	if d.cost > maxMetaSize {
		return fmt.Errorf("%w: line %d: the decoded meta file would pass %d bytes (of structures: short list items)", ErrInvalid, d.lineNo, maxMetaSize)
	}
	return nil
}

// sizeOf estimates the bytes v holds: its own size, and what its strings,
// byte slices and slices point to.
func sizeOf(v reflect.Value) int64 {
	n := int64(v.Type().Size())
	switch v.Kind() {
	case reflect.String:
		n += int64(v.Len())
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return n + int64(v.Len())
		}
		for i := range v.Len() {
			n += sizeOf(v.Index(i))
		}
	case reflect.Struct:
		n = 0
		for i := range v.NumField() {
			n += sizeOf(v.Field(i))
		}
	}
	return n
}

// lineKind says what a line the splitter does not follow is.
func lineKind(raw []byte) string {
	t := bytes.TrimSpace(raw)
	switch {
	case len(t) == 0:
		return "a blank line"
	case t[0] == '#':
		return "a comment"
	case bytes.ContainsAny(raw, "\t\r"):
		return "a tab or carriage return"
	}
	return "YAML in another style than ferry writes"
}

// lineInfo is a line simpleLine understood.
type lineInfo struct {
	indent   int
	item     bool   // it starts with "- "
	key      []byte // "key:" or "key: value"; empty for a scalar entry
	hasValue bool
	value    []byte
}

// simpleLine parses a line (without its "\n") the fast path understands:
// indent spaces, an optional "- ", then "key:", "key: value" or (after
// "- " only) "value". ok is false for any other line.
func simpleLine(l []byte) (li lineInfo, ok bool) {
	for li.indent < len(l) && l[li.indent] == ' ' {
		li.indent++
	}
	rest := l[li.indent:]
	if len(rest) == 0 {
		return li, false
	}
	if len(rest) >= 2 && rest[0] == '-' && rest[1] == ' ' {
		li.item, rest = true, rest[2:]
	}
	n := identLen(rest)
	if n > 0 && n < len(rest) && rest[n] == ':' {
		switch {
		case n+1 == len(rest):
			li.key = rest[:n]
			return li, true
		case rest[n+1] == ' ':
			li.key, li.hasValue, li.value = rest[:n], true, rest[n+2:]
			return li, simpleValue(li.value)
		}
	}
	li.hasValue, li.value = true, rest
	return li, li.item && simpleValue(rest)
}

// identLen is the length of the key ([A-Za-z][A-Za-z0-9]*) at the start
// of b.
func identLen(b []byte) int {
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return i
		}
	}
	return len(b)
}

// simpleValue reports whether v is a scalar on one line that cannot open
// a structure reaching into the next lines or refer to another part of
// the document: "[]", "{}", a quoted scalar closed at the end of v, or a
// plain scalar of letters, digits and a few punctuation characters.
func simpleValue(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	switch {
	case len(v) == 2 && (v[0] == '[' && v[1] == ']' || v[0] == '{' && v[1] == '}'):
		return true
	case v[0] == '"':
		for i := 1; i < len(v); i++ {
			switch c := v[i]; {
			case c == '\\':
				if i+1 >= len(v) || !safeQuoted(v, i+1) {
					return false
				}
				i++
			case c == '"':
				return i == len(v)-1
			case !safeQuoted(v, i):
				return false
			}
		}
		return false
	case v[0] == '\'':
		for i := 1; i < len(v); i++ {
			switch c := v[i]; {
			case c == '\'':
				if i+1 < len(v) && v[i+1] == '\'' {
					i++
					continue
				}
				return i == len(v)-1
			case !safeQuoted(v, i):
				return false
			}
		}
		return false
	}
	if !plainFirst(v[0]) || v[len(v)-1] == ' ' || v[len(v)-1] == ':' {
		return false
	}
	if v[0] == '-' && (len(v) == 1 || v[1] == ' ') {
		return false
	}
	for i, c := range v {
		if !plainChars[c] || (c == ':' && i+1 < len(v) && v[i+1] == ' ') {
			return false
		}
	}
	return true
}

// safeQuoted reports whether the byte at v[i], inside a quoted scalar, is
// printable and not part of a character YAML reads as a line break or a
// byte order mark (NEL, LS, PS, BOM).
func safeQuoted(v []byte, i int) bool {
	c := v[i]
	switch {
	case c < 0x20 || c == 0x7f:
		return false
	case c < 0x80:
		return true
	case c == 0xC2:
		return i+1 < len(v) && v[i+1] != 0x85
	case c == 0xE2:
		return i+2 < len(v) && !(v[i+1] == 0x80 && (v[i+2] == 0xA8 || v[i+2] == 0xA9))
	case c == 0xEF:
		return i+2 < len(v) && !(v[i+1] == 0xBB && v[i+2] == 0xBF)
	}
	return true
}

// plainFirsts and plainChars are the bytes a plain scalar may start
// with and hold.
var plainFirsts, plainChars = func() (first, any [256]bool) {
	for c := range 256 {
		b := byte(c)
		first[c] = b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || strings.IndexByte("_./+=~-", b) >= 0
		any[c] = first[c] || strings.IndexByte(" :@,()", b) >= 0
	}
	return first, any
}()

func plainFirst(c byte) bool { return plainFirsts[c] }

// interner makes equal strings of a Meta share one copy: ~50,000 blob
// records of a 10,000-image bundle name a handful of media types and
// parts, and repositories recur in images, manifests and blobs.
type interner map[string]string

func (in interner) s(p *string) {
	if *p == "" {
		return
	}
	if v, ok := in[*p]; ok {
		*p = v
		return
	}
	in[*p] = *p
}

func (in interner) all(l []string) {
	for i := range l {
		in.s(&l[i])
	}
}

// item interns the shared strings of one list item.
func (in interner) item(v any) {
	switch x := v.(type) {
	case *Part:
		in.s(&x.Name)
	case *Image:
		in.s(&x.Repository)
		in.s(&x.MediaType)
		in.all(x.Platforms)
	case *Manifest:
		in.s(&x.MediaType)
		in.s(&x.Platform)
		in.s(&x.Part)
		in.all(x.Repos)
	case *Blob:
		in.s(&x.MediaType)
		in.s(&x.Part)
		in.all(x.Repos)
	case *BaseBlob:
		in.s(&x.MediaType)
		in.s(&x.Base)
		in.all(x.Repos)
		in.all(x.BaseRepos)
	case *Base:
		in.s(&x.ID)
	}
}

// meta interns the strings of m's head and, for a whole-document decode,
// of its lists.
func (in interner) meta(m *Meta) {
	in.all(m.Platforms)
	in.s(&m.Compression)
	for i := range m.Parts {
		in.item(&m.Parts[i])
	}
	for i := range m.Bases {
		in.item(&m.Bases[i])
	}
}

// lists interns every list of m (after a whole-document decode).
func (in interner) lists(m *Meta) {
	for i := range m.Images {
		in.item(&m.Images[i])
	}
	for i := range m.Manifests {
		in.item(&m.Manifests[i])
	}
	for i := range m.Blobs {
		in.item(&m.Blobs[i])
	}
	for i := range m.BaseBlobs {
		in.item(&m.BaseBlobs[i])
	}
}
