package main

import (
	"errors"
	"os"
	"time"

	"github.com/regclient/regclient/types/platform"
	"github.com/urfave/cli/v2"

	"github.com/ferry-oss/ferry/archive"
)

func exportCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "export",
		Usage:     "write images of bundles as a docker-archive, oci-archive or OCI layout",
		ArgsUsage: "META ... [IMAGE ...]",
		Description: `Writes images straight from the bundle parts (an increment with its base
bundles) for docker load, podman load, ctr images import or a k3s/rke2
airgap images directory. Arguments that are files are meta files; the others
name images, as their source reference or as repository:tag at the target.
Digests are kept and checked while streaming; the output is written to a
new temporary file beside PATH (never one that is already there) and renamed
when complete; PATH may not be one of the bundles' own files. With --key
(or cfg.yaml verifyKey and requireSignature) every meta file must carry a
valid signature, as for verify and upload.

Images are named by their source reference; --target REGISTRY[/NAMESPACE]
names them as upload to that target would. A docker-archive holds one
platform per image (--platform, default this host's).

Examples:
  ferry export out/ferry_full_*_meta.yaml registry.example.com/library/alpine:3.19 --format docker-archive -o alpine.tar
  ferry export out/ferry_full_*_meta.yaml --all -o - | docker load
  ferry export out/ferry_full_*_meta.yaml --all --format oci-archive --platform linux/arm64 -o /var/lib/rancher/k3s/agent/images/ferry.tar`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Value: "docker-archive", Usage: "docker-archive, oci-archive or oci (a layout directory)"},
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "output file (directory for oci; - streams an archive to stdout)"},
			&cli.StringFlag{Name: "platform", Aliases: []string{"p"}, Usage: "pick this platform of multi-platform images (docker-archive default: this host's)"},
			&cli.BoolFlag{Name: "all", Usage: "every image of the bundles"},
			&cli.StringFlag{Name: "target", Usage: "name images as upload to REGISTRY[/NAMESPACE] would"},
			keyFlag(),
		},
		Action: func(c *cli.Context) error { return e.export(c) },
	}
}

func (e *env) export(c *cli.Context) error {
	var metas, want []string
	for _, a := range c.Args().Slice() {
		if st, err := os.Stat(a); err == nil && !st.IsDir() {
			metas = append(metas, a)
		} else {
			want = append(want, a)
		}
	}
	switch {
	case len(metas) == 0:
		return usagef("export takes one or more meta files")
	case c.String("out") == "":
		return usagef("export needs --out PATH")
	case c.Bool("all") == (len(want) > 0):
		return usagef("name the images to export, or give --all")
	}
	format, err := archive.ParseFormat(c.String("format"))
	if err != nil {
		return usageError{err}
	}
	var opts archive.Options
	if p := c.String("platform"); p != "" || format == archive.DockerArchive {
		plat := platform.Local()
		if p != "" {
			if plat, err = platform.Parse(p); err != nil {
				return usagef("--platform %s: %v", p, err)
			}
		}
		opts.Platform, opts.RequirePlatform = &plat, p != ""
	}
	var namer archive.Namer
	if t := c.String("target"); t != "" {
		host, ns, _, isDocker, err := e.parseTarget(t)
		if err != nil {
			return err
		}
		if isDocker {
			return usagef("--target names a registry here")
		}
		namer = archive.TargetNames(host, ns)
	}
	set, err := e.openSetChecked(c, metas)
	if err != nil {
		return err
	}
	images, err := archive.Select(set, want, c.Bool("all"), namer)
	if err != nil {
		return usageError{err}
	}
	p := e.progress()
	opts.Progress = p
	start := time.Now()
	var res *archive.Result
	report := e.stdout
	if c.String("out") == "-" {
		res, err = archive.ExportTo(c.Context, set, images, e.stdout, format, opts)
		report = e.stderr
	} else {
		res, err = archive.ExportFile(c.Context, set, images, c.String("out"), format, opts)
	}
	p.Stop()
	if errors.Is(err, archive.ErrOutputIsInput) {
		return usageError{err}
	}
	if err != nil {
		return tr().Errorf("export failed (nothing complete was written to %s): %w", c.String("out"), err)
	}
	tr().Fprintf(report, "exported %d image(s), %d manifest(s), %d blob(s) (%s) as %s to %s in %s\n",
		res.Images, res.Manifests, res.Blobs, formatSize(res.Bytes), format, c.String("out"), time.Since(start).Round(time.Millisecond))
	return nil
}
