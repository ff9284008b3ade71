package registry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/regclient/regclient/types/errs"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/oci"
	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
	"github.com/ferry-oss/ferry/selection"
	"github.com/ferry-oss/ferry/transfer"
)

// TestSyncLyingSource: a source whose blobs do not match their digests (a
// proxy flips a byte) is refused at both targets: no blob, no manifest.
func TestSyncLyingSource(t *testing.T) {
	src := regtest.StartDistribution(t, regtest.DistributionOptions{})
	sreg := client(t, src, regtest.DistributionOptions{})
	imgs := seed(t, sreg, src.Host, "team/app:1")
	fp := regtest.StartFaultProxy(t, src.Host)
	fp.Add(regtest.Fault{Method: "GET", Path: "/blobs/sha256:", Action: regtest.Flip(10)})
	proxy := fp.Host
	a := regtest.StartDistribution(t, regtest.DistributionOptions{})
	b := regtest.StartDistribution(t, regtest.DistributionOptions{})
	reg, err := registry.New(registry.Options{Registries: []string{proxy, a.Host, b.Host}, Retries: 1, RetryDelay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var targets []transfer.SyncTarget
	for _, h := range []string{a.Host, b.Host} {
		host, _ := ref.NewHost(h)
		targets = append(targets, transfer.SyncTarget{Name: h, Sink: reg, Repo: transfer.RegistryTarget(host, "", nil)})
	}
	spec, err := selection.ParseImage(proxy+"/team/app:1", "")
	if err != nil {
		t.Fatal(err)
	}
	// one target (no tee), then both (tee)
	for _, ts := range [][]transfer.SyncTarget{targets[:1], targets} {
		res, err := transfer.Sync(context.Background(), reg, ts, []transfer.SyncImage{{Spec: spec}}, transfer.SyncOptions{Retries: 1, RetryDelay: 10 * time.Millisecond})
		if !errors.Is(err, oci.ErrImagesFailed) || !(errors.Is(err, oci.ErrDigestMismatch) || errors.Is(err, errs.ErrDigestMismatch)) {
			t.Fatalf("%d target(s): err %v, want a digest mismatch", len(ts), err)
		}
		if len(res.Failed) != len(ts) || res.Total().BlobsPushed != 0 {
			t.Errorf("%d target(s): result %+v", len(ts), res)
		}
	}
	for _, h := range []string{a.Host, b.Host} {
		r, _ := ref.New(h + "/team/app:1")
		if dg, err := reg.ManifestDigest(context.Background(), r); err != nil || dg != "" {
			t.Errorf("%s has the manifest: %s %v", h, dg, err)
		}
		for _, bl := range imgs["team/app:1"].Blobs {
			if ok, _ := reg.BlobExists(context.Background(), r, bl.Desc); ok {
				t.Errorf("%s stored blob %s of a lying source", h, bl.Desc.Digest)
			}
		}
	}
}
