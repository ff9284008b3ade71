package i18n

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestCatalogComplete fails when a message lacks English or Chinese, when
// the two texts of a message do not take the same arguments (printf verbs
// by argument, or {name} placeholders), or when a text does not format.
func TestCatalogComplete(t *testing.T) {
	for _, k := range Keys() {
		e := Entries()[k]
		if strings.TrimSpace(e.En) == "" {
			t.Errorf("%q has no English text", k)
		}
		if strings.TrimSpace(e.Zh) == "" {
			t.Errorf("%q has no Chinese text", k)
		}
		if strings.Contains(e.En+e.Zh, "${") {
			t.Errorf("%q: ${ starts an x/text substitution; pass such text as an argument", k)
		}
		if strings.HasPrefix(k, "ui.") {
			if a, b := placeholders(e.En), placeholders(e.Zh); !slices.Equal(a, b) {
				t.Errorf("%q: placeholders differ: en %v, zh %v", k, a, b)
			}
			continue
		}
		en, zh := verbs(k), verbs(e.Zh)
		if !equalVerbs(en, verbs(e.En)) || !equalVerbs(en, zh) {
			t.Errorf("%q: verbs differ: key %v, en %v, zh %v", k, en, verbs(e.En), zh)
		}
		args := sampleArgs(en)
		for _, tag := range Langs {
			out := New(tag).Sprintf(k, args...)
			if strings.Contains(out, "%!") || strings.Contains(out, "$!") {
				t.Errorf("%q in %v formats as %q", k, tag, out)
			}
		}
	}
}

// TestMessagesUsedAreInCatalog fails when the code or the page uses a
// message the catalog lacks, or when the catalog keeps one nobody uses.
func TestMessagesUsedAreInCatalog(t *testing.T) {
	used := map[string]string{} // key -> where
	root := filepath.Join("..")
	goKeys(t, root, used)
	static, prefixes := pageKeys(t, filepath.Join(root, "ui", "web"))
	for k, where := range static {
		used[k] = where
	}
	cat := Entries()
	for k, where := range used {
		if _, ok := cat[k]; !ok {
			t.Errorf("%s: message %q is not in messages.yaml", where, k)
		}
	}
	for _, p := range prefixes {
		if !slices.ContainsFunc(Keys(), func(k string) bool { return strings.HasPrefix(k, p) }) {
			t.Errorf("the page builds keys %q… but the catalog has none", p)
		}
	}
	for _, k := range Keys() {
		if _, ok := used[k]; ok {
			continue
		}
		if slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(k, p) }) {
			continue
		}
		t.Errorf("messages.yaml: %q is used nowhere", k)
	}
}

// printerCalls are the calls whose argument at the index is a catalog
// key: methods of a Printer (named tr in cmd, p in ui), and cmd's helpers
// that translate their format.
var printerCalls = map[string]int{
	"tr().Sprintf": 0, "tr().Errorf": 0, "tr().Fprintf": 1, "p.Sprintf": 0, "usagef": 0,
}

// helpFields are the fields of urfave/cli's commands and flags whose
// English text cmd/ferry's localize translates.
var helpFields = map[string]bool{"Usage": true, "Description": true, "DefaultText": true}

// goKeys collects the string literals passed as keys in Go files.
func goKeys(t *testing.T, root string, used map[string]string) {
	t.Helper()
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		cmd := filepath.Base(filepath.Dir(path)) == "ferry"
		ast.Inspect(f, func(n ast.Node) bool {
			if s := helpText(n); s != "" && cmd {
				used[s] = fset.Position(n.Pos()).String()
			}
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			i, ok := printerCalls[callName(call.Fun)]
			if !ok || i >= len(call.Args) {
				return true
			}
			if lit, ok := call.Args[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil {
					used[s] = fset.Position(lit.Pos()).String()
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func callName(fun ast.Expr) string {
	switch f := fun.(type) {
	case *ast.Ident:
		return f.Name
	case *ast.SelectorExpr:
		switch x := f.X.(type) {
		case *ast.Ident:
			return x.Name + "." + f.Sel.Name
		case *ast.CallExpr:
			if n := callName(x.Fun); n != "" {
				return n + "()." + f.Sel.Name
			}
		}
	}
	return ""
}

// helpText is the English of a help field in a composite literal
// (Usage: "…", Description: `…`), or "".
func helpText(n ast.Node) string {
	kv, ok := n.(*ast.KeyValueExpr)
	if !ok {
		return ""
	}
	if k, ok := kv.Key.(*ast.Ident); !ok || !helpFields[k.Name] {
		return ""
	}
	if lit, ok := kv.Value.(*ast.BasicLit); ok && lit.Kind == token.STRING {
		s, _ := strconv.Unquote(lit.Value)
		return s
	}
	return ""
}

var (
	jsKey     = regexp.MustCompile(`\bt\('(ui\.[A-Za-z0-9_.-]+)'(\s*\+)?`)
	htmlKey   = regexp.MustCompile(`data-i18n="(ui\.[A-Za-z0-9_.-]+)"`)
	jsAnyKey  = regexp.MustCompile(`'(ui\.[A-Za-z0-9_.-]+)'`)
	uiVarName = regexp.MustCompile(`\{(\w+)\}`)
)

// pageKeys are the keys the page uses: t('ui.x') and data-i18n="ui.x",
// and the prefixes of keys it builds (t('ui.state.' + state)).
func pageKeys(t *testing.T, dir string) (map[string]string, []string) {
	t.Helper()
	keys := map[string]string{}
	var prefixes []string
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range jsKey.FindAllStringSubmatch(string(b), -1) {
			if m[2] != "" {
				prefixes = append(prefixes, m[1])
			} else {
				keys[m[1]] = f
			}
		}
		for _, m := range htmlKey.FindAllStringSubmatch(string(b), -1) {
			keys[m[1]] = f
		}
		for _, m := range jsAnyKey.FindAllStringSubmatch(string(b), -1) {
			if !strings.HasSuffix(m[1], ".") { // a key passed around before t()
				keys[m[1]] = f
			}
		}
	}
	if len(keys) == 0 {
		t.Fatalf("no keys found in %s", dir)
	}
	return keys, prefixes
}

func placeholders(s string) []string {
	var out []string
	for _, m := range uiVarName.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	slices.Sort(out)
	return slices.Compact(out)
}

var verbRe = regexp.MustCompile(`%(\[(\d+)\])?[-+# 0]*(\d+|\*)?(\.\d+)?([a-zA-Z%])`)

// verbs maps argument numbers (1-based) to their verbs.
func verbs(s string) map[int]string {
	out := map[int]string{}
	n := 0
	for _, m := range verbRe.FindAllStringSubmatch(s, -1) {
		if m[5] == "%" {
			continue
		}
		if m[2] != "" {
			n, _ = strconv.Atoi(m[2])
		} else {
			n++
		}
		v := m[5]
		if v == "w" {
			v = "v" // %w formats as %v
		}
		out[n] = v
	}
	return out
}

func equalVerbs(a, b map[int]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func sampleArgs(vs map[int]string) []any {
	args := make([]any, len(vs))
	for i := range args {
		switch vs[i+1] {
		case "d", "x", "c":
			args[i] = 3
		case "f", "g", "e":
			args[i] = 1.5
		case "t":
			args[i] = true
		default:
			args[i] = "x"
		}
	}
	return args
}

func TestChoose(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		cfg  string
		env  map[string]string
		want string
	}{
		{"zh_CN", nil, "zh_CN"},
		{"en_US", map[string]string{"LANG": "zh_CN.UTF-8"}, "en_US"},
		{"", map[string]string{"LANG": "zh_CN.UTF-8"}, "zh_CN"},
		{"", map[string]string{"LC_ALL": "en_US.UTF-8", "LANG": "zh_CN.UTF-8"}, "en_US"},
		{"", map[string]string{"LC_MESSAGES": "zh_CN", "LANG": "C"}, "zh_CN"},
		{"", map[string]string{"LANG": "C"}, "en_US"},
		{"", map[string]string{"LANG": "de_DE.UTF-8"}, "en_US"},
		{"", map[string]string{"LANG": "zh_SG"}, "zh_CN"},
		{"zh-Hans", nil, "zh_CN"},
		{"", nil, "en_US"},
	}
	for _, tc := range tests {
		if got := Code(Choose(tc.cfg, env(tc.env))); got != tc.want {
			t.Errorf("Choose(%q, %v) = %s, want %s", tc.cfg, tc.env, got, tc.want)
		}
	}
	for _, s := range []string{"en_US", "zh_CN", "zh", "en"} {
		if !Valid(s) {
			t.Errorf("Valid(%q) = false", s)
		}
	}
	for _, s := range []string{"", "C", "not a language!", "fr_FR", "zh_TW"} {
		if Valid(s) {
			t.Errorf("Valid(%q) = true", s)
		}
	}
}

func TestPrinter(t *testing.T) {
	zh := New(Chinese)
	if got := zh.Sprintf("ui.nav.bundles"); got != "镜像包" {
		t.Errorf("zh ui.nav.bundles = %q", got)
	}
	if got := New(English).Sprintf("ui.job.bytes"); !strings.Contains(got, "%)") {
		t.Errorf("a %% in a page string must print as is: %q", got)
	}
	if got := zh.Sprintf("a message not in the catalog: %d", 3); got != "a message not in the catalog: 3" {
		t.Errorf("unknown key: %q", got)
	}
	base := errors.New("base")
	err := zh.Errorf("wrapped: %w", base)
	if !errors.Is(err, base) || err.Error() != "wrapped: base" {
		t.Errorf("Errorf: %v (Is %v)", err, errors.Is(err, base))
	}
}

func TestParseBrokenCatalog(t *testing.T) {
	if _, _, err := parse([]byte("a: [")); err == nil {
		t.Error("a broken catalog parsed")
	}
}
