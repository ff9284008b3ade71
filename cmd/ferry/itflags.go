package main

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/regclient/regclient/types/ref"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/transfer"
)

// image-transmit's command lines (-src, -lst, -inc, -img, -dst, -out) work
// as its README shows them. Go's flag package, and so urfave/cli, takes
// -name like --name; what differs is handled here.

// imgMetaFlag is upload's -img META (image-transmit's meta file flag).
var imgMetaFlag = &cli.StringFlag{Name: "img", Usage: "the meta file to upload, like the META argument (image-transmit's -img)"}

// itOutFlag is image-transmit's -out PREFIX, as save receives it from
// imageTransmitOut.
var itOutFlag = &cli.StringFlag{Name: "it-out", Hidden: true}

// imageTransmitOut resolves the clash of -out: image-transmit's -out is a
// file name prefix (a path in it names a subdirectory), ferry's --out
// (and -o) the output directory. --out and -o are always the directory.
// The single-dash -out, as image-transmit's README writes it (-out=img,
// -out img), is the directory when it can only mean one (an existing
// directory, a value ending in /, or with --mkdir), and image-transmit's
// prefix otherwise; save logs which it took. Only save has either.
func imageTransmitOut(args []string) []string {
	isSave, mkdir := false, false
	for _, a := range args {
		isSave = isSave || a == "save"
		mkdir = mkdir || a == "-mkdir" || a == "--mkdir" || a == "--mkdir=true" || a == "-mkdir=true"
	}
	if !isSave || mkdir {
		return args
	}
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a, val, isOut := args[i], "", false
		switch {
		case a == "--":
			return append(out, args[i:]...)
		case strings.HasPrefix(a, "-out="):
			val, isOut = strings.TrimPrefix(a, "-out="), true
		case a == "-out" && i+1 < len(args):
			val, isOut = args[i+1], true
			i++
		}
		switch {
		case !isOut:
			out = append(out, a)
		case isDirValue(val):
			out = append(out, "--out="+val)
		default:
			out = append(out, "--it-out="+val)
		}
	}
	return out
}

// isDirValue reports whether -out's value can only be a directory.
func isDirValue(v string) bool {
	if strings.HasSuffix(v, "/") || strings.HasSuffix(v, string(filepath.Separator)) {
		return true
	}
	st, err := os.Stat(v)
	return err == nil && st.IsDir()
}

// outputFlags are save's output directory, file name prefix and whether
// to create the directory: --out/-o, --prefix and --mkdir (or cfg.yaml
// output), with image-transmit's -out PREFIX: its last element is the
// prefix, a directory before it is created under the output directory.
func (e *env) outputFlags(c *cli.Context) (dir, prefix string, mkdir bool) {
	cfg := e.cfg
	dir = flagOr(c, "out", cfg.Output.Dir)
	prefix = flagOr(c, "prefix", cfg.Output.Prefix)
	mkdir = c.Bool("mkdir") || cfg.Output.Mkdir
	if p := c.String("it-out"); p != "" {
		sub, name := filepath.Split(filepath.FromSlash(p))
		if sub != "" {
			dir, mkdir = filepath.Join(dir, sub), true
		}
		if name != "" {
			prefix = name
		}
		e.log.Info("-out: image-transmit's file name prefix (ferry's output directory is --out or -o)", "prefix", prefix, "dir", dir)
	}
	return dir, prefix, mkdir
}

// metaArg is the meta file of upload: its argument, or -img.
func metaArg(c *cli.Context) (string, error) {
	img := c.String("img")
	switch {
	case c.NArg() == 1 && img == "":
		return c.Args().First(), nil
	case c.NArg() == 0 && img != "":
		return img, nil
	}
	return "", usagef("upload takes one meta file")
}

// listOrStdin is the image list flag; with none, and no images from the
// arguments or cfg.yaml, a standard input that is not a terminal is the
// list (image-transmit's `-src=nj <<EOF`).
func (e *env) listOrStdin(c *cli.Context) string {
	if l := c.String("list"); l != "" || c.NArg() > 0 || len(c.StringSlice("img")) > 0 || e.cfg.List != "" || len(e.cfg.Images) > 0 {
		return l
	}
	if f, ok := e.stdin.(*os.File); ok && (f == nil || term.IsTerminal(int(f.Fd()))) {
		return ""
	}
	if e.stdin == nil {
		return ""
	}
	return "-"
}

// replaceNamespace applies a target whose namespace replaces the first
// path component of repositories (cfg replaceNamespace, image-transmit's
// repository): SRC/xxxx/image lands at TARGET/yyyy/image. It returns the
// renames, extended, and the namespace left to put in front (none then).
func (e *env) replaceNamespace(target string, m *meta.Meta, renames map[string]string, ns string) (map[string]string, string) {
	rc, ok := e.cfg.Lookup(target)
	if !ok || !rc.ReplaceNamespace || ns == "" {
		return renames, ns
	}
	if renames == nil {
		renames = map[string]string{}
	}
	add := func(repo string) {
		if _, done := renames[repo]; done {
			return
		}
		renames[repo] = replaceFirst(repo, ns)
	}
	for _, img := range m.Images {
		add(img.Repository)
	}
	for _, b := range m.Blobs {
		for _, r := range b.Repos {
			add(r)
		}
	}
	for _, b := range m.BaseBlobs {
		for _, r := range b.Repos {
			add(r)
		}
		for _, r := range b.BaseRepos {
			add(r)
		}
	}
	for _, mf := range m.Manifests {
		for _, r := range mf.Repos {
			add(r)
		}
	}
	return renames, ""
}

// replaceFirst puts ns in place of repo's first path component (in front
// of a repository of one component).
func replaceFirst(repo, ns string) string {
	if _, rest, ok := strings.Cut(repo, "/"); ok {
		return ns + "/" + rest
	}
	return ns + "/" + repo
}

// syncRepo maps repositories to a sync target: under its namespace, or
// with the namespace in place of their first path component for a target
// that says so (replaceNamespace, image-transmit's repository).
func (e *env) syncRepo(target string, host ref.Ref, ns string) func(string) (ref.Ref, error) {
	rc, ok := e.cfg.Lookup(target)
	if !ok || !rc.ReplaceNamespace || ns == "" {
		return transfer.RegistryTarget(host, ns, nil)
	}
	to := transfer.RegistryTarget(host, "", nil)
	return func(repo string) (ref.Ref, error) { return to(replaceFirst(repo, ns)) }
}

// itTarget reads image-transmit's -dst=ctr (its ctr image import) as the
// local containerd, unless cfg.yaml names a registry ctr.
func (e *env) itTarget(s string) string {
	if _, named := e.cfg.Lookup(s); s == "ctr" && !named {
		return "containerd"
	}
	return s
}
