package selection_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ferry-oss/ferry/selection"
)

func TestParseList(t *testing.T) {
	list := `# comment
localhost:5000/library/alpine:3.19
  localhost:5000/team/app:1 -> mirror/app:stable   # renamed
localhost:5000/team/tools@sha256:0123456789012345678901234567890123456789012345678901234567890123
registry.example.com:443/a/b/c:v1 -> x/y

`
	got, err := selection.ParseList(strings.NewReader(list), "")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ src, repo, tag string }{
		{"localhost:5000/library/alpine:3.19", "library/alpine", "3.19"},
		{"localhost:5000/team/app:1", "mirror/app", "stable"},
		{"localhost:5000/team/tools@sha256:0123456789012345678901234567890123456789012345678901234567890123", "team/tools", ""},
		{"registry.example.com:443/a/b/c:v1", "x/y", "v1"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries: %+v", len(got), got)
	}
	for i, w := range want {
		if got[i].String() != w.src || got[i].Repository != w.repo || got[i].Tag != w.tag {
			t.Errorf("entry %d: %s -> %s:%s, want %s -> %s:%s", i, got[i].String(), got[i].Repository, got[i].Tag, w.src, w.repo, w.tag)
		}
	}
}

func TestParseImageErrors(t *testing.T) {
	for _, line := range []string{
		"->",
		"localhost:5000/a:1 ->",
		"localhost:5000/a:1 -> UPPER/case",
		"localhost:5000/a:1 -> ok/repo:bad tag",
		"two words",
		"localhost:5000/a:1 -> x:-bad",
		"ocidir://some/dir:tag",
	} {
		if _, err := selection.ParseImage(line, ""); !errors.Is(err, selection.ErrBadList) {
			t.Errorf("%q: err %v, want ErrBadList", line, err)
		}
	}
	s, err := selection.ParseImage("team/app:1", "127.0.0.1:5000")
	if err != nil || s.Source.Registry != "127.0.0.1:5000" || s.Repository != "team/app" {
		t.Errorf("with registry: %+v %v", s, err)
	}
}

// TestParseImageSource: a default source registry (--src, cfg.yaml
// source) prefixes paths, never a reference that names its own registry.
func TestParseImageSource(t *testing.T) {
	const dg = "sha256:0123456789012345678901234567890123456789012345678901234567890123"
	tests := []struct {
		line, source, wantRef, wantRepo string
	}{
		{"team/app:1", "", "docker.io/team/app:1", "team/app"},
		{"team/app:1", "127.0.0.1:5000", "127.0.0.1:5000/team/app:1", "team/app"},
		{"/team/app:1", "127.0.0.1:5000/", "127.0.0.1:5000/team/app:1", "team/app"},
		{"app:1", "reg.example.com", "reg.example.com/app:1", "app"},
		{"app@" + dg, "reg.example.com", "reg.example.com/app@" + dg, "app"},
		{"127.0.0.1:5001/team/app:1", "127.0.0.1:5000", "127.0.0.1:5001/team/app:1", "team/app"},
		{"quay.io/org/tool:2", "127.0.0.1:5000", "quay.io/org/tool:2", "org/tool"},
		{"localhost/team/app:1", "127.0.0.1:5000", "localhost/team/app:1", "team/app"},
		{"localhost:5002/a:1 -> b/c", "127.0.0.1:5000", "localhost:5002/a:1", "b/c"},
		{"library/alpine:3 -> mirror/alpine", "harbor.local", "harbor.local/library/alpine:3", "mirror/alpine"},
	}
	for _, tt := range tests {
		t.Run(tt.line+"@"+tt.source, func(t *testing.T) {
			s, err := selection.ParseImage(tt.line, tt.source)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Source.CommonName(); got != tt.wantRef || s.Repository != tt.wantRepo {
				t.Errorf("got %s -> %s, want %s -> %s", got, s.Repository, tt.wantRef, tt.wantRepo)
			}
		})
	}
}

func FuzzParseList(f *testing.F) {
	f.Add("localhost:5000/a/b:1 -> c/d:2\n# x\n")
	f.Add("a@sha256:0123456789012345678901234567890123456789012345678901234567890123")
	f.Add("localhost:5000/a:/^v1,2/,!rc -> b\nx:>=1.0 <2\nh:5000/y:* -> z:1\n")
	f.Fuzz(func(t *testing.T, s string) {
		specs, err := selection.ParseList(strings.NewReader(s), "")
		if err != nil {
			return
		}
		for _, sp := range specs {
			if sp.Repository == "" || sp.Source.Repository == "" {
				t.Fatalf("accepted entry without repository: %+v", sp)
			}
		}
	})
}
