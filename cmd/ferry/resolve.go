package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ferry-oss/ferry/oci"
	"github.com/ferry-oss/ferry/selection"
)

func resolveCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "resolve",
		Usage:     "print the image list pinned by digest (a lockfile for save and sync)",
		ArgsUsage: "[IMAGE ...]",
		Description: `Expands tag selections (repo:*, repo:a,b, repo:/REGEX/, semver ranges,
!exclusions) and pins every entry to the digest its tag points at now:
one 'SRC@sha256:... -> DST:TAG' line each. save and sync read the output
like any list, so a monthly full bundle and its dailies can be made from
the same images.

Examples:
  ferry resolve --list images.txt > images.lock
  ferry resolve 'localhost:5000/team/app:~1.2' --latest 1
  ferry save --list images.lock -o /media/usb`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "list", Aliases: []string{"l", "lst"}, Usage: "image list file, - for stdin"},
			&cli.StringFlag{Name: "src", Usage: "registry (or cfg name) that list entries are paths on"},
			&cli.StringSliceFlag{Name: "img", Usage: "an image, like an IMAGE argument (repeatable)"},
			&cli.IntFlag{Name: "latest", DefaultText: "all", Usage: "tag selections keep the N highest tags (semver order)"},
			shardFlag(),
			&cli.IntFlag{Name: "retries", Value: 3, Usage: "retries of a request that failed for a transient reason (cfg.yaml: retries)"},
			&cli.BoolFlag{Name: "insecure", Usage: "skip TLS certificate checks for registries not in cfg.yaml"},
			&cli.StringFlag{Name: "ca-file", Usage: "CA certificate (PEM) for registries not in cfg.yaml"},
		},
		Action: func(c *cli.Context) error {
			specs, err := e.imageList(c)
			if err != nil {
				return err
			}
			if len(specs) == 0 {
				return usagef("no images: give IMAGE arguments, --list, or images/list in cfg.yaml")
			}
			var hosts []string
			for _, s := range specs {
				hosts = append(hosts, s.Source.Registry)
			}
			reg, err := e.registryFor(hosts, c.Bool("insecure"), c.String("ca-file"), 4, e.retries(c))
			if err != nil {
				return usageError{err}
			}
			pinned, err := selection.Resolve(c.Context, reg, specs, selection.ExpandOptions{Latest: c.Int("latest")})
			if errors.Is(err, selection.ErrBadList) {
				return usageError{err}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "# resolved by ferry %s at %s\n", version, time.Now().UTC().Format(time.RFC3339))
			for _, p := range pinned {
				fmt.Fprintln(e.stdout, p.Pinned())
			}
			return nil
		},
	}
}

// expandTags expands the tag selections of a save's images (--latest).
func (e *env) expandTags(c *cli.Context, lister oci.TagLister, images []selection.ImageSpec, jobs int) ([]selection.ImageSpec, error) {
	out, err := selection.ExpandTags(c.Context, lister, images, selection.ExpandOptions{Latest: c.Int("latest"), Jobs: jobs})
	if errors.Is(err, selection.ErrBadList) {
		return nil, usageError{err}
	}
	return out, err
}
