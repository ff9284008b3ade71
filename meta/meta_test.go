package meta_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-oss/ferry/meta"
)

var sum = strings.Repeat("ab", 32)

func sample() *meta.Meta {
	raw := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`)
	md := digest.FromBytes(raw)
	blob := digest.FromString("layer")
	base := digest.FromString("base layer")
	return &meta.Meta{
		SchemaVersion: meta.SchemaVersion, Kind: meta.Kind, ID: "ferry_incr_20261124T100000Z", Type: meta.TypeIncremental,
		Tool: "ferry test", Created: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC), Compression: "none",
		Parts:     []meta.Part{{Name: "ferry_incr_20261124T100000Z_1.tar", Size: 10240, SHA256: sum}},
		Bases:     []meta.Base{{ID: "ferry_full_20261101T100000Z", Meta: "ferry_full_20261101T100000Z_meta.yaml", SHA256: sum}},
		Images:    []meta.Image{{Source: "localhost:5000/team/app:1", Repository: "team/app", Tag: "1", Digest: md, MediaType: "application/vnd.oci.image.manifest.v1+json"}},
		Manifests: []meta.Manifest{{Digest: md, MediaType: "application/vnd.oci.image.manifest.v1+json", Size: int64(len(raw)), Part: "ferry_incr_20261124T100000Z_1.tar", Repos: []string{"team/app"}, Raw: raw}},
		Blobs:     []meta.Blob{{Digest: blob, Size: 5, Part: "ferry_incr_20261124T100000Z_1.tar", Repos: []string{"team/app"}}},
		BaseBlobs: []meta.BaseBlob{{Digest: base, Size: 10, Base: "ferry_full_20261101T100000Z", Repos: []string{"team/app"}, BaseRepos: []string{"library/base"}}},
	}
}

func TestRoundTrip(t *testing.T) {
	m := sample()
	b, err := meta.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := meta.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := meta.Marshal(got)
	if !bytes.Equal(b, b2) {
		t.Fatalf("round trip changed the file:\n%s\n---\n%s", b, b2)
	}
	if !bytes.Equal(got.Manifests[0].Raw, m.Manifests[0].Raw) {
		t.Fatal("manifest bytes changed")
	}
}

func TestParseErrors(t *testing.T) {
	good, _ := meta.Marshal(sample())
	tests := []struct {
		name string
		edit func(string) string
		err  error
		msg  string
	}{
		{"unknown field", func(s string) string { return s + "extra: 1\n" }, meta.ErrInvalid, "extra"},
		{"future schema", func(s string) string { return strings.Replace(s, "schemaVersion: 1", "schemaVersion: 9", 1) }, meta.ErrSchema, "schemaVersion 9"},
		{"no schema", func(s string) string { return strings.Replace(s, "schemaVersion: 1\n", "", 1) }, meta.ErrSchema, "schemaVersion 0"},
		{"wrong kind", func(s string) string { return strings.Replace(s, "kind: ferry-bundle", "kind: other", 1) }, meta.ErrInvalid, "kind"},
		{"bad type", func(s string) string { return strings.Replace(s, "type: incr", "type: weird", 1) }, meta.ErrInvalid, "type"},
		{"part path", func(s string) string { return strings.ReplaceAll(s, "ferry_incr_20261124T100000Z_1.tar", "../x.tar") }, meta.ErrInvalid, "part name"},
		{"bad sha", func(s string) string { return strings.Replace(s, "sha256: "+sum, "sha256: xyz", 1) }, meta.ErrInvalid, "sha256"},
		{"bad digest", func(s string) string { return strings.Replace(s, "digest: sha256:", "digest: sha256:zz", 1) }, meta.ErrInvalid, "digest"},
		{"raw mismatch", func(s string) string { return strings.Replace(s, "raw: eyJ", "raw: eyK", 1) }, meta.ErrInvalid, "raw"},
		{"unknown base", func(s string) string { return strings.Replace(s, "base: ferry_full", "base: other_full", 1) }, meta.ErrInvalid, "unknown base"},
		{"bad repo", func(s string) string { return strings.Replace(s, "repository: team/app", "repository: Team/App", 1) }, meta.ErrInvalid, "repository"},
		{"empty", func(string) string { return "" }, meta.ErrInvalid, "empty"},
		{"not yaml", func(string) string { return "{[" }, meta.ErrInvalid, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := meta.Parse([]byte(tt.edit(string(good))))
			if !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err %q does not mention %q", err, tt.msg)
			}
		})
	}
}

func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "x_meta.yaml")
	if err := meta.Write(file, sample()); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temp files left: %v", entries)
	}
	m, err := meta.Load(file)
	if err != nil || m.ID != sample().ID {
		t.Fatalf("load: %v", err)
	}
	if _, err := meta.Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

// FuzzParse: no input panics, and what parses re-encodes to a file that
// parses to the same content.
func FuzzParse(f *testing.F) {
	good, _ := meta.Marshal(sample())
	f.Add(good)
	f.Add([]byte("schemaVersion: 1\nkind: ferry-bundle\n"))
	f.Add([]byte("kind: ferry-bundle\nschemaVersion: 1\ntype: full\nid: a\nimages: []\nparts: []\nmanifests: []\nblobs: []\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := meta.Parse(b)
		if err != nil {
			return
		}
		out, err := meta.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := meta.Parse(out)
		if err != nil {
			t.Fatalf("re-encoded meta does not parse: %v\n%s", err, out)
		}
		out2, _ := meta.Marshal(m2)
		if !bytes.Equal(out, out2) {
			t.Fatal("encoding is not stable")
		}
	})
}
