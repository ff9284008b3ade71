package main

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"slices"
	"text/tabwriter"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/meta/sign"
)

// inspectReferrers lists, per image, the referrers the bundle carries for
// its manifests (an index's children included): artifact type, digest,
// size, and the tag of a cosign-style artifact.
func inspectReferrers(w io.Writer, m *meta.Meta) {
	refs, err := bundle.ReferrersOf(m)
	if err != nil {
		fmt.Fprintf(w, "\nreferrers: %v\n", err)
		return
	}
	var tagged []meta.Image // cosign-style artifacts, tagged after their subject
	for _, img := range m.Images {
		if bundle.IsCosignTag(img.Tag) {
			tagged = append(tagged, img)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := false
	row := func(img meta.Image, subject, dg digest.Digest, tag string) {
		if !header {
			fmt.Fprintln(tw, "\nREFERRERS OF\tSUBJECT\tARTIFACT TYPE\tDIGEST\tSIZE\tTAG")
			header = true
		}
		mf := m.ManifestByDigest(dg)
		size, typ := int64(0), "?"
		if mf != nil {
			size, typ = mf.Size, cmp.Or(bundle.ArtifactType(mf.MediaType, mf.Raw), mf.MediaType)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", img.Source, short(subject.String()), typ, short(dg.String()), formatSize(size), orDash(tag))
	}
	for _, img := range m.Images {
		if bundle.IsCosignTag(img.Tag) {
			continue
		}
		eachManifest(m, img.Digest, func(mm manifest.Manifest, _ []descriptor.Descriptor) {
			subject := mm.GetDescriptor().Digest
			var walk func(s digest.Digest)
			walk = func(s digest.Digest) {
				for _, r := range refs[s] {
					row(img, s, r, "")
					walk(r)
				}
			}
			walk(subject)
			for _, t := range tagged {
				if t.Repository == img.Repository && slices.Contains(bundle.CosignTags(subject), t.Tag) {
					row(img, subject, t.Digest, t.Tag)
					walk(t.Digest)
				}
			}
		})
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// inspectSignature says whether the meta file has a signature next to it.
func inspectSignature(w io.Writer, metaPath string) {
	if _, err := os.Stat(sign.SigPath(metaPath)); err == nil {
		fmt.Fprintf(w, "signature   %s (check it: ferry verify --key KEYS.pub)\n", sign.SigPath(metaPath))
		return
	}
	fmt.Fprintln(w, "signature   none")
}
