// Package imagesyncer reads image-syncer's configuration files (the
// --images and --auth files, YAML or JSON) so that its users can run
// `ferry sync` with the files they have.
//
// images file: a map from a source to one destination or a list of them:
//
//	quay.io/coreos/kube-rbac-proxy: quay.io/mirror/kube-rbac-proxy   # every tag
//	quay.io/coreos/kube-rbac-proxy:v1.0,v2.0: quay.io/mirror/proxy
//	quay.io/coreos/etcd:/^v3\./: [reg-a.local/etcd, reg-b.local/etcd]
//	quay.io/coreos/etcd@sha256:...: ""                              # default destination
//
// A source without a tag means every tag (image-syncer's rule, unlike a
// ferry list where it means latest). An empty destination is the default
// registry/namespace plus the source repository path.
//
// auth file: registry or registry/namespace -> username, password,
// insecure (plain HTTP); ${VAR} and $VAR are expanded from the environment.
package imagesyncer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// ErrConfig marks a malformed file.
var ErrConfig = errors.New("image-syncer config")

// Rule is one entry of the images file.
type Rule struct {
	Source       string
	Destinations []string // "" means the default destination
	Line         int
}

// Auth is one entry of the auth file.
type Auth struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	Insecure bool   `yaml:"insecure"`
}

// ParseImages reads an images file (YAML or JSON), keeping file order.
func ParseImages(b []byte) ([]Rule, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%w: line %d: want a map of source: destination", ErrConfig, m.Line)
	}
	var out []Rule
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind != yaml.ScalarNode || strings.TrimSpace(k.Value) == "" {
			return nil, fmt.Errorf("%w: line %d: source must be a string", ErrConfig, k.Line)
		}
		r := Rule{Source: strings.TrimSpace(k.Value), Line: k.Line}
		switch v.Kind {
		case yaml.ScalarNode:
			r.Destinations = []string{strings.TrimSpace(v.Value)}
		case yaml.SequenceNode:
			for _, d := range v.Content {
				if d.Kind != yaml.ScalarNode {
					return nil, fmt.Errorf("%w: line %d: destination must be a string", ErrConfig, d.Line)
				}
				r.Destinations = append(r.Destinations, strings.TrimSpace(d.Value))
			}
			if len(r.Destinations) == 0 {
				return nil, fmt.Errorf("%w: line %d: %s has an empty destination list", ErrConfig, v.Line, r.Source)
			}
		default:
			return nil, fmt.Errorf("%w: line %d: destination of %s must be a string or a list", ErrConfig, v.Line, r.Source)
		}
		out = append(out, r)
	}
	return out, nil
}

// ParseAuth reads an auth file (YAML or JSON); unknown fields are errors.
func ParseAuth(b []byte) (map[string]Auth, error) {
	out := map[string]Auth{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&out); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	for k, a := range out {
		if k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("%w: registry %q", ErrConfig, k)
		}
		a.Username, a.Password = os.ExpandEnv(a.Username), os.ExpandEnv(a.Password)
		out[k] = a
	}
	return out, nil
}

// Host is what ferry needs per registry host.
type Host struct {
	Registry string
	Auth
}

// Hosts folds registry/namespace entries into their registry host (ferry
// keeps one credential per host): two different credentials for one host
// are an error.
func Hosts(auth map[string]Auth) ([]Host, error) {
	keys := make([]string, 0, len(auth))
	for k := range auth {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	byHost := map[string]Host{}
	var order []string
	for _, k := range keys {
		host, _, _ := strings.Cut(k, "/")
		a := auth[k]
		if prev, ok := byHost[host]; ok {
			if prev.Auth != a {
				return nil, fmt.Errorf("%w: %s and another entry of %s carry different credentials; ferry uses one per registry host", ErrConfig, k, host)
			}
			continue
		}
		byHost[host] = Host{Registry: host, Auth: a}
		order = append(order, host)
	}
	out := make([]Host, 0, len(order))
	for _, h := range order {
		out = append(out, byHost[h])
	}
	return out, nil
}

// Route is one source to one destination, in ferry's terms.
type Route struct {
	// Line is a ferry list line, "SRC -> REPOSITORY[:TAG]".
	Line string
	// Host is the destination registry host.
	Host string
}

// RouteOf turns a rule's source and one destination into a Route: a
// source without tag or digest selects every tag, and defaultDest
// (REGISTRY[/NAMESPACE]) stands in for an empty destination.
func RouteOf(source, dest, defaultDest string) (Route, error) {
	src := source
	if !hasTag(src) {
		src += ":*"
	}
	if dest == "" {
		if defaultDest == "" {
			return Route{}, fmt.Errorf("%w: %s has no destination and there is no default (--target)", ErrConfig, source)
		}
		path := stripTag(source)
		if h, p, ok := strings.Cut(path, "/"); ok && isHost(h) {
			path = p
		}
		dest = strings.TrimSuffix(defaultDest, "/") + "/" + path
	}
	host, path, ok := strings.Cut(dest, "/")
	if !ok || !isHost(host) {
		host, path = "docker.io", dest
	}
	if path == "" {
		return Route{}, fmt.Errorf("%w: destination %q has no repository", ErrConfig, dest)
	}
	return Route{Line: src + " -> " + path, Host: host}, nil
}

// isHost reports whether the first path segment of a reference is a
// registry host (as docker does: a dot, a port, or localhost).
func isHost(s string) bool {
	return strings.ContainsAny(s, ".:") || s == "localhost"
}

// hasTag reports whether a reference names a tag, tags or a digest after
// its repository path (a colon after the first slash, or an @).
func hasTag(s string) bool {
	if strings.Contains(s, "@") {
		return true
	}
	_, path, ok := strings.Cut(s, "/")
	if !ok {
		path = s
	}
	return strings.Contains(path, ":")
}

func stripTag(s string) string {
	if i := strings.Index(s, "@"); i >= 0 {
		s = s[:i]
	}
	host, path, ok := strings.Cut(s, "/")
	if !ok {
		host, path = "", s
	}
	if i := strings.Index(path, ":"); i >= 0 {
		path = path[:i]
	}
	if host == "" {
		return path
	}
	return host + "/" + path
}
