package archive

import (
	"errors"
	"fmt"
	"strings"

	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/transfer"
)

// ErrNoImage is returned by Select for a name that matches no image.
var ErrNoImage = errors.New("no such image in the bundles")

// Namer gives an image of a bundle its name in the archive. SourceNames
// is the default.
type Namer func(meta.Image) (ref.Ref, bool, error)

// SourceNames names an image by the reference it was saved from (what
// pods and compose files usually refer to); an image saved by digest gets
// no name.
func SourceNames(img meta.Image) (ref.Ref, bool, error) {
	r, err := ref.New(img.Source)
	if err != nil {
		return ref.Ref{}, false, fmt.Errorf("image %s: %w", img.Source, err)
	}
	if r.Tag == "" {
		return ref.Ref{}, false, nil
	}
	return r.SetTag(r.Tag), true, nil
}

// TargetNames names images as an upload to host/namespace would: the
// bundle's target repository and tag.
func TargetNames(host ref.Ref, namespace string) Namer {
	target := transfer.RegistryTarget(host, namespace, nil)
	return func(img meta.Image) (ref.Ref, bool, error) {
		if img.Tag == "" {
			return ref.Ref{}, false, nil
		}
		r, err := target(img.Repository)
		if err != nil {
			return ref.Ref{}, false, err
		}
		return r.SetTag(img.Tag), true, nil
	}
}

// Select picks the images of set to export: every image with all, else
// the image each of want names, as its source reference or as its
// repository:tag at the target (or its name as namer gives it).
func Select(set *bundle.Set, want []string, all bool, namer Namer) ([]Image, error) {
	if namer == nil {
		namer = SourceNames
	}
	imgs := set.Images()
	var out []Image
	add := func(img meta.Image) error {
		from, err := ref.New(img.Source)
		if err != nil {
			return fmt.Errorf("image %s: %w", img.Source, err)
		}
		from.Repository = img.Repository // the bundle's name for it
		x := Image{From: from.SetDigest(img.Digest.String())}
		n, ok, err := namer(img)
		if err != nil {
			return err
		}
		if ok {
			x.Names = append(x.Names, n)
		}
		out = append(out, x)
		return nil
	}
	if all {
		for _, img := range imgs {
			if err := add(img); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	for _, w := range want {
		match := -1
		wn := normalized(w)
		for i, img := range imgs {
			n, ok, _ := namer(img)
			if w == img.Source || (wn != "" && wn == normalized(img.Source)) || (img.Tag != "" && w == img.Repository+":"+img.Tag) || (ok && wn == n.CommonName()) {
				match = i
			}
		}
		if match < 0 {
			var have []string
			for _, img := range imgs {
				have = append(have, img.Source)
				if len(have) == 5 {
					have = append(have, "…")
					break
				}
			}
			return nil, fmt.Errorf("%w: %s (the bundles have %s)", ErrNoImage, w, strings.Join(have, ", "))
		}
		if err := add(imgs[match]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func normalized(s string) string {
	r, err := ref.New(s)
	if err != nil {
		return ""
	}
	return r.CommonName()
}
