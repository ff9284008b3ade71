// Package safe makes foreign strings (from a bundle, a manifest or a
// registry) safe to print on a terminal: every control character, every
// byte that is not UTF-8, and the Unicode characters that reorder or break
// lines are shown as Go escapes (\x1b, \u009b, \u202e) instead of acting.
// It is the one sanitiser of ferry's text output and logs; JSON output
// escapes by its own rules and does not use it.
package safe

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Line returns s with every character that a terminal could act on
// escaped, newlines and tabs included: a foreign field printed on one
// line stays one line.
func Line(s string) string { return escape(s, false) }

// Text is Line, but keeps newlines and tabs: for messages of several
// lines (an error that joins several problems).
func Text(s string) string { return escape(s, true) }

// Error is Text of err's message ("" for nil).
func Error(err error) string {
	if err == nil {
		return ""
	}
	return Text(err.Error())
}

// Bad reports whether r is escaped by Line: C0 and C1 control characters,
// DEL, line and paragraph separators, and the bidirectional formatting
// characters (which make a terminal show text in another order than it
// is, "Trojan Source").
func Bad(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, r == 0x2028, r == 0x2029,
		r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0xfeff:
		return true
	}
	return false
}

func escape(s string, keepLines bool) string {
	i := firstBad(s, keepLines)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case keepLines && (r == '\n' || r == '\t'):
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x80 && Bad(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case Bad(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// firstBad is the index of the first byte of s to escape, or -1.
func firstBad(s string, keepLines bool) int {
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || (Bad(r) && !(keepLines && (r == '\n' || r == '\t'))) {
			return i
		}
		i += n
	}
	return -1
}
