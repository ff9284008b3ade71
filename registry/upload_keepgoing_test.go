package registry_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
	"github.com/ferry-oss/ferry/registry/regtest"
	"github.com/ferry-oss/ferry/transfer"
)

// failQuery answers code to requests whose query holds s (a blob upload's
// PUT carries its digest there), and passes the others through.
func failQuery(s string, code int) regtest.Action {
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if strings.Contains(r.URL.RawQuery, s) {
			regtest.Status(code, "")(w, r, next)
			return
		}
		next.ServeHTTP(w, r)
	}
}

// onlyBlobOf returns a blob that only image repo's manifests reference.
func onlyBlobOf(t *testing.T, m *meta.Meta, repo string) meta.Blob {
	t.Helper()
	for _, b := range m.Blobs {
		if slices.Equal(b.Repos, []string{repo}) {
			return b
		}
	}
	t.Fatalf("no blob only %s needs", repo)
	return meta.Blob{}
}

var keepGoingImages = []string{"team/app:1", "team/tools:1", "library/base:1", "library/multi:1"}

// savedFixtures saves the fixtures names from a docker-registry into a
// bundle and opens it.
func savedFixtures(t *testing.T, names ...string) (*regtest.Distribution, *transfer.SaveResult, *bundle.Bundle) {
	t.Helper()
	src := regtest.StartDistribution(t, regtest.DistributionOptions{})
	sreg := client(t, src, regtest.DistributionOptions{})
	seed(t, sreg, src.Host, names...)
	saved, err := saveBundle(t, sreg, src.Host, t.TempDir(), names...)
	if err != nil {
		t.Fatal(err)
	}
	bd, err := bundle.Open(saved.MetaPath)
	if err != nil {
		t.Fatal(err)
	}
	return src, saved, bd
}

// TestUploadKeepGoing: with KeepGoing, an image whose blob, manifest (an
// index's child) or tag push fails at the target (docker-registry behind a FaultProxy) is
// reported with its cause and gets no tag, and every other image lands
// with its tag; without it the first failure ends the upload, with no tag
// pushed at all.
func TestUploadKeepGoing(t *testing.T) {
	if testing.Short() {
		t.Skip("needs docker-registry")
	}
	names := keepGoingImages
	src, saved, bd := savedFixtures(t, names...)
	tools := onlyBlobOf(t, saved.Meta, "team/tools")

	for _, tt := range []struct {
		name      string
		keepGoing bool
		fault     regtest.Fault
		failed    string // the image that fails ("" without KeepGoing: all do)
		cause     string // in its error
	}{
		{"blob push fails", true, regtest.Fault{Method: http.MethodPut, Path: "/v2/team/tools/blobs/uploads/", Action: failQuery(tools.Digest.Encoded(), 500)}, "team/tools", tools.Digest.String()},
		{"manifest push fails", true, regtest.Fault{Method: http.MethodPut, Path: "/v2/library/multi/manifests/sha256:", Action: regtest.Status(500, "")}, "library/multi", "pushing manifest sha256:"},
		{"tag push fails", true, regtest.Fault{Method: http.MethodPut, Path: "/v2/library/base/manifests/1$", Action: regtest.Status(500, "")}, "library/base", "pushing tag 1"},
		{"without keep-going the first failure ends it", false, regtest.Fault{Method: http.MethodPut, Path: "/v2/team/tools/blobs/uploads/", Action: failQuery(tools.Digest.Encoded(), 500)}, "", tools.Digest.String()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dst, p, reg := faultTarget(t)
			p.Add(tt.fault)
			th, _ := ref.NewHost(p.Host)
			res, err := transfer.Upload(context.Background(), bd, reg, transfer.UploadOptions{
				Target: transfer.RegistryTarget(th, "", nil), Jobs: 2, Retries: 1, RetryDelay: 10 * time.Millisecond, KeepGoing: tt.keepGoing,
			})
			if err == nil || !strings.Contains(err.Error(), tt.cause) {
				t.Fatalf("err %v, want one naming %q", err, tt.cause)
			}
			var fe *transfer.FailedError
			if !tt.keepGoing {
				if errors.As(err, &fe) || res != nil {
					t.Fatalf("without KeepGoing: %v (result %v), want the first failure", err, res)
				}
				for _, n := range []string{"team/app", "team/tools", "library/base", "library/multi"} {
					if tags := regtest.Tags(t, dst, n); len(tags) != 0 {
						t.Errorf("%s: tags %v after an upload that stopped", n, tags)
					}
				}
				return
			}
			if !errors.As(err, &fe) || !errors.Is(err, oci.ErrImagesFailed) || len(fe.Images) != 1 || !strings.HasPrefix(fe.Images[0].Image, src.Host+"/"+tt.failed+":") {
				t.Fatalf("err %v, want only %s failed", err, tt.failed)
			}
			if res == nil || res.Images != len(names)-1 || len(res.Failed) != 1 {
				t.Fatalf("result %+v, want %d images pushed and 1 failed", res, len(names)-1)
			}
			dreg := client(t, dst, regtest.DistributionOptions{})
			for _, img := range saved.Meta.Images {
				tags := regtest.Tags(t, dst, img.Repository)
				if img.Repository == tt.failed {
					if len(tags) != 0 {
						t.Errorf("%s failed but has tags %v", img.Repository, tags)
					}
					continue
				}
				r, _ := ref.New(dst.Host + "/" + img.Repository + ":" + img.Tag)
				m, err := dreg.ManifestGet(context.Background(), r)
				if err != nil || m.GetDescriptor().Digest != img.Digest {
					t.Errorf("%s: %v, want %s", r.CommonName(), err, img.Digest)
				}
			}
			if tt.failed == "team/tools" && len(p.Requests("^/v2/team/tools/manifests/")) != 0 {
				t.Error("a manifest of team/tools was pushed although its blob did not land")
			}
		})
	}
}

// TestUploadTagsLast: every tag is pushed after the manifests of every
// image (request log of the target), each manifest is sent once (a
// tagged image's own by its tag), and a small blob costs a HEAD, the
// upload (POST, PUT) and a confirming HEAD, plus one mount for each other
// repository that needs it (no HEAD first: it was just pushed).
func TestUploadTagsLast(t *testing.T) {
	if testing.Short() {
		t.Skip("needs docker-registry")
	}
	names := keepGoingImages
	_, saved, bd := savedFixtures(t, names...)
	_, p, reg := faultTarget(t)
	if _, err := uploadTo(reg, p.Host, bd); err != nil {
		t.Fatal(err)
	}
	byDigest := regexp.MustCompile(`/manifests/sha256:`)
	lastManifest, firstTag, tags := -1, -1, 0
	for i, r := range p.Requests("/manifests/") {
		if r.Method != http.MethodPut {
			continue
		}
		if byDigest.MatchString(r.Path) {
			lastManifest = i
		} else {
			tags++
			if firstTag < 0 {
				firstTag = i
			}
		}
	}
	if tags != len(names) || lastManifest < 0 || firstTag < lastManifest {
		t.Errorf("%d tag PUTs, the first at request %d, the last manifest by digest at %d: want %d tags, all after every manifest", tags, firstTag, lastManifest, len(names))
	}
	// an image's own manifest is stored by its tag's PUT, not sent twice
	byDigestPuts := 0
	for _, r := range p.Requests("/manifests/sha256:") {
		if r.Method == http.MethodPut {
			byDigestPuts++
		}
	}
	if want := len(saved.Meta.Manifests) - len(names); byDigestPuts != want {
		t.Errorf("%d manifest PUTs by digest, want %d (children only)", byDigestPuts, want)
	}

	want := 0
	for _, b := range saved.Meta.Blobs {
		want += 4 + len(b.Repos) - 1
	}
	if got := len(p.Requests("/blobs/")); got != want {
		t.Errorf("%d blob requests for %d blobs into an empty target, want %d", got, len(saved.Meta.Blobs), want)
	}
}

// TestUploadKeepGoingSchema1: a schema 1 bundle (parts streamed from the
// start) keeps going past a blob whose push fails the same way: the image
// that needs it is listed and untagged, the other one lands.
func TestUploadKeepGoingSchema1(t *testing.T) {
	if testing.Short() {
		t.Skip("needs docker-registry")
	}
	bd, err := bundle.Open(filepath.Join(regtest.TestdataDir(), "bundles", "v1-none", "ferry_full_20261101T020000Z_meta.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	victim := onlyBlobOf(t, bd.Meta, "library/multi")
	dst, p, reg := faultTarget(t)
	p.Add(regtest.Fault{Method: http.MethodPut, Path: "/blobs/uploads/", Action: failQuery(victim.Digest.Encoded(), 500)})
	th, _ := ref.NewHost(p.Host)
	res, err := transfer.Upload(context.Background(), bd, reg, transfer.UploadOptions{
		Target: transfer.RegistryTarget(th, "", nil), Jobs: 2, Retries: 1, RetryDelay: 10 * time.Millisecond, KeepGoing: true,
	})
	var fe *transfer.FailedError
	if !errors.As(err, &fe) || len(fe.Images) != 1 || !strings.Contains(fe.Images[0].Image, "library/multi") || !strings.Contains(err.Error(), victim.Digest.String()) {
		t.Fatalf("err %v, want library/multi failed naming %s", err, victim.Digest)
	}
	if res.Images != 1 {
		t.Errorf("%d images pushed, want 1", res.Images)
	}
	if tags := regtest.Tags(t, dst, "library/multi"); len(tags) != 0 {
		t.Errorf("library/multi failed but has tags %v", tags)
	}
	if tags := regtest.Tags(t, dst, "library/base"); !slices.Equal(tags, []string{"1"}) {
		t.Errorf("library/base: tags %v, want [1]", tags)
	}
}
