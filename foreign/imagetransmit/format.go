package imagetransmit

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
)

// Format is image-transmit's bundle format as a bundle.Format.
type Format struct{}

var _ bundle.Format = Format{}

// Register makes ferry read image-transmit bundles (bundle.Open, --inc).
func Register() { bundle.RegisterFormat(Format{}) }

// Name names the format.
func (Format) Name() string { return "image-transmit" }

// Sniff tells image-transmit's meta file by its top-level keys: its
// data files, or its manifests, and nothing ferry writes.
func (Format) Sniff(head []byte) bool {
	for _, line := range bytes.Split(head, []byte("\n")) {
		for _, k := range []string{"datafiles:", "manifests:", "compressor:"} {
			if bytes.HasPrefix(line, []byte(k)) {
				return true
			}
		}
	}
	return false
}

// Open reads an image-transmit meta file and indexes its data files.
func (Format) Open(path string) (*meta.Meta, bundle.Store, error) {
	im, err := loadMeta(path)
	if err != nil {
		return nil, nil, err
	}
	st, err := openStore(filepath.Dir(path), im)
	if err != nil {
		return nil, nil, err
	}
	m, err := convert(path, im, st)
	if err != nil {
		return nil, nil, err
	}
	st.m = m
	return m, st, nil
}

// Base reads an image-transmit meta file as the base of an increment:
// every blob its blobs list names was carried by it (Blobs) or, for a skip
// marker, by the base that marker names (BaseBlobs). Its data files are
// not read.
func (Format) Base(path string) (*meta.Meta, error) {
	im, err := loadMeta(path)
	if err != nil {
		return nil, err
	}
	id := idOf(path)
	m := newMeta(path, im)
	descs := descriptors(im)
	bases := map[string]bool{}
	for _, h := range slices.Sorted(maps.Keys(im.Blobs)) {
		d := descs[digestOf(h)]
		d.Digest = digestOf(h)
		base, stored := baseOf(im.Blobs[h])
		if stored || base == "" {
			m.Blobs = append(m.Blobs, meta.Blob{Digest: d.Digest, Size: d.Size, MediaType: d.MediaType})
			continue
		}
		// the base of a base is named when its meta file is at hand (its
		// sha256 pins it); otherwise this bundle stands for it
		owner := id
		if sum := fileSHA256(filepath.Join(filepath.Dir(path), base)); sum != "" {
			owner = idOf(base)
			if !bases[owner] {
				bases[owner] = true
				m.Bases = append(m.Bases, meta.Base{ID: owner, Meta: base, SHA256: sum})
			}
		}
		m.BaseBlobs = append(m.BaseBlobs, meta.BaseBlob{Digest: d.Digest, Size: d.Size, MediaType: d.MediaType, Base: owner})
	}
	return m, nil
}

// newMeta is the head of the meta model for an image-transmit bundle.
func newMeta(path string, im *itMeta) *meta.Meta {
	m := &meta.Meta{
		SchemaVersion: meta.SchemaVersion, Kind: "image-transmit", ID: idOf(path), Type: meta.TypeFull,
		Tool: "image-transmit", Compression: im.Compressor,
	}
	if st, err := os.Stat(path); err == nil {
		m.Created = st.ModTime().UTC()
	}
	for _, refs := range im.Blobs {
		if base, stored := baseOf(refs); base != "" && !stored {
			m.Type = meta.TypeIncremental
			break
		}
	}
	return m
}

// descriptors are the config and layer descriptors of every manifest of
// the meta file, by digest.
func descriptors(im *itMeta) map[digest.Digest]descriptor.Descriptor {
	out := map[digest.Digest]descriptor.Descriptor{}
	for _, name := range slices.Sorted(maps.Keys(im.Manifests)) {
		mf := manifestOf(im.Manifests[name])
		mm, err := bundle.ParseManifest(mf)
		if err != nil {
			continue
		}
		blobs, _, _ := oci.References(mm)
		for _, d := range blobs {
			if d.Digest.Validate() == nil {
				out[d.Digest] = d
			}
		}
	}
	return out
}

func manifestOf(raw string) meta.Manifest {
	b := []byte(raw)
	return meta.Manifest{Digest: digest.FromBytes(b), MediaType: mediaTypeOf(b), Size: int64(len(b)), Raw: b}
}

// convert builds ferry's meta model of an image-transmit bundle: one image
// per manifest (the manifest as stored, in the meta only), its blobs found
// in the data files (st), or skipped as carried by a base bundle.
func convert(path string, im *itMeta, st *store) (*meta.Meta, error) {
	m := newMeta(path, im)
	for _, name := range slices.Sorted(maps.Keys(im.Datafiles)) {
		m.Parts = append(m.Parts, meta.Part{Name: name, Size: im.Datafiles[name]})
	}
	blobs := map[digest.Digest]*meta.Blob{}
	baseBlobs := map[digest.Digest]*meta.BaseBlob{}
	bases := map[string]bool{}
	mans := map[digest.Digest]bool{}
	for _, name := range slices.Sorted(maps.Keys(im.Manifests)) {
		r, _ := parseImage(name) // validated
		mf := manifestOf(im.Manifests[name])
		mm, err := bundle.ParseManifest(mf)
		if err != nil {
			return nil, fmt.Errorf("%s: image %s: %w", filepath.Base(path), name, err)
		}
		img := meta.Image{Source: strings.TrimPrefix(strings.TrimPrefix(name, "http://"), "https://"), Repository: r.Repository, Tag: r.Tag, Digest: mf.Digest, MediaType: mf.MediaType}
		if r.Digest != "" {
			img.Tag = ""
		}
		m.Images = append(m.Images, img)
		if !mans[mf.Digest] {
			mans[mf.Digest] = true
			mf.Repos = []string{r.Repository}
			m.Manifests = append(m.Manifests, mf)
		} else {
			addRepo(&m.ManifestByDigest(mf.Digest).Repos, r.Repository)
		}
		refs, _, err := oci.References(mm)
		if err != nil {
			return nil, fmt.Errorf("%s: image %s: %w", filepath.Base(path), name, err)
		}
		for _, d := range refs {
			if d.Digest.Validate() != nil || d.Digest.Algorithm() != digest.SHA256 || d.Size < 0 {
				return nil, fmt.Errorf("%s: image %s: %w: blob %q (image-transmit stores sha256 blobs)", filepath.Base(path), name, ErrInvalid, d.Digest)
			}
			h := d.Digest.Encoded()
			part, ok := st.partOf(d.Digest)
			if !ok {
				base, stored := baseOf(im.Blobs[h])
				if base != "" && !stored {
					bb := baseBlobs[d.Digest]
					if bb == nil {
						bb = &meta.BaseBlob{Digest: d.Digest, Size: d.Size, MediaType: d.MediaType, Base: idOf(base)}
						baseBlobs[d.Digest] = bb
						bases[base] = true
					}
					addRepo(&bb.Repos, r.Repository)
					continue
				}
				if part, ok = st.missingPart(); !ok {
					continue // verify and upload report it: a manifest's blob neither stored nor in a base
				}
			}
			b := blobs[d.Digest]
			if b == nil {
				b = &meta.Blob{Digest: d.Digest, Size: d.Size, MediaType: d.MediaType, Part: part}
				blobs[d.Digest] = b
			}
			addRepo(&b.Repos, r.Repository)
		}
	}
	for _, d := range slices.Sorted(maps.Keys(blobs)) {
		m.Blobs = append(m.Blobs, *blobs[d])
	}
	for _, d := range slices.Sorted(maps.Keys(baseBlobs)) {
		m.BaseBlobs = append(m.BaseBlobs, *baseBlobs[d])
	}
	for _, base := range slices.Sorted(maps.Keys(bases)) {
		m.Bases = append(m.Bases, meta.Base{ID: idOf(base), Meta: base, SHA256: fileSHA256(filepath.Join(filepath.Dir(path), base))})
	}
	return m, nil
}

func addRepo(repos *[]string, repo string) {
	for _, r := range *repos {
		if r == repo {
			return
		}
	}
	*repos = append(*repos, repo)
}
