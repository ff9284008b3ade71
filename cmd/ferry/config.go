package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ferry-oss/ferry/i18n"
	"github.com/ferry-oss/ferry/registry"
)

// Config is cfg.yaml. Every field is optional; flags override it.
type Config struct {
	// Registries configures hosts: credentials and TLS.
	Registries []RegistryConfig `yaml:"registries"`
	// Source is the default source (a registries name or a host) that list
	// entries without a registry are read from.
	Source string `yaml:"source"`
	// Target is the default upload target: a registries name, a
	// host[/namespace], or docker[:///path/to/docker.sock].
	Target string `yaml:"target"`
	// Targets are the default sync targets (registries names or
	// host[/namespace]); default: target.
	Targets []string `yaml:"targets"`
	// Images is an image list, as in a list file.
	Images []string `yaml:"images"`
	// List is an image list file.
	List string `yaml:"list"`
	// Platforms filters multi-platform indexes (default: keep all).
	Platforms []string `yaml:"platforms"`
	// Jobs is the number of concurrent transfers (default 4).
	Jobs int `yaml:"jobs"`
	// Retries is the number of retries of a failed transfer (default 3).
	Retries *int `yaml:"retries"`
	// Compression of tar parts: none, zstd, gzip, xz, lz4 (default none).
	Compression string `yaml:"compression"`
	// SplitSize starts a new part at a blob boundary (e.g. 2GiB).
	SplitSize string `yaml:"splitSize"`
	// Single writes one part.
	Single bool `yaml:"single"`
	// Output configures where bundles are written.
	Output OutputConfig `yaml:"output"`
	// Cache is the blob cache for save.
	Cache CacheConfig `yaml:"cache"`
	// DockerConfig reads credentials from the Docker config (default true).
	DockerConfig *bool `yaml:"dockerConfig"`
	// Referrers carries signatures, SBOMs and other referrers (default true).
	Referrers *bool `yaml:"referrers"`
	// ArtifactTypes keeps only referrers of these artifact types.
	ArtifactTypes []string `yaml:"artifactTypes"`
	// Timeout ends a registry response (a blob download included) that
	// waits this long for a byte, and retries it (default 60s; 0 for
	// none).
	Timeout string `yaml:"timeout"`
	// SignKey is the SSH private key save signs meta files with.
	SignKey string `yaml:"signKey"`
	// VerifyKey is a file of SSH public keys (.pub, authorized_keys or
	// allowed_signers) that verify and upload check signatures against.
	VerifyKey string `yaml:"verifyKey"`
	// RequireSignature refuses unsigned bundles (needs verifyKey).
	RequireSignature bool `yaml:"requireSignature"`
	// KeepGoing is upload's --keep-going: an image that fails does not
	// stop the others.
	KeepGoing bool `yaml:"keepGoing"`
	// Notify sends one message at the end of each save, upload and sync
	// (notify.go).
	Notify []NotifyConfig `yaml:"notify"`

	// Format is "image-transmit" for its cfg.yaml (itconfig.go); Notes
	// say how each of its fields was understood.
	Format string   `yaml:"-"`
	Notes  []string `yaml:"-"`

	// HeaderTimeout ends a registry request whose answer does not start
	// this long after it was sent (default 60s; uploads' last request 10
	// times as long; 0 for none).
	HeaderTimeout string `yaml:"headerTimeout"`
	// MinRate ends a registry response that arrives slower than this many
	// bytes a second, measured over each timeout of waiting (default
	// 1KiB; 0 for none).
	MinRate string `yaml:"minRate"`
	// Lang is the language of messages, help and the console: en_US or
	// zh_CN (image-transmit's values); default: the environment's.
	Lang string `yaml:"lang"`

	// file and mode are where LoadConfig read it from ("" for
	// ParseConfig), for the permission warning.
	file string
	mode os.FileMode
}

// RegistryConfig is one registries entry.
type RegistryConfig struct {
	// Name is a short name usable as --src / --target (default: registry).
	Name string `yaml:"name"`
	// Registry is host[:port].
	Registry string `yaml:"registry"`
	// Namespace is prepended to repositories when this entry is a target.
	Namespace string `yaml:"namespace"`
	// TLS: enabled, insecure (no certificate check) or disabled (plain
	// HTTP). Default: enabled, disabled for loopback hosts.
	TLS string `yaml:"tls"`
	// CAFile is a PEM file of the CA that signed the registry certificate.
	CAFile string `yaml:"caFile"`
	// User and Pass; ${VAR} (or $VAR) is expanded from the environment,
	// $$ is a literal $.
	User string `yaml:"user"`
	Pass string `yaml:"pass"`
	// TrustedRealms are token service hosts on other domains that may
	// receive these credentials (default: only the registry's own domain).
	TrustedRealms []string `yaml:"trustedRealms"`
	// ReplaceNamespace: as a target, Namespace replaces the first path
	// component of each repository (image-transmit's repository) instead
	// of going in front of it.
	ReplaceNamespace bool `yaml:"replaceNamespace"`
}

// OutputConfig says where save writes.
type OutputConfig struct {
	Dir    string `yaml:"dir"`
	Prefix string `yaml:"prefix"`
	// Mkdir creates Dir when it does not exist (default: refuse).
	Mkdir bool `yaml:"mkdir"`
}

// CacheConfig configures the blob cache.
type CacheConfig struct {
	Dir      string `yaml:"dir"`
	KeepDays int    `yaml:"keepDays"`
	KeepSize string `yaml:"keepSize"`
}

var errConfig = errors.New("config")

// LoadConfig reads cfg.yaml strictly: unknown fields are errors naming the
// field and its line.
func LoadConfig(file string) (*Config, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errConfig, err)
	}
	cfg, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if st, err := os.Stat(file); err == nil {
		cfg.file, cfg.mode = file, st.Mode().Perm()
	}
	return cfg, nil
}

// ParseConfig decodes and validates cfg.yaml content.
func ParseConfig(b []byte) (*Config, error) {
	if isImageTransmitConfig(b) {
		return parseImageTransmitConfig(b)
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %v", errConfig, explainYAML(err))
	}
	if err := c.cutSchemes(); err != nil {
		return nil, err
	}
	return &c, c.Validate()
}

// Validate checks values that flags would also check.
func (c *Config) Validate() error {
	names := map[string]bool{}
	for i, r := range c.Registries {
		if r.Registry == "" {
			return tr().Errorf("%w: registries[%d]: registry is required", errConfig, i)
		}
		n := r.key()
		if names[n] {
			return tr().Errorf("%w: registries[%d]: name %q used twice", errConfig, i, n)
		}
		names[n] = true
		if r.Name != "" && r.Name != r.Registry {
			for j, o := range c.Registries {
				if j != i && o.Registry == r.Name {
					return tr().Errorf("%w: registries[%d]: name %q is the registry of registries[%d]: a lookup by that host would be ambiguous", errConfig, i, r.Name, j)
				}
			}
		}
		switch r.TLS {
		case registry.TLSAuto, registry.TLSEnabled, registry.TLSInsecure, registry.TLSDisabled:
		default:
			return tr().Errorf("%w: registries[%d]: tls %q (want enabled, insecure or disabled)", errConfig, i, r.TLS)
		}
	}
	if c.Jobs < 0 {
		return tr().Errorf("%w: jobs %d", errConfig, c.Jobs)
	}
	if c.Retries != nil && *c.Retries < 0 {
		return tr().Errorf("%w: retries %d", errConfig, *c.Retries)
	}
	if _, err := parseSize(c.SplitSize); err != nil {
		return tr().Errorf("%w: splitSize: %v", errConfig, err)
	}
	if _, err := parseKeepSize(c.Cache.KeepSize); err != nil {
		return tr().Errorf("%w: cache.keepSize: %v", errConfig, err)
	}
	if c.Cache.KeepDays < 0 {
		return tr().Errorf("%w: cache.keepDays %d", errConfig, c.Cache.KeepDays)
	}
	if c.Timeout != "" {
		if d, err := time.ParseDuration(c.Timeout); err != nil || d < 0 {
			return tr().Errorf("%w: timeout %q: want a duration such as 60s or 2m", errConfig, c.Timeout)
		}
	}
	if err := c.validateNotify(); err != nil {
		return err

	}
	if c.HeaderTimeout != "" {
		if d, err := time.ParseDuration(c.HeaderTimeout); err != nil || d < 0 {
			return tr().Errorf("%w: headerTimeout %q: want a duration such as 60s or 2m", errConfig, c.HeaderTimeout)
		}
	}
	if _, err := parseSize(c.MinRate); err != nil {
		return tr().Errorf("%w: minRate: %v", errConfig, err)
	}
	if c.Lang != "" && !i18n.Valid(c.Lang) {
		return tr().Errorf("%w: lang %q: want en_US or zh_CN", errConfig, c.Lang)
	}
	if c.RequireSignature && c.VerifyKey == "" {
		return tr().Errorf("%w: requireSignature needs verifyKey (the public keys that may sign bundles)", errConfig)
	}
	return nil
}

func (r RegistryConfig) key() string {
	if r.Name != "" {
		return r.Name
	}
	return r.Registry
}

// Lookup finds a registries entry by its name, or else by its registry
// host (host[:port]). An empty name matches nothing: an entry without a
// name is found by its registry, never by "" (the value of an unset
// --src, source or target).
func (c *Config) Lookup(name string) (RegistryConfig, bool) {
	if name == "" {
		return RegistryConfig{}, false
	}
	for _, r := range c.Registries {
		if r.key() == name {
			return r, true
		}
	}
	for _, r := range c.Registries {
		if r.Registry == name {
			return r, true
		}
	}
	return RegistryConfig{}, false
}

// Hosts turns the registries entries into registry hosts, expanding
// ${VAR} in credentials (expandCredential).
func (c *Config) Hosts() []registry.Host {
	var out []registry.Host
	for _, r := range c.Registries {
		user, _ := expandCredential(r.User, os.LookupEnv)
		pass, _ := expandCredential(r.Pass, os.LookupEnv)
		out = append(out, registry.Host{
			Registry: r.Registry, TLS: r.TLS, CAFile: r.CAFile,
			User: user, Pass: pass, TrustedRealms: r.TrustedRealms,
		})
	}
	return out
}

// expandCredential expands ${VAR} and $VAR in s through lookup; $$ is a
// literal $. It also returns the variables that lookup did not find (they
// expand to nothing).
func expandCredential(s string, lookup func(string) (string, bool)) (string, []string) {
	var unset []string
	out := os.Expand(s, func(name string) string {
		if name == "$" {
			return "$"
		}
		v, ok := lookup(name)
		if !ok {
			unset = append(unset, name)
		}
		return v
	})
	return out, unset
}

// credentialIssues says, one line each, what will go wrong with the
// credentials of cfg.yaml: the variables that are not set (a bare 401
// later), and (readable) a file that others can read holding a password
// written in it, as ssh warns of a readable key.
func (c *Config) credentialIssues() (unset []string, readable string) {
	literal := false
	for i, r := range c.Registries {
		for _, f := range []struct{ name, value string }{{"user", r.User}, {"pass", r.Pass}} {
			_, vars := expandCredential(f.value, os.LookupEnv)
			for _, v := range vars {
				unset = append(unset, fmt.Sprintf("registries[%d] (%s): %s uses $%s, which is not set (write $$ for a literal $)", i, r.Registry, f.name, v))
			}
		}
		written, _ := expandCredential(r.Pass, func(string) (string, bool) { return "", true })
		literal = literal || written != ""
	}
	if literal && c.file != "" && c.mode&0o044 != 0 && runtime.GOOS != "windows" {
		readable = fmt.Sprintf("%s holds a password and others can read it (mode %04o): chmod 600 %s, or take the password from the environment (pass: ${VAR})", c.file, c.mode, c.file)
	}
	return unset, readable
}

// parseSize parses sizes like 512MiB, 2GiB, 1.5GB, 1048576.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	typed := s
	units := []struct {
		suffix string
		mult   float64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"B", 1},
	}
	mult := 1.0
	for _, u := range units {
		if strings.HasSuffix(strings.ToUpper(s), strings.ToUpper(u.suffix)) && (len(u.suffix) > 1 || !strings.HasSuffix(strings.ToUpper(s), "IB")) {
			s, mult = strings.TrimSpace(s[:len(s)-len(u.suffix)]), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 {
		return 0, tr().Errorf("size %q: want a number with an optional unit B, KB, MB, GB, TB, KiB, MiB, GiB or TiB (e.g. 2GiB, 500MB)", typed)
	}
	return int64(f * mult), nil
}

// formatSize renders bytes for humans.
func formatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// goTypes names the Go types of yaml.v3's messages in cfg.yaml's terms.
var goTypes = map[string]string{
	"[]main.RegistryConfig": "a list of registries entries", "main.RegistryConfig": "a registries entry",
	"main.OutputConfig": "the output section", "main.CacheConfig": "the cache section", "main.Config": "a cfg.yaml document",
	"[]string": "a list of strings", "*int": "a number", "int": "a number", "*bool": "true or false", "bool": "true or false", "string": "a string",
}

var (
	intoType  = regexp.MustCompile(`into (\S+)`)
	wrongKind = regexp.MustCompile("^(line \\d+: )cannot unmarshal !!(\\w+)( `[^`]*`)? into (.+)$")
)

// unknownField matches yaml.v3's complaint about a field the struct lacks.
var unknownField = regexp.MustCompile(`line (\d+): field (\S+) not found in type (\S+)`)

// explainYAML rewrites yaml.v3's errors for people: an unknown field names
// its section and the nearest known field, not a Go type.
func explainYAML(err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err.Error()
	}
	sections := map[string]reflect.Type{
		"main.Config": reflect.TypeFor[Config](), "main.RegistryConfig": reflect.TypeFor[RegistryConfig](),
		"main.OutputConfig": reflect.TypeFor[OutputConfig](), "main.CacheConfig": reflect.TypeFor[CacheConfig](),
	}
	where := map[string]string{"main.Config": "", "main.RegistryConfig": " in a registries entry", "main.OutputConfig": " in output", "main.CacheConfig": " in cache"}
	var lines []string
	for _, msg := range te.Errors {
		m := unknownField.FindStringSubmatch(msg)
		if m == nil {
			msg = intoType.ReplaceAllStringFunc(msg, func(m string) string {
				if name, ok := goTypes[strings.TrimPrefix(m, "into ")]; ok {
					return "into " + name
				}
				return m
			})
			if w := wrongKind.FindStringSubmatch(msg); w != nil {
				kind := map[string]string{"seq": "a list", "map": "a mapping", "str": "text", "int": "a number", "bool": "true/false", "float": "a number"}[w[2]]
				if kind == "" {
					kind = w[2]
				}
				msg = fmt.Sprintf("%s%s%s where cfg.yaml wants %s", w[1], kind, w[3], w[4])
			}
			lines = append(lines, msg)
			continue
		}
		var known []string
		if t, ok := sections[m[3]]; ok {
			for i := range t.NumField() {
				if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); tag != "" {
					known = append(known, tag)
				}
			}
		}
		lines = append(lines, fmt.Sprintf("line %s: unknown field %q%s%s", m[1], m[2], where[m[3]], didYouMean(m[2], known)))
	}
	return strings.Join(lines, "; ")
}
