package bundle_test

import (
	"context"
	"strings"
	"testing"

	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/registry/regtest"
)

// TestSetNewestTagWins: two bundles tag the same repository:tag; the
// newer bundle's image is the one the set lists and resolves.
func TestSetNewestTagWins(t *testing.T) {
	src := regtest.NewSource(t)
	dir := t.TempDir()
	older := src.Save(t, dir, bundle.CodecNone, nil, "team/app:1")
	newer := src.Save(t, dir, bundle.CodecGzip, nil, "team/tools:1 -> team/app:1")
	set, err := bundle.OpenSet(newer, older) // any order: by creation time
	if err != nil {
		t.Fatal(err)
	}
	imgs := set.Images()
	if len(imgs) != 1 || imgs[0].Digest != src.Images["team/tools:1"].Digest() {
		t.Fatalf("images %+v", imgs)
	}
	m, err := set.ManifestGet(context.Background(), ref.Ref{Repository: "team/app", Tag: "1"})
	if err != nil || m.GetDescriptor().Digest != src.Images["team/tools:1"].Digest() {
		t.Fatalf("team/app:1 resolves to %v, %v", m, err)
	}
	if _, err := bundle.OpenSet(older, older); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Fatalf("a bundle twice: %v", err)
	}
}
