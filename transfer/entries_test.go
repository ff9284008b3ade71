package transfer_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"

	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
	"github.com/ferry-oss/ferry/registry/regtest"
	"github.com/ferry-oss/ferry/transfer"
)

// headerEdits are what an attacker sets in every blobs/ entry header so
// that the README's `tar -xf PART`, run as root, plants dangerous files.
var headerEdits = []struct {
	name string
	edit func(h *tar.Header)
}{
	{"setuid and setgid, world-writable", func(h *tar.Header) { h.Mode = 0o6777 }},
	{"setuid", func(h *tar.Header) { h.Mode = 0o4755 }},
	{"sticky", func(h *tar.Header) { h.Mode = 0o1644 }},
	{"world-writable", func(h *tar.Header) { h.Mode = 0o666 }},
	{"group-writable", func(h *tar.Header) { h.Mode = 0o664 }},
	{"foreign owner", func(h *tar.Header) { h.Uid = 1000 }},
	{"foreign group", func(h *tar.Header) { h.Gid = 1000 }},
	{"foreign owner name", func(h *tar.Header) { h.Uname = "mallory" }},
	{"extended attribute", func(h *tar.Header) {
		h.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": "\x01\x00\x00\x02"}
		h.Format = tar.FormatPAX
	}},
}

// retar rewrites a tar stream entry by entry: edit may change a header or
// return extra entries to put before it (nil keeps the entry as it is).
func retar(t *testing.T, in []byte, edit func(h *tar.Header), extra []tarFile) []byte {
	t.Helper()
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	tr := tar.NewReader(bytes.NewReader(in))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if edit != nil && strings.HasPrefix(h.Name, "blobs/") {
			edit(h)
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range extra {
		if err := tw.WriteHeader(f.hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(f.body))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

type tarFile struct {
	hdr  *tar.Header
	body string
}

// setPart writes data as part i of the bundle and the meta file to match
// (size and sha256), as an attacker would.
func setPart(t *testing.T, metaPath string, i int, data []byte) {
	t.Helper()
	m, err := meta.Load(metaPath)
	if err != nil {
		t.Fatal(err)
	}
	p := &m.Parts[i]
	if err := os.WriteFile(filepath.Join(filepath.Dir(metaPath), p.Name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	p.Size, p.SHA256 = int64(len(data)), hex.EncodeToString(sum[:])
	if err := meta.Write(metaPath, m); err != nil {
		t.Fatal(err)
	}
}

// memSink is acceptSink (it has the blobs pushed to it) counting
// manifests.
type memSink struct {
	acceptSink
	manifests atomic.Int64
}

func (s *memSink) ManifestPut(context.Context, ref.Ref, manifest.Manifest) error {
	s.manifests.Add(1)
	return nil
}
func (s *memSink) BlobMount(context.Context, ref.Ref, ref.Ref, descriptor.Descriptor) error {
	return oci.ErrUnsupported
}
func (s *memSink) Commit(context.Context) error { return nil }

// refusedEverywhere checks that verify and upload refuse the bundle with
// ErrUnlisted naming want, and that upload pushed no manifest (so no
// image): upload reads an entry's header when it pushes that blob, and
// other blobs (each checked against its digest) may have landed before.
func refusedEverywhere(t *testing.T, metaPath, want string) {
	t.Helper()
	bd, err := bundle.Open(metaPath)
	if err != nil {
		t.Fatalf("the rewritten meta file is refused already: %v", err)
	}
	if err := bd.Verify(context.Background(), 1, nil); !errors.Is(err, bundle.ErrUnlisted) || !strings.Contains(err.Error(), want) {
		t.Errorf("verify: %v; want ErrUnlisted naming %q", err, want)
	}
	sink := &memSink{acceptSink: acceptSink{got: map[digest.Digest]bool{}}}
	target := func(repo string) (ref.Ref, error) { return ref.New("target.test/" + repo) }
	_, err = transfer.Upload(context.Background(), bd, sink, transfer.UploadOptions{Target: target, Jobs: 1})
	if !errors.Is(err, bundle.ErrUnlisted) || !strings.Contains(err.Error(), want) {
		t.Errorf("upload: %v; want ErrUnlisted naming %q", err, want)
	}
	if m := sink.manifests.Load(); m != 0 {
		t.Errorf("upload pushed %d manifests before refusing", m)
	}
}

// TestEntryModes: a part whose entries are setuid, setgid, sticky, group-
// or world-writable, owned by another user or group, or carry extended
// attributes (checksums and the meta file's part size and sha256 fixed,
// as an attacker would) is refused by verify and upload, schema 2 and
// schema 1 alike: `tar -xf PART` as root would plant those files.
func TestEntryModes(t *testing.T) {
	e := seeded(t)
	for _, tt := range headerEdits {
		t.Run("schema 2/"+tt.name, func(t *testing.T) {
			res, err := save(t, e.reg, e.specs(t, "team/app:1"), t.TempDir(), saveCase{single: true})
			if err != nil {
				t.Fatal(err)
			}
			// rewrite the first blob's entry (an uncompressed part: header,
			// data, padding), as rewritePart moves what follows
			b := res.Meta.Blobs[0]
			data := readPart(t, res.MetaPath, 0)
			rewritePart(t, res.MetaPath, b.Offset, b.Offset+b.Length, retarEntry(t, data[b.Offset:b.Offset+b.Length], tt.edit))
			refusedEverywhere(t, res.MetaPath, "blobs/sha256/")
		})
		t.Run("schema 1/"+tt.name, func(t *testing.T) {
			metaPath := copyOld(t, "v1-none", "ferry_full_20261101T020000Z")
			edited := retar(t, readPart(t, metaPath, 0), tt.edit, nil)
			setPart(t, metaPath, 0, edited)
			refusedEverywhere(t, metaPath, "blobs/sha256/")
		})
	}
}

// TestSchema1Entries: a meta file that says schemaVersion 1 gets schema
// 2's entry rules: an unlisted blob, a path out of the directory, an
// absolute path, a symlink, a device, a blob stored twice, an oversized
// index.json or data behind the tar end are refused by verify and upload.
// The old bundles of testdata still pass (TestOldBundles*).
func TestSchema1Entries(t *testing.T) {
	hidden := "blobs/sha256/" + strings.Repeat("ab", 32)
	reg := func(name, body string) tarFile {
		return tarFile{&tar.Header{Name: name, Size: int64(len(body)), Mode: 0o644, Typeflag: tar.TypeReg}, body}
	}
	tests := []struct {
		name  string
		extra []tarFile
		want  string
	}{
		{"unlisted blob", []tarFile{reg(hidden, "evil")}, hidden},
		{"path out of the directory", []tarFile{reg("../../etc/cron.d/x", "evil\n")}, "../../etc/cron.d/x"},
		{"absolute path", []tarFile{reg("/etc/passwd", "evil\n")}, "/etc/passwd"},
		{"symlink", []tarFile{{&tar.Header{Name: "layout", Linkname: "/etc/shadow", Typeflag: tar.TypeSymlink}, ""}}, "layout"},
		{"device", []tarFile{{&tar.Header{Name: "dev", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}, ""}}, "dev"},
		{"directory", []tarFile{{&tar.Header{Name: "blobs/", Typeflag: tar.TypeDir, Mode: 0o755}, ""}}, "blobs/"},
		{"oci-layout too large", []tarFile{reg("oci-layout", strings.Repeat(" ", 5<<10))}, "oci-layout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			metaPath := copyOld(t, "v1-none", "ferry_full_20261101T020000Z")
			setPart(t, metaPath, 0, retar(t, readPart(t, metaPath, 0), nil, tt.extra))
			refusedEverywhere(t, metaPath, tt.want)
		})
	}
	t.Run("blob stored twice", func(t *testing.T) {
		metaPath := copyOld(t, "v1-none", "ferry_full_20261101T020000Z")
		data := readPart(t, metaPath, 0)
		tr := tar.NewReader(bytes.NewReader(data))
		h, _ := tr.Next()
		body, _ := io.ReadAll(tr)
		setPart(t, metaPath, 0, retar(t, data, nil, []tarFile{{h, string(body)}}))
		refusedEverywhere(t, metaPath, h.Name)
	})
	t.Run("data after the end", func(t *testing.T) {
		metaPath := copyOld(t, "v1-none", "ferry_full_20261101T020000Z")
		setPart(t, metaPath, 0, append(readPart(t, metaPath, 0), []byte("not zeros after the tar end")...))
		refusedEverywhere(t, metaPath, "after the end")
	})
}

// copyOld copies an old bundle of testdata into a temp directory and
// returns its meta path there.
func copyOld(t *testing.T, dir, id string) string {
	t.Helper()
	src := filepath.Join(regtest.TestdataDir(), "bundles", dir)
	dst := t.TempDir()
	files, _ := filepath.Glob(filepath.Join(src, id+"*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dst, id+"_meta.yaml")
}

func readPart(t *testing.T, metaPath string, i int) []byte {
	t.Helper()
	m, err := meta.Load(metaPath)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(metaPath), m.Parts[i].Name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// retarEntry rewrites one uncompressed tar entry (header, data, padding)
// with edit applied to its header.
func retarEntry(t *testing.T, entry []byte, edit func(h *tar.Header)) []byte {
	t.Helper()
	out := retar(t, entry, edit, nil)
	return out[:len(out)-1024] // without the end marker retar adds
}
