package registry

import (
	"context"
	"errors"
	"fmt"

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

// TagList lists every tag of repository r (following the registry's
// pagination links).
func (r *Registry) TagList(ctx context.Context, rf ref.Ref) ([]string, error) {
	rf = rf.SetTag("latest")
	tl, err := r.rc.TagList(ctx, rf)
	if err != nil {
		return nil, fmt.Errorf("listing tags of %s: %w", rf.Registry+"/"+rf.Repository, err)
	}
	return tl.GetTags()
}

// ManifestDigest is a HEAD request for the manifest at rf (a tag or a
// digest); a manifest that is not there is ("", nil).
func (r *Registry) ManifestDigest(ctx context.Context, rf ref.Ref) (digest.Digest, error) {
	m, err := r.rc.ManifestHead(ctx, rf, regclient.WithManifestRequireDigest())
	if err != nil {
		if errors.Is(err, errs.ErrNotFound) {
			return "", nil
		}
		return "", err
	}
	return m.GetDescriptor().Digest, nil
}
