package selection_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/registry/regtest"
	"github.com/ferry-oss/ferry/selection"
)

func TestParseTagSelect(t *testing.T) {
	tags := regtest.VersionTags
	for _, tt := range []struct {
		sel  string
		want []string // of VersionTags, in VersionTags order
	}{
		{"*", tags},
		{"v1.0.0,latest", []string{"v1.0.0", "latest"}},
		{`/^v1\./`, []string{"v1.0.0", "v1.2.0", "v1.10.0"}},
		{`/^v1\.[0-9]{1,2}\.0$/`, []string{"v1.0.0", "v1.2.0", "v1.10.0"}}, // a comma inside the regex
		{"~1.2", []string{"v1.2.0"}},
		{">=1.2,<2.0", []string{"v1.2.0", "v1.10.0"}},
		{">=1.2 <2.0", []string{"v1.2.0", "v1.10.0"}},
		{">=1.0.0-0", []string{"v1.0.0", "v1.2.0", "v1.10.0", "v2.0.0-rc1"}},
		{"^1 || >=2.0.0-rc0", []string{"v1.0.0", "v1.2.0", "v1.10.0", "v2.0.0-rc1"}},
		{"*,!rc", []string{"v1.0.0", "v1.2.0", "v1.10.0", "latest"}},
		{"!/^v/", []string{"latest"}},
		{`/^v/,!/\.0\.0/`, []string{"v1.2.0", "v1.10.0"}},
	} {
		s, err := selection.ParseTagSelect(tt.sel)
		if err != nil {
			t.Errorf("%q: %v", tt.sel, err)
			continue
		}
		var got []string
		for _, tag := range tags {
			if s.Match(tag) {
				got = append(got, tag)
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%q selects %v, want %v", tt.sel, got, tt.want)
		}
	}
	for _, bad := range []string{"a,,b", "/(/", ">=x.y", "!", "a b"} {
		if _, err := selection.ParseTagSelect(bad); !errors.Is(err, selection.ErrBadList) {
			t.Errorf("%q: err %v, want ErrBadList", bad, err)
		}
	}
}

func TestParseImageSelections(t *testing.T) {
	for _, tt := range []struct {
		line, str, repo, tag string
		sel                  bool
	}{
		{"localhost:5000/team/app:*", "localhost:5000/team/app:*", "team/app", "", true},
		{"localhost:5000/team/app:>=1.4 <2.0 -> mirror/app", "localhost:5000/team/app:>=1.4 <2.0", "mirror/app", "", true},
		{"localhost:5000/team/app:/^v1/ -> m/app:one", "localhost:5000/team/app:/^v1/", "m/app", "one", true},
		{"team/app:1.0,1.1", "docker.io/team/app:1.0,1.1", "team/app", "", true},
		{"localhost:5000/team/app:v1.0", "localhost:5000/team/app:v1.0", "team/app", "v1.0", false},
		{"localhost:5000/team/app", "localhost:5000/team/app:latest", "team/app", "latest", false},
	} {
		s, err := selection.ParseImage(tt.line, "")
		if err != nil {
			t.Errorf("%q: %v", tt.line, err)
			continue
		}
		if s.String() != tt.str || s.Repository != tt.repo || s.Tag != tt.tag || (s.Select != nil) != tt.sel {
			t.Errorf("%q: %s -> %s:%s select %v", tt.line, s.String(), s.Repository, s.Tag, s.Select != nil)
		}
	}
	if _, err := selection.ParseImage("local host:5000/a:*", ""); !errors.Is(err, selection.ErrBadList) {
		t.Errorf("space in the repository accepted: %v", err)
	}
}

func TestSortTags(t *testing.T) {
	got := []string{"v2.0.0-rc1", "v1.10.0", "latest", "v1.2.0", "v1.0.0"}
	selection.SortTags(got)
	want := []string{"latest", "v1.0.0", "v1.2.0", "v1.10.0", "v2.0.0-rc1"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	str := slices.Clone(want[1:])
	slices.Sort(str)
	if slices.Equal(str, want[1:]) {
		t.Fatal("the fixtures' string order equals semver order: the test proves nothing")
	}
}

// versioned is an olareg source with team/app at every VersionTags tag.
func versioned(t *testing.T) (string, *env) {
	t.Helper()
	host, stop := regtest.Olareg()
	t.Cleanup(stop)
	e := &env{host: host, reg: newReg(t, host), imgs: regtest.Versioned()}
	for tag, img := range e.imgs {
		r, _ := ref.New(host + "/team/app:" + tag)
		if err := regtest.Push(context.Background(), e.reg, r, img); err != nil {
			t.Fatal(err)
		}
	}
	return host, e
}

func TestExpandTagsAndResolve(t *testing.T) {
	host, e := versioned(t)
	ctx := context.Background()
	for _, tt := range []struct {
		line   string
		latest int
		want   []string
	}{
		{"team/app:*", 0, []string{"latest", "v1.0.0", "v1.2.0", "v1.10.0", "v2.0.0-rc1"}},
		{`team/app:/^v1\./`, 0, []string{"v1.0.0", "v1.2.0", "v1.10.0"}},
		{"team/app:>=1.0.0", 2, []string{"v1.2.0", "v1.10.0"}}, // string order would keep v1.2.0 and v1.10.0's rival v1.0.0
		{"team/app:>=1.0.0", 1, []string{"v1.10.0"}},
		{"team/app:v1.0.0,v2.0.0-rc1", 0, []string{"v1.0.0", "v2.0.0-rc1"}},
		{"team/app:v1.2.0", 0, []string{"v1.2.0"}},
	} {
		specs, err := selection.ExpandTags(ctx, e.reg, e.specs(t, tt.line), selection.ExpandOptions{Latest: tt.latest})
		if err != nil {
			t.Errorf("%s: %v", tt.line, err)
			continue
		}
		var got []string
		for _, s := range specs {
			got = append(got, s.Tag)
			if s.Select != nil || s.Source.Tag != s.Tag {
				t.Errorf("%s: entry %+v", tt.line, s)
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s (latest %d): %v, want %v", tt.line, tt.latest, got, tt.want)
		}
	}
	if _, err := selection.ExpandTags(ctx, e.reg, e.specs(t, "team/app:/^nope/"), selection.ExpandOptions{}); !errors.Is(err, selection.ErrNoTags) {
		t.Errorf("no match: %v", err)
	}
	if _, err := selection.ExpandTags(ctx, e.reg, e.specs(t, "team/app:* -> x/app:one"), selection.ExpandOptions{}); !errors.Is(err, selection.ErrBadList) {
		t.Errorf("many tags renamed to one: %v", err)
	}

	// resolve: a lockfile that parses back to the same digests
	pinned, err := selection.Resolve(ctx, e.reg, e.specs(t, `team/app:/^v1\./ -> mirror/app`), selection.ExpandOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, p := range pinned {
		lines = append(lines, p.Pinned())
	}
	back, err := selection.ParseList(strings.NewReader(strings.Join(lines, "\n")), "")
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range back {
		want := e.imgs[pinned[i].Tag].Digest().String()
		if b.Source.Digest != want || b.Repository != "mirror/app" || b.Tag != pinned[i].Tag || b.Source.Registry != host {
			t.Errorf("lock line %q parsed to %+v, want digest %s", lines[i], b, want)
		}
	}
}

func FuzzParseTagSelect(f *testing.F) {
	for _, s := range []string{"*", "a,b", `/^v1\./,!rc`, ">=1.4 <2.0", "~1.2,!/x/", "^1 || ^2"} {
		f.Add(s, "v1.2.3")
	}
	f.Fuzz(func(t *testing.T, sel, tag string) {
		s, err := selection.ParseTagSelect(sel)
		if err != nil {
			return
		}
		_ = s.Match(tag) // must not panic
		if s.Raw != sel {
			t.Fatalf("raw %q, want %q", s.Raw, sel)
		}
	})
}
