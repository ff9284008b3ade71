package main

import (
	"github.com/ferry-oss/ferry/bundle"
	"github.com/urfave/cli/v2"
)

func shardFlag() cli.Flag {
	return &cli.StringFlag{Name: "shard", Usage: "K/N: only the images of shard K of N (by target repository) — one list, split across N build hosts"}
}

// shardOf applies --shard to the image list.
func shardOf(c *cli.Context, images []bundle.ImageSpec) ([]bundle.ImageSpec, error) {
	if !c.IsSet("shard") {
		return images, nil
	}
	s, err := bundle.ParseShard(c.String("shard"))
	if err != nil {
		return nil, usageError{err}
	}
	kept := s.Filter(images)
	if len(kept) == 0 && len(images) > 0 {
		return nil, usagef("shard %s holds none of the %d images of the list", s, len(images))
	}
	return kept, nil
}
