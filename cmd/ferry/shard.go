package main

import (
	"github.com/urfave/cli/v2"

	"github.com/ferry-oss/ferry/selection"
)

func shardFlag() cli.Flag {
	return &cli.StringFlag{Name: "shard", Usage: "K/N: only the images of shard K of N (by target repository) — one list, split across N build hosts"}
}

// imageList is the image list of save, sync and resolve: IMAGE arguments,
// --img, --list and cfg.yaml's images/list, paths prefixed by --src (or
// cfg source, a registries name or a host), then --shard.
func (e *env) imageList(c *cli.Context) ([]selection.ImageSpec, error) {
	src := firstNonZero(c.String("src"), e.cfg.Source)
	if r, ok := e.cfg.Lookup(src); ok { // Lookup("") finds nothing
		src = r.Registry
	}
	images, err := gatherImages(append(c.Args().Slice(), c.StringSlice("img")...), e.listOrStdin(c), e.cfg.List, e.cfg.Images, src, e.stdin)
	if err != nil {
		return nil, err
	}
	e.markPlainImages(images)
	return shardOf(c, images)
}

// shardOf applies --shard to the image list.
func shardOf(c *cli.Context, images []selection.ImageSpec) ([]selection.ImageSpec, error) {
	if !c.IsSet("shard") {
		return images, nil
	}
	s, err := selection.ParseShard(c.String("shard"))
	if err != nil {
		return nil, usageError{err}
	}
	kept := s.Filter(images)
	if len(kept) == 0 && len(images) > 0 {
		return nil, usagef("shard %s holds none of the %d images of the list", s, len(images))
	}
	return kept, nil
}
