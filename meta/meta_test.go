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
	"gopkg.in/yaml.v3"

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
		Manifests: []meta.Manifest{{Digest: md, MediaType: "application/vnd.oci.image.manifest.v1+json", Size: int64(len(raw)), Part: "ferry_incr_20261124T100000Z_1.tar", Location: meta.Location{Offset: 0, Length: 1024}, Repos: []string{"team/app"}, Raw: raw}},
		Blobs:     []meta.Blob{{Digest: blob, Size: 5, Part: "ferry_incr_20261124T100000Z_1.tar", Location: meta.Location{Offset: 1024, Length: 1024}, Repos: []string{"team/app"}}},
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
		{"future schema", func(s string) string { return strings.Replace(s, "schemaVersion: 2", "schemaVersion: 9", 1) }, meta.ErrSchema, "schemaVersion 9"},
		{"no schema", func(s string) string { return strings.Replace(s, "schemaVersion: 2\n", "", 1) }, meta.ErrSchema, "schemaVersion 0"},
		{"wrong kind", func(s string) string { return strings.Replace(s, "kind: ferry-bundle", "kind: other", 1) }, meta.ErrInvalid, "kind"},
		{"bad type", func(s string) string { return strings.Replace(s, "type: incr", "type: weird", 1) }, meta.ErrInvalid, "type"},
		{"part path", func(s string) string { return strings.ReplaceAll(s, "ferry_incr_20261124T100000Z_1.tar", "../x.tar") }, meta.ErrInvalid, "part name"},
		{"bad sha", func(s string) string { return strings.Replace(s, "sha256: "+sum, "sha256: xyz", 1) }, meta.ErrInvalid, "sha256"},
		{"bad digest", func(s string) string { return strings.Replace(s, "digest: sha256:", "digest: sha256:zz", 1) }, meta.ErrInvalid, "digest"},
		{"raw mismatch", func(s string) string { return strings.Replace(s, "raw: eyJ", "raw: eyK", 1) }, meta.ErrInvalid, "raw"},
		{"unknown base", func(s string) string { return strings.Replace(s, "base: ferry_full", "base: other_full", 1) }, meta.ErrInvalid, "unknown base"},
		{"bad repo", func(s string) string { return strings.Replace(s, "repository: team/app", "repository: Team/App", 1) }, meta.ErrInvalid, "repository"},
		{"empty", func(string) string { return "" }, meta.ErrInvalid, "empty"},
		{"offset in schema 1", func(s string) string { return strings.Replace(s, "schemaVersion: 2", "schemaVersion: 1", 1) }, meta.ErrInvalid, "need schemaVersion 2"},
		{"no length", func(s string) string { return strings.Replace(s, "length: 1024", "length: 0", 1) }, meta.ErrInvalid, "outside part"},
		{"past the part", func(s string) string { return strings.Replace(s, "offset: 1024", "offset: 9728", 1) }, meta.ErrInvalid, "outside part"},
		{"beyond the end", func(s string) string { return strings.Replace(s, "offset: 1024", "offset: 9729", 1) }, meta.ErrInvalid, "outside part"},
		{"negative offset", func(s string) string { return strings.Replace(s, "offset: 1024", "offset: -1024", 1) }, meta.ErrInvalid, "outside part"},
		{"huge length", func(s string) string {
			return strings.Replace(s, "offset: 1024\n    length: 1024", "offset: 1024\n    length: 9223372036854775807", 1)
		}, meta.ErrInvalid, "outside part"},
		{"overlap", func(s string) string { return strings.Replace(s, "offset: 1024", "offset: 512", 1) }, meta.ErrInvalid, "overlaps"},
		{"too short for a tar entry", func(s string) string { return strings.Replace(s, "length: 1024", "length: 512", 1) }, meta.ErrInvalid, "cannot hold"},
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

// TestSchema1 parses a schema 1 meta: no offsets, the same other fields.
func TestSchema1(t *testing.T) {
	m := sample()
	m.SchemaVersion = 1
	for i := range m.Manifests {
		m.Manifests[i].Location = meta.Location{}
	}
	for i := range m.Blobs {
		m.Blobs[i].Location = meta.Location{}
	}
	b, _ := meta.Marshal(m)
	v1 := strings.NewReplacer("    offset: 0\n", "", "    length: 0\n", "").Replace(string(b))
	got, err := meta.Parse([]byte(v1))
	if err != nil {
		t.Fatal(err)
	}
	if got.SchemaVersion != 1 || got.Blobs[0].Located() {
		t.Fatalf("schema %d, located %v", got.SchemaVersion, got.Blobs[0].Located())
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
	v1 := sample()
	v1.SchemaVersion = 1
	v1.Manifests[0].Location, v1.Blobs[0].Location = meta.Location{}, meta.Location{}
	b1, _ := meta.Marshal(v1)
	f.Add(b1)
	overlap := sample()
	overlap.Blobs[0].Offset = 512
	b2, _ := meta.Marshal(overlap)
	f.Add(b2)
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

// TestMarshalByItems: Marshal, which encodes the long lists an item at a
// time, writes the same bytes as one yaml.v3 Encode of the whole Meta,
// with every list full or empty, and failures listed.
func TestMarshalByItems(t *testing.T) {
	full := sample()
	full.Partial = true
	full.Failed = []meta.FailedItem{{Source: "reg.test/a:1", Error: "manifest unknown: \"quoted\"\nsecond line"}}
	empty := sample()
	empty.Images, empty.Manifests, empty.Blobs, empty.BaseBlobs, empty.Bases, empty.Platforms = nil, nil, nil, nil, nil, nil
	for name, m := range map[string]*meta.Meta{"full": full, "empty lists": empty} {
		t.Run(name, func(t *testing.T) {
			var want bytes.Buffer
			enc := yaml.NewEncoder(&want)
			enc.SetIndent(2)
			if err := enc.Encode(m); err != nil {
				t.Fatal(err)
			}
			_ = enc.Close()
			got, err := meta.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("Marshal differs from one Encode:\n--- got\n%s\n--- want\n%s", got, want.Bytes())
			}
		})
	}
}

// TestWriteStreams: Write encodes straight into the file the bytes of
// Marshal, and WriteTee's tee sees exactly those bytes; an error from
// beforeRename leaves no file.
func TestWriteStreams(t *testing.T) {
	dir := t.TempDir()
	m := sample()
	want, err := meta.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "x_meta.yaml")
	var tee bytes.Buffer
	called := false
	if err := meta.WriteTee(file, m, &tee, func() error { called = true; return nil }); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(file)
	if !bytes.Equal(got, want) || !bytes.Equal(tee.Bytes(), want) || !called {
		t.Fatalf("file %d bytes, tee %d bytes, Marshal %d bytes, beforeRename called %v", len(got), tee.Len(), len(want), called)
	}
	other := filepath.Join(dir, "y_meta.yaml")
	if err := meta.WriteTee(other, m, nil, func() error { return errors.New("no") }); err == nil {
		t.Fatal("beforeRename's error was lost")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("files left: %v", entries)
	}
}

// TestValidationGaps: what verify used to accept and upload could never
// push: a negative or repeated base blob, a blob both stored and listed as
// a base blob, and a base meta file name with ../, a directory or control
// characters.
func TestValidationGaps(t *testing.T) {
	tests := []struct {
		name string
		edit func(m *meta.Meta)
		msg  string
	}{
		{"negative base blob size", func(m *meta.Meta) { m.BaseBlobs[0].Size = -1 }, "size -1"},
		{"base blob listed twice", func(m *meta.Meta) { m.BaseBlobs = append(m.BaseBlobs, m.BaseBlobs[0]) }, "listed twice"},
		{"stored and a base blob", func(m *meta.Meta) { m.BaseBlobs[0].Digest = m.Blobs[0].Digest }, "stored and a base blob"},
		{"base meta with ../", func(m *meta.Meta) { m.Bases[0].Meta = "../../etc/x_meta.yaml" }, "base"},
		{"base meta in a directory", func(m *meta.Meta) { m.Bases[0].Meta = "sub/x_meta.yaml" }, "base"},
		{"base meta with escapes", func(m *meta.Meta) { m.Bases[0].Meta = "x\x1b[2J_meta.yaml" }, "base"},
		{"base listed twice", func(m *meta.Meta) { m.Bases = append(m.Bases, m.Bases[0]) }, "listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := sample()
			tt.edit(m)
			b, err := meta.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := meta.Parse(b); !errors.Is(err, meta.ErrInvalid) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err %v, want ErrInvalid naming %q", err, tt.msg)
			}
		})
	}
	if _, err := meta.Parse(must(meta.Marshal(sample()))); err != nil {
		t.Fatalf("the sample itself: %v", err)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
