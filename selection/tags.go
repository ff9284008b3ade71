package selection

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
)

// ErrNoTags is returned when a tag selection matches no tag.
var ErrNoTags = errors.New("no tag matches")

// TagSelect is the tag part of a list entry that names several tags:
//
//	repo:*                 every tag
//	repo:1.0,1.1,2.0       these tags (no listing needed)
//	repo:/^v1\./           tags matching a Go regular expression
//	repo:~1.2              a semver range (Masterminds/semver syntax);
//	repo:>=1.4 <2.0        consecutive range terms are ANDed: >=1.4,<2.0
//	repo:*,!-rc            exclusions: !REGEX or !/REGEX/
//
// Terms are separated by commas; a tag is selected when any term other
// than an exclusion selects it and no exclusion matches it. A selection of
// exclusions only starts from every tag.
type TagSelect struct {
	Raw      string
	All      bool
	Tags     []string
	Patterns []*regexp.Regexp
	Ranges   []*semver.Constraints
	Exclude  []*regexp.Regexp
}

// listed reports whether the selection needs the repository's tag list.
func (s *TagSelect) listed() bool {
	return s.All || len(s.Patterns) > 0 || len(s.Ranges) > 0 || len(s.Exclude) > 0
}

// Match reports whether tag is selected.
func (s *TagSelect) Match(tag string) bool {
	for _, re := range s.Exclude {
		if re.MatchString(tag) {
			return false
		}
	}
	if s.All || (len(s.Tags) == 0 && len(s.Patterns) == 0 && len(s.Ranges) == 0) {
		return true
	}
	for _, t := range s.Tags {
		if t == tag {
			return true
		}
	}
	for _, re := range s.Patterns {
		if re.MatchString(tag) {
			return true
		}
	}
	if v, err := semver.NewVersion(tag); err == nil {
		for _, c := range s.Ranges {
			if c.Check(v) {
				return true
			}
		}
	}
	return false
}

// ParseTagSelect parses the tag part of a list entry (after the colon).
func ParseTagSelect(sel string) (*TagSelect, error) {
	s := &TagSelect{Raw: sel}
	var rng []string
	flush := func() error {
		if len(rng) == 0 {
			return nil
		}
		c, err := semver.NewConstraint(strings.Join(rng, ", "))
		if err != nil {
			return fmt.Errorf("%w: semver range %q: %v", ErrBadList, strings.Join(rng, ","), err)
		}
		s.Ranges = append(s.Ranges, c)
		rng = nil
		return nil
	}
	for _, term := range splitTerms(sel) {
		term = strings.TrimSpace(term)
		isRange := strings.ContainsAny(term[:min(1, len(term))], "~^<>=") || strings.HasPrefix(term, "!=") || strings.Contains(term, "||")
		if !isRange {
			if err := flush(); err != nil {
				return nil, err
			}
		}
		switch {
		case term == "":
			return nil, fmt.Errorf("%w: empty term in tag selection %q", ErrBadList, sel)
		case isRange:
			rng = append(rng, term)
		case term == "*":
			s.All = true
		case strings.HasPrefix(term, "!"):
			re, err := compileTerm(strings.TrimPrefix(term, "!"))
			if err != nil {
				return nil, err
			}
			s.Exclude = append(s.Exclude, re)
		case strings.HasPrefix(term, "/"):
			re, err := compileTerm(term)
			if err != nil {
				return nil, err
			}
			s.Patterns = append(s.Patterns, re)
		case meta.ValidTag(term):
			s.Tags = append(s.Tags, term)
		default:
			return nil, fmt.Errorf("%w: tag selection term %q", ErrBadList, term)
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return s, nil
}

// compileTerm compiles /REGEX/ or a bare REGEX.
func compileTerm(t string) (*regexp.Regexp, error) {
	if len(t) >= 2 && strings.HasPrefix(t, "/") && strings.HasSuffix(t, "/") {
		t = t[1 : len(t)-1]
	}
	if t == "" {
		return nil, fmt.Errorf("%w: empty regular expression", ErrBadList)
	}
	re, err := regexp.Compile(t)
	if err != nil {
		return nil, fmt.Errorf("%w: regular expression %q: %v", ErrBadList, t, err)
	}
	return re, nil
}

// splitTerms splits on commas outside /.../ (a regex may hold commas).
func splitTerms(s string) []string {
	var out []string
	start, inRe := 0, false
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '/' && !inRe && (i == start || (i == start+1 && s[start] == '!')):
			inRe = true
		case s[i] == '/' && inRe && (i+1 == len(s) || s[i+1] == ','):
			inRe = false
		case s[i] == ',' && !inRe:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// splitSelector finds a tag selection in a source reference: the text after
// the colon that ends the repository path, when it is not a plain tag.
func splitSelector(src string) (base, sel string, ok bool) {
	if strings.Contains(src, "@") || strings.Contains(src, "://") {
		return src, "", false
	}
	for j := 0; j < len(src); j++ {
		if src[j] != ':' {
			continue
		}
		// host:port/ is not a tag separator
		k := j + 1
		for k < len(src) && src[k] >= '0' && src[k] <= '9' {
			k++
		}
		if k > j+1 && k < len(src) && src[k] == '/' && !strings.Contains(src[:j], "/") {
			j = k
			continue
		}
		tag := src[j+1:]
		if tag == "" || meta.ValidTag(tag) {
			return src, "", false
		}
		return src[:j], tag, true
	}
	return src, "", false
}

// ExpandOptions configure ExpandTags.
type ExpandOptions struct {
	// Latest keeps the N highest tags of each listed selection (semver
	// order; tags that are not versions sort below every version, by
	// name). 0 keeps all.
	Latest int
	// Jobs bounds concurrent tag listings (default 4).
	Jobs int
}

// ExpandTags replaces every entry with a tag selection by one entry per
// selected tag (in semver order), listing tags through lister when the
// selection needs it. Entries without a selection are kept as they are.
func ExpandTags(ctx context.Context, lister oci.TagLister, specs []ImageSpec, opts ExpandOptions) ([]ImageSpec, error) {
	out, errs := ExpandEach(ctx, lister, specs, opts)
	var flat []ImageSpec
	for i, o := range out {
		if errs[i] != nil {
			return nil, errs[i]
		}
		flat = append(flat, o...)
	}
	return flat, nil
}

// ExpandEach is ExpandTags entry by entry: out[i] are the entries that
// specs[i] expands to, errs[i] why it could not be expanded.
func ExpandEach(ctx context.Context, lister oci.TagLister, specs []ImageSpec, opts ExpandOptions) ([][]ImageSpec, []error) {
	if opts.Jobs < 1 {
		opts.Jobs = 4
	}
	out := make([][]ImageSpec, len(specs))
	errs := make([]error, len(specs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Jobs)
	for i, s := range specs {
		if s.Select == nil {
			out[i] = []ImageSpec{s}
			continue
		}
		g.Go(func() error {
			out[i], errs[i] = expandOne(gctx, lister, s, opts)
			return nil
		})
	}
	_ = g.Wait()
	return out, errs
}

func expandOne(ctx context.Context, lister oci.TagLister, s ImageSpec, opts ExpandOptions) ([]ImageSpec, error) {
	tags := s.Select.Tags
	if s.Select.listed() {
		if lister == nil {
			return nil, fmt.Errorf("%s: %w: the source cannot list tags", s.String(), oci.ErrUnsupported)
		}
		all, err := lister.TagList(ctx, s.Source)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.String(), err)
		}
		tags = nil
		for _, t := range all {
			if s.Select.Match(t) {
				tags = append(tags, t)
			}
		}
		SortTags(tags)
		if opts.Latest > 0 && len(tags) > opts.Latest {
			tags = tags[len(tags)-opts.Latest:]
		}
	}
	if len(tags) == 0 {
		return nil, fmt.Errorf("%s: %w", s.String(), ErrNoTags)
	}
	if s.Tag != "" && len(tags) > 1 {
		return nil, fmt.Errorf("%w: %s selects %d tags but renames them all to %s:%s", ErrBadList, s.String(), len(tags), s.Repository, s.Tag)
	}
	var out []ImageSpec
	for _, t := range tags {
		e := ImageSpec{Source: s.Source.SetTag(t), Repository: s.Repository, Tag: t}
		if s.Tag != "" {
			e.Tag = s.Tag
		}
		out = append(out, e)
	}
	return out, nil
}

// SortTags orders tags by semver (ascending); tags that are not versions
// come first, by name.
func SortTags(tags []string) {
	vs := make(map[string]*semver.Version, len(tags))
	for _, t := range tags {
		if v, err := semver.NewVersion(t); err == nil {
			vs[t] = v
		}
	}
	sort.SliceStable(tags, func(i, j int) bool {
		a, b := vs[tags[i]], vs[tags[j]]
		switch {
		case a == nil && b == nil:
			return tags[i] < tags[j]
		case a == nil:
			return true
		case b == nil:
			return false
		case a.Equal(b):
			return tags[i] < tags[j]
		}
		return a.LessThan(b)
	})
}

// Resolver is what Resolve needs of a source.
type Resolver interface {
	oci.Source
	oci.TagLister
}

// Resolve expands tag selections and pins every entry to the digest its
// tag points at now: the result, written with Pinned, is a lockfile that
// save and sync read like any list.
func Resolve(ctx context.Context, src Resolver, specs []ImageSpec, opts ExpandOptions) ([]ImageSpec, error) {
	specs, err := ExpandTags(ctx, src, specs, opts)
	if err != nil {
		return nil, err
	}
	if opts.Jobs < 1 {
		opts.Jobs = 4
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Jobs)
	for i := range specs {
		s := &specs[i]
		if s.Source.Digest != "" {
			continue
		}
		g.Go(func() error {
			var dg digest.Digest
			if mh, ok := src.(oci.ManifestHeader); ok {
				d, err := mh.ManifestDigest(gctx, s.Source)
				if err != nil {
					return fmt.Errorf("%s: %w", s.String(), err)
				}
				if d == "" {
					return fmt.Errorf("%s: manifest not found", s.String())
				}
				dg = d
			} else {
				m, err := src.ManifestGet(gctx, s.Source)
				if err != nil {
					return fmt.Errorf("%s: %w", s.String(), err)
				}
				dg = m.GetDescriptor().Digest
			}
			s.Source = s.Source.SetDigest(dg.String())
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return specs, nil
}

// Pinned is the entry as a lockfile line: SRC@DIGEST -> DST[:TAG].
func (s ImageSpec) Pinned() string {
	r := s.Source
	r.Tag = ""
	dst := s.Repository
	if s.Tag != "" {
		dst += ":" + s.Tag
	}
	return r.CommonName() + " -> " + dst
}
