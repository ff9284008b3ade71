package safe

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestLine(t *testing.T) {
	tests := []struct{ in, line, text string }{
		{"plain ascii: a/b:1@sha256", "plain ascii: a/b:1@sha256", "plain ascii: a/b:1@sha256"},
		{"ünïcödé 日本", "ünïcödé 日本", "ünïcödé 日本"},
		{"\x1b[2J\x1b[H screen cleared", `\x1b[2J\x1b[H screen cleared`, `\x1b[2J\x1b[H screen cleared`},
		{"\x1b]0;title\x07", `\x1b]0;title\x07`, `\x1b]0;title\x07`},
		{"\x1b]8;;http://evil/\x1b\\link\x1b]8;;\x1b\\", `\x1b]8;;http://evil/\x1b\link\x1b]8;;\x1b\`, `\x1b]8;;http://evil/\x1b\link\x1b]8;;\x1b\`},
		{"ok\rFAKE", `ok\rFAKE`, `ok\rFAKE`},
		{"two\nlines\tand tab", `two\nlines\tand tab`, "two\nlines\tand tab"},
		{"c1 csi \u009b31m", `c1 csi \u009b31m`, `c1 csi \u009b31m`},
		{"raw byte \x9b31m", `raw byte \x9b31m`, `raw byte \x9b31m`},
		{"del \x7f", `del \x7f`, `del \x7f`},
		{"bidi \u202eevil\u202c", `bidi \u202eevil\u202c`, `bidi \u202eevil\u202c`},
		{"line sep \u2028", `line sep \u2028`, `line sep \u2028`},
		{"", "", ""},
	}
	for _, tt := range tests {
		if got := Line(tt.in); got != tt.line {
			t.Errorf("Line(%q) = %q, want %q", tt.in, got, tt.line)
		}
		if got := Text(tt.in); got != tt.text {
			t.Errorf("Text(%q) = %q, want %q", tt.in, got, tt.text)
		}
	}
}

// clean reports whether s holds nothing a terminal acts on (keepLines:
// but newlines and tabs).
func clean(s string, keepLines bool) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if Bad(r) && !(keepLines && (r == '\n' || r == '\t')) {
			return false
		}
	}
	return true
}

// FuzzLine: whatever the input, the output is valid UTF-8 without a
// character a terminal acts on, and input without such characters comes
// back unchanged.
func FuzzLine(f *testing.F) {
	for _, s := range []string{"plain", "\x1b[2J", "a\nb\tc", "\xff\xfe", "\u009b", "\u202e", strings.Repeat("é", 10)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, keep := range []bool{false, true} {
			out := escape(s, keep)
			if !clean(out, keep) {
				t.Fatalf("escape(%q, %v) = %q: not clean", s, keep, out)
			}
			if clean(s, keep) && out != s {
				t.Fatalf("escape(%q, %v) = %q: a clean string changed", s, keep, out)
			}
		}
	})
}
