package registry_test

import (
	"context"
	"strings"
	"testing"

	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
)

// TestReferrers: an SBOM attached as an OCI referrer and a cosign-style
// signature tag are both listed: on olareg through the OCI referrers API,
// on docker-registry 2.8 and distribution v3.1.2 through the OCI fallback
// tag (sha256-<hex>) that regclient's push writes there. (Distribution
// v3.1.2 has no referrers API: no /referrers/ route and no OCI-Subject
// header; checked against its source.)
func TestReferrers(t *testing.T) {
	tests := []struct {
		name     string
		opts     regtest.DistributionOptions
		olareg   bool
		fallback bool // the registry needs the fallback tag
	}{
		{"docker-registry 2.8", regtest.DistributionOptions{}, false, true},
		{"distribution v3", regtest.DistributionOptions{V3: true}, false, true},
		{"olareg referrers API", regtest.DistributionOptions{}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var host string
			var tags func(repo string) []string
			if tt.olareg {
				h, stop := regtest.Olareg()
				t.Cleanup(stop)
				host = h
				tags = func(repo string) []string { return regtest.TagsAt(t, "http://"+host, repo) }
			} else {
				d := regtest.StartDistribution(t, tt.opts)
				host = d.Host
				tags = func(repo string) []string { return regtest.Tags(t, d, repo) }
			}
			reg, err := registry.New(registry.Options{Registries: []string{host}})
			if err != nil {
				t.Fatal(err)
			}
			imgs := seed(t, reg, host, "team/app:1", "library/base:1")
			ctx := context.Background()
			app := imgs["team/app:1"]
			subject := app.Manifest.GetDescriptor()
			repo, _ := ref.New(host + "/team/app")
			sbom := regtest.Artifact(&subject, regtest.SBOMType, regtest.SBOMType, []byte(`{"spdxVersion":"SPDX-2.3"}`))
			if err := regtest.Push(ctx, reg, repo.SetDigest(sbom.Digest().String()), sbom); err != nil {
				t.Fatal(err)
			}
			sig := regtest.Artifact(nil, regtest.SignatureType, regtest.CosignLayer, []byte(`{"critical":{}}`))
			sigTag := strings.Replace(subject.Digest.String(), ":", "-", 1) + ".sig"
			if err := regtest.Push(ctx, reg, repo.SetTag(sigTag), sig); err != nil {
				t.Fatal(err)
			}
			got, err := reg.Referrers(ctx, repo, subject)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 {
				t.Fatalf("referrers %+v, want the SBOM and the signature", got)
			}
			if got[0].Desc.Digest != sbom.Digest() || got[0].Tag != "" || got[0].Desc.ArtifactType != regtest.SBOMType {
				t.Errorf("first referrer %+v, want the SBOM %s", got[0], sbom.Digest())
			}
			if got[1].Desc.Digest != sig.Digest() || got[1].Tag != sigTag || got[1].Desc.Size != sig.Manifest.GetDescriptor().Size {
				t.Errorf("second referrer %+v, want the signature %s tagged %s", got[1], sig.Digest(), sigTag)
			}
			// the fallback tag exists exactly where the registry has no
			// referrers API
			fallback := strings.TrimSuffix(sigTag, ".sig")
			all := tags("team/app")
			if has := strings.Contains(" "+strings.Join(all, " ")+" ", " "+fallback+" "); has != tt.fallback {
				t.Errorf("tags %v: fallback tag %s present=%v, want %v", all, fallback, has, tt.fallback)
			}
			// an image without referrers has none, in a repository
			// without tags for it
			base := imgs["library/base:1"].Manifest.GetDescriptor()
			brepo, _ := ref.New(host + "/library/base")
			if got, err := reg.Referrers(ctx, brepo, base); err != nil || len(got) != 0 {
				t.Errorf("base: %+v, %v; want none", got, err)
			}
		})
	}
}
