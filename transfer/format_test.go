package transfer_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
	"github.com/ferry-oss/ferry/registry/regtest"
	"github.com/ferry-oss/ferry/transfer"
)

// TestOffsetsRoundTrip: for every codec, each stored blob and manifest
// decodes alone from its offset (the bytes [offset, offset+length) of the
// part, nothing else) into a tar entry holding exactly its bytes; and each
// whole part is still one stream that the codec's own command line tool
// turns into a tar listing every entry.
func TestOffsetsRoundTrip(t *testing.T) {
	e := seeded(t)
	tools := map[bundle.Codec]string{bundle.CodecZstd: "zstd", bundle.CodecGzip: "gzip", bundle.CodecXz: "xz", bundle.CodecLz4: "lz4"}
	for _, c := range bundle.Codecs {
		for _, layout := range []saveCase{{single: true}, {split: 1, jobs: 1}, {jobs: 4}} {
			layout.codec = c
			layout.images = []string{"library/multi:1", "team/app:1", "team/tools:1"}
			t.Run(string(c), func(t *testing.T) {
				dir := t.TempDir()
				res, err := save(t, e.reg, e.specs(t, layout.images...), dir, layout)
				if err != nil {
					t.Fatal(err)
				}
				bd, err := bundle.Open(res.MetaPath)
				if err != nil {
					t.Fatal(err)
				}
				if bd.Meta.SchemaVersion != meta.SchemaVersion {
					t.Fatalf("schema %d", bd.Meta.SchemaVersion)
				}
				entries := bd.Entries()
				if len(entries) != len(bd.Meta.Blobs)+len(bd.Meta.Manifests) {
					t.Fatalf("%d entries for %d blobs and %d manifests", len(entries), len(bd.Meta.Blobs), len(bd.Meta.Manifests))
				}
				for _, en := range entries {
					part, err := os.ReadFile(filepath.Join(dir, en.Part))
					if err != nil {
						t.Fatal(err)
					}
					frame := part[en.Offset : en.Offset+en.Length]
					dec, err := c.NewDecoder(bytes.NewReader(frame))
					if err != nil {
						t.Fatal(err)
					}
					tr := tar.NewReader(dec)
					hdr, err := tr.Next()
					if err != nil {
						t.Fatalf("%s at %d: %v", en.Descriptor.Digest, en.Offset, err)
					}
					data, err := io.ReadAll(tr)
					if err != nil {
						t.Fatal(err)
					}
					if hdr.Name != bundle.BlobPath(en.Descriptor.Digest) || digest.FromBytes(data) != en.Descriptor.Digest || int64(len(data)) != en.Descriptor.Size {
						t.Fatalf("entry at %d of %s: %s, %d bytes, digest %s; want %s", en.Offset, en.Part, hdr.Name, len(data), digest.FromBytes(data), en.Descriptor.Digest)
					}
					if _, err := tr.Next(); err != io.EOF {
						t.Fatalf("entry at %d of %s: more than one entry in its range (%v)", en.Offset, en.Part, err)
					}
					dec.Close()
					rc, err := bd.OpenBlob(context.Background(), en.Descriptor.Digest)
					if err != nil {
						t.Fatal(err)
					}
					got, err := io.ReadAll(rc)
					rc.Close()
					if err != nil || !bytes.Equal(got, data) {
						t.Fatalf("OpenBlob %s: %v", en.Descriptor.Digest, err)
					}
				}
				if err := bd.Verify(context.Background(), 2, nil); err != nil {
					t.Fatal(err)
				}
				// The codec's own tool reads each part as one tar stream.
				var names []string
				for _, p := range bd.Meta.Parts {
					cmd := "cat"
					if c != bundle.CodecNone {
						cmd = regtest.Need(t, tools[c]) + " -dc"
					}
					out, err := exec.Command("sh", "-c", cmd+" <"+filepath.Join(dir, p.Name)+" | tar -tf -").CombinedOutput()
					if err != nil {
						t.Fatalf("%s | tar -t %s: %v\n%s", cmd, p.Name, err, out)
					}
					names = append(names, strings.Fields(string(out))...)
				}
				want := []string{"oci-layout", "index.json"}
				for _, en := range entries {
					want = append(want, bundle.BlobPath(en.Descriptor.Digest))
				}
				sort.Strings(names)
				sort.Strings(want)
				if strings.Join(names, " ") != strings.Join(want, " ") {
					t.Fatalf("tar lists\n%v\nwant\n%v", names, want)
				}
			})
		}
	}
}

// TestWrongOffset: an entry whose recorded offset points at another entry
// fails OpenBlob and verify with ErrPartCorrupt, never wrong bytes.
func TestWrongOffset(t *testing.T) {
	e := seeded(t)
	for _, c := range []bundle.Codec{bundle.CodecNone, bundle.CodecZstd} {
		t.Run(string(c), func(t *testing.T) {
			dir := t.TempDir()
			res, err := save(t, e.reg, e.specs(t, "team/app:1"), dir, saveCase{single: true, codec: c})
			if err != nil {
				t.Fatal(err)
			}
			m := res.Meta
			m.Blobs[0].Location, m.Blobs[1].Location = m.Blobs[1].Location, m.Blobs[0].Location
			if err := meta.Write(res.MetaPath, m); err != nil {
				t.Fatal(err)
			}
			bd, err := bundle.Open(res.MetaPath)
			if err != nil {
				t.Fatal(err)
			}
			_, err = bd.OpenBlob(context.Background(), m.Blobs[0].Digest)
			if !errors.Is(err, bundle.ErrPartCorrupt) {
				t.Fatalf("OpenBlob: %v, want part corrupt", err)
			}
			if err := bd.Verify(context.Background(), 1, nil); !errors.Is(err, bundle.ErrPartCorrupt) {
				t.Fatalf("verify: %v, want part corrupt", err)
			}
		})
	}
}

// TestSmallBundleOneFilePerID: a small save writes one part however many
// parts may be written at once; two saves in the same second get two ids.
func TestSmallBundleOneFilePerID(t *testing.T) {
	e := seeded(t)
	dir := t.TempDir()
	clock := func() time.Time { return time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC) }
	var ids []string
	for range 3 {
		w, err := bundle.NewWriter(bundle.WriterOptions{Dir: dir, Parts: 4, Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		res, err := transfer.Save(context.Background(), e.reg, w, e.specs(t, "library/multi:1", "team/app:1", "team/tools:1"), transfer.SaveOptions{Jobs: 4})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Meta.Parts) != 1 {
			t.Errorf("%d parts for %d bytes of blobs", len(res.Meta.Parts), res.Meta.TotalBlobBytes())
		}
		ids = append(ids, res.Meta.ID)
	}
	if ids[0] != "ferry_full_20261124T120000Z" || ids[1] == ids[0] || ids[2] == ids[1] || !sort.StringsAreSorted(ids) {
		t.Errorf("ids %v: want unique, sorted, the first at the creation second", ids)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*"))
	if len(left) > 0 {
		t.Errorf("reservations left: %v", left)
	}
}

// TestFailedEntryRolledBack: a blob whose stream fails leaves nothing in
// its part (truncated back, hash restored): the part verifies and holds
// only listed entries; a part left with no entry is not written.
func TestFailedEntryRolledBack(t *testing.T) {
	for _, c := range []bundle.Codec{bundle.CodecNone, bundle.CodecGzip} {
		t.Run(string(c), func(t *testing.T) {
			dir := t.TempDir()
			w, err := bundle.NewWriter(bundle.WriterOptions{Dir: dir, Parts: 2, Codec: c})
			if err != nil {
				t.Fatal(err)
			}
			img := regtest.NewImage("linux/amd64", regtest.Layer(map[string]string{"a": "b"}))
			r := ref.Ref{Scheme: "reg", Registry: "bundle", Repository: "x/y", Tag: "1"}
			big := bytes.Repeat([]byte("z"), 3<<20)
			bigDesc := descriptor.Descriptor{Digest: digest.FromBytes(big), Size: int64(len(big))}
			broken := io.MultiReader(bytes.NewReader(big[:2<<20]), iotestErr{})
			if err := w.BlobPut(context.Background(), r, bigDesc, broken); err == nil {
				t.Fatal("a broken stream was stored")
			}
			if err := regtest.Push(context.Background(), w, r, img); err != nil {
				t.Fatal(err)
			}
			w.AddImage(meta.Image{Source: "src/x/y:1", Repository: "x/y", Tag: "1", Digest: img.Digest(), MediaType: img.Manifest.GetDescriptor().MediaType})
			m, err := w.CommitMeta(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Parts) != 1 || !strings.HasSuffix(m.Parts[0].Name, "_1.tar"+c.Ext()) {
				t.Fatalf("parts %+v", m.Parts)
			}
			bd, _ := bundle.Open(w.MetaPath())
			if err := bd.Verify(context.Background(), 1, nil); err != nil {
				t.Fatal(err)
			}
			files, _ := filepath.Glob(filepath.Join(dir, "*"))
			if len(files) != 2 {
				t.Errorf("files %v", files)
			}
		})
	}
}

type iotestErr struct{}

func (iotestErr) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

// blobWrites counts the blob uploads (PUT and PATCH) in flight at a
// registry, each held for a moment so that overlaps show.
type blobWrites struct {
	next      http.Handler
	inflight  atomic.Int32
	max       atomic.Int32
	puts      atomic.Int32
	failAfter int32 // fail every PUT after this many (0: never)
}

func (b *blobWrites) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.Contains(r.URL.Path, "/blobs/uploads/") && (r.Method == http.MethodPut || r.Method == http.MethodPatch) {
		if r.Method == http.MethodPut && b.failAfter > 0 && b.puts.Load() >= b.failAfter {
			http.Error(w, `{"errors":[{"code":"DENIED","message":"disk full"}]}`, http.StatusForbidden)
			return
		}
		n := b.inflight.Add(1)
		for {
			m := b.max.Load()
			if n <= m || b.max.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
		defer b.inflight.Add(-1)
		if r.Method == http.MethodPut {
			defer b.puts.Add(1)
		}
	}
	b.next.ServeHTTP(w, r)
}

func proxied(t *testing.T, bw *blobWrites) string {
	t.Helper()
	host, stop := regtest.Olareg()
	t.Cleanup(stop)
	u, _ := url.Parse("http://" + host)
	bw.next = httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(bw)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestUploadSingleConcurrent: the blobs of a one-part bundle are pushed
// --jobs at a time.
func TestUploadSingleConcurrent(t *testing.T) {
	e := seeded(t)
	dir := t.TempDir()
	res, err := save(t, e.reg, e.specs(t, "library/multi:1", "team/app:1", "team/tools:1"), dir, saveCase{single: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Meta.Parts) != 1 || len(res.Meta.Blobs) < 6 {
		t.Fatalf("%d parts, %d blobs", len(res.Meta.Parts), len(res.Meta.Blobs))
	}
	bw := &blobWrites{}
	host := proxied(t, bw)
	bd, _ := bundle.Open(res.MetaPath)
	tgt, _ := ref.NewHost(host)
	up, err := transfer.Upload(context.Background(), bd, newReg(t, host), transfer.UploadOptions{Target: transfer.RegistryTarget(tgt, "", nil), Jobs: 4})
	if err != nil {
		t.Fatal(err)
	}
	if up.BlobsPushed != len(res.Meta.Blobs) {
		t.Errorf("pushed %d of %d", up.BlobsPushed, len(res.Meta.Blobs))
	}
	if got := bw.max.Load(); got < 3 || got > 4 {
		t.Errorf("at most %d blob uploads at once, want 3 or 4 (--jobs 4)", got)
	}
}

// gapBytes are the bytes of the parts that no blob or manifest covers (the
// OCI layout files and the tar end), which upload reads to refuse hidden
// entries.
func gapBytes(m *meta.Meta) int64 {
	var n int64
	for _, p := range m.Parts {
		n += p.Size
	}
	for _, b := range m.Blobs {
		n -= b.Length
	}
	for _, mf := range m.Manifests {
		n -= mf.Length
	}
	return n
}

// TestUploadResumeReadsMissing: an upload that stops part way, run again,
// reads from the parts only the blobs the target lacks (and the few bytes
// outside any entry, checked for hidden entries); a third run reads only
// those.
func TestUploadResumeReadsMissing(t *testing.T) {
	e := seeded(t)
	for _, c := range []bundle.Codec{bundle.CodecNone, bundle.CodecZstd} {
		t.Run(string(c), func(t *testing.T) {
			dir := t.TempDir()
			res, err := save(t, e.reg, e.specs(t, "library/multi:1", "team/app:1", "team/tools:1"), dir, saveCase{codec: c, jobs: 2})
			if err != nil {
				t.Fatal(err)
			}
			bw := &blobWrites{failAfter: 3}
			host := proxied(t, bw)
			treg := newReg(t, host)
			tgt, _ := ref.NewHost(host)
			target := transfer.RegistryTarget(tgt, "", nil)
			opts := transfer.UploadOptions{Target: target, Jobs: 1}
			bd, _ := bundle.Open(res.MetaPath)
			if _, err := transfer.Upload(context.Background(), bd, treg, opts); err == nil {
				t.Fatal("upload through a failing registry succeeded")
			}
			var wantMin, wantMax int64
			missing := 0
			for _, b := range res.Meta.Blobs {
				r, _ := target(b.Repos[0])
				if ok, _ := treg.BlobExists(context.Background(), r, descOf(b)); !ok {
					wantMin += b.Size
					wantMax += b.Length
					missing++
				}
			}
			if missing == 0 || missing == len(res.Meta.Blobs) {
				t.Fatalf("%d of %d blobs missing after the interruption", missing, len(res.Meta.Blobs))
			}
			bw.failAfter = 0
			bd, _ = bundle.Open(res.MetaPath)
			read := bundle.CountReads(bd)
			up, err := transfer.Upload(context.Background(), bd, treg, opts)
			if err != nil {
				t.Fatal(err)
			}
			if up.BlobsPushed != missing {
				t.Errorf("re-run pushed %d blobs, %d were missing", up.BlobsPushed, missing)
			}
			gaps := gapBytes(res.Meta)
			if gaps <= 0 || gaps > 8<<10 {
				t.Fatalf("%d bytes outside the entries", gaps)
			}
			if n := read.Load() - gaps; n < wantMin || n > wantMax {
				t.Errorf("re-run read %d bytes from the parts besides the %d outside any entry; the missing blobs are %d bytes (%d stored)", n, gaps, wantMin, wantMax)
			}
			bd, _ = bundle.Open(res.MetaPath)
			read = bundle.CountReads(bd)
			if _, err := transfer.Upload(context.Background(), bd, treg, opts); err != nil {
				t.Fatal(err)
			}
			if n := read.Load(); n != gaps {
				t.Errorf("a no-op upload read %d bytes from the parts, want only the %d outside any entry", n, gaps)
			}
			for _, img := range res.Meta.Images {
				r, _ := ref.New(host + "/" + img.Repository + ":" + img.Tag)
				m, err := treg.ManifestGet(context.Background(), r)
				if err != nil || m.GetDescriptor().Digest != img.Digest {
					t.Fatalf("%s: %v", img.Source, err)
				}
			}
		})
	}
}

// acceptSink takes every blob it can read to the end, as a sink that
// does not check digests itself (the Docker engine) would.
type acceptSink struct {
	oci.Sink
	mu  sync.Mutex
	got map[digest.Digest]bool
}

func (s *acceptSink) BlobExists(_ context.Context, _ ref.Ref, d descriptor.Descriptor) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[d.Digest], nil
}

func (s *acceptSink) BlobPut(_ context.Context, _ ref.Ref, d descriptor.Descriptor, r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got[d.Digest] = true
	return nil
}

// TestUploadCorruptBlob: a flipped byte in a blob's data fails that blob's
// read with a digest mismatch, so the upload fails before any manifest even
// at a sink that checks nothing itself.
func TestUploadCorruptBlob(t *testing.T) {
	e := seeded(t)
	dir := t.TempDir()
	res, err := save(t, e.reg, e.specs(t, "team/app:1"), dir, saveCase{single: true})
	if err != nil {
		t.Fatal(err)
	}
	b := res.Meta.Blobs[0]
	part := filepath.Join(dir, b.Part)
	data, _ := os.ReadFile(part)
	data[b.Offset+512+b.Size/2] ^= 0xff // the middle of the blob's data
	if err := os.WriteFile(part, data, 0o644); err != nil {
		t.Fatal(err)
	}
	bd, _ := bundle.Open(res.MetaPath)
	sink := &acceptSink{got: map[digest.Digest]bool{}}
	target := func(repo string) (ref.Ref, error) { return ref.New("target.test/" + repo) }
	_, err = transfer.Upload(context.Background(), bd, sink, transfer.UploadOptions{Target: target, Jobs: 1})
	if !errors.Is(err, oci.ErrDigestMismatch) {
		t.Fatalf("upload: %v, want digest mismatch", err)
	}
	if sink.got[b.Digest] {
		t.Fatal("the corrupt blob was accepted")
	}
}
