package bundle

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/ref"
)

func testJournal() []byte {
	var b bytes.Buffer
	b.Write(encodeRecord(journalHeader{Ferry: "resume", V: journalVersion, ID: "ferry_full_20261201T000000Z", Created: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Inputs: strings.Repeat("ab", 32)}))
	b.Write(encodeRecord(journalEntry{Kind: "b", Digest: digest.FromString("a"), Size: 1, MediaType: "application/octet-stream", Part: 1, Offset: 0, Length: 1536}))
	b.Write(encodeRecord(journalEntry{Kind: "m", Digest: digest.FromString("m"), Size: 1, MediaType: "application/vnd.oci.image.manifest.v1+json", Part: 2, Offset: 1536, Length: 1536}))
	return b.Bytes()
}

func TestParseJournal(t *testing.T) {
	full := testJournal()
	hdr, entries, err := parseJournal(bytes.NewReader(full))
	if err != nil || len(entries) != 2 || hdr.ID != "ferry_full_20261201T000000Z" {
		t.Fatalf("hdr %+v entries %d err %v", hdr, len(entries), err)
	}
	// every cut inside the last record drops it, and only it
	last := bytes.LastIndexByte(full[:len(full)-1], '\n') + 1
	for n := last; n < len(full); n++ {
		_, got, err := parseJournal(bytes.NewReader(full[:n]))
		if err != nil || len(got) != 1 {
			t.Fatalf("cut at %d: %d entries, %v", n, len(got), err)
		}
	}
	// a flipped byte in a record drops it and what follows
	for _, at := range []int{last + 3, last + 20, len(full) - 2} {
		b := bytes.Clone(full)
		b[at] ^= 0x01
		if _, got, _ := parseJournal(bytes.NewReader(b)); len(got) != 1 {
			t.Errorf("flip at %d: %d entries", at, len(got))
		}
	}
	for name, bad := range map[string][]byte{
		"empty":     nil,
		"meta yaml": []byte("schemaVersion: 2\nkind: ferry-bundle\n"),
		"no header": full[last:],
	} {
		if _, _, err := parseJournal(bytes.NewReader(bad)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

// FuzzParseJournal: any bytes give a journal whose entries are valid and
// encode to the bytes they came from, or an error; never a panic.
func FuzzParseJournal(f *testing.F) {
	f.Add(testJournal())
	f.Add(testJournal()[:100])
	f.Add([]byte("00000000 {}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		hdr, entries, err := parseJournal(bytes.NewReader(b))
		if err != nil {
			if len(entries) != 0 {
				t.Fatal("entries with an error")
			}
			return
		}
		if !hdr.valid() {
			t.Fatalf("invalid header %+v", hdr)
		}
		var re bytes.Buffer
		re.Write(encodeRecord(hdr))
		for _, e := range entries {
			if !e.valid() {
				t.Fatalf("invalid entry %+v", e)
			}
			re.Write(encodeRecord(e))
		}
		hdr2, entries2, err := parseJournal(&re)
		if err != nil || !reflect.DeepEqual(entries, entries2) || !hdr2.Created.Equal(hdr.Created) || hdr2.ID != hdr.ID {
			t.Fatalf("round trip: %v %+v %+v", err, entries, entries2)
		}
	})
}

// TestSuspendClosesManifestSpool: an aborted save that is kept for a
// resume closes its manifest spool like any abort (the resume reads the
// kept manifests back from the parts).
func TestSuspendClosesManifestSpool(t *testing.T) {
	for _, mode := range []ResumeMode{ResumeOff, ResumeAuto} {
		w, err := NewWriter(WriterOptions{Dir: t.TempDir(), Resume: mode, Inputs: []string{"x"}})
		if err != nil {
			t.Fatal(err)
		}
		raw := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + digest.FromString("c").String() + `","size":1},"layers":[]}`)
		m, err := manifest.New(manifest.WithRaw(raw))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.ManifestPut(t.Context(), ref.Ref{Scheme: "reg", Registry: "bundle", Repository: "team/app"}, m); err != nil {
			t.Fatal(err)
		}
		if w.raws == nil {
			t.Fatal("no manifest spool after a manifest was put")
		}
		w.Abort()
		if w.Suspended() != (mode == ResumeAuto) {
			t.Errorf("mode %d: suspended %v", mode, w.Suspended())
		}
		if w.raws != nil {
			t.Errorf("mode %d: the manifest spool is still open after Abort", mode)
		}
	}
}
