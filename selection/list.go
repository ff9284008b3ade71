// Package selection turns what a user names into the images to move: list
// files and arguments (ImageSpec), tag selections, --latest, shards and
// lockfiles (Resolve); save, sync and resolve share it.
package selection

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/meta"
)

// ErrBadList: an image list, a list entry or a selection is not valid.
var ErrBadList = errors.New("bad image list")

// ImageSpec is one image to move: where it comes from and the repository
// and tag it gets at the target.
type ImageSpec struct {
	Source     ref.Ref
	Repository string
	Tag        string
	// Select, when set, names several tags of Source's repository (see
	// TagSelect); ExpandTags turns the entry into one entry per tag.
	Select *TagSelect
	// PlainHTTP: the source was written http://REGISTRY (or the registry
	// it is a path on was): reach it over plain HTTP.
	PlainHTTP bool
}

// String is the source reference as the user wrote it (normalized).
func (s ImageSpec) String() string {
	if s.Select != nil {
		return s.Source.CommonName() + ":" + s.Select.Raw
	}
	return s.Source.CommonName()
}

// ParseImage parses "SRC" or "SRC -> DST". DST is a repository path with an
// optional tag; without one the source tag is kept. When registry is set
// and SRC does not name a registry itself (see NamesRegistry), SRC is a
// path on that registry. SRC may end in a tag selection (repo:*, repo:a,b,
// repo:/REGEX/, repo:~1.2, exclusions; see TagSelect).
func ParseImage(line, registry string) (ImageSpec, error) {
	src, dst, renamed := strings.Cut(line, "->")
	src, dst = strings.TrimSpace(src), strings.TrimSpace(dst)
	src, plain := CutScheme(src) // a registry URL pasted as an image
	var sel *TagSelect
	if base, expr, ok := splitSelector(src); ok && !strings.Contains(line, "=>") {
		var err error
		if sel, err = ParseTagSelect(expr); err != nil {
			return ImageSpec{}, fmt.Errorf("%q: %w", line, err)
		}
		src = base
	}
	if src == "" || (renamed && dst == "") || strings.ContainsAny(src, " \t") || strings.ContainsAny(dst, " \t") {
		return ImageSpec{}, fmt.Errorf("%w: %q: %s", ErrBadList, line, listLineProblem(src, dst, renamed))
	}
	if registry != "" && !NamesRegistry(src) {
		reg, regPlain := CutScheme(registry)
		src, plain = strings.TrimSuffix(reg, "/")+"/"+strings.TrimPrefix(src, "/"), regPlain
	}
	r, err := ref.New(src)
	if err != nil {
		if strings.Contains(src, "=>") {
			return ImageSpec{}, fmt.Errorf("%w: %q: %s", ErrBadList, src, listLineProblem(src, dst, renamed))
		}
		if repo, _, _ := strings.Cut(src, "@"); strings.ToLower(repo) != repo {
			return ImageSpec{}, fmt.Errorf("%w: %q: repository names are lowercase", ErrBadList, src)
		}
		return ImageSpec{}, fmt.Errorf("%w: %q: not an image reference (want [registry/]repository[:tag][@digest])", ErrBadList, src)
	}
	if r.Scheme != "reg" {
		return ImageSpec{}, fmt.Errorf("%w: %q: only registry references are supported", ErrBadList, src)
	}
	spec := ImageSpec{Source: r, Repository: r.Repository, Tag: r.Tag, PlainHTTP: plain}
	if sel != nil {
		spec.Source.Tag, spec.Tag, spec.Select = "", "", sel
	}
	if r.Digest != "" && !strings.Contains(src, ":"+r.Tag+"@") && !strings.HasSuffix(strings.Split(src, "@")[0], ":"+r.Tag) {
		spec.Tag = "" // ref.New puts "latest" on a digest-only reference
		spec.Source.Tag = ""
	}
	if renamed {
		repo, tag := dst, ""
		if i := strings.LastIndex(dst, ":"); i > strings.LastIndex(dst, "/") {
			repo, tag = dst[:i], dst[i+1:]
		}
		if !meta.ValidRepository(repo) {
			why := "want a repository path (lowercase, digits, . _ - separated by /) with an optional :tag"
			if strings.ToLower(repo) != repo {
				why = "repository names are lowercase"
			}
			return ImageSpec{}, fmt.Errorf("%w: target repository %q: %s", ErrBadList, repo, why)
		}
		if tag != "" && !meta.ValidTag(tag) {
			return ImageSpec{}, fmt.Errorf("%w: target tag %q", ErrBadList, tag)
		}
		spec.Repository = repo
		if tag != "" {
			spec.Tag = tag
		}
	}
	return spec, nil
}

// NamesRegistry reports whether a reference starts with a registry host:
// its first path component (before the first "/") contains a "." or a ":",
// or is "localhost", the rule Docker uses. Such a reference is never
// prefixed with a default source registry.
func NamesRegistry(s string) bool {
	first, _, ok := strings.Cut(s, "/")
	if !ok {
		return false
	}
	return first == "localhost" || strings.ContainsAny(first, ".:")
}

// ParseList reads an image list: one reference a line, optional
// "SRC -> DST" renames, blank lines and '#' comments ignored.
func ParseList(r io.Reader, registry string) ([]ImageSpec, error) {
	var out []ImageSpec
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		spec, err := ParseImage(line, registry)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, spec)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading image list: %w", err)
	}
	return out, nil
}

// listLineProblem says what is wrong with a list line that does not split
// into SRC [-> DST].
func listLineProblem(src, dst string, renamed bool) string {
	switch {
	case strings.Contains(src, "=>"):
		return "a rename is written SRC -> DST, not =>"
	case src == "":
		return "no source image before ->"
	case renamed && dst == "":
		return "no target after ->"
	case len(strings.Fields(src)) == 2 || len(strings.Fields(dst)) == 2:
		return "a space inside a reference: a tag follows a colon (alpine:3.19), a rename is SRC -> DST"
	}
	return "one reference a line, or SRC -> DST"
}
