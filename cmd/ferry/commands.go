package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/platform"
	"github.com/regclient/regclient/types/ref"
	"github.com/urfave/cli/v2"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/internal/safe"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/selection"
)

func saveCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "save",
		Usage:     "save images from registries into a bundle",
		ArgsUsage: "[IMAGE ...]",
		Description: `Resolves every image, then streams the blobs they need (each once) into tar
parts and writes <prefix>_<full|incr>_<UTC time>_meta.yaml last.

Examples:
  ferry save localhost:5000/library/alpine:3.19 -o out
  ferry save --list images.txt --platform linux/amd64,linux/arm64 --compress zstd -o out
  ferry save --list images.txt --inc out/ferry_full_20261101T000000Z_meta.yaml -o out
  echo 'localhost:5000/app:1 -> team/app:1' | ferry save --list - -o out
  ferry save --list images.txt --resume out   # continue the save that was interrupted

A save that fails or is interrupted (kill -9 included) keeps the blobs it
wrote; the next save of the same images and options into the same directory
continues it and fetches only the rest (--fresh starts over).`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "list", Aliases: []string{"l", "lst"}, Usage: "image list file, - for stdin (one ref a line, 'SRC -> DST' renames, # comments)"},
			&cli.StringFlag{Name: "src", Usage: "registry (or cfg name) that list entries are paths on"},
			&cli.StringSliceFlag{Name: "img", Usage: "an image, like an IMAGE argument (repeatable; image-transmit's -img)"},
			&cli.StringSliceFlag{Name: "platform", Aliases: []string{"p"}, Usage: "keep only these platforms of multi-platform images (repeatable, comma separated)"},
			&cli.IntFlag{Name: "latest", DefaultText: "all", Usage: "tag selections keep the N highest tags (semver order)"},
			shardFlag(),
			&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Value: 4, Usage: "concurrent transfers and parts (cfg.yaml: jobs)"},
			&cli.IntFlag{Name: "retries", Value: 3, Usage: "retries of a transfer that failed for a transient reason (cfg.yaml: retries)"},
			&cli.StringFlag{Name: "split-size", Usage: "start a new part at the next blob once a part reaches this size: a number with B, KB, MB, GB, TB, KiB, MiB, GiB or TiB, e.g. 2GiB (cfg.yaml: splitSize)"},
			&cli.BoolFlag{Name: "single", Usage: "write one part"},
			&cli.StringFlag{Name: "compress", Value: "none", Usage: "part compression: none, zstd, gzip, xz, lz4 (cfg.yaml: compression)"},
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Value: ".", Usage: "output directory; it must exist unless --mkdir (cfg.yaml: output.dir)"},
			&cli.BoolFlag{Name: "mkdir", Usage: "create the output directory when it does not exist (cfg.yaml: output.mkdir)"},
			&cli.StringFlag{Name: "prefix", Value: "ferry", Usage: "bundle file name prefix (cfg.yaml: output.prefix)"},
			itOutFlag,
			&cli.StringSliceFlag{Name: "inc", Usage: "base meta file: skip blobs it (or its bases) carried (repeatable)"},
			&cli.BoolFlag{Name: "keep-going", Usage: "write a bundle of the images that succeeded, marked partial (still exits 1)"},
			&cli.StringFlag{Name: "resume", Usage: "output directory holding an interrupted save of the same images and options: continue it, or fail (exit 2) if there is none; without this flag a save resumes such a save by itself"},
			&cli.BoolFlag{Name: "fresh", Usage: "discard an interrupted save of the same images and options instead of resuming it"},
			&cli.BoolFlag{Name: "watch-round", Hidden: true}, // set by --watch: its rounds never resume
			&cli.StringFlag{Name: "cache", Usage: "blob cache directory"},
			jsonFlag,
			&cli.DurationFlag{Name: "watch", DefaultText: "off", Usage: "repeat every interval (e.g. 24h): each round an increment against the last round's meta"},
			&cli.StringFlag{Name: "report", Usage: "with --watch: append one JSON object per round to this file"},
			&cli.BoolFlag{Name: "insecure", Usage: "skip TLS certificate checks for registries not in cfg.yaml"},
			&cli.StringFlag{Name: "ca-file", Usage: "CA certificate (PEM) for registries not in cfg.yaml"},
			&cli.BoolFlag{Name: "referrers", Value: true, Usage: "also save signatures, SBOMs and other referrers of every image (cfg.yaml: referrers)"},
			&cli.StringSliceFlag{Name: "artifact-type", Usage: "keep only referrers of this artifact type, or a cosign tag suffix (.sig, .att, .sbom); repeatable (cfg.yaml: artifactTypes)"},
			&cli.DurationFlag{Name: "timeout", Value: 60 * time.Second, Usage: "end and retry a blob download that waits this long for a byte; 0: never (cfg.yaml: timeout)"},
			signFlag(),
		},
		Action: func(c *cli.Context) error { return e.save(c) },
	}
}

func uploadCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "upload",
		Usage:     "verify a bundle while pushing it to a registry or loading it into Docker or containerd",
		ArgsUsage: "META",
		Description: `Checks parts and base blobs first, streams every part (checking each blob's
digest and each part's sha256) pushing the blobs the target lacks, and only
then pushes manifests: children, indexes, tags.

Targets: REGISTRY[/NAMESPACE], a registries name from cfg.yaml,
docker[:///path/to/docker.sock], or containerd[:///path/to/containerd.sock]
(images keep their source names, in --containerd-namespace).

Examples:
  ferry upload out/ferry_full_20261124T101500Z_meta.yaml --target registry.local:5000/mirror
  ferry upload out/ferry_incr_20261125T101500Z_meta.yaml --target prod
  ferry upload out/ferry_full_20261124T101500Z_meta.yaml --target docker --platform linux/amd64
  ferry upload out/ferry_full_20261124T101500Z_meta.yaml --target containerd:///run/k3s/containerd/containerd.sock`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "target", Aliases: []string{"t", "dst"}, Usage: "REGISTRY[/NAMESPACE] | cfg name | docker[:///path/to/docker.sock] | containerd[:///path/to/containerd.sock]"},
			imgMetaFlag,
			&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Value: 4, Usage: "parts streamed at once (cfg.yaml: jobs)"},
			&cli.IntFlag{Name: "retries", Value: 3, Usage: "retries of a part that failed for a transient reason (cfg.yaml: retries)"},
			&cli.StringFlag{Name: "list", Aliases: []string{"l"}, Usage: "list with 'SRC -> DST' lines renaming repositories at the target"},
			&cli.StringFlag{Name: "platform", Aliases: []string{"p"}, DefaultText: "docker: this host's; containerd: all", Usage: "docker target: the platform to load; containerd: the platforms of multi-platform images to load (comma separated)"},
			containerdNamespaceFlag(),
			&cli.BoolFlag{Name: "keep-going", Usage: "go on past an image whose blob or manifest push fails: push the others, tag none that failed, list them (still exits 1) (cfg.yaml: keepGoing)"},
			jsonFlag,
			&cli.BoolFlag{Name: "insecure", Usage: "skip TLS certificate checks for a target not in cfg.yaml"},
			&cli.StringFlag{Name: "ca-file", Usage: "CA certificate (PEM) for a target not in cfg.yaml"},
			keyFlag(),
		},
		Action: func(c *cli.Context) error {
			err := e.upload(c)
			e.notifyEnd(c.Context, "upload", err)
			return err
		},
	}
}

func verifyCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "check a bundle offline: parts, sizes, sha256, every digest, references",
		ArgsUsage: "META",
		Description: `Prints OK, or every problem with the part or blob it concerns (exit 1).

Example:
  ferry verify /media/usb/ferry_full_20261124T101500Z_meta.yaml`,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Value: 4, Usage: "parts read at once"},
			keyFlag(),
			jsonFlag,
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("verify takes one meta file")
			}
			bd, err := e.openChecked(c.Args().First(), c.String("key"))
			if err != nil {
				return err
			}
			jsonOut, restore := e.jsonOutput(c)
			defer restore()
			p := e.labelledProgress(e.labelsFromMeta(bd))
			err = bd.Verify(c.Context, c.Int("jobs"), p)
			p.Stop()
			writeJSON(jsonOut, verifyResultJSON(c.Args().First(), bd.Meta, err))
			if err != nil {
				var problems []string
				for _, line := range strings.Split(err.Error(), "\n") {
					problems = append(problems, "  "+line)
				}
				return tr().Errorf("%s: NOT OK:\n%s", bd.Meta.ID, strings.Join(problems, "\n"))
			}
			tr().Fprintf(e.stdout, "%s: OK (%d parts, %d blobs, %s, %d images)\n", bd.Meta.ID, len(bd.Meta.Parts), len(bd.Meta.Blobs), formatSize(bd.Meta.TotalBlobBytes()), len(bd.Meta.Images))
			return nil
		},
	}
}

func inspectCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "list a bundle's images, platforms, blobs, parts and base bundles",
		ArgsUsage: "META",
		Description: `Example:
  ferry inspect out/ferry_full_20261124T101500Z_meta.yaml`,
		Flags: []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("inspect takes one meta file")
			}
			bd, err := openBundle(c.Args().First())
			if err != nil {
				return err
			}
			if c.Bool("json") {
				writeJSON(e.stdout, inspectResultJSON(c.Args().First(), bd))
				return nil
			}
			inspect(e.stdout, bd)
			inspectReferrers(e.stdout, bd)
			inspectSignature(e.stdout, bd.MetaPath)
			return nil
		},
	}
}

// openBundle opens the meta file a command was given. One that is missing
// or is not a meta file this ferry reads is a usage error (exit 2), like a
// missing list file.
func openBundle(path string) (*bundle.Bundle, error) {
	bd, err := bundle.Open(path)
	if err != nil {
		return nil, usageError{err}
	}
	return bd, nil
}

func inspect(w io.Writer, bd *bundle.Bundle) {
	m := bd.Meta
	fmt.Fprintf(w, "bundle      %s (%s%s)\n", m.ID, m.Type, map[bool]string{true: ", PARTIAL", false: ""}[m.Partial])
	fmt.Fprintf(w, "created     %s by %s\n", m.Created.Format("2006-01-02 15:04:05 MST"), safe.Line(m.Tool))
	fmt.Fprintf(w, "platforms   %s\n", safe.Line(orAll(m.Platforms)))
	fmt.Fprintf(w, "compression %s\n", safe.Line(m.Compression))
	var baseBytes int64
	for _, b := range m.BaseBlobs {
		baseBytes += b.Size
	}
	fmt.Fprintf(w, "blobs       %d stored (%s), %d in base bundles (%s), %d manifests\n", len(m.Blobs), formatSize(m.TotalBlobBytes()), len(m.BaseBlobs), formatSize(baseBytes), len(m.Manifests))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nIMAGE\tTARGET\tDIGEST\tPLATFORMS\tBLOBS\tSIZE")
	blobs := newBlobIndex(m)
	for _, img := range m.Images {
		n, base, size := blobs.image(bd, img)
		target := img.Repository
		if img.Tag != "" {
			target += ":" + img.Tag
		}
		blobs := fmt.Sprint(n)
		if base > 0 {
			blobs += fmt.Sprintf(" (%d in base)", base)
		}
		plats := safe.Line(strings.Join(img.Platforms, ","))
		if plats == "" {
			plats = "-" // a single-platform image saved without a filter: not recorded
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", safe.Line(img.Source), target, short(img.Digest.String()), plats, blobs, formatSize(size))
	}
	tw.Flush()
	fmt.Fprintln(tw, "\nPART\tSIZE\tBLOBS\tSHA256")
	perPart := map[string]int{}
	for _, b := range m.Blobs {
		perPart[b.Part]++
	}
	for _, p := range m.Parts {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", p.Name, formatSize(p.Size), perPart[p.Name], p.SHA256)
	}
	tw.Flush()
	if len(m.Bases) > 0 {
		fmt.Fprintln(tw, "\nBASE BUNDLE\tMETA\tSHA256")
		for _, b := range m.Bases {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", b.ID, safe.Line(b.Meta), b.SHA256)
		}
		tw.Flush()
	}
	if len(m.Failed) > 0 {
		fmt.Fprintln(w, "\nFAILED IMAGES")
		for _, f := range m.Failed {
			fmt.Fprintf(w, "  %s: %s\n", safe.Line(f.Source), safe.Line(f.Error))
		}
	}
}

// blobIndex has the size of every blob and base blob of a bundle, and
// which are base blobs: built once, not once per image.
type blobIndex struct {
	size   map[digest.Digest]int64
	inBase map[digest.Digest]bool
}

func newBlobIndex(m *meta.Meta) blobIndex {
	x := blobIndex{size: make(map[digest.Digest]int64, len(m.Blobs)+len(m.BaseBlobs)), inBase: make(map[digest.Digest]bool, len(m.BaseBlobs))}
	for _, b := range m.Blobs {
		x.size[b.Digest] = b.Size
	}
	for _, b := range m.BaseBlobs {
		x.size[b.Digest], x.inBase[b.Digest] = b.Size, true
	}
	return x
}

// image counts the distinct config and layer blobs an image needs (of
// every platform it has), following its manifests; base counts those a
// base bundle carried.
func (x blobIndex) image(bd *bundle.Bundle, img meta.Image) (n, base int, size int64) {
	seen := map[digest.Digest]bool{}
	eachManifest(bd, img.Digest, func(_ manifest.Manifest, blobs []descriptor.Descriptor) {
		for _, b := range blobs {
			if !seen[b.Digest] {
				seen[b.Digest] = true
				n++
				size += x.size[b.Digest]
				if x.inBase[b.Digest] {
					base++
				}
			}
		}
	})
	return n, base, size
}

// eachManifest calls fn for the manifest dg of the bundle and every child
// manifest below it, with the blobs each references (config first).
func eachManifest(bd *bundle.Bundle, dg digest.Digest, fn func(mm manifest.Manifest, blobs []descriptor.Descriptor)) {
	var walk func(dg digest.Digest, depth int)
	walk = func(dg digest.Digest, depth int) {
		mf := bd.Manifest(dg)
		if mf == nil || depth > 4 {
			return
		}
		mm, err := bundle.ParseManifest(*mf)
		if err != nil {
			return
		}
		blobs, children, err := oci.References(mm)
		if err != nil {
			return
		}
		fn(mm, blobs)
		for _, c := range children {
			walk(c.Digest, depth+1)
		}
	}
	walk(dg, 0)
}

func orAll(p []string) string {
	if len(p) == 0 {
		return "all"
	}
	return strings.Join(p, ",")
}

func short(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

func configCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "work with cfg.yaml",
		Subcommands: []*cli.Command{{
			Name:      "check",
			Usage:     "validate a cfg.yaml: unknown fields, values, list files",
			ArgsUsage: "[FILE]",
			Description: `Example:
  ferry config check cfg.yaml`,
			Action: func(c *cli.Context) error {
				file := c.Args().First()
				if file == "" {
					file = c.String("config")
				}
				if file == "" {
					return usagef("config check takes a cfg.yaml (argument or --config)")
				}
				cfg, err := LoadConfig(file)
				if err != nil {
					return err
				}
				// the images and the list file must parse too
				if _, err := cfg.ImageSpecs(nil, "", e.stdin); err != nil {
					return err
				}
				unset, readable := cfg.credentialIssues()
				if readable != "" {
					e.log.Warn(readable)
				}
				if len(unset) > 0 {
					return usagef("cfg.yaml credentials use variables that are not set: %s", strings.Join(unset, "; "))
				}
				tr().Fprintf(e.stdout, "%s: OK (%d registries)\n", file, len(cfg.Registries))
				printNotes(e.stdout, cfg)
				return nil
			},
		}, configConvertCommand(e)},
	}
}

// ImageSpecs gathers images from args, the list flag, and cfg.yaml.
func (c *Config) ImageSpecs(args []string, listFlag string, stdin io.Reader) ([]selection.ImageSpec, error) {
	srcRegistry := ""
	if c.Source != "" {
		srcRegistry = c.Source
		if r, ok := c.Lookup(c.Source); ok {
			srcRegistry = r.Registry
		}
	}
	return gatherImages(args, listFlag, c.List, c.Images, srcRegistry, stdin)
}

func gatherImages(args []string, listFlag, cfgList string, cfgImages []string, srcRegistry string, stdin io.Reader) ([]selection.ImageSpec, error) {
	var specs []selection.ImageSpec
	add := func(lines []string) error {
		got, err := selection.ParseList(strings.NewReader(strings.Join(lines, "\n")), srcRegistry)
		specs = append(specs, got...)
		return err
	}
	for i, a := range args {
		spec, err := selection.ParseImage(strings.TrimSpace(a), srcRegistry)
		if err != nil {
			return nil, usagef("argument %d: %w", i+1, err)
		}
		specs = append(specs, spec)
	}
	for _, file := range []string{listFlag, cfgList} {
		if file == "" {
			continue
		}
		var r io.Reader = stdin
		if file != "-" {
			f, err := os.Open(file)
			if err != nil {
				return nil, usageError{err}
			}
			defer f.Close()
			r = f
		}
		got, err := selection.ParseList(r, srcRegistry)
		if err != nil {
			return nil, usageError{fmt.Errorf("%s: %w", file, err)}
		}
		specs = append(specs, got...)
	}
	if err := add(cfgImages); err != nil {
		return nil, usageError{fmt.Errorf("cfg images: %w", err)}
	}
	// the same image twice is stored once
	seen := map[string]bool{}
	out := specs[:0]
	for _, s := range specs {
		k := s.String() + "|" + s.Repository + ":" + s.Tag
		if !seen[k] {
			seen[k] = true
			out = append(out, s)
		}
	}
	return out, nil
}

// parsePlatforms parses repeatable, comma separated platforms.
func parsePlatforms(values []string) ([]platform.Platform, []string, error) {
	var ps []platform.Platform
	var names []string
	for _, v := range values {
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			p, err := platform.Parse(s)
			if n := strings.Count(s, "/"); err == nil && (n < 1 || n > 2 || strings.Contains(s, "//")) {
				err = tr().Errorf("want os/arch[/variant]")
			}
			if err != nil {
				return nil, nil, usagef("platform %q: %v", s, err)
			}
			ps = append(ps, p)
			names = append(names, p.String())
		}
	}
	return ps, names, nil
}

// registryFor builds the registry client for the hosts in play (with
// insecure and caFile for hosts not in cfg.yaml), warning first of what
// will go wrong with cfg.yaml's credentials.
func (e *env) registryFor(names []string, insecure bool, caFile string, jobs, retries int) (*registry.Registry, error) {
	unset, readable := e.cfg.credentialIssues()
	for _, msg := range append(unset, readable) {
		if msg != "" {
			e.log.Warn(msg)
		}
	}
	hosts := e.cfg.Hosts()
	for _, n := range names {
		if slices.ContainsFunc(hosts, func(h registry.Host) bool { return h.Registry == n }) {
			continue
		}
		h := registry.Host{Registry: n, CAFile: caFile}
		if e.isPlain(n) { // --insecure too: it must not turn TLS on
			h.TLS = registry.TLSDisabled
		} else if insecure {
			h.TLS = registry.TLSInsecure
		} else if caFile != "" {
			h.TLS = registry.TLSEnabled
		}
		hosts = append(hosts, h)
	}
	docker := true
	if e.cfg.DockerConfig != nil {
		docker = *e.cfg.DockerConfig
	}
	return registry.New(registry.Options{
		Hosts: hosts, DockerConfig: docker, Retries: retries, Concurrency: jobs,
		UserAgent: "ferry/" + version, Log: e.log, Net: e.network(),
	})
}

// network is the time bounds of registry requests: the command's
// --timeout (noteTimeouts; else cfg.yaml timeout) for a body that sends
// nothing, cfg.yaml headerTimeout and minRate; 0 turns a bound off.
func (e *env) network() registry.Net {
	var n registry.Net
	off := func(d time.Duration) time.Duration {
		if d == 0 {
			return -1
		}
		return d
	}
	switch {
	case e.idle != nil:
		n.Idle = off(*e.idle)
	case e.cfg.Timeout != "":
		d, _ := time.ParseDuration(e.cfg.Timeout) // checked by Validate
		n.Idle = off(d)
	}
	if e.cfg.HeaderTimeout != "" {
		d, _ := time.ParseDuration(e.cfg.HeaderTimeout)
		n.Header = off(d)
	}
	if e.cfg.MinRate != "" {
		rate, _ := parseSize(e.cfg.MinRate)
		n.MinRate = int64(off(time.Duration(rate)))
	}
	return n
}

// noteTimeouts makes each command that has a --timeout flag note its
// value (cfg.yaml's timeout by default) before it runs, for network.
func (e *env) noteTimeouts(cmds []*cli.Command) {
	for _, cmd := range cmds {
		if slices.ContainsFunc(cmd.Flags, func(f cli.Flag) bool { return slices.Contains(f.Names(), "timeout") }) {
			before := cmd.Before
			cmd.Before = func(c *cli.Context) error {
				d := e.timeout(c)
				e.idle = &d
				if before != nil {
					return before(c)
				}
				return nil
			}
		}
		e.noteTimeouts(cmd.Subcommands)
	}
}

func firstNonZero[T comparable](vals ...T) T {
	var zero T
	for _, v := range vals {
		if v != zero {
			return v
		}
	}
	return zero
}

func (e *env) retries(c *cli.Context) int {
	if !c.IsSet("retries") && e.cfg.Retries != nil {
		return *e.cfg.Retries
	}
	return c.Int("retries")
}

// flagOr is the flag's value when it was given or cfg is unset (zero),
// else cfg: flags override cfg.yaml, which overrides flag defaults.
func flagOr[T comparable](c *cli.Context, name string, cfg T) T {
	var zero T
	if c.IsSet(name) || cfg == zero {
		return c.Value(name).(T)
	}
	return cfg
}

// parseTarget parses --target into a registry ref (host + namespace) or a
// runtime's socket (isDocker: a Docker engine, or containerd, see
// containerdTarget).
func (e *env) parseTarget(s string) (reg ref.Ref, namespace, dockerSock string, isDocker bool, err error) {
	if s == "" {
		return ref.Ref{}, "", "", false, usagef("upload needs --target (or target in cfg.yaml)")
	}
	if sock, ok := containerdTarget(s); ok {
		return ref.Ref{}, "", sock, true, nil
	}
	if s == "docker" || strings.HasPrefix(s, "docker://") || strings.HasPrefix(s, "docker:") {
		sock := strings.TrimPrefix(strings.TrimPrefix(s, "docker"), ":")
		sock = strings.TrimPrefix(sock, "//")
		return ref.Ref{}, "", sock, true, nil
	}
	s, plain := selection.CutScheme(s) // a registry URL: the host and path are the target
	if plain {
		h, _, _ := strings.Cut(s, "/")
		e.markPlain(h)
	}
	if rc, ok := e.cfg.Lookup(s); ok {
		s = strings.TrimSuffix(rc.Registry+"/"+rc.Namespace, "/")
	}
	host, ns, _ := strings.Cut(s, "/")
	ns = strings.Trim(ns, "/")
	if ns != "" && !meta.ValidRepository(ns) {
		return ref.Ref{}, "", "", false, usagef("target %q: namespace %q is not a repository path (lowercase letters, digits, . _ - separated by /)", s, ns)
	}
	r, perr := ref.NewHost(host)
	if perr != nil || strings.ContainsAny(host, "@ ") {
		return ref.Ref{}, "", "", false, usagef("target %q: %v", s, perr)
	}
	return r, ns, "", false, nil
}
