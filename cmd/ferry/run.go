package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ferry-oss/ferry/bundle"
)

func (e *env) save(c *cli.Context) error {
	cfg := e.cfg
	src := firstNonZero(c.String("src"), cfg.Source)
	if r, ok := cfg.Lookup(src); ok {
		src = r.Registry
	}
	images, err := gatherImages(append(c.Args().Slice(), c.StringSlice("img")...), c.String("list"), cfg.List, cfg.Images, src, e.stdin)
	if err != nil {
		return err
	}
	if len(images) == 0 {
		return usagef("no images: give IMAGE arguments, --list, or images/list in cfg.yaml")
	}
	plats, platNames, err := parsePlatforms(orSlice(c.StringSlice("platform"), cfg.Platforms))
	if err != nil {
		return err
	}
	codec, err := bundle.ParseCodec(firstNonZero(c.String("compress"), cfg.Compression))
	if err != nil {
		return usageError{err}
	}
	if codec == bundle.CodecXz {
		e.log.Warn("xz compresses already-compressed layers at about 1 MB/s; zstd is much faster at the same ratio on them")
	}
	split, err := parseSize(firstNonZero(c.String("split-size"), cfg.SplitSize))
	if err != nil {
		return usagef("--split-size: %v", err)
	}
	single := c.Bool("single") || cfg.Single
	if single && split > 0 {
		return usagef("--single and --split-size exclude each other")
	}
	jobs := firstNonZero(c.Int("jobs"), cfg.Jobs, 4)
	if jobs < 1 || jobs > 64 {
		return usagef("--jobs must be 1 to 64")
	}
	retries := e.retries(c)
	outDir := firstNonZero(c.String("out"), cfg.Output.Dir, ".")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	var hosts []string
	for _, img := range images {
		hosts = append(hosts, img.Source.Registry)
	}
	reg, err := e.registryFor(hosts, c.Bool("insecure"), c.String("ca-file"), jobs, retries)
	if err != nil {
		return usageError{err}
	}
	var source bundle.Source = reg
	if cacheDir := firstNonZero(c.String("cache"), cfg.Cache.Dir); cacheDir != "" {
		source, err = e.withCache(source, cacheDir)
		if err != nil {
			return err
		}
	}
	w, err := bundle.NewWriter(bundle.WriterOptions{
		Dir: outDir, Prefix: firstNonZero(c.String("prefix"), cfg.Output.Prefix), Codec: codec,
		Parts: jobs, SplitSize: split, Single: single, Platforms: platNames,
		Bases: c.StringSlice("inc"), Tool: "ferry " + version, Log: e.log,
	})
	if err != nil {
		return usageError{err}
	}
	e.log.Info("saving", "bundle", w.ID(), "images", len(images), "dir", outDir, "compression", codec, "jobs", jobs)
	p := e.progress()
	res, err := bundle.Save(c.Context, source, w, images, bundle.SaveOptions{
		Platforms: plats, Jobs: jobs, Retries: retries, KeepGoing: c.Bool("keep-going"),
		Log: e.log, Progress: p,
	})
	p.Stop()
	if errors.Is(err, bundle.ErrBadList) {
		return usageError{err}
	}
	var fe *bundle.FailedError
	if errors.As(err, &fe) {
		fmt.Fprintf(e.stderr, "\nFAILED: %d of %d image(s):\n", len(fe.Images), len(images))
		for _, f := range fe.Images {
			fmt.Fprintf(e.stderr, "  %s\n    %v\n", f.Image, f.Err)
		}
		if res != nil {
			fmt.Fprintf(e.stderr, "a PARTIAL bundle of the other images was written: %s\n", res.MetaPath)
		} else {
			fmt.Fprintln(e.stderr, "no bundle was written (use --keep-going for a partial one)")
		}
		return cli.Exit("save failed", exitFailure)
	}
	e.cacheDone()
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "saved %d image(s), %d blob(s) (%s, %d skipped as in base bundles) in %s into %d part(s)\n%s\n",
		len(res.Meta.Images), res.Blobs, formatSize(res.BlobBytes), res.Skipped, res.Duration.Round(time.Millisecond), len(res.Meta.Parts), res.MetaPath)
	return nil
}

func (e *env) upload(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef("upload takes one meta file")
	}
	bd, err := bundle.Open(c.Args().First())
	if err != nil {
		return err
	}
	jobs := firstNonZero(c.Int("jobs"), e.cfg.Jobs, 4)
	retries := e.retries(c)
	host, ns, sock, isDocker, err := e.parseTarget(firstNonZero(c.String("target"), e.cfg.Target))
	if err != nil {
		return err
	}
	var renames map[string]string
	if list := c.String("list"); list != "" {
		specs, err := gatherImages(nil, list, "", nil, "", e.stdin)
		if err != nil {
			return err
		}
		if renames, err = bundle.Renames(bd.Meta, specs); err != nil {
			return usageError{err}
		}
	}
	var sink bundle.Sink
	targetName := host.Registry
	if isDocker {
		sink, err = e.dockerSink(c, bd.Meta, sock)
		if err != nil {
			return err
		}
		host.Registry, targetName = "docker.io", "docker"
	} else {
		reg, err := e.registryFor([]string{host.Registry}, c.Bool("insecure"), c.String("ca-file"), jobs, retries)
		if err != nil {
			return usageError{err}
		}
		sink = reg
	}
	e.log.Info("uploading", "bundle", bd.Meta.ID, "target", targetName, "namespace", ns, "parts", len(bd.Meta.Parts), "blobs", len(bd.Meta.Blobs))
	p := e.progress()
	res, err := bundle.Upload(c.Context, bd, sink, bundle.UploadOptions{
		Target: bundle.RegistryTarget(host, ns, renames), Jobs: jobs, Retries: retries, Log: e.log, Progress: p,
	})
	p.Stop()
	if err != nil {
		return fmt.Errorf("upload of %s failed (no manifest was pushed for blobs that did not land): %w", bd.Meta.ID, err)
	}
	rate := float64(res.BytesPushed) / max(res.Duration.Seconds(), 0.001)
	fmt.Fprintf(e.stdout, "uploaded %s: %d image(s), %d manifest(s), %d blob(s) pushed (%s, %s/s), %d skipped, %d mounted in %s\n",
		bd.Meta.ID, res.Images, res.Manifests, res.BlobsPushed, formatSize(res.BytesPushed), formatSize(int64(rate)), res.BlobsSkipped, res.BlobsMounted, res.Duration.Round(time.Millisecond))
	return nil
}

func orSlice(a, b []string) []string {
	if len(a) > 0 {
		return a
	}
	return b
}
