package mirrors

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"strings"

	"gopkg.in/yaml.v3"
)

// File is one configuration file: its path in its layout (for containerd,
// relative to the certs.d directory) and its content.
type File struct {
	Path string
	Data []byte
}

// Containerd writes one hosts.toml per source registry, in containerd's
// certs.d layout (HOST/hosts.toml, read when the CRI plugin's registry
// config_path is that directory). containerd mirrors whole registries:
// a repository the upload renamed cannot be reached under its source name,
// so each is returned as a warning, and a registry with none left gets no
// file.
func Containerd(regs []Registry, o Options) (files []File, warnings []string) {
	for _, r := range regs {
		for _, mp := range r.Renamed {
			warnings = append(warnings, fmt.Sprintf("containerd cannot rename a repository: %s (mirrored as %s) is not covered", mp.Source, mp.Mirror))
		}
		if r.Mirror == "" {
			continue
		}
		var b bytes.Buffer
		fmt.Fprintf(&b, "# ferry mirror-config: pull %s images from %s\n", r.Host, r.Mirror)
		for _, mp := range r.Renamed {
			fmt.Fprintf(&b, "# not covered (renamed at upload): %s -> %s\n", mp.Source, mp.Mirror)
		}
		fmt.Fprintf(&b, "server = %s\n\n", tomlString("https://"+upstream(r.Host)))
		host, ns, _ := strings.Cut(r.Mirror, "/")
		u := o.scheme() + "://" + host
		if ns != "" {
			u += "/v2/" + ns // the path containerd puts /<repository>/manifests/... after
		}
		fmt.Fprintf(&b, "[host.%s]\n  capabilities = [\"pull\", \"resolve\"]\n", tomlString(u))
		if ns != "" {
			b.WriteString("  override_path = true\n")
		}
		if o.Insecure {
			b.WriteString("  skip_verify = true\n")
		}
		if o.CAFile != "" {
			fmt.Fprintf(&b, "  ca = %s\n", tomlString(o.CAFile))
		}
		files = append(files, File{Path: path.Join(r.Host, "hosts.toml"), Data: b.Bytes()})
	}
	return files, warnings
}

// upstream is the registry's own API host: Docker Hub's is not docker.io.
func upstream(host string) string {
	if host == "docker.io" {
		return "registry-1.docker.io"
	}
	return host
}

// RegistriesConf writes containers-registries.conf(5) [[registry]] entries
// (a drop-in for /etc/containers/registries.conf.d/): one per source
// registry, whose mirror is the mirror's host and namespace, and one per
// renamed repository (the longer prefix wins).
func RegistriesConf(regs []Registry, o Options) []byte {
	var b bytes.Buffer
	b.WriteString("# ferry mirror-config: pull these registries' images from the mirror\n")
	b.WriteString("# (CRI-O, podman, skopeo, buildah: /etc/containers/registries.conf.d/50-ferry-mirror.conf)\n")
	entry := func(prefix, mirror string) {
		fmt.Fprintf(&b, "\n[[registry]]\nprefix = %s\nlocation = %s\n\n[[registry.mirror]]\nlocation = %s\n", tomlString(prefix), tomlString(prefix), tomlString(mirror))
		if o.PlainHTTP || o.Insecure {
			b.WriteString("insecure = true\n")
		}
	}
	for _, r := range regs {
		if r.Mirror != "" {
			entry(r.Host, r.Mirror)
		}
		for _, mp := range r.Renamed {
			entry(mp.Source, mp.Mirror)
		}
	}
	return b.Bytes()
}

// tomlString quotes s as a TOML basic string (JSON's escapes are TOML's).
func tomlString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// OpenShift's config.openshift.io/v1 mirror sets.
type (
	mirrorSet struct {
		APIVersion string                   `yaml:"apiVersion"`
		Kind       string                   `yaml:"kind"`
		Metadata   struct{ Name string }    `yaml:"metadata"`
		Spec       map[string][]mirrorEntry `yaml:"spec"`
	}
	mirrorEntry struct {
		Source  string   `yaml:"source"`
		Mirrors []string `yaml:"mirrors"`
	}
)

// MirrorSets writes an ImageDigestMirrorSet (pulls by digest) and an
// ImageTagMirrorSet (pulls by tag) with one entry per source registry and
// one per renamed repository (the more specific source wins). TLS is not
// theirs to say: a plain-HTTP or unverified mirror goes in the cluster's
// image.config.openshift.io insecureRegistries, as the comment says.
func MirrorSets(regs []Registry, o Options) ([]byte, error) {
	var entries []mirrorEntry
	for _, r := range regs {
		if r.Mirror != "" {
			entries = append(entries, mirrorEntry{Source: r.Host, Mirrors: []string{r.Mirror}})
		}
		for _, mp := range r.Renamed {
			entries = append(entries, mirrorEntry{Source: mp.Source, Mirrors: []string{mp.Mirror}})
		}
	}
	var b bytes.Buffer
	b.WriteString("# ferry mirror-config: OpenShift mirror sets (oc apply -f)\n")
	if o.PlainHTTP || o.Insecure {
		b.WriteString("# the mirror needs spec.registrySources.insecureRegistries in image.config.openshift.io/cluster\n")
	}
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	for _, kind := range []struct{ kind, field string }{{"ImageDigestMirrorSet", "imageDigestMirrors"}, {"ImageTagMirrorSet", "imageTagMirrors"}} {
		s := mirrorSet{APIVersion: "config.openshift.io/v1", Kind: kind.kind, Spec: map[string][]mirrorEntry{kind.field: entries}}
		s.Metadata.Name = o.name()
		if err := enc.Encode(s); err != nil {
			return nil, err
		}
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
