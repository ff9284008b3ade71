package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"

	"github.com/ferry-oss/ferry/i18n"
	"github.com/ferry-oss/ferry/internal/safe"
	"github.com/ferry-oss/ferry/registry"
)

// itConfig is image-transmit's cfg.yaml, read as it is written (its
// README's and its code's fields; yaml.v2 lowercase keys).
type itConfig struct {
	Source     []itRepo   `yaml:"source"`
	Target     []itRepo   `yaml:"target"`
	Platform   string     `yaml:"platform"`
	MaxConn    int        `yaml:"maxconn"`
	Retries    int        `yaml:"retries"`
	SingleFile bool       `yaml:"singlefile"`
	DockerFile bool       `yaml:"dockerfile"`
	Compressor string     `yaml:"compressor"`
	Squashfs   string     `yaml:"squashfs"`
	Cache      itCache    `yaml:"cache"`
	Lang       string     `yaml:"lang"`
	KeepTemp   bool       `yaml:"keeptemp"`
	OutPrefix  string     `yaml:"outprefix"`
	Interval   int        `yaml:"interval"`
	DingTalk   []itNotify `yaml:"dingtalk"`
}

type itRepo struct {
	Name       string `yaml:"name"`
	User       string `yaml:"user"`
	Registry   string `yaml:"registry"`
	Password   string `yaml:"password"`
	Repository string `yaml:"repository"`
}

type itCache struct {
	Pathname string `yaml:"pathname"`
	KeepDays int    `yaml:"keepdays"`
	KeepSize int    `yaml:"keepsize"` // GB (GiB: image-transmit multiplies by 1024^3)
}

type itNotify struct {
	Token  string `yaml:"token"`
	Secret string `yaml:"secret"`
}

// itOnlyKeys are top-level keys only image-transmit's cfg.yaml has.
var itOnlyKeys = []string{"maxconn", "singlefile", "dockerfile", "compressor", "outprefix", "interval", "dingtalk", "keeptemp", "squashfs"}

// isImageTransmitConfig tells image-transmit's cfg.yaml from ferry's by
// content: source or target is a list (ferry's are names), or a key only
// image-transmit has is there.
func isImageTransmitConfig(b []byte) bool {
	var doc yaml.Node
	if yaml.Unmarshal(b, &doc) != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return false
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i].Value, m.Content[i+1]
		if (k == "source" || k == "target") && v.Kind == yaml.SequenceNode {
			return true
		}
		for _, only := range itOnlyKeys {
			if k == only {
				return true
			}
		}
	}
	return false
}

// parseImageTransmitConfig reads image-transmit's cfg.yaml into ferry's
// Config; Notes say how each field was understood (ferry config check).
func parseImageTransmitConfig(b []byte) (*Config, error) {
	var it itConfig
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&it); err != nil {
		return nil, fmt.Errorf("%w: image-transmit cfg.yaml: %v", errConfig, err)
	}
	c := &Config{Format: "image-transmit"}
	note := func(field, format string, args ...any) {
		c.Notes = append(c.Notes, field+": "+fmt.Sprintf(format, args...))
	}
	for i, r := range it.Source {
		rc, err := itRegistry(r, fmt.Sprintf("source[%d]", i), note)
		if err != nil {
			return nil, err
		}
		c.Registries = append(c.Registries, rc)
		if i == 0 {
			c.Source = rc.Name
			note("source", "the first entry, %s, is save's default --src (-src=NAME picks another)", rc.Name)
		}
	}
	for i, r := range it.Target {
		rc, err := itRegistry(r, fmt.Sprintf("target[%d]", i), note)
		if err != nil {
			return nil, err
		}
		c.Registries = append(c.Registries, rc)
		if i == 0 {
			c.Target, c.Targets = rc.Name, []string{rc.Name}
			note("target", "the first entry, %s, is upload's and sync's default --dst (-dst=NAME picks another, -dst=docker the local Docker engine)", rc.Name)
		}
	}
	itSettings(&it, c, note)
	return c, c.Validate()
}

// itRegistry turns a source or target entry into a registries entry: the
// scheme says TLS, name defaults as image-transmit's GUI names entries
// (registry-repository), repository replaces the first path component.
func itRegistry(r itRepo, where string, note func(string, string, ...any)) (RegistryConfig, error) {
	host, plain := cutRegistryScheme(r.Registry)
	if host == "" {
		return RegistryConfig{}, fmt.Errorf("%w: %s: registry is required", errConfig, where)
	}
	rc := RegistryConfig{Name: r.Name, Registry: host, User: literal(r.User), Pass: literal(r.Password)}
	if rc.Name == "" {
		rc.Name = r.Registry + "-" + r.Repository
		note(where+".name", "none: named %q, as image-transmit names it", rc.Name)
	}
	tls := "TLS"
	switch {
	case plain:
		rc.TLS, tls = registry.TLSDisabled, "plain HTTP (http://)"
	case strings.HasPrefix(r.Registry, "https://"):
		rc.TLS = registry.TLSEnabled
	case registry.IsLoopback(host):
		tls = "plain HTTP (loopback)"
	}
	cred := "no credentials (anonymous, or the Docker config's)"
	if r.User != "" {
		cred = "user " + r.User + " and its password"
	}
	note(where, "%s: registry %s over %s, %s", rc.Name, host, tls, cred)
	if r.Repository != "" {
		rc.Namespace, rc.ReplaceNamespace = r.Repository, true
		note(where+".repository", "%s: SRC/xxxx/image:tag lands at %s/%s/image:tag (the first path component is replaced, as image-transmit does)", r.Repository, host, r.Repository)
	}
	return rc, nil
}

// cutRegistryScheme drops http:// or https:// and a trailing slash from a
// registry as cfg.yaml files write it; plain reports http://.
func cutRegistryScheme(s string) (string, bool) {
	s = strings.TrimSpace(s)
	plain := strings.HasPrefix(s, "http://")
	s = strings.TrimPrefix(strings.TrimPrefix(s, "http://"), "https://")
	return strings.TrimRight(s, "/"), plain
}

// itSettings converts the settings that are not registries.
func itSettings(it *itConfig, c *Config, note func(string, string, ...any)) {
	plat := it.Platform
	if plat == "" {
		plat = "linux/amd64"
		note("platform", "none: linux/amd64, image-transmit's default")
	} else {
		note("platform", "%s: save keeps this platform of multi-platform images", plat)
	}
	c.Platforms = []string{plat}
	if it.MaxConn > 0 {
		c.Jobs = it.MaxConn
		note("maxconn", "%d: --jobs %d (concurrent transfers)", it.MaxConn, it.MaxConn)
	}
	retries := it.Retries
	if retries == 0 {
		retries = 2 // image-transmit's default
	}
	c.Retries = &retries
	note("retries", "%d: --retries %d", it.Retries, retries)
	if it.SingleFile {
		c.Single = true
		note("singlefile", "true: --single (one part)")
	}
	if it.DockerFile {
		note("dockerfile", "true: ignored: ferry writes tar parts; `ferry export META --all --format docker-archive -o FILE` writes a docker-load tar from a bundle")
	}
	itCompressor(it.Compressor, c, note)
	if it.Cache.Pathname != "" {
		c.Cache.Dir = path.Join("data", it.Cache.Pathname) // image-transmit keeps it under its home, data/
		c.Cache.KeepDays = 7
		if it.Cache.KeepDays > 0 {
			c.Cache.KeepDays = it.Cache.KeepDays
		}
		size := 10
		if it.Cache.KeepSize > 0 {
			size = it.Cache.KeepSize
		}
		c.Cache.KeepSize = strconv.Itoa(size) + "GiB"
		note("cache", "dir %s (under image-transmit's home data/), entries unused for %d days pruned, and least recently used ones above %s (keepsize is in GB)", c.Cache.Dir, c.Cache.KeepDays, c.Cache.KeepSize)
	}
	switch {
	case it.Lang != "" && i18n.Valid(it.Lang):
		c.Lang = it.Lang
		note("lang", "%s: messages, help and the console in that language", it.Lang)
	case it.Lang != "":
		note("lang", "%s: ignored: ferry speaks en_US and zh_CN", it.Lang)
	}
	if it.OutPrefix != "" {
		dir, prefix := path.Split(it.OutPrefix)
		c.Output.Prefix = prefix
		if dir != "" {
			c.Output.Dir, c.Output.Mkdir = strings.TrimSuffix(dir, "/"), true
		}
		note("outprefix", "%s: bundle files are named %s_<full|incr>_<UTC time>_<N>.tar in %s", it.OutPrefix, prefix, orDot(c.Output.Dir))
	}
	if it.Interval > 0 {
		note("interval", "%d: give `--watch %ds` to ferry sync (or save) for image-transmit's watch mode", it.Interval, it.Interval)
	}
	if it.KeepTemp || it.Squashfs != "" {
		note("keeptemp, squashfs", "ignored: ferry stages nothing in temp files and reads squashfs bundles itself")
	}
	for i, d := range it.DingTalk {
		c.Notify = append(c.Notify, NotifyConfig{Type: "dingtalk", Token: literal(d.Token), Secret: literal(d.Secret)})
		signed := "unsigned"
		if d.Secret != "" {
			signed = "signed with its secret"
		}
		note(fmt.Sprintf("dingtalk[%d]", i), "a DingTalk robot (%s): one message at the end of each save, upload and sync", signed)
	}
}

// itCompressor maps compressor: tar and zstd, gzip, xz, lz4 are part
// codecs; squashfs is kept so that save refuses it (upload and the other
// commands need no codec).
func itCompressor(comp string, c *Config, note func(string, string, ...any)) {
	switch comp {
	case "":
		note("compressor", "none: tar parts, uncompressed (image-transmit's squashfs default is not written by ferry)")
	case "tar":
		c.Compression = "none"
		note("compressor", "tar: uncompressed tar parts")
	case "squashfs":
		c.Compression = "squashfs"
		note("compressor", "squashfs: refused by save (ferry writes tar parts; use compressor: zstd); squashfs bundles are read by verify, upload and the others")
	default:
		c.Compression = comp
		note("compressor", "%s: tar parts, each entry compressed with %s", comp, comp)
	}
}

func orDot(s string) string {
	if s == "" {
		return "."
	}
	return s
}

// squashfsRefused is save's one line for compressor: squashfs.
func squashfsRefused(codec string) error {
	if codec == "squashfs" {
		return usagef("compressor squashfs: ferry writes tar parts, not squashfs images (it reads image-transmit's squashfs bundles); use compressor: zstd (or tar, or --compress)")
	}
	return nil
}

// cutSchemes reads registries written as URLs (http://HOST[:PORT] is
// plain HTTP, https:// is TLS), the way image-transmit's cfg.yaml and
// users write them.
func (c *Config) cutSchemes() error {
	for i := range c.Registries {
		r := &c.Registries[i]
		if !strings.Contains(r.Registry, "://") {
			continue
		}
		host, plain := cutRegistryScheme(r.Registry)
		want := registry.TLSEnabled
		if plain {
			want = registry.TLSDisabled
		}
		if r.TLS != registry.TLSAuto && (plain != (r.TLS == registry.TLSDisabled)) {
			return fmt.Errorf("%w: registries[%d]: registry %s says %s but tls is %q", errConfig, i, r.Registry, want, r.TLS)
		}
		if r.TLS == registry.TLSAuto {
			r.TLS = want
		}
		r.Registry = host
	}
	return nil
}

// parseKeepSize parses cache.keepSize: a bare number is GiB (as
// image-transmit's keepsize): keepSize: 10 must not mean 10 bytes, which
// would empty the cache after every save.
func parseKeepSize(s string) (int64, error) {
	if n, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil && n >= 0 {
		return int64(n * (1 << 30)), nil
	}
	return parseSize(s)
}

// printNotes says how the fields of a cfg.yaml were understood: every
// field of image-transmit's, and ferry's own where a value reads two ways.
func printNotes(w io.Writer, c *Config) {
	if c.Format != "" {
		fmt.Fprintf(w, "read as %s's cfg.yaml (`ferry config convert` prints ferry's own):\n", c.Format)
	}
	notes := c.Notes
	if s := strings.TrimSpace(c.Cache.KeepSize); s != "" && c.Format == "" {
		if _, err := strconv.ParseFloat(s, 64); err == nil {
			notes = append(notes, "cache.keepSize: "+s+": "+s+" GiB (a bare number is GiB, never bytes)")
		}
	}
	for _, n := range notes {
		fmt.Fprintln(w, "  "+safe.Line(n))
	}
}

func configConvertCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "convert",
		Usage:     "print the ferry cfg.yaml equivalent to a cfg.yaml (image-transmit's, or ferry's own)",
		ArgsUsage: "FILE",
		Description: `Example:
  ferry config convert image-transmit/cfg.yaml > cfg.yaml`,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("config convert takes one cfg.yaml")
			}
			cfg, err := LoadConfig(c.Args().First())
			if err != nil {
				return err
			}
			out, err := nativeYAML(cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "# ferry cfg.yaml converted from %s by ferry %s\n", filepath.Base(c.Args().First()), version)
			for _, n := range cfg.Notes {
				fmt.Fprintln(e.stdout, "#   "+safe.Line(n))
			}
			_, err = e.stdout.Write(out)
			return err
		},
	}
}

// nativeYAML is cfg as ferry's cfg.yaml, without the fields left at their
// zero value.
func nativeYAML(cfg *Config) ([]byte, error) {
	var n yaml.Node
	if err := n.Encode(cfg); err != nil {
		return nil, err
	}
	prune(&n)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, err
	}
	return buf.Bytes(), enc.Close()
}

// prune drops mapping entries whose value is zero (empty, 0, false,
// null, an empty list or mapping).
func prune(n *yaml.Node) bool {
	switch n.Kind {
	case yaml.MappingNode:
		var kept []*yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if !prune(n.Content[i+1]) {
				kept = append(kept, n.Content[i], n.Content[i+1])
			}
		}
		n.Content = kept
		return len(kept) == 0
	case yaml.SequenceNode:
		for _, c := range n.Content {
			prune(c)
		}
		return len(n.Content) == 0
	case yaml.ScalarNode:
		return n.Value == "" || n.Value == "0" || n.Value == "false" || n.Tag == "!!null"
	}
	return false
}

// imageTransmitHome reads image-transmit's cfg.yaml where image-transmit
// reads it, ./cfg.yaml or ./data/cfg.yaml, when no --config (or
// FERRY_CONFIG) is given: its users run `ferry save -src=nj ...` in the
// same directory. A ferry cfg.yaml there is not read unless named.
func (e *env) imageTransmitHome() (*Config, error) {
	for _, p := range []string{"cfg.yaml", filepath.Join("data", "cfg.yaml")} {
		b, err := os.ReadFile(p)
		if err != nil || !isImageTransmitConfig(b) {
			continue
		}
		cfg, err := LoadConfig(p) // as --config would: its file mode is checked too
		if err != nil {
			return nil, err
		}
		e.log.Info("reading image-transmit's cfg.yaml", "file", p)
		return cfg, nil
	}
	return nil, nil
}

// literal keeps an image-transmit credential as written: ferry's cfg.yaml
// expands ${VAR} and $VAR in credentials, image-transmit's does not.
func literal(s string) string { return strings.ReplaceAll(s, "$", "$$") }
