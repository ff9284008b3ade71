package meta

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fast decodes b with the splitting decoder only: fell reports that it
// gave up (errFallBack).
func fast(b []byte) (m *Meta, err error, fell bool) {
	m, err = decodeFast(&io.LimitedReader{R: bytes.NewReader(b), N: maxMetaSize + 1})
	if errors.Is(err, errFallBack) {
		return nil, err, true
	}
	if err == nil {
		if err = check(m); err != nil {
			m = nil
		}
	}
	return m, err, false
}

// errClass is the sentinel an error of Parse wraps.
func errClass(err error) error {
	for _, s := range []error{ErrMetaTooBig, ErrSchema, ErrInvalid} {
		if errors.Is(err, s) {
			return s
		}
	}
	return err
}

// sameAnswer fails t unless the fast decoder, when it does not fall
// back, and Parse give the whole-document decoder's answer for b.
func sameAnswer(t *testing.T, b []byte) (fell bool) {
	t.Helper()
	want, wantErr := parseWhole(b)
	got, err, fell := fast(b)
	if !fell {
		compare(t, "fast path", got, err, want, wantErr)
	}
	got, err = Parse(b)
	compare(t, "Parse", got, err, want, wantErr)
	return fell
}

func compare(t *testing.T, what string, got *Meta, err error, want *Meta, wantErr error) {
	t.Helper()
	switch {
	case (err == nil) != (wantErr == nil):
		t.Fatalf("%s: err %v, whole-document decoder: %v", what, err, wantErr)
	case errors.Is(err, errUnknownKey):
		// refused before any tree is built; the whole decoder refuses
		// the file too, with its own first error
		return
	case err != nil && (errClass(err) != errClass(wantErr) || err.Error() != wantErr.Error()):
		t.Fatalf("%s: err %v, whole-document decoder: %v", what, err, wantErr)
	case !reflect.DeepEqual(got, want):
		t.Fatalf("%s: decoded\n%+v\nwhole-document decoder:\n%+v", what, got, want)
	}
}

// seeds are meta files of every schema and shape: the bundles kept in
// testdata, the golden files, and a small synthetic bundle.
func seeds(tb testing.TB) [][]byte {
	files, _ := filepath.Glob("../testdata/bundles/*/*_meta.yaml")
	golden, _ := filepath.Glob("../testdata/golden/*.yaml")
	var out [][]byte
	for _, f := range append(files, golden...) {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	if len(out) < 4 {
		tb.Fatalf("only %d seed meta files found", len(out))
	}
	m := synthetic(3)
	m.Partial = true
	m.Failed = []FailedItem{{Source: "reg.test/a:1", Error: "manifest unknown: \"quoted\" \\ back"}, {Source: "reg.test/b:1", Error: "plain"}}
	b, err := Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return append(out, b)
}

// TestDecodeSeeds: every seed decodes on the fast path (no fall back) to
// what the whole-document decoder gives.
func TestDecodeSeeds(t *testing.T) {
	for i, b := range seeds(t) {
		if fell := sameAnswer(t, b); fell {
			t.Errorf("seed %d fell back to the whole-document decoder", i)
		}
		if _, err := Parse(b); err != nil {
			t.Errorf("seed %d: %v", i, err)
		}
	}
}

// TestDecodeFallBack: input the splitter does not fully understand falls
// back to the whole-document decoder, and the answer is its answer.
func TestDecodeFallBack(t *testing.T) {
	good := string(seeds(t)[len(seeds(t))-1])
	first := func(old, new string) func(string) string {
		return func(s string) string {
			if !strings.Contains(s, old) {
				t.Fatalf("%q not in the seed", old)
			}
			return strings.Replace(s, old, new, 1)
		}
	}
	tests := []struct {
		name string
		edit func(string) string
		ok   bool // the whole-document decoder accepts it
	}{
		{"comment line", first("images:\n", "images:\n# a comment\n"), true},
		{"comment at the end of a line", first("type: full\n", "type: full # a comment\n"), true},
		{"blank line", first("images:\n", "images:\n\n"), true},
		{"document start", func(s string) string { return "---\n" + s }, true},
		{"document end", func(s string) string { return s + "...\n" }, true},
		{"second document", func(s string) string { return s + "---\nkind: other\n" }, true},
		{"directive", func(s string) string { return "%YAML 1.1\n---\n" + s }, true},
		{"BOM", func(s string) string { return "\ufeff" + s }, true},
		{"CRLF", func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }, true},
		{"tab indentation", first("\n    repository:", "\n\trepository:"), false},
		{"tab after a value", first("type: full\n", "type: full\t\n"), true},
		{"flow mapping at the top", first("compression: none\n", "compression: {a: b}\n"), false},
		{"flow list of images", func(s string) string {
			i := strings.Index(s, "images:\n")
			j := strings.Index(s, "manifests:\n")
			return s[:i] + "images: [{source: a}]\n" + s[j:]
		}, false},
		{"flow list of platforms", first("compression: none\n", "compression: none\nplatforms: [linux/amd64, linux/arm64]\n"), true},
		{"anchor and alias", first("    mediaType: application/vnd.oci.image.manifest.v1+json\n", "    mediaType: &mt application/vnd.oci.image.manifest.v1+json\n"), true},
		{"alias", func(s string) string {
			s = strings.Replace(s, "tool: ferry test", "tool: &t ferry test", 1)
			return strings.Replace(s, "    repository: gen/app-00001", "    repository: *t", 1)
		}, false},
		{"tag", first("tool: ferry test", "tool: !!str ferry test"), true},
		{"binary tag", first("tool: ferry test", "tool: !!binary ZmVycnk="), true},
		{"block scalar", first("tool: ferry test\n", "tool: |\n  ferry test\n"), true},
		{"folded block scalar in an item", first("    error: plain\n", "    error: >-\n      plain\n"), true},
		{"block scalar of a multi-line error", first("    error: plain\n", "    error: |-\n      line one\n      line two\n"), true},
		{"multi-line double-quoted", first("    error: plain\n", "    error: \"manifest unknown:\n      second line\"\n"), true},
		{"quoted continuation at column 0", first("    error: plain\n", "    error: \"manifest unknown:\nkind: other\"\n"), true},
		{"multi-line plain", first("    error: plain\n", "    error: plain\n      more\n"), true},
		{"duplicate top-level key", func(s string) string { return s + "type: full\n" }, false},
		{"duplicate key in an item", first("    repository: gen/app-00001\n", "    repository: gen/app-00001\n    repository: gen/app-00001\n"), false},
		{"unknown top-level key", func(s string) string { return s + "extra: 1\n" }, false}, // refused up front: see below
		{"unknown key in an item", first("    repository: gen/app-00001\n", "    repository: gen/app-00001\n    extra: 1\n"), false},
		{"sequence at column 0", func(s string) string {
			return strings.Replace(s, "\n  - source:", "\n- source:", -1)
		}, false},
		{"list of strings at column 0", first("compression: none\n", "compression: none\nplatforms:\n- linux/amd64\n"), true},
		{"NEL in a quoted string", first("    error: plain\n", "    error: \"a\u0085kind: other\"\n"), true},
		{"line separator in a quoted string", first("    error: plain\n", "    error: \"a\u2028b\"\n"), true},
		{"indented first line", func(s string) string { return "  " + s }, false},
		{"a scalar document", func(string) string { return "ferry\n" }, false},
		{"empty", func(string) string { return "" }, false},
		{"only a comment", func(string) string { return "# nothing\n" }, false},
		{"complex key", func(s string) string {
			return "? kind\n: ferry-bundle\n" + strings.Replace(s, "kind: ferry-bundle\n", "", 1)
		}, true},
		{"deep nesting", func(s string) string { return s + "extra: " + strings.Repeat("[", 20000) + "\n" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := []byte(tt.edit(good))
			if fell := sameAnswer(t, b); !fell {
				if _, err, _ := fast(b); errors.Is(err, errUnknownKey) {
					return // refused before any tree is built; the whole decoder refuses it too (sameAnswer)
				}
				t.Fatal("the fast path decoded it")
			}
			if _, err := parseWhole(b); (err == nil) != tt.ok {
				t.Errorf("whole-document decoder: %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// TestDecodeNotSeekable: Decode of a reader that cannot seek falls back
// on the bytes it kept.
func TestDecodeNotSeekable(t *testing.T) {
	b := seeds(t)[0]
	for _, in := range []string{string(b), "# comment\n" + string(b)} {
		got, err := Decode(struct{ io.Reader }{strings.NewReader(in)})
		want, wantErr := parseWhole([]byte(in))
		compare(t, "Decode", got, err, want, wantErr)
	}
}

// TestDecodeTee: the tee sees exactly the bytes decoded, restarted when
// the fast path falls back.
func TestDecodeTee(t *testing.T) {
	b := seeds(t)[0]
	for _, in := range []string{string(b), string(b) + "# comment\n", "not: [yaml"} {
		var bufs []*bytes.Buffer
		_, _ = DecodeTee(strings.NewReader(in), func() io.Writer {
			bufs = append(bufs, new(bytes.Buffer))
			return bufs[len(bufs)-1]
		})
		if len(bufs) == 0 || bufs[len(bufs)-1].String() != in {
			t.Errorf("%d writers, the last saw %d of %d bytes", len(bufs), bufs[len(bufs)-1].Len(), len(in))
		}
	}
}

// FuzzDecodeSameAsWhole: on any input the splitting decoder (when it
// does not fall back) and Parse give exactly the whole-document
// decoder's value or error. Inputs are bounded (64 KiB) so that one
// yaml.v3 decode stays short; each decoder's time is checked.
//
// Run it as make fuzz does, with -fuzzminimizetime 10x: with Go's
// default (60 s) the worker minimizes every input that finds new
// coverage, each a meta file of several KB decoded three times per try,
// and the coordinator shows "execs: 9 (0/sec)" for the whole run while
// the worker is busy minimizing (that is the "stall" an earlier attempt
// saw: the fuzz function keeps running, no input hangs).
func FuzzDecodeSameAsWhole(f *testing.F) {
	for _, b := range seeds(f) {
		if len(b) <= 64<<10 {
			f.Add(b)
		}
	}
	for _, in := range itemValues(f) {
		f.Add([]byte(in))
	}
	f.Add([]byte("schemaVersion: 2\nkind: ferry-bundle\nimages:\n  - source: a\n    platforms:\n      - x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 64<<10 {
			return
		}
		start := time.Now()
		sameAnswer(t, b)
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("decoding %d bytes took %v", len(b), d)
		}
	})
}

// TestDecodeItemValues: values the hand decoder of list items must read
// as yaml.v3 does, or leave to it (null words, quotes, escapes, odd
// integers, empty and null lists, other indentations): the answer is the
// whole-document decoder's, whether it succeeds or fails.
func TestDecodeItemValues(t *testing.T) {
	for _, in := range itemValues(t) {
		sameAnswer(t, []byte(in))
	}
}

func itemValues(tb testing.TB) []string {
	good := string(seeds(tb)[len(seeds(tb))-1])
	repl := func(old, new string) string {
		if !strings.Contains(good, old) {
			tb.Fatalf("%q not in the seed", old)
		}
		return strings.Replace(good, old, new, 1)
	}
	tag, size, repos := "    tag: \"1\"\n", "    size: 17920\n", "    repos:\n      - gen/app-00000\n"
	return []string{
		repl(tag, "    tag: 1\n"),
		repl(tag, "    tag: '1'\n"),
		repl(tag, "    tag: ~\n"),
		repl(tag, "    tag: null\n"),
		repl(tag, "    tag: NULL\n"),
		repl(tag, "    tag: \"\"\n"),
		repl(tag, "    tag: ''\n"),
		repl(tag, "    tag: 'it''s'\n"),
		repl(tag, "    tag: \"a\\tb\"\n"),
		repl(tag, "    tag: true\n"),
		repl(tag, "    tag: 0x1F\n"),
		repl(tag, "    tag: 2001-12-14\n"),
		repl(tag, "    tag:\n"),
		repl(tag, "    tag: []\n"),
		repl(tag, "    tag: {}\n"),
		repl("    raw: ", "    raw: []\n    rawx: "),
		repl(tag, "    tag: \"é\"\n"),
		repl(size, "    size: 017920\n"),
		repl(size, "    size: 0o42000\n"),
		repl(size, "    size: 0x4600\n"),
		repl(size, "    size: 17_920\n"),
		repl(size, "    size: +17920\n"),
		repl(size, "    size: 17920.0\n"),
		repl(size, "    size: 1.792e4\n"),
		repl(size, "    size: -0\n"),
		repl(size, "    size: 99999999999999999999\n"),
		repl(size, "    size: \"17920\"\n"),
		repl(size, "    size: ~\n"),
		repl(repos, "    repos: []\n"),
		repl(repos, "    repos:\n"),
		repl(repos, "    repos:\n    - gen/app-00000\n"),
		repl(repos, "    repos:\n        - gen/app-00000\n"),
		repl(repos, "    repos:\n      - ~\n"),
		repl(repos, "    repos:\n      - \"gen/app-00000\"\n"),
		repl(repos, "    repos:\n      - gen/app-00000\n      - gen/app-00000\n"),
		repl("    raw: ", "    raw: \"\"\n    rawx: "),
		repl("    raw: ", "    raw: ~\n    offset: 1\n    raw: "),
		repl("    raw: eyJ", "    raw: eyJ!"),
		repl("    raw: eyJ", "    raw: =eyJ"),
		repl("\n    repository: gen/app-00001", "\n     repository: gen/app-00001"),
		repl("\n    repository: gen/app-00001", "\n      repository: gen/app-00001"),
		repl("\n    repository: gen/app-00001", "\n   repository: gen/app-00001"),
		repl("  - source: 127.0.0.1:5900/gen/app-00001:1\n", "  - source:\n"),
		repl("  - source: 127.0.0.1:5900/gen/app-00001:1\n", "  - 127.0.0.1:5900/gen/app-00001:1\n"),
	}
}
