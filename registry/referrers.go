package registry

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/errs"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/oci"
)

var _ oci.ReferrerSource = (*Registry)(nil)

// tagCache holds the cosign tags of each repository (from one tag listing
// per repository), so that looking for cosign tags costs one listing per
// repository, not three requests per manifest. Only cosign-shaped tags
// are kept: a mirror of 10,000 repositories keeps no other tag names.
type tagCache struct {
	mu   sync.Mutex
	tags map[string]*tagEntry
}

type tagEntry struct {
	once sync.Once
	set  map[string]bool
	err  error
}

// Referrers lists what refers to manifest d in repository rf: the OCI 1.1
// referrers (through the registry's referrers API, or the OCI fallback tag
// sha256-<hex> where the registry has no such API; regclient does both),
// then the cosign tags sha256-<hex>.sig, .att and .sbom present in the
// repository. Each manifest is returned once.
func (r *Registry) Referrers(ctx context.Context, rf ref.Ref, d descriptor.Descriptor) ([]oci.Referrer, error) {
	subject := rf.SetDigest(d.Digest.String())
	rl, err := r.rc.ReferrerList(ctx, subject)
	if err != nil && !errors.Is(err, errs.ErrNotFound) {
		return nil, fmt.Errorf("listing referrers of %s: %w", subject.CommonName(), err)
	}
	var out []oci.Referrer
	seen := map[string]bool{}
	for _, rd := range rl.Descriptors {
		if seen[rd.Digest.String()] {
			continue
		}
		seen[rd.Digest.String()] = true
		out = append(out, oci.Referrer{Desc: rd})
	}
	tags, err := r.repoTags(ctx, rf)
	if err != nil {
		return nil, fmt.Errorf("listing tags of %s for cosign artifacts: %w", rf.CommonName(), err)
	}
	for _, tag := range oci.CosignTags(d.Digest) {
		if !tags[tag] {
			continue
		}
		m, err := r.rc.ManifestHead(ctx, rf.SetTag(tag))
		if errors.Is(err, errs.ErrNotFound) {
			continue // removed since the listing
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", rf.SetTag(tag).CommonName(), err)
		}
		desc := m.GetDescriptor()
		if desc.Digest == "" || desc.Size == 0 {
			// a registry that answers HEAD without digest or size
			full, err := r.rc.ManifestGet(ctx, rf.SetTag(tag))
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", rf.SetTag(tag).CommonName(), err)
			}
			desc = full.GetDescriptor()
		}
		out = append(out, oci.Referrer{Desc: desc, Tag: tag})
	}
	return out, nil
}

// repoTags returns the cosign tags of rf's repository (nil when it has
// none), listed once per Registry.
func (r *Registry) repoTags(ctx context.Context, rf ref.Ref) (map[string]bool, error) {
	key := rf.Registry + "/" + rf.Repository
	r.tags.mu.Lock()
	if r.tags.tags == nil {
		r.tags.tags = map[string]*tagEntry{}
	}
	e, ok := r.tags.tags[key]
	if !ok {
		e = &tagEntry{}
		r.tags.tags[key] = e
	}
	r.tags.mu.Unlock()
	e.once.Do(func() {
		names, err := r.listTags(ctx, rf)
		if errors.Is(err, errs.ErrNotFound) {
			return
		}
		for _, t := range names {
			if oci.IsCosignTag(t) {
				if e.set == nil {
					e.set = map[string]bool{}
				}
				e.set[t] = true
			}
		}
		e.err = err
	})
	return e.set, e.err
}
