package serve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
	"github.com/ferry-oss/ferry/registry/serve"
)

// start serves the bundles on a free loopback port until the test ends and
// returns host:port.
func start(t testing.TB, ns string, metas ...string) string {
	t.Helper()
	return startWith(t, serve.Options{Namespace: ns}, metas...)
}

type response struct {
	status int
	header http.Header
	body   []byte
	err    error // reading the body
}

func do(t *testing.T, method, url string, hdr ...string) response {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b, err}
}

// errorCode returns the first OCI error code of a body.
func errorCode(b []byte) string {
	var e struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	if json.Unmarshal(b, &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}

func TestAPI(t *testing.T) {
	src := regtest.NewSource(t)
	dir := t.TempDir()
	mp := src.Save(t, dir, bundle.CodecZstd, nil, "team/app:1", "library/multi:1", "big/one:1", "team/tools:1 -> other/tools:v2")
	m, err := meta.Load(mp)
	if err != nil {
		t.Fatal(err)
	}
	host := start(t, "mirror", mp)
	base := "http://" + host + "/v2/"

	r := do(t, "GET", base)
	if r.status != 200 || r.header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
		t.Fatalf("/v2/: %d %v", r.status, r.header)
	}
	r = do(t, "GET", base+"_catalog")
	if want := `{"repositories":["mirror/big/one","mirror/library/multi","mirror/other/tools","mirror/team/app"]}`; string(r.body) != want {
		t.Fatalf("catalog: %s, want %s", r.body, want)
	}
	r = do(t, "GET", base+"_catalog?n=2")
	if want := `{"repositories":["mirror/big/one","mirror/library/multi"]}`; string(r.body) != want || !strings.Contains(r.header.Get("Link"), "last=mirror%2Flibrary%2Fmulti") {
		t.Fatalf("catalog page 1: %s %q", r.body, r.header.Get("Link"))
	}
	r = do(t, "GET", base+"_catalog?n=2&last=mirror/library/multi")
	if want := `{"repositories":["mirror/other/tools","mirror/team/app"]}`; string(r.body) != want || r.header.Get("Link") != "" {
		t.Fatalf("catalog page 2: %s %q", r.body, r.header.Get("Link"))
	}

	for _, img := range m.Images {
		name := "mirror/" + img.Repository
		r := do(t, "GET", base+name+"/tags/list")
		if want := fmt.Sprintf(`{"name":%q,"tags":[%q]}`, name, img.Tag); string(r.body) != want {
			t.Errorf("tags: %s, want %s", r.body, want)
		}
		mf := m.ManifestByDigest(img.Digest)
		for _, refr := range []string{img.Tag, img.Digest.String()} {
			for _, method := range []string{"GET", "HEAD"} {
				r := do(t, method, base+name+"/manifests/"+refr)
				if r.status != 200 || r.header.Get("Content-Type") != img.MediaType || r.header.Get("Docker-Content-Digest") != img.Digest.String() || r.header.Get("Content-Length") != fmt.Sprint(mf.Size) {
					t.Errorf("%s %s:%s: %d %v", method, name, refr, r.status, r.header)
				}
				if method == "GET" && digest.FromBytes(r.body) != img.Digest {
					t.Errorf("GET %s:%s: body digest %s", name, refr, digest.FromBytes(r.body))
				}
			}
		}
	}
	// blobs: GET, HEAD, ranges
	img := src.Images["big/one:1"]
	big := img.Big[0].Desc
	want, _ := io.ReadAll(img.Big[0].Reader())
	blobURL := base + "mirror/big/one/blobs/" + big.Digest.String()
	r = do(t, "GET", blobURL)
	if r.status != 200 || r.err != nil || !bytes.Equal(r.body, want) || r.header.Get("Docker-Content-Digest") != big.Digest.String() {
		t.Fatalf("GET blob: %d %v %v", r.status, r.err, r.header)
	}
	r = do(t, "HEAD", blobURL)
	if r.status != 200 || r.header.Get("Content-Length") != fmt.Sprint(big.Size) || len(r.body) != 0 {
		t.Fatalf("HEAD blob: %d %v", r.status, r.header)
	}
	for _, tc := range []struct {
		rng        string
		status     int
		start, end int64 // inclusive
	}{
		{"bytes=0-9", 206, 0, 9},
		{"bytes=1000-", 206, 1000, big.Size - 1},
		{"bytes=-100", 206, big.Size - 100, big.Size - 1},
		{"bytes=300000-700000", 206, 300000, 700000},
		{"bytes=5-" + fmt.Sprint(big.Size+50), 206, 5, big.Size - 1},
		{fmt.Sprintf("bytes=%d-", big.Size), 416, 0, 0},
		{"bytes=9-3", 416, 0, 0},
	} {
		r := do(t, "GET", blobURL, "Range", tc.rng)
		if r.status != tc.status {
			t.Errorf("Range %s: status %d, want %d", tc.rng, r.status, tc.status)
			continue
		}
		if tc.status == 416 {
			if r.header.Get("Content-Range") != fmt.Sprintf("bytes */%d", big.Size) {
				t.Errorf("Range %s: Content-Range %q", tc.rng, r.header.Get("Content-Range"))
			}
			continue
		}
		if !bytes.Equal(r.body, want[tc.start:tc.end+1]) || r.header.Get("Content-Range") != fmt.Sprintf("bytes %d-%d/%d", tc.start, tc.end, big.Size) {
			t.Errorf("Range %s: %d bytes, Content-Range %q", tc.rng, len(r.body), r.header.Get("Content-Range"))
		}
	}
	// a blob of another repository is not in this one
	app := src.Images["team/app:1"]
	if r := do(t, "GET", base+"mirror/team/app/blobs/"+app.Blobs[2].Desc.Digest.String()); r.status != 200 {
		t.Errorf("app layer: %d", r.status)
	}
	// errors
	unknown := digest.FromString("nothing").String()
	for _, tc := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "nope/manifests/1", 404, "NAME_UNKNOWN"},
		{"GET", "team/app/manifests/1", 404, "NAME_UNKNOWN"}, // without the namespace
		{"GET", "mirror/team/app/manifests/2", 404, "MANIFEST_UNKNOWN"},
		{"GET", "mirror/team/app/manifests/" + unknown, 404, "MANIFEST_UNKNOWN"},
		{"GET", "mirror/team/app/manifests/" + src.Images["big/one:1"].Digest().String(), 404, "MANIFEST_UNKNOWN"},
		{"GET", "mirror/team/app/manifests/sha256:baddigeststring", 400, "DIGEST_INVALID"},
		{"GET", "mirror/team/app/blobs/" + unknown, 404, "BLOB_UNKNOWN"},
		{"GET", "mirror/team/app/blobs/" + big.Digest.String(), 404, "BLOB_UNKNOWN"},
		{"GET", "mirror/NOPE/tags/list", 400, "NAME_INVALID"},
		{"GET", "nope/tags/list", 404, "NAME_UNKNOWN"},
		{"POST", "mirror/team/app/blobs/uploads/", 405, "UNSUPPORTED"},
		{"PUT", "mirror/team/app/manifests/2", 405, "UNSUPPORTED"},
		{"PATCH", "mirror/team/app/blobs/uploads/x", 405, "UNSUPPORTED"},
		{"DELETE", "mirror/team/app/manifests/" + unknown, 405, "UNSUPPORTED"},
		{"DELETE", "mirror/team/app/blobs/" + big.Digest.String(), 405, "UNSUPPORTED"},
	} {
		r := do(t, tc.method, base+tc.path)
		if r.status != tc.status || errorCode(r.body) != tc.code || r.header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: %d %s, want %d %s", tc.method, tc.path, r.status, r.body, tc.status, tc.code)
		}
	}
	// ferry's own (regclient) client pulls every image, blob by blob
	for name, rn := range map[string]string{"team/app:1": "mirror/team/app:1", "library/multi:1": "mirror/library/multi:1", "team/tools:1": "mirror/other/tools:v2"} {
		pullAll(t, host, rn, src.Images[name])
	}
}

// pullAll reads the manifest and every blob of img at host/name with
// regclient and compares them with the source.
func pullAll(t *testing.T, host, name string, img *regtest.Image) {
	t.Helper()
	reg, _ := registry.New(registry.Options{Registries: []string{host}})
	rr, _ := ref.New(host + "/" + name)
	mm, err := reg.ManifestGet(context.Background(), rr)
	if err != nil || mm.GetDescriptor().Digest != img.Digest() {
		t.Fatalf("%s: %v", name, err)
	}
	for _, b := range img.Blobs {
		rc, err := reg.BlobGet(context.Background(), rr, b.Desc)
		if err != nil {
			t.Fatalf("%s blob %s: %v", name, b.Desc.Digest, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, b.Data) {
			t.Fatalf("%s blob %s: %v", name, b.Desc.Digest, err)
		}
	}
}

// TestIncrement serves an increment with its base; alone it is refused.
func TestIncrement(t *testing.T) {
	src := regtest.NewSource(t)
	dir := t.TempDir()
	full := src.Save(t, dir, bundle.CodecNone, nil, "library/base:1")
	incr := src.Save(t, dir, bundle.CodecGzip, []string{full}, "team/app:1", "team/tools:1")
	im, _ := meta.Load(incr)
	if len(im.BaseBlobs) == 0 {
		t.Fatal("the increment skipped nothing")
	}
	if _, err := bundle.OpenSet(incr); !errors.Is(err, bundle.ErrBaseNotGiven) || !strings.Contains(err.Error(), filepath.Base(full)) {
		t.Fatalf("increment alone: %v", err)
	}
	host := start(t, "", incr, full)
	for _, name := range []string{"team/app:1", "team/tools:1", "library/base:1"} {
		pullAll(t, host, name, src.Images[name])
	}
}

// TestCorruptPart flips a byte inside a stored blob: a client asking for it
// gets an error (500 for a blob smaller than what is held back, a
// truncated body for a big one), never a complete body with wrong bytes.
func TestCorruptPart(t *testing.T) {
	src := regtest.NewSource(t)
	dir := t.TempDir()
	mp := src.Save(t, dir, bundle.CodecNone, nil, "team/app:1", "big/one:1")
	m, _ := meta.Load(mp)
	small := src.Images["team/app:1"].Blobs[2] // the app layer
	bigImg := src.Images["big/one:1"]
	bigData, _ := io.ReadAll(bigImg.Big[0].Reader())
	corrupt := func(data []byte) {
		for _, p := range m.Parts {
			file := filepath.Join(dir, p.Name)
			b, _ := os.ReadFile(file)
			if i := bytes.Index(b, data); i >= 0 {
				b[i+len(data)*3/4] ^= 0x55
				if err := os.WriteFile(file, b, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
		}
		t.Fatal("blob not found in the parts")
	}
	corrupt(small.Data)
	corrupt(bigData)
	host := start(t, "", mp)
	base := "http://" + host + "/v2/"
	r := do(t, "GET", base+"team/app/blobs/"+small.Desc.Digest.String())
	if r.status != 500 || errorCode(r.body) == "" {
		t.Errorf("small corrupt blob: %d %s", r.status, r.body)
	}
	for _, rng := range []string{"", "bytes=0-99", "bytes=1000-"} {
		r := do(t, "GET", base+"big/one/blobs/"+bigImg.Big[0].Desc.Digest.String(), "Range", rng)
		if r.err == nil && r.status < 300 {
			t.Errorf("big corrupt blob (Range %q): %d, %d bytes, no error", rng, r.status, len(r.body))
		}
	}
	// a client that checks digests fails too, and the server goes on
	reg, _ := registry.New(registry.Options{Registries: []string{host}})
	rr, _ := ref.New(host + "/big/one:1")
	rc, err := reg.BlobGet(context.Background(), rr, descriptor.Descriptor{Digest: bigImg.Big[0].Desc.Digest, Size: bigImg.Big[0].Desc.Size})
	if err == nil {
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
	}
	if err == nil {
		t.Error("regclient read a corrupt blob without error")
	}
	if r := do(t, "GET", base+"team/app/manifests/1"); r.status != 200 {
		t.Errorf("after aborts: %d", r.status)
	}
}
