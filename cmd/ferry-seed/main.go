// Command ferry-seed pushes ferry's test images into a registry: the
// fixtures built from testdata/ (for the demo and tests) and, for
// benchmarks, a big image of incompressible layers. It is a development
// tool, not part of ferry.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"

	"github.com/regclient/regclient/types/ref"
	"golang.org/x/sync/errgroup"

	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
)

func main() {
	host := flag.String("registry", "127.0.0.1:5000", "registry host:port (plain HTTP on loopback)")
	fixtures := flag.Bool("fixtures", false, "push the testdata fixtures")
	extra := flag.String("extra", "", "also push a variant of team/app with one more layer under this tag (for incremental demos)")
	bigRepo := flag.String("big", "", "push a big image to this repository:tag")
	layers := flag.Int("layers", 5, "big image: number of layers")
	size := flag.Int64("layer-size", 100<<20, "big image: bytes per layer")
	seed := flag.Uint64("seed", 1, "big image: random seed")
	generate := flag.Int("generate", 0, "push this many generated images gen/app-NNNNN:1 (-gen-layers tiny layers each, the first shared by all; for make bench-scale)")
	genLayers := flag.Int("gen-layers", 5, "generated images: layers each")
	genLayerSize := flag.Int("gen-layer-size", 4096, "generated images: bytes per layer (before gzip)")
	list := flag.String("list", "", "with -generate: also write the image list (one reference a line) to this file")
	check := flag.String("check", "", "instead of pushing: check that every image of this meta file is at the registry with the meta's digest")
	namespace := flag.String("namespace", "", "with -check: the namespace the bundle was uploaded under")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *check != "" {
		if err := checkMeta(ctx, *host, *check, *namespace); err != nil {
			fmt.Fprintln(os.Stderr, "ferry-seed:", err)
			os.Exit(1)
		}
		return
	}
	if *generate > 0 {
		if err := generateImages(ctx, *host, *generate, *genLayers, *genLayerSize, *list); err != nil {
			fmt.Fprintln(os.Stderr, "ferry-seed:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(ctx, *host, *fixtures, *extra, *bigRepo, *layers, *size, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "ferry-seed:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, host string, fixtures bool, extra, bigRepo string, layers int, size int64, seed uint64) error {
	reg, err := registry.New(registry.Options{Registries: []string{host}, Retries: 2, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	push := func(name string, img *regtest.Image) error {
		r, err := ref.New(host + "/" + name)
		if err != nil {
			return err
		}
		if err := regtest.Push(ctx, reg, r, img); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Printf("%s %s\n", r.CommonName(), img.Digest())
		return nil
	}
	var sets []map[string]*regtest.Image
	if fixtures {
		sets = append(sets, regtest.Fixtures())
	}
	if *imageTransmit {
		sets = append(sets, regtest.ImageTransmitFixtures())
	}
	for _, imgs := range sets {
		names := make([]string, 0, len(imgs))
		for n := range imgs {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if err := push(n, imgs[n]); err != nil {
				return err
			}
		}
	}
	if extra != "" {
		img := regtest.NewImage("linux/amd64", regtest.RootfsLayer("base", nil), regtest.RootfsLayer("app", nil),
			regtest.Layer(map[string]string{"release.txt": "release " + extra + "\n"}))
		if err := push("team/app:"+extra, img); err != nil {
			return err
		}
	}
	if bigRepo != "" {
		if err := push(bigRepo, regtest.NewBigImage(seed, layers, size)); err != nil {
			return err
		}
	}
	return nil
}

// checkMeta compares the digest of every image of a meta file at the
// registry with the digest the meta file records.
func checkMeta(ctx context.Context, host, file, namespace string) error {
	m, err := meta.Load(file)
	if err != nil {
		return err
	}
	reg, err := registry.New(registry.Options{Registries: []string{host}, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	bad := 0
	for _, img := range m.Images {
		repo := img.Repository
		if namespace != "" {
			repo = namespace + "/" + repo
		}
		name := host + "/" + repo + "@" + img.Digest.String()
		if img.Tag != "" {
			name = host + "/" + repo + ":" + img.Tag
		}
		r, err := ref.New(name)
		if err != nil {
			return err
		}
		got, err := reg.ManifestGet(ctx, r)
		switch {
		case err != nil:
			fmt.Printf("MISSING %s: %v\n", name, err)
			bad++
		case got.GetDescriptor().Digest != img.Digest:
			fmt.Printf("WRONG   %s %s (meta: %s)\n", name, got.GetDescriptor().Digest, img.Digest)
			bad++
		default:
			fmt.Printf("OK      %s %s\n", name, img.Digest)
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d image(s) wrong or missing", bad)
	}
	return nil
}

// generateImages pushes n images gen/app-NNNNN:1 of layers tiny layers:
// the first layer is shared by all, the others are the image's own
// (deterministic content of size bytes each). 16 pushes run at once.
func generateImages(ctx context.Context, host string, n, layers, size int, listFile string) error {
	reg, err := registry.New(registry.Options{Registries: []string{host}, Retries: 2, Concurrency: 16, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	filler := func(seed string) string {
		b := make([]byte, size)
		for i := range b {
			b[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[(i*7+len(seed)+int(seed[len(seed)-1]))%36]
		}
		return seed + "\n" + string(b)
	}
	shared := regtest.Layer(map[string]string{"etc/shared": filler("shared")})
	var names []string
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range n {
		name := fmt.Sprintf("gen/app-%05d:1", i)
		names = append(names, host+"/"+name)
		g.Go(func() error {
			ls := []regtest.Blob{shared}
			for l := 1; l < layers; l++ {
				ls = append(ls, regtest.Layer(map[string]string{fmt.Sprintf("app/%d", l): filler(fmt.Sprintf("%s layer %d", name, l))}))
			}
			r, err := ref.New(host + "/" + name)
			if err != nil {
				return err
			}
			if err := regtest.Push(gctx, reg, r, regtest.NewImage("linux/amd64", ls...)); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if listFile != "" {
		if err := os.WriteFile(listFile, []byte(strings.Join(names, "\n")+"\n"), 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("pushed %d generated images of %d layers to %s\n", n, layers, host)
	return nil
}
