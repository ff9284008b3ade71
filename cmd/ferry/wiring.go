package main

import (
	"github.com/urfave/cli/v2"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/registry/docker"
)

func (e *env) withCache(src bundle.Source, dir string) (bundle.Source, error) { return src, nil }
func (e *env) cacheDone()                                                     {}

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
