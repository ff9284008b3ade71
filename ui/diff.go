package ui

import (
	"errors"
	"net/http"
	"slices"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-oss/ferry/meta"
)

// PLACEHOLDER until the diff engine of issue 21 is on main: a minimal
// meta-against-meta comparison (images by target name and digest, blobs by
// digest), without per-platform changes or referrers.

// Diff is what changed from bundle Old to bundle New.
type Diff struct {
	Old, New    string        `json:"-"`
	OldID       string        `json:"old"`
	NewID       string        `json:"new"`
	Engine      string        `json:"engine"`
	Added       []ImageChange `json:"added"`
	Removed     []ImageChange `json:"removed"`
	Changed     []ImageChange `json:"changed"`
	Unchanged   int           `json:"unchanged"`
	BlobsAdded  int           `json:"blobsAdded"`
	BytesAdded  int64         `json:"bytesAdded"`
	BlobsGone   int           `json:"blobsRemoved"`
	BytesGone   int64         `json:"bytesRemoved"`
	Placeholder bool          `json:"placeholder"`
}

// ImageChange is an image of one side or both.
type ImageChange struct {
	Name      string `json:"name"` // repository:tag (or @digest) at the target
	OldDigest string `json:"oldDigest,omitempty"`
	NewDigest string `json:"newDigest,omitempty"`
}

func diffMetas(old, cur *meta.Meta) *Diff {
	d := &Diff{OldID: old.ID, NewID: cur.ID, Engine: "meta", Placeholder: true,
		Added: []ImageChange{}, Removed: []ImageChange{}, Changed: []ImageChange{}}
	was := imagesByName(old)
	now := imagesByName(cur)
	for _, name := range sortedKeys(now) {
		o, ok := was[name]
		switch {
		case !ok:
			d.Added = append(d.Added, ImageChange{Name: name, NewDigest: now[name].String()})
		case o != now[name]:
			d.Changed = append(d.Changed, ImageChange{Name: name, OldDigest: o.String(), NewDigest: now[name].String()})
		default:
			d.Unchanged++
		}
	}
	for _, name := range sortedKeys(was) {
		if _, ok := now[name]; !ok {
			d.Removed = append(d.Removed, ImageChange{Name: name, OldDigest: was[name].String()})
		}
	}
	ob, nb := blobSizes(old), blobSizes(cur)
	for dg, size := range nb {
		if _, ok := ob[dg]; !ok {
			d.BlobsAdded++
			d.BytesAdded += size
		}
	}
	for dg, size := range ob {
		if _, ok := nb[dg]; !ok {
			d.BlobsGone++
			d.BytesGone += size
		}
	}
	return d
}

func imagesByName(m *meta.Meta) map[string]digest.Digest {
	out := map[string]digest.Digest{}
	for _, img := range m.Images {
		name := img.Repository + ":" + img.Tag
		if img.Tag == "" {
			name = img.Repository + "@" + img.Digest.String()
		}
		out[name] = img.Digest
	}
	return out
}

// blobSizes is every blob the bundle's images need: stored or in a base.
func blobSizes(m *meta.Meta) map[digest.Digest]int64 {
	out := map[digest.Digest]int64{}
	for _, b := range m.Blobs {
		out[b.Digest] = b.Size
	}
	for _, b := range m.BaseBlobs {
		out[b.Digest] = b.Size
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// diff compares bundle ?new= with ?old=, or with its newest base bundle
// in the directory when old is not given.
func (s *Server) diff(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	newFile, oldFile := q.Get("new"), q.Get("old")
	cur, err := s.bundles.full(newFile)
	if err != nil {
		apiError(w, http.StatusNotFound, "no-bundle", err)
		return
	}
	if oldFile == "" {
		if oldFile = s.bundles.newestBase(cur); oldFile == "" {
			apiError(w, http.StatusNotFound, "no-base", errors.New("no base bundle in the directory"))
			return
		}
	}
	old, err := s.bundles.full(oldFile)
	if err != nil {
		apiError(w, http.StatusNotFound, "no-bundle", err)
		return
	}
	d := diffMetas(old, cur)
	d.Old, d.New = oldFile, newFile
	writeJSON(w, http.StatusOK, d)
}

// newestBase is the meta file of m's most recent base bundle that is in
// the directory, or "".
func (c *catalog) newestBase(m *meta.Meta) string {
	best, bestM := "", (*summary)(nil)
	for _, base := range m.Bases {
		b := c.base(base)
		if b.State != "ok" {
			continue
		}
		bm, err := c.meta(b.File)
		if err == nil && (bestM == nil || bm.Created.After(bestM.Created)) {
			best, bestM = b.File, bm
		}
	}
	return best
}
