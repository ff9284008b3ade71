package main

import (
	"errors"

	"github.com/urfave/cli/v2"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
)

func (e *env) withCache(src bundle.Source, dir string) (bundle.Source, error) { return src, nil }
func (e *env) cacheDone()                                                     {}
func (e *env) dockerSink(c *cli.Context, m *meta.Meta, sock string) (bundle.Sink, error) {
	return nil, errors.New("docker target: not built yet")
}
