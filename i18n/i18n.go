// Package i18n is ferry's one message catalog, in English and Simplified
// Chinese: the CLI's help and messages and the console's page strings, kept
// in messages.yaml and formatted by golang.org/x/text/message.
//
// A message is found by its English text (the CLI's help and messages:
// printf format strings, so that the code reads as before and a message
// not in the catalog still prints in English) or by an id (the console's
// "ui.*" strings, with {name} placeholders the page fills in). The language
// is cfg.yaml's lang (image-transmit's en_US or zh_CN), else LC_ALL,
// LC_MESSAGES or LANG, else English.
package i18n

import (
	_ "embed"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"golang.org/x/text/message/catalog"
	"gopkg.in/yaml.v3"
)

// The languages of the catalog.
var (
	English = language.English
	Chinese = language.SimplifiedChinese
)

// Langs are the catalog's languages, English first (the fallback).
var Langs = []language.Tag{English, Chinese}

//go:embed messages.yaml
var messagesYAML []byte

// Entry is one message of the catalog in both languages.
type Entry struct {
	// ID names the message when its English text is not its key (the
	// console's "ui.*" strings).
	ID string `yaml:"id"`
	En string `yaml:"en"`
	Zh string `yaml:"zh"`
}

// Key is what the code looks the entry up by: its id, else its English.
func (e Entry) Key() string {
	if e.ID != "" {
		return e.ID
	}
	return e.En
}

var (
	loadOnce sync.Once
	entries  map[string]Entry
	cat      *catalog.Builder
	loadErr  error
	matcher  = language.NewMatcher(Langs)
)

// Entries is the catalog by key. It panics when messages.yaml is broken
// (a test catches that before it ships).
func Entries() map[string]Entry {
	load()
	return entries
}

func load() {
	loadOnce.Do(func() {
		entries, cat, loadErr = parse(messagesYAML)
	})
	if loadErr != nil {
		panic(loadErr)
	}
}

// parse reads a catalog file and builds the x/text catalog of it.
func parse(b []byte) (map[string]Entry, *catalog.Builder, error) {
	var list []Entry
	if err := yaml.Unmarshal(b, &list); err != nil {
		return nil, nil, fmt.Errorf("i18n: messages.yaml: %w", err)
	}
	byKey := make(map[string]Entry, len(list))
	c := catalog.NewBuilder(catalog.Fallback(English))
	for i, e := range list {
		k := e.Key()
		if k == "" {
			return nil, nil, fmt.Errorf("i18n: messages.yaml: entry %d has neither id nor en", i+1)
		}
		if _, dup := byKey[k]; dup {
			return nil, nil, fmt.Errorf("i18n: messages.yaml: %q twice", k)
		}
		byKey[k] = e
		for _, set := range []struct {
			tag  language.Tag
			text string
		}{{English, e.En}, {Chinese, e.Zh}} {
			text := lookupKey(set.text)
			if strings.HasPrefix(k, "ui.") {
				text = strings.ReplaceAll(set.text, "%", "%%") // {name} placeholders, no verbs
			}
			if text == "" {
				continue
			}
			if err := c.SetString(set.tag, lookupKey(k), text); err != nil {
				return nil, nil, fmt.Errorf("i18n: message %q: %w", k, err)
			}
		}
	}
	return byKey, c, nil
}

// lookupKey is how a key or text is stored: message.Printer knows no %w,
// so Errorf formats with %v and wraps the errors itself.
func lookupKey(s string) string { return strings.ReplaceAll(s, "%w", "%v") }

// Parse maps a language setting to a catalog language: image-transmit's
// en_US and zh_CN, POSIX locales (zh_CN.UTF-8, C), BCP 47 tags (zh-Hans).
// A language the catalog lacks is English, Traditional Chinese is
// Simplified. ok is false for an empty or unparsable setting, or C/POSIX.
func Parse(s string) (language.Tag, bool) {
	t, conf, ok := match(s)
	if !ok || conf == language.No {
		return English, ok
	}
	return t, true
}

func match(s string) (language.Tag, language.Confidence, bool) {
	s, _, _ = strings.Cut(strings.TrimSpace(s), ".") // zh_CN.UTF-8
	s, _, _ = strings.Cut(s, "@")                    // de_DE@euro
	if s == "" || s == "C" || s == "POSIX" {
		return English, language.No, false
	}
	t, err := language.Parse(strings.ReplaceAll(s, "_", "-"))
	if err != nil {
		return English, language.No, false
	}
	_, i, conf := matcher.Match(t)
	return Langs[i], conf, true
}

// Valid reports whether s names a language of the catalog (en_US, en,
// zh_CN, zh, zh-Hans…): what cfg.yaml's lang accepts.
func Valid(s string) bool {
	_, conf, ok := match(s)
	return ok && conf >= language.High
}

// Choose picks the language: the cfg.yaml setting, then the first of
// LC_ALL, LC_MESSAGES and LANG that is set (getenv reads them), else
// English.
func Choose(cfgLang string, getenv func(string) string) language.Tag {
	if t, ok := Parse(cfgLang); ok {
		return t
	}
	for _, v := range []string{"LC_ALL", "LC_MESSAGES", "LANG"} {
		if s := getenv(v); s != "" {
			t, _ := Parse(s)
			return t
		}
	}
	return English
}

// Code is the setting for a catalog language, as image-transmit writes
// it: en_US or zh_CN.
func Code(t language.Tag) string {
	if t == Chinese {
		return "zh_CN"
	}
	return "en_US"
}

// Printer formats catalog messages in one language.
type Printer struct {
	tag language.Tag
	p   *message.Printer
}

// New returns a Printer for t (one of Langs; others print English).
func New(t language.Tag) *Printer {
	load()
	if t != Chinese {
		t = English
	}
	return &Printer{tag: t, p: message.NewPrinter(t, message.Catalog(cat))}
}

// Lang is the Printer's language.
func (p *Printer) Lang() language.Tag { return p.tag }

// Sprintf formats the message of key (printf verbs, as fmt).
func (p *Printer) Sprintf(key string, args ...any) string {
	return p.p.Sprintf(lookupKey(key), args...)
}

// Fprintf writes the message of key to w.
func (p *Printer) Fprintf(w io.Writer, key string, args ...any) {
	_, _ = io.WriteString(w, p.Sprintf(key, args...))
}

// Errorf is fmt.Errorf for a catalog message: %w wraps, as in fmt.
func (p *Printer) Errorf(key string, args ...any) error {
	var wrapped []error
	if strings.Contains(key, "%w") {
		for _, a := range args {
			if err, ok := a.(error); ok {
				wrapped = append(wrapped, err)
			}
		}
	}
	return &wrapError{msg: p.Sprintf(key, args...), errs: wrapped}
}

type wrapError struct {
	msg  string
	errs []error
}

func (e *wrapError) Error() string   { return e.msg }
func (e *wrapError) Unwrap() []error { return e.errs }

// UI returns the console's strings (keys "ui.*") in language t, for the
// page: key to text with {name} placeholders.
func UI(t language.Tag) map[string]string {
	out := map[string]string{}
	for k, e := range Entries() {
		if !strings.HasPrefix(k, "ui.") {
			continue
		}
		out[k] = e.En
		if t == Chinese && e.Zh != "" {
			out[k] = e.Zh
		}
	}
	return out
}

// Keys lists the catalog's keys, sorted.
func Keys() []string {
	var ks []string
	for k := range Entries() {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
