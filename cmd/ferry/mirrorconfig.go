package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/regclient/regclient/types/ref"
	"github.com/urfave/cli/v2"

	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/registry/mirrors"
	"github.com/ferry-oss/ferry/selection"
	"github.com/ferry-oss/ferry/transfer"
)

// mirrorFormats are mirror-config's --format values.
var mirrorFormats = []string{"containerd", "registries.conf", "idms"}

func mirrorConfigCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "mirror-config",
		Usage:     "print the configuration that makes nodes pull the bundles' images from the mirror",
		ArgsUsage: "META...",
		Description: `After an upload to the site's registry, nodes must pull the images by their
source names from it. For every source registry of the bundles (and with the
namespace and --list renames the upload used) this prints:

  containerd       hosts.toml per source registry, certs.d layout (with --out DIR:
                   DIR/HOST/hosts.toml; containerd reads DIR when its CRI registry
                   config_path names it, e.g. /etc/containerd/certs.d)
  registries.conf  [[registry]] mirror entries for CRI-O and podman
                   (/etc/containers/registries.conf.d/50-ferry-mirror.conf)
  idms             OpenShift ImageDigestMirrorSet and ImageTagMirrorSet (oc apply -f)

containerd mirrors whole registries: a repository renamed at upload is
listed on stderr as not covered.

Examples:
  ferry mirror-config out/*_meta.yaml --registry registry.local:5000/mirror --format containerd --out /etc/containerd/certs.d
  ferry mirror-config out/*_meta.yaml --registry registry.local:5000/mirror --format registries.conf
  ferry mirror-config out/*_meta.yaml --registry prod --format idms | oc apply -f -`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "registry", Aliases: []string{"r"}, Usage: "the mirror the bundles were uploaded to: REGISTRY[/NAMESPACE] or a registries name from cfg.yaml (default: cfg target)"},
			&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Usage: strings.Join(mirrorFormats, " | ")},
			&cli.StringFlag{Name: "list", Aliases: []string{"l"}, Usage: "the list with 'SRC -> DST' renames the upload used"},
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "write here instead of stdout (containerd: a certs.d directory)"},
			&cli.BoolFlag{Name: "plain-http", Usage: "the mirror speaks HTTP"},
			&cli.BoolFlag{Name: "insecure", Usage: "do not verify the mirror's TLS certificate"},
			&cli.StringFlag{Name: "ca-file", Usage: "containerd: path, on the nodes, of the CA certificate of the mirror"},
			&cli.StringFlag{Name: "name", Value: "ferry-mirror", Usage: "idms: the mirror sets' name"},
		},
		Action: func(c *cli.Context) error { return e.mirrorConfig(c) },
	}
}

func (e *env) mirrorConfig(c *cli.Context) error {
	if c.NArg() == 0 {
		return usagef("mirror-config takes the meta files of the bundles")
	}
	format := c.String("format")
	if !slices.Contains(mirrorFormats, format) {
		return usagef("--format %q: want one of %s", format, strings.Join(mirrorFormats, ", "))
	}
	host, ns, _, isRuntime, err := e.parseTarget(firstNonZero(c.String("registry"), e.cfg.Target))
	if err != nil {
		return err
	}
	if isRuntime {
		return usagef("--registry names the registry the bundles were uploaded to")
	}
	var specs []selection.ImageSpec
	if list := c.String("list"); list != "" {
		if specs, err = gatherImages(nil, list, "", nil, "", e.stdin); err != nil {
			return err
		}
	}
	var metas []*meta.Meta
	for _, p := range c.Args().Slice() {
		bd, err := openBundle(p)
		if err != nil {
			return err
		}
		metas = append(metas, bd.Meta)
	}
	targets := map[*meta.Meta]func(string) (ref.Ref, error){}
	for _, m := range metas {
		renames, err := transfer.Renames(m, matching(m, specs))
		if err != nil {
			return usageError{err}
		}
		targets[m] = transfer.RegistryTarget(host, ns, renames)
	}
	maps, err := mirrors.FromMeta(metas, func(m *meta.Meta, repo string) (ref.Ref, error) { return targets[m](repo) })
	if err != nil {
		return usageError{err}
	}
	opts := mirrors.Options{PlainHTTP: c.Bool("plain-http"), Insecure: c.Bool("insecure"), CAFile: c.String("ca-file"), Name: c.String("name")}
	regs := mirrors.Group(maps, strings.TrimSuffix(host.Registry+"/"+ns, "/"))
	return e.writeMirrorConfig(c.String("out"), format, regs, opts)
}

// matching keeps the renames of a list that name an image of m: one list
// serves several bundles.
func matching(m *meta.Meta, specs []selection.ImageSpec) []selection.ImageSpec {
	var out []selection.ImageSpec
	for _, s := range specs {
		if _, err := transfer.Renames(m, []selection.ImageSpec{s}); err == nil {
			out = append(out, s)
		}
	}
	return out
}

// writeMirrorConfig writes the configuration in format to out (stdout when
// empty).
func (e *env) writeMirrorConfig(out, format string, regs []mirrors.Registry, opts mirrors.Options) error {
	var files []mirrors.File
	switch format {
	case "containerd":
		var warnings []string
		files, warnings = mirrors.Containerd(regs, opts)
		for _, w := range warnings {
			e.log.Warn(w)
		}
		if len(files) == 0 {
			return errors.New("mirror-config: no source registry can be mirrored for containerd (every repository was renamed)")
		}
	case "registries.conf":
		files = []mirrors.File{{Path: "50-ferry-mirror.conf", Data: mirrors.RegistriesConf(regs, opts)}}
	case "idms":
		b, err := mirrors.MirrorSets(regs, opts)
		if err != nil {
			return err
		}
		files = []mirrors.File{{Path: "ferry-mirror.yaml", Data: b}}
	}
	switch {
	case out == "":
		return printFiles(e.stdout, format, files)
	case format == "containerd":
		for _, f := range files {
			p := filepath.Join(out, filepath.FromSlash(f.Path))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := meta.WriteFileAtomic(p, f.Data); err != nil {
				return fmt.Errorf("writing %s: %w", p, err)
			}
			fmt.Fprintln(e.stdout, p)
		}
		return nil
	}
	if err := meta.WriteFileAtomic(out, files[0].Data); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	fmt.Fprintln(e.stdout, out)
	return nil
}

// printFiles prints files to w; containerd's, each after a comment line
// naming where it goes.
func printFiles(w io.Writer, format string, files []mirrors.File) error {
	for i, f := range files {
		if format == "containerd" {
			if i > 0 {
				fmt.Fprintln(w)
			}
			fmt.Fprintf(w, "# /etc/containerd/certs.d/%s\n", f.Path)
		}
		if _, err := w.Write(f.Data); err != nil {
			return err
		}
	}
	return nil
}
