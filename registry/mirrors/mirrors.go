// Package mirrors writes what nodes need to pull images by their source
// names from the registry a bundle was uploaded to: containerd's hosts.toml
// (certs.d layout), containers-registries.conf(5) mirror entries for CRI-O
// and podman, and OpenShift's ImageDigestMirrorSet and ImageTagMirrorSet.
package mirrors

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/meta"
)

// ErrNoImages: the bundles name no image to mirror.
var ErrNoImages = errors.New("no images")

// Mapping is one repository: where the images are from and where the
// upload put them, both registry/repository.
type Mapping struct {
	Source, Mirror string
}

// Registry is what a node needs for one source registry: the mirror
// location that serves all its repositories (the mirror's host and
// namespace; empty when none of them kept its path), and the repositories
// the upload renamed, which need an entry each.
type Registry struct {
	Host    string
	Mirror  string
	Renamed []Mapping
	Repos   int // repositories of Host in the bundles
}

// Options shape the configuration.
type Options struct {
	// PlainHTTP: the mirror speaks HTTP, not HTTPS.
	PlainHTTP bool
	// Insecure: the mirror's TLS certificate is not verified.
	Insecure bool
	// CAFile is the path, on the nodes, of the CA certificate (PEM) that
	// signed the mirror's certificate (containerd's hosts.toml only).
	CAFile string
	// Name is the OpenShift resources' name (default "ferry-mirror").
	Name string
}

// FromMeta lists the repositories of the images of every bundle, mapped
// by target (a bundle repository to the repository the upload wrote; as
// bundle.RegistryTarget with the upload's namespace and renames).
func FromMeta(metas []*meta.Meta, target func(m *meta.Meta, repo string) (ref.Ref, error)) ([]Mapping, error) {
	seen := map[Mapping]bool{}
	var out []Mapping
	for _, m := range metas {
		for _, img := range m.Images {
			src, err := ref.New(img.Source)
			if err != nil {
				return nil, fmt.Errorf("image %s: %w", img.Source, err)
			}
			tgt, err := target(m, img.Repository)
			if err != nil {
				return nil, fmt.Errorf("image %s: %w", img.Source, err)
			}
			mp := Mapping{Source: src.Registry + "/" + src.Repository, Mirror: tgt.Registry + "/" + tgt.Repository}
			if !seen[mp] {
				seen[mp] = true
				out = append(out, mp)
			}
		}
	}
	if len(out) == 0 {
		return nil, ErrNoImages
	}
	slices.SortFunc(out, func(a, b Mapping) int {
		return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.Mirror, b.Mirror))
	})
	return out, nil
}

// Group sorts mappings by source registry. mirror is the mirror's
// host[/namespace]: a repository whose mirror is mirror + "/" + its
// source path is served by the registry-wide entry; any other is renamed.
func Group(maps []Mapping, mirror string) []Registry {
	var out []Registry
	for _, mp := range maps {
		host, repo, _ := strings.Cut(mp.Source, "/")
		if len(out) == 0 || out[len(out)-1].Host != host {
			out = append(out, Registry{Host: host})
		}
		r := &out[len(out)-1]
		r.Repos++
		if mp.Mirror == mirror+"/"+repo {
			r.Mirror = mirror
		} else {
			r.Renamed = append(r.Renamed, mp)
		}
	}
	return out
}

// scheme is the mirror's URL scheme.
func (o Options) scheme() string {
	if o.PlainHTTP {
		return "http"
	}
	return "https"
}

func (o Options) name() string {
	return cmp.Or(o.Name, "ferry-mirror")
}
