package meta

import (
	"bytes"
	"encoding/base64"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Decoding the common list item without yaml.v3.
//
// yaml.v3 spends about 0.4 ms on each list item of a meta file (its
// parser, a node tree, reflection), 2 s or more for a 10,000-image
// bundle. handItem decodes an item itself when every line is of the
// shape Marshal writes and every value means the same to yaml.v3 and to
// it: "key: value" lines at the item's indentation, strings as plain
// ASCII scalars (not null, ~, Null or NULL: yaml.v3 reads those as empty)
// or quoted ones without escapes, integers in decimal without a leading
// zero, base64 raw bytes, string lists at two more spaces (or "[]").
// Anything else (an unknown or repeated key, another indentation, a
// value that yaml.v3 might read differently) is left to yaml.v3, so the
// answer never differs.

var rawType = reflect.TypeOf(Raw(nil))

// itemFields maps, for each list item type, a YAML key to its field
// (through inline structs such as Location).
var itemFields sync.Map // reflect.Type -> map[string][]int

func fieldsOf(t reflect.Type) map[string][]int {
	if f, ok := itemFields.Load(t); ok {
		return f.(map[string][]int)
	}
	f := map[string][]int{}
	var walk func(t reflect.Type, index []int)
	walk = func(t reflect.Type, index []int) {
		for i := range t.NumField() {
			sf := t.Field(i)
			name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
			idx := append(append([]int{}, index...), i)
			if opts == "inline" {
				walk(sf.Type, idx)
				continue
			}
			f[name] = idx
		}
	}
	walk(t, nil)
	itemFields.Store(t, f)
	return f
}

// handItem decodes the item in d.chunk (at d.lines) into elem; false
// leaves it to yaml.v3.
func (d *fastDecoder) handItem(elem reflect.Value) bool {
	if elem.Kind() != reflect.Struct {
		return false
	}
	fields := fieldsOf(elem.Type())
	var seen [16][]int // fields of this item, to refuse a repeated key
	nseen := 0
	lines := d.lines
	line := func(i int) []byte {
		end := len(d.chunk)
		if i+1 < len(lines) {
			end = lines[i+1]
		}
		return bytes.TrimSuffix(d.chunk[lines[i]:end], []byte("\n"))
	}
	for i := 0; i < len(lines); i++ {
		li, ok := simpleLine(line(i))
		if !ok || len(li.key) == 0 || (i == 0) != li.item || li.indent != 2+2*min(i, 1) {
			return false
		}
		idx, known := fields[string(li.key)]
		if !known || nseen == len(seen) || slices.ContainsFunc(seen[:nseen], func(s []int) bool { return slices.Equal(s, idx) }) {
			return false
		}
		seen[nseen] = idx
		nseen++
		if i, ok = d.handField(elem.FieldByIndex(idx), li, line, len(lines), i); !ok {
			return false
		}
	}
	return true
}

// handField decodes the value of line i (li) into field f: a string, an
// int64, base64 bytes, or a list of strings on the lines after it (line
// gives line j of n). It returns the last line it used; false leaves the
// item to yaml.v3.
func (d *fastDecoder) handField(f reflect.Value, li lineInfo, line func(int) []byte, n, i int) (int, bool) {
	switch {
	case f.Kind() == reflect.String:
		s, ok := d.handString(li, sharedKeys[string(li.key)])
		if !ok {
			return i, false
		}
		f.SetString(s)
	case f.Kind() == reflect.Int64:
		if !li.hasValue {
			return i, false
		}
		v, ok := handInt(li.value)
		if !ok {
			return i, false
		}
		f.SetInt(v)
	case f.Type() == rawType:
		s, ok := d.handString(li, false)
		if !ok {
			return i, false
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return i, false
		}
		f.SetBytes(b)
	case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
		return d.handList(f, li, line, n, i)
	default:
		return i, false
	}
	return i, true
}

// handList decodes a list of strings, "[]" or one item a line after
// line i, into f.
func (d *fastDecoder) handList(f reflect.Value, li lineInfo, line func(int) []byte, n, i int) (int, bool) {
	if li.hasValue {
		if string(li.value) != "[]" {
			return i, false
		}
		f.Set(reflect.MakeSlice(f.Type(), 0, 0))
		return i, true
	}
	var list []string
	for i+1 < n {
		e, ok := simpleLine(line(i + 1))
		if !ok || e.indent != 6 || !e.item || len(e.key) != 0 {
			break
		}
		s, ok := d.handString(e, true)
		if !ok {
			return i, false
		}
		list = append(list, s)
		i++
	}
	if list == nil {
		return i, false // "key:" alone is null: yaml.v3's
	}
	f.Set(reflect.ValueOf(list).Convert(f.Type()))
	return i, true
}

// sharedKeys name the string fields whose values recur (interned as they
// are decoded; string lists always are).
var sharedKeys = map[string]bool{"mediaType": true, "part": true, "repository": true, "platform": true, "base": true}

// handString is a scalar's string value as yaml.v3 decodes it into a
// string, when that is plainly its text; shared values are interned.
func (d *fastDecoder) handString(li lineInfo, shared bool) (string, bool) {
	v := li.value
	if !li.hasValue || len(v) == 0 {
		return "", false
	}
	for _, c := range v {
		if c >= 0x80 {
			return "", false // yaml.v3 checks what is printable
		}
	}
	switch v[0] {
	case '[', '{':
		return "", false // "[]", "{}": a collection, not a string
	case '"':
		if bytes.IndexByte(v, '\\') >= 0 || len(v) < 2 {
			return "", false
		}
		return d.str(v[1:len(v)-1], shared), true
	case '\'':
		if len(v) < 2 || bytes.IndexByte(v[1:len(v)-1], '\'') >= 0 {
			return "", false
		}
		return d.str(v[1:len(v)-1], shared), true
	}
	switch string(v) {
	case "~", "null", "Null", "NULL":
		return "", false
	}
	return d.str(v, shared), true
}

func (d *fastDecoder) str(b []byte, shared bool) string {
	if !shared {
		return string(b)
	}
	if s, ok := d.in[string(b)]; ok {
		return s
	}
	s := string(b)
	d.in[s] = s
	return s
}

// handInt parses a decimal integer without sign oddities or leading
// zeros, which yaml.v3 resolves to the same int64.
func handInt(v []byte) (int64, bool) {
	s := v
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	if len(s) == 0 || len(s) > 19 || (s[0] == '0' && (len(s) > 1 || len(v) > 1)) {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	return n, err == nil
}
