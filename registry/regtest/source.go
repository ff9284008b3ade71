package regtest

import (
	"context"
	"testing"
	"time"

	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/selection"
	"github.com/ferry-oss/ferry/transfer"
)

// Source is an in-memory olareg seeded with the Fixtures and "big/one:1"
// (one 1 MiB uncompressed layer), for tests that need real bundles.
type Source struct {
	Host   string
	Reg    *registry.Registry
	Images map[string]*Image
	// Referrers makes Save carry referrers (SBOMs, signatures) too.
	Referrers bool
	clock     time.Time
}

// NewSource starts and seeds the registry; it stops when the test ends.
func NewSource(t testing.TB) *Source {
	t.Helper()
	host, stop := Olareg()
	t.Cleanup(stop)
	reg, err := registry.New(registry.Options{Registries: []string{host}})
	if err != nil {
		t.Fatal(err)
	}
	s := &Source{Host: host, Reg: reg, Images: Fixtures(), clock: time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC)}
	s.Images["big/one:1"] = NewBigImage(7, 1, 1<<20)
	for n, img := range s.Images {
		r, _ := ref.New(host + "/" + n)
		if err := Push(context.Background(), reg, r, img); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// Save writes a bundle of the images named by list lines (paths on the
// source, "SRC -> DST" renames) into dir and returns its meta file; bases
// make it an increment. Each bundle is an hour younger than the last.
func (s *Source) Save(t testing.TB, dir string, codec bundle.Codec, bases []string, lines ...string) string {
	t.Helper()
	var specs []selection.ImageSpec
	for _, l := range lines {
		sp, err := selection.ParseImage(l, s.Host)
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, sp)
	}
	s.clock = s.clock.Add(time.Hour)
	now := s.clock
	w, err := bundle.NewWriter(bundle.WriterOptions{Dir: dir, Parts: 2, Codec: codec, Bases: bases, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	res, err := transfer.Save(context.Background(), s.Reg, w, specs, transfer.SaveOptions{Jobs: 2, Referrers: s.Referrers})
	if err != nil {
		t.Fatal(err)
	}
	return res.MetaPath
}
