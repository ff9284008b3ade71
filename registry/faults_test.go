package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/errs"
	"github.com/regclient/regclient/types/mediatype"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/oci"
	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
	"github.com/ferry-oss/ferry/selection"
	"github.com/ferry-oss/ferry/transfer"
)

// faultSource is docker-registry seeded with team/app:1 behind a
// FaultProxy, and a ferry registry client for the proxy.
func faultSource(t *testing.T, opts regtest.DistributionOptions, retries int) (*regtest.FaultProxy, *registry.Registry, *regtest.Image) {
	p, reg, img, _ := faultSourceUpstream(t, opts, retries)
	return p, reg, img
}

// faultSourceUpstream is faultSource, also returning the registry's own
// host (behind the proxy).
func faultSourceUpstream(t *testing.T, opts regtest.DistributionOptions, retries int) (*regtest.FaultProxy, *registry.Registry, *regtest.Image, string) {
	t.Helper()
	src := regtest.StartDistribution(t, opts)
	imgs := seed(t, client(t, src, opts), src.Host, "team/app:1")
	p := regtest.StartFaultProxy(t, src.Host)
	reg, err := registry.New(registry.Options{
		Hosts:   []registry.Host{{Registry: p.Host, User: opts.User, Pass: opts.Pass}},
		Retries: retries, RetryDelay: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return p, reg, imgs["team/app:1"], src.Host
}

// biggest is the largest layer of img (not its config).
func biggest(img *regtest.Image) regtest.Blob {
	var b regtest.Blob
	for _, l := range img.Blobs {
		if l.Desc.MediaType != mediatype.OCI1ImageConfig && l.Desc.MediaType != mediatype.Docker2ImageConfig && l.Desc.Size > b.Desc.Size {
			b = l
		}
	}
	return b
}

func noFiles(t *testing.T, dir string) {
	t.Helper()
	if files, _ := filepath.Glob(filepath.Join(dir, "*")); len(files) != 0 {
		t.Errorf("files left by a failed save: %v", files)
	}
}

// TestSaveSourceFaults: transient source faults are retried (a broken body
// resumes with Range), wrong or lying content is refused and leaves no
// files, all against docker-registry behind a fault-injecting proxy.
func TestSaveSourceFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("needs docker-registry")
	}
	type check func(t *testing.T, p *regtest.FaultProxy, layer regtest.Blob)
	retried := func(t *testing.T, p *regtest.FaultProxy, layer regtest.Blob) {
		reqs := p.Requests("/blobs/" + layer.Desc.Digest.String())
		if len(reqs) < 2 || !reqs[0].Faulted || reqs[len(reqs)-1].Faulted {
			t.Errorf("requests for the faulted blob: %+v, want a faulted one then a good one", reqs)
		}
	}
	tests := []struct {
		name   string
		fault  func(layer regtest.Blob) regtest.Fault
		want   error // nil: the save succeeds
		assert check
	}{
		{"500 then success", func(l regtest.Blob) regtest.Fault {
			return regtest.Fault{Method: "GET", Path: "/blobs/" + l.Desc.Digest.String(), Times: 1, Action: regtest.Status(500, "")}
		}, nil, retried},
		{"502 then success", func(l regtest.Blob) regtest.Fault {
			return regtest.Fault{Method: "GET", Path: "/blobs/" + l.Desc.Digest.String(), Times: 2, Action: regtest.Status(502, "")}
		}, nil, retried},
		{"503 then success", func(l regtest.Blob) regtest.Fault {
			return regtest.Fault{Method: "GET", Path: "/blobs/" + l.Desc.Digest.String(), Times: 1, Action: regtest.Status(503, "")}
		}, nil, retried},
		{"manifest 500 then success", func(regtest.Blob) regtest.Fault {
			return regtest.Fault{Method: "GET", Path: "/manifests/", Times: 1, Action: regtest.Status(500, "")}
		}, nil, func(t *testing.T, p *regtest.FaultProxy, _ regtest.Blob) {
			if reqs := p.Requests("/manifests/"); len(reqs) < 2 {
				t.Errorf("manifest requests %+v: not retried", reqs)
			}
		}},
		{"reset mid-blob resumes with Range", func(l regtest.Blob) regtest.Fault {
			return regtest.Fault{Method: "GET", Path: "/blobs/" + l.Desc.Digest.String(), Times: 1, Action: regtest.Cut(l.Desc.Size / 2)}
		}, nil, func(t *testing.T, p *regtest.FaultProxy, l regtest.Blob) {
			retried(t, p, l)
			reqs := p.Requests("/blobs/" + l.Desc.Digest.String())
			if last := reqs[len(reqs)-1]; !strings.HasPrefix(last.Range, "bytes=") {
				t.Errorf("the retry did not resume: %+v", reqs)
			}
		}},
		{"429 Retry-After honoured", func(l regtest.Blob) regtest.Fault {
			return regtest.Fault{Method: "GET", Path: "/blobs/" + l.Desc.Digest.String(), Times: 1, Action: regtest.Status(429, "1")}
		}, nil, func(t *testing.T, p *regtest.FaultProxy, l regtest.Blob) {
			retried(t, p, l)
			reqs := p.Requests("/blobs/" + l.Desc.Digest.String())
			if gap := reqs[1].At.Sub(reqs[0].At); gap < 900*time.Millisecond {
				t.Errorf("retried %v after a 429 with Retry-After: 1", gap)
			}
		}},
		{"wrong bytes refused", func(l regtest.Blob) regtest.Fault {
			return regtest.Fault{Method: "GET", Path: "/blobs/" + l.Desc.Digest.String(), Action: regtest.Flip(l.Desc.Size / 3)}
		}, oci.ErrDigestMismatch, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, reg, img := faultSource(t, regtest.DistributionOptions{}, 3)
			layer := biggest(img)
			p.Add(tt.fault(layer))
			dir := t.TempDir()
			res, err := saveBundle(t, reg, p.Host, dir, "team/app:1")
			if tt.want != nil {
				if !errors.Is(err, tt.want) && !errors.Is(err, errs.ErrDigestMismatch) {
					t.Fatalf("err %v, want %v", err, tt.want)
				}
				if !errors.Is(err, oci.ErrImagesFailed) {
					t.Errorf("err %v does not say the image failed", err)
				}
				noFiles(t, dir)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Meta.Images[0].Digest; got != img.Digest() {
				t.Errorf("saved %s, source has %s", got, img.Digest())
			}
			bd, err := bundle.Open(res.MetaPath)
			if err != nil {
				t.Fatal(err)
			}
			if err := bd.Verify(context.Background(), 2, nil); err != nil {
				t.Fatal(err)
			}
			tt.assert(t, p, layer)
		})
	}
}

// TestSaveHostileManifests: manifests that lie about sizes, that are too
// large, or that list too many children are refused with nothing written.
func TestSaveHostileManifests(t *testing.T) {
	if testing.Short() {
		t.Skip("needs docker-registry")
	}
	p, reg, img := faultSource(t, regtest.DistributionOptions{}, 1)
	raw, err := img.Manifest.RawBody()
	if err != nil {
		t.Fatal(err)
	}
	layer := biggest(img)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, l := range m["layers"].([]any) {
		d := l.(map[string]any)
		if d["digest"] == layer.Desc.Digest.String() {
			d["size"] = layer.Desc.Size - 1
		}
	}
	lying, _ := json.Marshal(m)
	// an index of 10,000 children (about 1.5 MB, below the size limit)
	var kids []string
	for i := range 10000 {
		kids = append(kids, fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":500,"platform":{"architecture":"amd64","os":"linux"}}`,
			mediatype.OCI1Manifest, digest.FromString(fmt.Sprint(i))))
	}
	huge := []byte(`{"schemaVersion":2,"mediaType":"` + mediatype.OCI1ManifestList + `","manifests":[` + strings.Join(kids, ",") + `]}`)
	_ = huge                     // TODO(#11): refused with a limit error once save limits index children
	big := make([]byte, 100<<20) // a 100 MB "manifest"
	copy(big, raw)

	tests := []struct {
		name string
		act  regtest.Action
		want string
	}{
		{"layer size lies", regtest.Replace(mediatype.OCI1Manifest, lying), layer.Desc.Digest.String()},
		{"10000 children", regtest.Replace(mediatype.OCI1ManifestList, huge), "limit exceeded"},
		{"100 MB manifest", regtest.Replace(mediatype.OCI1Manifest, big), "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.Reset()
			p.Add(regtest.Fault{Path: "/manifests/1$", Action: tt.act})
			dir := t.TempDir()
			start := time.Now()
			_, err := saveBundle(t, reg, p.Host, dir, "team/app:1")
			if !errors.Is(err, oci.ErrImagesFailed) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want a failed image mentioning %q", err, tt.want)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v to refuse", d)
			}
			if tt.name == "10000 children" {
				if !errors.Is(err, oci.ErrLimit) {
					t.Errorf("err %v is not ErrLimit", err)
				}
				if n := len(p.Requests("/manifests/sha256:")); n != 0 {
					t.Errorf("%d children fetched before the index was refused", n)
				}
			}
			noFiles(t, dir)
		})
	}
}

// TestRedirectCredentials: a blob GET redirected to another host (a
// storage backend) does not carry the registry's credentials there, and
// the save still succeeds.
func TestRedirectCredentials(t *testing.T) {
	if testing.Short() {
		t.Skip("needs docker-registry")
	}
	auth := regtest.DistributionOptions{User: "ferry", Pass: "redirect-Secret-7"}
	p, reg, img, upstream := faultSourceUpstream(t, auth, 2)
	src, _ := url.Parse("http://" + upstream)
	// the storage backend fetches from the registry with its own
	// credentials, and records what the client sent it
	var sawAuth, hits atomic.Int32
	backend := httputil.NewSingleHostReverseProxy(src)
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Header.Get("Authorization") != "" {
			sawAuth.Add(1)
		}
		r.Header.Del("Authorization")
		r.SetBasicAuth(auth.User, auth.Pass)
		r.Host = src.Host
		backend.ServeHTTP(w, r)
	}))
	defer storage.Close()
	// another host name and port than the registry's
	storageURL := strings.Replace(storage.URL, "127.0.0.1", "localhost", 1)
	p.Add(regtest.Fault{Method: "GET", Path: "/blobs/", Action: regtest.Redirect(storageURL)})
	dir := t.TempDir()
	res, err := saveBundle(t, reg, p.Host, dir, "team/app:1")
	if err != nil {
		t.Fatal(err)
	}
	if hits.Load() == 0 {
		t.Fatal("no request reached the storage backend: the redirect was not followed")
	}
	if n := sawAuth.Load(); n != 0 {
		t.Errorf("%d of %d redirected blob GETs carried the registry's Authorization header to another host", n, hits.Load())
	}
	if res.Meta.Images[0].Digest != img.Digest() {
		t.Errorf("digest %s, want %s", res.Meta.Images[0].Digest, img.Digest())
	}
	b, _ := os.ReadFile(res.MetaPath)
	if strings.Contains(string(b), auth.Pass) {
		t.Error("password in meta")
	}
}

// TestSaveStalledSource: a body that stalls (a byte every 2 s) is ended by
// the idle timeout and the blob is fetched again; the save succeeds
// quickly, with the source's digest.
func TestSaveStalledSource(t *testing.T) {
	if testing.Short() {
		t.Skip("needs docker-registry")
	}
	p, reg, img := faultSource(t, regtest.DistributionOptions{}, 3)
	layer := biggest(img)
	p.Add(regtest.Fault{Method: "GET", Path: "/blobs/" + layer.Desc.Digest.String(), Times: 1, Action: regtest.Stall(layer.Desc.Size/2, 2*time.Second)})
	spec, err := selection.ParseImage("team/app:1", p.Host)
	if err != nil {
		t.Fatal(err)
	}
	w, err := bundle.NewWriter(bundle.WriterOptions{Dir: t.TempDir(), Parts: 1})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := transfer.Save(context.Background(), reg, w, []selection.ImageSpec{spec}, transfer.SaveOptions{Jobs: 2, Retries: 2, RetryDelay: 10 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// waiting the stall out would take minutes (a byte every 2 s); the
	// bound leaves room for a loaded machine
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("save took %v: the stall was waited out, not timed out", d)
	}
	if res.Meta.Images[0].Digest != img.Digest() {
		t.Errorf("digest %s, want %s", res.Meta.Images[0].Digest, img.Digest())
	}
	reqs := p.Requests("/blobs/" + layer.Desc.Digest.String())
	if len(reqs) < 2 || !reqs[0].Faulted {
		t.Errorf("requests %+v: want the stalled one, then a retry", reqs)
	}
}
