package registry_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/regclient/regclient/types/ref"
	"golang.org/x/sync/errgroup"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
	"github.com/ferry-oss/ferry/selection"
	"github.com/ferry-oss/ferry/transfer"
)

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	des, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(des)
}

// TestSoak saves, verifies and uploads 200 generated images (three small
// layers each, one shared by all, one shared by ten) three times with 16
// jobs against docker-registry: every round has every digest right, and
// goroutines, file descriptors and the live heap do not grow between
// rounds.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("needs docker-registry")
	}
	const n = 200
	src := regtest.StartDistribution(t, regtest.DistributionOptions{})
	sreg := client(t, src, regtest.DistributionOptions{})
	ctx := context.Background()
	shared := regtest.Layer(map[string]string{"etc/os-release": "ID=soak\n"})
	var names []string
	want := map[string]string{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	if err := regtest.Push(ctx, sreg, ref.Ref{Scheme: "reg", Registry: src.Host, Repository: "soak/base", Tag: "1"}, regtest.NewImage("linux/amd64", shared)); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		img := regtest.NewImage("linux/amd64", shared,
			regtest.Layer(map[string]string{"group": fmt.Sprint(i % 10)}),
			regtest.Layer(map[string]string{"app": fmt.Sprint(i)}))
		name := fmt.Sprintf("soak/app%03d:1", i)
		names = append(names, name)
		want[fmt.Sprintf("soak/app%03d", i)] = img.Digest().String()
		g.Go(func() error {
			r, _ := ref.New(src.Host + "/" + name)
			return regtest.Push(gctx, sreg, r, img)
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	var specs []selection.ImageSpec
	for _, nm := range names {
		s, err := selection.ParseImage(nm, src.Host)
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, s)
	}
	t.Logf("seeded %d images", n)
	var goroutines, fds []int
	var heaps []uint64
	for round := range 3 {
		t0 := time.Now()
		dir := t.TempDir()
		w, err := bundle.NewWriter(bundle.WriterOptions{Dir: dir, Parts: 16, Codec: bundle.CodecZstd})
		if err != nil {
			t.Fatal(err)
		}
		res, err := transfer.Save(ctx, sreg, w, specs, transfer.SaveOptions{Jobs: 16, Retries: 2, RetryDelay: 10 * time.Millisecond})
		if err != nil {
			t.Fatalf("round %d: save: %v", round, err)
		}
		if len(res.Meta.Images) != n || len(res.Meta.Blobs) != 1+10+n+n { // shared, groups, app layers, configs
			t.Fatalf("round %d: %d images, %d blobs", round, len(res.Meta.Images), len(res.Meta.Blobs))
		}
		t1 := time.Now()
		bd, err := bundle.Open(res.MetaPath)
		if err != nil {
			t.Fatal(err)
		}
		if err := bd.Verify(ctx, 16, nil); err != nil {
			t.Fatalf("round %d: verify: %v", round, err)
		}
		dst := regtest.StartDistribution(t, regtest.DistributionOptions{})
		dreg, err := registry.New(registry.Options{Registries: []string{dst.Host}, Concurrency: 16})
		if err != nil {
			t.Fatal(err)
		}
		th, _ := ref.NewHost(dst.Host)
		up, err := transfer.Upload(ctx, bd, dreg, transfer.UploadOptions{Target: transfer.RegistryTarget(th, "", nil), Jobs: 16})
		if err != nil {
			t.Fatalf("round %d: upload: %v", round, err)
		}
		if up.Images != n {
			t.Fatalf("round %d: %d images uploaded", round, up.Images)
		}
		t.Logf("round %d: save %v, verify+upload %v", round, t1.Sub(t0), time.Since(t1))
		for repo, dg := range want {
			r, _ := ref.New(dst.Host + "/" + repo + ":1")
			m, err := dreg.ManifestGet(ctx, r)
			if err != nil || m.GetDescriptor().Digest.String() != dg {
				t.Fatalf("round %d: %s: %v %v, want %s", round, repo, m, err, dg)
			}
		}
		dst.Stop()
		// settle: idle connections close, goroutines end
		runtime.GC()
		time.Sleep(300 * time.Millisecond)
		goroutines = append(goroutines, runtime.NumGoroutine())
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heaps = append(heaps, ms.HeapInuse)
		fds = append(fds, openFDs(t))
	}
	t.Logf("after each round: goroutines %v, open fds %v, live heap %v", goroutines, fds, heaps)
	if goroutines[2] > goroutines[0]+8 {
		t.Errorf("goroutines grow between rounds: %v", goroutines)
	}
	if fds[2] > fds[0]+8 {
		t.Errorf("open file descriptors grow between rounds: %v", fds)
	}
	// Live heap after each round must not grow (a leak); the ferry
	// binary's own peak RSS is measured by make bench (this process runs
	// other tests too).
	if heaps[2] > heaps[0]+8<<20 {
		t.Errorf("live heap grows between rounds: %v bytes", heaps)
	}
}
