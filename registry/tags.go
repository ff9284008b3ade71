package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient"
	"github.com/regclient/regclient/types/errs"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/oci"
)

var (
	_ oci.TagLister      = (*Registry)(nil)
	_ oci.ManifestHeader = (*Registry)(nil)
)

// TagLimits bound one listing of a repository's tags (a registry decides
// how many pages it sends, and how large they are). A zero field takes
// DefaultTagLimits' value.
type TagLimits struct {
	Pages int           // pages (Link: rel=next) followed
	Bytes int64         // bytes of all pages together
	Time  time.Duration // for the whole listing
}

// DefaultTagLimits: 5,000 pages (500,000 tags at distribution's 100 a
// page), 16 MiB (about 400,000 tags of 40 characters), 2 minutes.
var DefaultTagLimits = TagLimits{Pages: 5000, Bytes: 16 << 20, Time: 2 * time.Minute}

func (l TagLimits) withDefaults() TagLimits {
	if l.Pages <= 0 {
		l.Pages = DefaultTagLimits.Pages
	}
	if l.Bytes <= 0 {
		l.Bytes = DefaultTagLimits.Bytes
	}
	if l.Time <= 0 {
		l.Time = DefaultTagLimits.Time
	}
	return l
}

// TagList lists the tags of repository r (following the registry's
// pagination links, within the Registry's TagLimits).
func (r *Registry) TagList(ctx context.Context, rf ref.Ref) ([]string, error) {
	tags, err := r.listTags(ctx, rf)
	if err != nil {
		return nil, fmt.Errorf("listing tags of %s: %w", rf.Registry+"/"+rf.Repository, Classify(rf.Registry, err))
	}
	return tags, nil
}

// listTags lists the tags of rf's repository within r.tagLimits. A
// listing cut short by a limit returns the tags read until then, and a
// warning says which limit cut it and how many tags were kept.
func (r *Registry) listTags(ctx context.Context, rf ref.Ref) ([]string, error) {
	rf = rf.SetTag("latest")
	b := &tagBudget{limits: r.tagLimits}
	lctx, cancel := context.WithTimeout(context.WithValue(ctx, tagBudgetKey{}, b), r.tagLimits.Time)
	defer cancel()
	tl, err := r.rc.TagList(lctx, rf)
	cut := b.reason()
	if cut == "" && err != nil && ctx.Err() == nil && errors.Is(lctx.Err(), context.DeadlineExceeded) {
		cut = fmt.Sprintf("not done within %v", r.tagLimits.Time)
	}
	if cut == "" {
		if err != nil {
			return nil, err
		}
		return tl.GetTags()
	}
	var tags []string
	if tl != nil {
		tags, _ = tl.GetTags()
	}
	r.log.Warn("tag list cut short: the registry sent more than ferry reads", "repository", rf.Registry+"/"+rf.Repository,
		"limit", cut, "tagsKept", len(tags))
	return tags, nil
}

// tagBudgetKey is the context key of a listing's tagBudget.
type tagBudgetKey struct{}

// tagBudget counts the pages and bytes of one listing; the transport
// spends it (tagBudgetOf, page, fits, read).
type tagBudget struct {
	limits TagLimits
	mu     sync.Mutex
	pages  int
	bytes  int64
	cut    string
}

// tagBudgetOf is the budget of req's listing, nil for any other request.
func tagBudgetOf(req *http.Request) *tagBudget {
	b, _ := req.Context().Value(tagBudgetKey{}).(*tagBudget)
	if b == nil || req.Method != http.MethodGet || !strings.HasSuffix(req.URL.Path, "/tags/list") {
		return nil
	}
	return b
}

func (b *tagBudget) reason() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cut
}

func (b *tagBudget) cutAt(why string) {
	b.mu.Lock()
	if b.cut == "" {
		b.cut = why
	}
	b.mu.Unlock()
}

// page spends a page; false: the pages are spent (the listing ends).
func (b *tagBudget) page() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pages >= b.limits.Pages {
		if b.cut == "" {
			b.cut = fmt.Sprintf("%d pages", b.limits.Pages)
		}
		return false
	}
	b.pages++
	return true
}

// fits reports whether a page of the announced length fits the bytes
// left (an unknown length is counted as it is read).
func (b *tagBudget) fits(resp *http.Response) bool {
	b.mu.Lock()
	over := resp.ContentLength > b.limits.Bytes-b.bytes
	b.mu.Unlock()
	if over {
		b.cutAt(fmt.Sprintf("%d bytes", b.limits.Bytes))
	}
	return !over
}

// errTagBytes ends the read of a page past the byte limit.
var errTagBytes = errors.New("tag list over its byte limit")

func (b *tagBudget) read(n int) error {
	b.mu.Lock()
	b.bytes += int64(n)
	over := b.bytes > b.limits.Bytes
	b.mu.Unlock()
	if over {
		b.cutAt(fmt.Sprintf("%d bytes", b.limits.Bytes))
		return errTagBytes
	}
	return nil
}

// endOfTags answers a tag page request that a limit refused: an empty
// last page, which ends regclient's listing with the tags it has.
func endOfTags(req *http.Request) *http.Response {
	name := strings.TrimSuffix(strings.TrimPrefix(req.URL.Path, "/v2/"), "/tags/list")
	body := fmt.Sprintf(`{"name":%q,"tags":[]}`, name)
	return &http.Response{
		Status: "200 OK", StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

// ManifestDigest is a HEAD request for the manifest at rf (a tag or a
// digest); a manifest that is not there is ("", nil).
func (r *Registry) ManifestDigest(ctx context.Context, rf ref.Ref) (digest.Digest, error) {
	m, err := r.rc.ManifestHead(ctx, rf, regclient.WithManifestRequireDigest())
	if err != nil {
		if errors.Is(err, errs.ErrNotFound) {
			return "", nil
		}
		return "", Classify(rf.Registry, err)
	}
	return m.GetDescriptor().Digest, nil
}
