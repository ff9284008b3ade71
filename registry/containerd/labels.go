package containerd

import (
	"fmt"

	"github.com/containerd/containerd/images"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/regclient/regclient/types/manifest"

	"github.com/ferry-oss/ferry/oci"
)

// referrerLabel is the prefix of the GC label that keeps a referrer (or a
// cosign-style signature) as long as the manifest it refers to: any
// label under containerd.io/gc.ref.content is a reference to content for
// containerd's garbage collector.
const referrerLabel = "containerd.io/gc.ref.content.referrer."

// gcLabels are the garbage collection labels containerd's own pull puts on
// a manifest (images.SetChildrenMappedLabels with images.ChildGCLabels):
// an index refers to its children, an image manifest to its config and
// layers. Content so labelled lives as long as an image refers to its
// top manifest.
func gcLabels(m manifest.Manifest) (map[string]string, error) {
	blobs, children, err := oci.References(m)
	if err != nil {
		return nil, err
	}
	labels := map[string]string{}
	seen := map[string]int{}
	for _, d := range append(blobs, children...) {
		for _, key := range images.ChildGCLabels(ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}) {
			idx := seen[key]
			seen[key] = idx + 1
			if idx > 0 || key[len(key)-1] == '.' {
				key = fmt.Sprintf("%s%d", key, idx)
			}
			labels[key] = d.Digest.String()
		}
	}
	return labels, nil
}

// pinLabel is the label on subject that keeps referrer r.
func pinLabel(r digest.Digest) string {
	return referrerLabel + r.Encoded()
}
