package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
)

// TestConfigLookup: entries are found by name, else by registry; an empty
// name (an unset --src, source or target) finds nothing, even when an entry
// has no name.
func TestConfigLookup(t *testing.T) {
	cfg := &Config{Registries: []RegistryConfig{
		{Registry: "127.0.0.1:5503", User: "u"},
		{Name: "mirror", Registry: "reg.local:5000", Namespace: "m"},
		{Name: "other", Registry: "reg.local:5000", Namespace: "o"},
	}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		found     bool
		registry  string
		namespace string
	}{
		{"", false, "", ""},
		{"127.0.0.1:5503", true, "127.0.0.1:5503", ""},
		{"mirror", true, "reg.local:5000", "m"},
		{"other", true, "reg.local:5000", "o"},
		{"reg.local:5000", true, "reg.local:5000", "m"}, // by host: the first entry for it
		{"127.0.0.1:5501", false, "", ""},
		{"nope", false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := cfg.Lookup(tt.name)
			if ok != tt.found || r.Registry != tt.registry || r.Namespace != tt.namespace {
				t.Errorf("Lookup(%q) = %+v, %v; want %s/%s, %v", tt.name, r, ok, tt.registry, tt.namespace, tt.found)
			}
		})
	}
}

// TestConfigAmbiguousNames: a name that is another entry's registry, or a
// name used twice, is refused.
func TestConfigAmbiguousNames(t *testing.T) {
	tests := []struct {
		name, yaml, msg string
	}{
		{"name is another registry", "registries:\n  - {name: 'b:5000', registry: 'a:5000'}\n  - {registry: 'b:5000'}\n", "ambiguous"},
		{"name is a named entry's registry", "registries:\n  - {name: 'b:5000', registry: 'a:5000'}\n  - {name: y, registry: 'b:5000'}\n", "ambiguous"},
		{"unnamed twice", "registries:\n  - {registry: 'a:5000'}\n  - {registry: 'a:5000'}\n", "used twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err %v, want mention of %q", err, tt.msg)
			}
		})
	}
	if _, err := ParseConfig([]byte("registries:\n  - {name: 'a:5000', registry: 'a:5000'}\n")); err != nil {
		t.Errorf("a name equal to its own registry: %v", err)
	}
}

// TestGatherImagesSource: list entries get the source registry in front
// unless they name a registry; an unnamed cfg entry is never a source.
func TestGatherImagesSource(t *testing.T) {
	cfg := &Config{Registries: []RegistryConfig{{Registry: "127.0.0.1:5503"}}}
	tests := []struct {
		name, src string
		args      []string
		want      []string
	}{
		{"no source, full refs", "", []string{"127.0.0.1:5501/corpus/small:v1"}, []string{"127.0.0.1:5501/corpus/small:v1"}},
		{"source by host, paths", "127.0.0.1:5503", []string{"corpus/small:v1"}, []string{"127.0.0.1:5503/corpus/small:v1"}},
		{"source, full ref kept", "127.0.0.1:5503", []string{"127.0.0.1:5501/corpus/small:v1", "corpus/a:1"}, []string{"127.0.0.1:5501/corpus/small:v1", "127.0.0.1:5503/corpus/a:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.src
			if r, ok := cfg.Lookup(src); ok {
				src = r.Registry
			}
			specs, err := gatherImages(tt.args, "", "", nil, src, nil)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range specs {
				got = append(got, s.String())
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestUnnamedCredentialsEntry: a cfg.yaml whose only entry is an unnamed
// credentials entry for an auth registry saves and uploads (issue #12).
func TestUnnamedCredentialsEntry(t *testing.T) {
	if testing.Short() {
		t.Skip("needs docker-registry")
	}
	auth := regtest.DistributionOptions{User: "ferry", Pass: "unnamed-Secret-12"}
	src := regtest.StartDistribution(t, auth)
	pushFixtures(t, src.Host, auth, "team/app:1")
	dir := t.TempDir()
	t.Setenv("UNNAMED_PASS", auth.Pass)
	cfg := filepath.Join(dir, "cfg.yaml")
	_ = os.WriteFile(cfg, []byte("registries:\n  - registry: "+src.Host+"\n    user: ferry\n    pass: ${UNNAMED_PASS}\ndockerConfig: false\n"), 0o644)
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := ferry(t, "", "--config", cfg, "--no-progress", "save", "-o", out, src.Host+"/team/app:1")
	if code != 0 {
		t.Fatalf("save: exit %d\n%s\n%s", code, stdout, stderr)
	}
	metas, _ := filepath.Glob(filepath.Join(out, "*_meta.yaml"))
	if len(metas) != 1 {
		t.Fatalf("meta files: %v", metas)
	}
	// upload into the same auth registry under a namespace: the unnamed
	// entry's credentials are used for the target too
	code, stdout, stderr = ferry(t, "", "--config", cfg, "--no-progress", "upload", metas[0], "--target", src.Host+"/copy")
	if code != 0 {
		t.Fatalf("upload: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if strings.Contains(stdout+stderr, auth.Pass) {
		t.Fatal("password in the output")
	}
	want := manifestDigest(t, src.Host, auth, "team/app:1")
	if got := manifestDigest(t, src.Host, auth, "copy/team/app:1"); got != want {
		t.Fatalf("copy has %s, source %s", got, want)
	}
	// and the same registry as the target by its host name alone
	code, _, stderr = ferry(t, "", "--config", cfg, "--no-progress", "upload", metas[0], "--target", src.Host)
	if code != 0 {
		t.Fatalf("upload by host: exit %d\n%s", code, stderr)
	}
}

// authRegistry is a client for a docker-registry started with auth.
func authRegistry(t *testing.T, host string, auth regtest.DistributionOptions) *registry.Registry {
	t.Helper()
	reg, err := registry.New(registry.Options{Hosts: []registry.Host{{Registry: host, User: auth.User, Pass: auth.Pass}}})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// pushFixtures pushes testdata images (regtest.Fixtures names) to host.
func pushFixtures(t *testing.T, host string, auth regtest.DistributionOptions, names ...string) {
	t.Helper()
	reg := authRegistry(t, host, auth)
	imgs := regtest.Fixtures()
	for _, n := range names {
		r, err := ref.New(host + "/" + n)
		if err != nil {
			t.Fatal(err)
		}
		if err := regtest.Push(context.Background(), reg, r, imgs[n]); err != nil {
			t.Fatal(err)
		}
	}
}

// manifestDigest is the digest host serves for repo:tag.
func manifestDigest(t *testing.T, host string, auth regtest.DistributionOptions, name string) string {
	t.Helper()
	r, err := ref.New(host + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := authRegistry(t, host, auth).ManifestGet(context.Background(), r)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return m.GetDescriptor().Digest.String()
}
