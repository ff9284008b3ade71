package transfer

import (
	"fmt"

	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/selection"
)

// RegistryTarget maps a bundle repository to host/namespace/repository,
// after applying renames (bundle repository -> target repository).
func RegistryTarget(host ref.Ref, namespace string, renames map[string]string) func(string) (ref.Ref, error) {
	return func(repo string) (ref.Ref, error) {
		if to, ok := renames[repo]; ok {
			repo = to
		}
		if namespace != "" {
			repo = namespace + "/" + repo
		}
		if !meta.ValidRepository(repo) {
			return ref.Ref{}, fmt.Errorf("%w: target repository %q", selection.ErrBadList, repo)
		}
		r := host
		r.Scheme, r.Repository, r.Tag, r.Digest = "reg", repo, "", ""
		r.Reference = r.Registry + "/" + repo
		return r, nil
	}
}

// Renames turns "SRC -> DST" list entries into renames of the bundle's
// repositories: SRC is matched against each image's source reference, or
// its source repository.
func Renames(m *meta.Meta, specs []selection.ImageSpec) (map[string]string, error) {
	out := map[string]string{}
	for _, s := range specs {
		matched := false
		for _, img := range m.Images {
			src, err := ref.New(img.Source)
			if err != nil {
				continue
			}
			if img.Source == s.Source.CommonName() || (src.Registry == s.Source.Registry && src.Repository == s.Source.Repository) {
				if prev, ok := out[img.Repository]; ok && prev != s.Repository {
					return nil, fmt.Errorf("%w: %s renamed to both %s and %s", selection.ErrBadList, img.Repository, prev, s.Repository)
				}
				out[img.Repository] = s.Repository
				matched = true
			}
		}
		if !matched {
			return nil, fmt.Errorf("%w: %s matches no image of the bundle", selection.ErrBadList, s.Source.CommonName())
		}
	}
	return out, nil
}
