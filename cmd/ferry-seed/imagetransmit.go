package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"sort"

	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
)

// imageTransmit pushes regtest.ImageTransmitFixtures (-imagetransmit): the
// images testdata/imagetransmit's bundles were saved from.
var imageTransmit = flag.Bool("imagetransmit", false, "push the images of testdata/imagetransmit (Docker schema 2, OCI, a manifest list) and exit")

func pushImageTransmit(ctx context.Context, host string) error {
	reg, err := registry.New(registry.Options{Registries: []string{host}, Retries: 2, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	imgs := regtest.ImageTransmitFixtures()
	names := make([]string, 0, len(imgs))
	for n := range imgs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r, err := ref.New(host + "/" + n)
		if err != nil {
			return err
		}
		if err := regtest.Push(ctx, reg, r, imgs[n]); err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
		fmt.Printf("%s %s\n", r.CommonName(), imgs[n].Digest())
	}
	return nil
}
