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
	"github.com/ferry-oss/ferry/internal/safe"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/meta/sign"
	"github.com/ferry-oss/ferry/oci"
)

// inspectReferrers lists, per image, the referrers the bundle carries for
// its manifests (an index's children included): artifact type, digest,
// size, and the tag of a cosign-style artifact.
func inspectReferrers(w io.Writer, bd *bundle.Bundle) {
	rows, err := referrerRows(bd)
	if err != nil {
		fmt.Fprintf(w, "\nreferrers: %s\n", safe.Error(err))
		return
	}
	if len(rows) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nREFERRERS OF\tSUBJECT\tARTIFACT TYPE\tDIGEST\tSIZE\tTAG")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", safe.Line(r.img.Source), short(r.subject.String()), safe.Line(r.artifactType), short(r.digest.String()), formatSize(r.size), orDash(r.tag))
	}
	tw.Flush()
}

// referrerRow is a referrer of an image of a bundle.
type referrerRow struct {
	img             meta.Image
	subject, digest digest.Digest
	artifactType    string
	size            int64
	tag             string // a cosign-style artifact's tag
}

// referrerRows are the referrers the bundle carries for each image's
// manifests (an index's children included), referrers of referrers after
// theirs, in image order.
func referrerRows(bd *bundle.Bundle) ([]referrerRow, error) {
	m := bd.Meta
	refs, err := bundle.ReferrersOf(m)
	if err != nil {
		return nil, err
	}
	// cosign-style artifacts, tagged after their subject, by repository
	// and tag (with their place in the meta file, to list them in order)
	type taggedImage struct {
		i   int
		img meta.Image
	}
	tagged := map[[2]string][]taggedImage{}
	for i, img := range m.Images {
		if oci.IsCosignTag(img.Tag) {
			k := [2]string{img.Repository, img.Tag}
			tagged[k] = append(tagged[k], taggedImage{i, img})
		}
	}
	if len(refs) == 0 && len(tagged) == 0 {
		return nil, nil // no referrers: no need to walk every manifest again
	}
	var rows []referrerRow
	row := func(img meta.Image, subject, dg digest.Digest, tag string) {
		r := referrerRow{img: img, subject: subject, digest: dg, artifactType: "?", tag: tag}
		if mf := bd.Manifest(dg); mf != nil {
			r.size, r.artifactType = mf.Size, cmp.Or(oci.ArtifactType(mf.MediaType, mf.Raw), mf.MediaType)
		}
		rows = append(rows, r)
	}
	for _, img := range m.Images {
		if oci.IsCosignTag(img.Tag) {
			continue
		}
		eachManifest(bd, img.Digest, func(mm manifest.Manifest, _ []descriptor.Descriptor) {
			subject := mm.GetDescriptor().Digest
			var walk func(s digest.Digest)
			walk = func(s digest.Digest) {
				for _, r := range refs[s] {
					row(img, s, r, "")
					walk(r)
				}
			}
			walk(subject)
			if len(tagged) == 0 {
				return
			}
			var found []taggedImage
			for _, tag := range oci.CosignTags(subject) {
				found = append(found, tagged[[2]string{img.Repository, tag}]...)
			}
			slices.SortFunc(found, func(a, b taggedImage) int { return cmp.Compare(a.i, b.i) })
			for _, t := range found {
				row(img, subject, t.img.Digest, t.img.Tag)
				walk(t.img.Digest)
			}
		})
	}
	return rows, nil
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
