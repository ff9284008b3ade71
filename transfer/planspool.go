package transfer

import (
	"encoding/json"
	"fmt"
	"sync"
	"unique"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"

	"github.com/ferry-oss/ferry/internal/spool"
	"github.com/ferry-oss/ferry/selection"
)

// planSpool keeps resolved image plans on disk between the phases of Save
// and Sync, so that memory does not grow with the number of images: a plan
// holds every manifest of an image (a few KB), and a mirror of 10,000
// images would otherwise keep all of them until the end. Plans are written
// once (put) and read back when a phase needs them (get); only an offset
// per image stays in memory.
//
// The file is unlinked at once where the system allows it (it vanishes
// with the process, even on kill -9) and removed by Close elsewhere.
type planSpool struct {
	*spool.Spool
	mu   sync.Mutex
	locs map[int]spool.Loc
}

// planRecord is the on-disk form of an imagePlan. The image's source and
// target references are not stored: they follow from its ImageSpec.
type planRecord struct {
	Top       int            `json:"top"`
	SrcDigest digest.Digest  `json:"srcDigest,omitempty"`
	Manifests []planManifest `json:"manifests"`
	Blobs     []planDesc     `json:"blobs"`
	Platforms []string       `json:"platforms,omitempty"`
	Tagged    []planReferrer `json:"tagged,omitempty"`
}

type planManifest struct {
	planDesc
	Raw []byte `json:"raw"`
}

type planDesc struct {
	MediaType string        `json:"mediaType"`
	Digest    digest.Digest `json:"digest"`
	Size      int64         `json:"size"`
}

type planReferrer struct {
	planDesc
	Tag string `json:"tag"`
}

func newPlanSpool(dir string) (*planSpool, error) {
	s, err := spool.New(dir)
	if err != nil {
		return nil, err
	}
	return &planSpool{Spool: s, locs: map[int]spool.Loc{}}, nil
}

func planDescOf(d descriptor.Descriptor) planDesc {
	return planDesc{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}
}

// desc is the descriptor; its media type is interned (a few distinct
// values among tens of thousands of blobs).
func (d planDesc) desc() descriptor.Descriptor {
	return descriptor.Descriptor{MediaType: unique.Make(d.MediaType).Value(), Digest: d.Digest, Size: d.Size}
}

// put stores p under key.
func (s *planSpool) put(key int, p *imagePlan) error {
	rec := planRecord{Top: -1, SrcDigest: p.srcDigest, Platforms: p.platforms}
	top := p.top.GetDescriptor().Digest
	for i, m := range p.manifests {
		raw, err := m.RawBody()
		if err != nil {
			return err
		}
		d := m.GetDescriptor()
		if d.Digest == top {
			rec.Top = i
		}
		rec.Manifests = append(rec.Manifests, planManifest{planDesc: planDescOf(d), Raw: raw})
	}
	if rec.Top < 0 {
		return fmt.Errorf("plan of %s: top manifest %s not among its manifests", p.spec, top)
	}
	for _, b := range p.blobs {
		rec.Blobs = append(rec.Blobs, planDescOf(b.desc))
	}
	for _, t := range p.tagged {
		rec.Tagged = append(rec.Tagged, planReferrer{planDesc: planDescOf(t.desc), Tag: t.tag})
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	loc, err := s.Write(b)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.locs[key] = loc
	return nil
}

// has reports whether a plan is stored under key.
func (s *planSpool) has(key int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.locs[key]
	return ok
}

// get reads the plan stored under key back; spec is the image it was
// planned for.
func (s *planSpool) get(key int, spec selection.ImageSpec) (*imagePlan, error) {
	s.mu.Lock()
	loc, ok := s.locs[key]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("plan spool: no plan %d", key)
	}
	b, err := s.Read(loc)
	if err != nil {
		return nil, err
	}
	var rec planRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("plan spool: %w", err)
	}
	p := &imagePlan{spec: spec, srcDigest: rec.SrcDigest, platforms: rec.Platforms}
	for _, pm := range rec.Manifests {
		m, err := manifest.New(manifest.WithRaw(pm.Raw), manifest.WithDesc(pm.desc()))
		if err != nil {
			return nil, fmt.Errorf("plan spool: manifest %s: %w", pm.Digest, err)
		}
		p.manifests = append(p.manifests, m)
	}
	if rec.Top < 0 || rec.Top >= len(p.manifests) {
		return nil, fmt.Errorf("plan spool: plan %d has no top manifest", key)
	}
	p.top = p.manifests[rec.Top]
	for _, d := range rec.Blobs {
		p.blobs = append(p.blobs, specBlob(spec, d.desc()))
	}
	for _, t := range rec.Tagged {
		p.tagged = append(p.tagged, taggedReferrer{tag: t.Tag, desc: t.desc()})
	}
	return p, nil
}
