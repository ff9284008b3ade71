package meta

import (
	"reflect"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// TestMetaHeadFields: metaHead (Marshal's head) has every field of Meta
// but the lists Marshal writes an item at a time, with the same tags in
// the same order: a field added to Meta alone would be dropped on write.
func TestMetaHeadFields(t *testing.T) {
	lists := map[string]bool{"Images": true, "Manifests": true, "Blobs": true, "BaseBlobs": true, "Failed": true}
	mt, ht := reflect.TypeOf(Meta{}), reflect.TypeOf(metaHead{})
	j := 0
	for i := range mt.NumField() {
		f := mt.Field(i)
		if lists[f.Name] {
			continue
		}
		if j >= ht.NumField() || ht.Field(j).Name != f.Name || ht.Field(j).Tag != f.Tag || ht.Field(j).Type != f.Type {
			t.Fatalf("metaHead does not match Meta at field %s", f.Name)
		}
		j++
	}
	if j != ht.NumField() {
		t.Fatalf("metaHead has %d fields, Meta's head %d", ht.NumField(), j)
	}
}

// TestValidDigestShortCut: validDigest accepts exactly the digests
// go-digest's Validate accepts.
func TestValidDigestShortCut(t *testing.T) {
	good := digest.FromString("x").String()
	for _, d := range []string{good, strings.ToUpper(good), "SHA256" + good[6:], good[:70], good + "0", good[:70] + "g",
		"sha256:" + strings.Repeat("g", 64), "sha512:" + strings.Repeat("ab", 64), "sha256" + good[6:], "", "sha256:", ":" + good[7:]} {
		if got, want := validDigest(digest.Digest(d)), digest.Digest(d).Validate(); (got == nil) != (want == nil) {
			t.Errorf("%q: validDigest %v, Validate %v", d, got, want)
		}
	}
}
