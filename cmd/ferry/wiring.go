package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/cache"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/registry/docker"
)

// withCache puts the blob cache in front of src.
func (e *env) withCache(src bundle.Source, dir string) (bundle.Source, error) {
	keep, err := parseSize(e.cfg.Cache.KeepSize)
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
	hits, misses := e.cache.Counts()
	removed, freed, err := e.cache.Prune()
	if err != nil {
		e.log.Warn("pruning the cache", "err", err)
	}
	entries, size, _ := e.cache.Stats()
	fmt.Fprintf(e.stdout, "cache: %d hit(s), %d miss(es); pruned %d (%s); %d entries, %s\n", hits, misses, removed, formatSize(freed), entries, formatSize(size))
}

// dockerSink connects to the Docker engine at sock (default: DOCKER_HOST
// or /var/run/docker.sock).
func (e *env) dockerSink(c *cli.Context, m *meta.Meta, sock string) (bundle.Sink, error) {
	opts := docker.Options{Socket: sock, Log: e.log}
	if p := c.String("platform"); p != "" {
		plats, _, err := parsePlatforms([]string{p})
		if err != nil {
			return nil, err
		}
		if len(plats) != 1 {
			return nil, usagef("--platform: the docker target takes one platform")
		}
		opts.Platform = &plats[0]
	}
	return docker.New(c.Context, m, opts)
}
