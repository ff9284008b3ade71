package mirrors_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/containerd/containerd/remotes/docker"
	hostsconfig "github.com/containerd/containerd/remotes/docker/config"
	"github.com/containers/image/v5/docker/reference"
	"github.com/containers/image/v5/pkg/sysregistriesv2"
	"github.com/containers/image/v5/types"
	"github.com/regclient/regclient/types/ref"
	"gopkg.in/yaml.v3"

	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/registry/mirrors"
	"github.com/ferry-oss/ferry/registry/regtest"
	"github.com/ferry-oss/ferry/transfer"
)

// testMeta is a bundle of images from three registries; team/app was
// renamed at save ("quay.io/team/app -> apps/app").
func testMeta() *meta.Meta {
	return &meta.Meta{Images: []meta.Image{
		{Source: "docker.io/library/nginx:1.27", Repository: "library/nginx", Tag: "1.27"},
		{Source: "docker.io/library/nginx:1.28", Repository: "library/nginx", Tag: "1.28"},
		{Source: "quay.io/coreos/etcd:v3.5", Repository: "coreos/etcd", Tag: "v3.5"},
		{Source: "quay.io/team/app:1", Repository: "apps/app", Tag: "1"},
		{Source: "registry.k8s.io:443/pause:3.10", Repository: "pause", Tag: "3.10"},
	}}
}

// groups maps testMeta as an upload to mirror/namespace would.
func groups(t *testing.T, mirror, ns string) []mirrors.Registry {
	t.Helper()
	host, _ := ref.NewHost(mirror)
	maps, err := mirrors.FromMeta([]*meta.Meta{testMeta()}, func(_ *meta.Meta, repo string) (ref.Ref, error) {
		return transfer.RegistryTarget(host, ns, nil)(repo)
	})
	if err != nil {
		t.Fatal(err)
	}
	return mirrors.Group(maps, strings.TrimSuffix(mirror+"/"+ns, "/"))
}

func TestGroup(t *testing.T) {
	regs := groups(t, "mirror.local:5000", "site")
	want := []mirrors.Registry{
		{Host: "docker.io", Mirror: "mirror.local:5000/site", Repos: 1},
		{Host: "quay.io", Mirror: "mirror.local:5000/site", Repos: 2, Renamed: []mirrors.Mapping{{Source: "quay.io/team/app", Mirror: "mirror.local:5000/site/apps/app"}}},
		{Host: "registry.k8s.io:443", Mirror: "mirror.local:5000/site", Repos: 1},
	}
	if fmt.Sprint(regs) != fmt.Sprint(want) {
		t.Fatalf("Group:\n%v\nwant\n%v", regs, want)
	}
	if _, err := mirrors.FromMeta([]*meta.Meta{{}}, nil); err == nil {
		t.Error("no images: no error")
	}
}

// TestContainerdHosts loads the hosts.toml files with containerd's own
// hosts loader (what the CRI plugin and ctr --hosts-dir use) and checks
// where each source registry resolves, and with which TLS settings.
func TestContainerdHosts(t *testing.T) {
	for _, tc := range []struct {
		name, mirror, ns string
		opts             mirrors.Options
		ca               bool
		scheme, path     string
	}{
		{"namespace, CA", "mirror.local:5000", "site/k8s", mirrors.Options{}, true, "https", "/v2/site/k8s"},
		{"root, plain http", "10.0.0.7:5000", "", mirrors.Options{PlainHTTP: true}, false, "http", "/v2"},
		{"insecure", "mirror.local", "m", mirrors.Options{Insecure: true}, false, "https", "/v2/m"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.ca {
				cert, _, err := regtest.SelfSigned(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				tc.opts.CAFile = cert
			}
			files, warnings := mirrors.Containerd(groups(t, tc.mirror, tc.ns), tc.opts)
			if len(warnings) != 1 || !strings.Contains(warnings[0], "quay.io/team/app") {
				t.Errorf("warnings %q: want the renamed quay.io/team/app", warnings)
			}
			for _, f := range files {
				p := filepath.Join(dir, f.Path)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, f.Data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			resolve := hostsconfig.ConfigureHosts(context.Background(), hostsconfig.HostOptions{HostDir: hostsconfig.HostDirFromRoot(dir)})
			for src, upstream := range map[string]string{"docker.io": "registry-1.docker.io", "quay.io": "quay.io", "registry.k8s.io:443": "registry.k8s.io:443"} {
				hosts, err := resolve(src)
				if err != nil {
					t.Fatalf("%s: %v", src, err)
				}
				if len(hosts) != 2 {
					t.Fatalf("%s: %d hosts: %+v", src, len(hosts), hosts)
				}
				m, u := hosts[0], hosts[1]
				if m.Host != tc.mirror || m.Scheme != tc.scheme || m.Path != tc.path || m.Capabilities != docker.HostCapabilityPull|docker.HostCapabilityResolve {
					t.Errorf("%s: mirror %s://%s%s (%v), want %s://%s%s pull+resolve", src, m.Scheme, m.Host, m.Path, m.Capabilities, tc.scheme, tc.mirror, tc.path)
				}
				var tlsc *tls.Config
				if tr, ok := m.Client.Transport.(*http.Transport); ok {
					tlsc = tr.TLSClientConfig
				}
				if insecure := tlsc != nil && tlsc.InsecureSkipVerify; insecure != tc.opts.Insecure {
					t.Errorf("%s: skip_verify %v, want %v", src, insecure, tc.opts.Insecure)
				}
				if hasCA := tlsc != nil && tlsc.RootCAs != nil; hasCA != tc.ca {
					t.Errorf("%s: CA %v, want %v", src, hasCA, tc.ca)
				}
				if u.Host != upstream || u.Scheme != "https" || u.Path != "/v2" {
					t.Errorf("%s: upstream %s://%s%s, want https://%s/v2", src, u.Scheme, u.Host, u.Path, upstream)
				}
			}
		})
	}
}

// pullSource resolves ref with the registries configuration in conf, with
// containers/image's own parser, and returns the first place it pulls from.
func pullSource(t *testing.T, conf []byte, name string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "registries.conf"), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	sys := &types.SystemContext{SystemRegistriesConfPath: filepath.Join(dir, "registries.conf"), SystemRegistriesConfDirPath: filepath.Join(dir, "none")}
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		t.Fatal(err)
	}
	sysregistriesv2.InvalidateCache()
	reg, err := sysregistriesv2.FindRegistry(sys, named.String())
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, conf)
	}
	if reg == nil {
		return "(no entry)"
	}
	srcs, err := reg.PullSourcesFromReference(named)
	if err != nil || len(srcs) == 0 {
		t.Fatalf("%s: %v %v", name, srcs, err)
	}
	return srcs[0].Reference.String()
}

const dg = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// TestRegistriesConf parses the entries with containers/image's
// registries.conf parser (CRI-O's, podman's) and resolves source names.
func TestRegistriesConf(t *testing.T) {
	conf := mirrors.RegistriesConf(groups(t, "mirror.local:5000", "site"), mirrors.Options{Insecure: true})
	for name, want := range map[string]string{
		"nginx:1.27":                     "mirror.local:5000/site/library/nginx:1.27",
		"docker.io/library/nginx@" + dg:  "mirror.local:5000/site/library/nginx@" + dg,
		"quay.io/coreos/etcd:v3.5":       "mirror.local:5000/site/coreos/etcd:v3.5",
		"quay.io/team/app:1":             "mirror.local:5000/site/apps/app:1", // renamed: its own entry
		"registry.k8s.io:443/pause:3.10": "mirror.local:5000/site/pause:3.10",
		"ghcr.io/other/image:1":          "(no entry)",
	} {
		if got := pullSource(t, conf, name); got != want {
			t.Errorf("%s pulls from %s, want %s", name, got, want)
		}
	}
	if !strings.Contains(string(conf), "insecure = true") {
		t.Errorf("--insecure: no insecure mirror\n%s", conf)
	}
}

// The patterns OpenShift's CRDs check source and mirrors against
// (openshift/api config/v1 ImageDigestMirrors, ImageMirror).
var (
	idmsSource = regexp.MustCompile(`^\*(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))+$|^((?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))+)?(?::[0-9]+)?)(?:(?:/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?)+)?$`)
	idmsMirror = regexp.MustCompile(`^((?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))+)?(?::[0-9]+)?)(?:(?:/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?)+)?$`)
)

// TestMirrorSets checks the OpenShift resources against the CRDs'
// schema, then turns them into registries.conf as the machine-config
// operator does (one entry per source, its IDMS mirrors digest-only, its
// ITMS mirrors tag-only) and
// resolves source names with containers/image.
func TestMirrorSets(t *testing.T) {
	out, err := mirrors.MirrorSets(groups(t, "mirror.local:5000", "site"), mirrors.Options{PlainHTTP: true, Name: "site-mirror"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "insecureRegistries") {
		t.Errorf("plain HTTP: no word of insecureRegistries\n%s", out)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(out)))
	pulls := map[string]string{"ImageDigestMirrorSet": "digest-only", "ImageTagMirrorSet": "tag-only"}
	var sources []string
	bySource := map[string][]string{} // source -> its [[registry.mirror]] tables
	for _, kind := range []string{"ImageDigestMirrorSet", "ImageTagMirrorSet"} {
		var doc struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string
			Metadata   struct{ Name string }
			Spec       map[string][]struct {
				Source  string
				Mirrors []string
			}
		}
		if err := dec.Decode(&doc); err != nil {
			t.Fatalf("%s: %v\n%s", kind, err, out)
		}
		field := map[string]string{"ImageDigestMirrorSet": "imageDigestMirrors", "ImageTagMirrorSet": "imageTagMirrors"}[kind]
		if doc.APIVersion != "config.openshift.io/v1" || doc.Kind != kind || doc.Metadata.Name != "site-mirror" || len(doc.Spec) != 1 || len(doc.Spec[field]) != 4 {
			t.Fatalf("%s: %+v", kind, doc)
		}
		for _, e := range doc.Spec[field] {
			if !idmsSource.MatchString(e.Source) {
				t.Errorf("%s: source %q fails the CRD's pattern", kind, e.Source)
			}
			for _, m := range e.Mirrors {
				if !idmsMirror.MatchString(m) {
					t.Errorf("%s: mirror %q fails the CRD's pattern", kind, m)
				}
				if bySource[e.Source] == nil {
					sources = append(sources, e.Source)
				}
				bySource[e.Source] = append(bySource[e.Source], fmt.Sprintf("[[registry.mirror]]\nlocation = %q\npull-from-mirror = %q\n", m, pulls[kind]))
			}
		}
	}
	var conf strings.Builder
	for _, src := range sources {
		fmt.Fprintf(&conf, "[[registry]]\nlocation = %q\n%s\n", src, strings.Join(bySource[src], ""))
	}
	for name, want := range map[string]string{
		"quay.io/coreos/etcd@" + dg: "mirror.local:5000/site/coreos/etcd@" + dg,
		"quay.io/coreos/etcd:v3.5":  "mirror.local:5000/site/coreos/etcd:v3.5",
		"quay.io/team/app:1":        "mirror.local:5000/site/apps/app:1",
		"nginx@" + dg:               "mirror.local:5000/site/library/nginx@" + dg,
	} {
		if got := pullSource(t, []byte(conf.String()), name); got != want {
			t.Errorf("%s pulls from %s, want %s", name, got, want)
		}
	}
}

var update = flag.Bool("update", false, "rewrite golden files")

// TestGolden pins the three formats, as users will read and install them.
func TestGolden(t *testing.T) {
	regs := groups(t, "mirror.local:5000", "site")
	files, _ := mirrors.Containerd(regs, mirrors.Options{CAFile: "/etc/containerd/certs.d/mirror.local:5000/ca.crt"})
	var hosts bytes.Buffer
	for _, f := range files {
		fmt.Fprintf(&hosts, "# %s\n%s\n", f.Path, f.Data)
	}
	sets, err := mirrors.MirrorSets(regs, mirrors.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string][]byte{
		"hosts.toml.golden":      hosts.Bytes(),
		"registries.conf.golden": mirrors.RegistriesConf(regs, mirrors.Options{PlainHTTP: true}),
		"idms.yaml.golden":       sets,
	} {
		golden := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(golden, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs (go test -update rewrites it):\n%s", name, got)
		}
	}
}
