package main

import (
	"context"
	"errors"
	"io"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/cache"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
	"github.com/ferry-oss/ferry/registry/docker"
)

// withCache puts the blob cache in front of src.
func (e *env) withCache(src oci.Source, dir string) (oci.Source, error) {
	keep, err := parseKeepSize(e.cfg.Cache.KeepSize)
	if err != nil {
		return nil, usagef("cache.keepSize: %v", err)
	}
	c, err := cache.Open(cache.Options{Dir: dir, KeepDays: e.cfg.Cache.KeepDays, KeepSize: keep, Log: e.log})
	if err != nil {
		return nil, err
	}
	e.cache = c
	return c.Source(src), nil
}

// cacheDone reports cache use and prunes it; cache errors are warnings.
func (e *env) cacheDone() {
	if e.cache == nil {
		return
	}
	defer e.cache.Close()
	hits, misses := e.cache.Counts()
	removed, freed, err := e.cache.Prune()
	if err != nil {
		e.log.Warn("pruning the cache", "err", err)
	}
	entries, size, _ := e.cache.Stats()
	tr().Fprintf(e.info(), "cache: %d hit(s), %d miss(es); pruned %d (%s); %d entries, %s\n", hits, misses, removed, formatSize(freed), entries, formatSize(size))
}

// dockerSink connects to the Docker engine at sock (default: DOCKER_HOST
// or /var/run/docker.sock), loading plat (default: this host's).
func (e *env) dockerSink(ctx context.Context, bd *bundle.Bundle, sock, plat string) (oci.Sink, error) {
	opts := docker.Options{Socket: sock, Log: e.log, ReadConfigs: smallBlobs(bd)}
	if plat != "" {
		plats, _, err := parsePlatforms([]string{plat})
		if err != nil {
			return nil, err
		}
		if len(plats) != 1 {
			return nil, usagef("--platform: the docker target takes one platform")
		}
		opts.Platform = &plats[0]
	}
	return docker.New(ctx, bd.Meta, opts)
}

// smallBlobs reads small blobs (image configs) from a bundle: one pass
// over each part that holds some, stopping once it has them all; every
// blob is digest-checked as it is read.
func smallBlobs(bd *bundle.Bundle) func(context.Context, []descriptor.Descriptor) (map[digest.Digest][]byte, error) {
	return func(ctx context.Context, ds []descriptor.Descriptor) (map[digest.Digest][]byte, error) {
		want := map[digest.Digest]bool{}
		for _, d := range ds {
			want[d.Digest] = true
		}
		out := map[digest.Digest][]byte{}
		errHaveAll := errors.New("have all")
		for _, p := range bd.Meta.Parts {
			left := 0
			for _, b := range bd.Meta.Blobs {
				if b.Part == p.Name && want[b.Digest] {
					left++
				}
			}
			if left == 0 {
				continue
			}
			err := bd.ReadPart(ctx, p, func(b *meta.Blob, r io.Reader) error {
				if !want[b.Digest] || out[b.Digest] != nil {
					return nil
				}
				data, err := io.ReadAll(r) // r checks size and digest at EOF
				if err != nil {
					return err
				}
				out[b.Digest] = data
				if left--; left == 0 {
					return errHaveAll
				}
				return nil
			})
			if err != nil && !errors.Is(err, errHaveAll) {
				return nil, err
			}
		}
		return out, nil
	}
}
