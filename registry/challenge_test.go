package registry_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
)

// TestEveryChallengeChecked (issue 25, item 1): the realm of every Bearer
// challenge, on every request, is checked before any credential is sent:
// a realm on another host (or plain HTTP for an HTTPS registry) gets no
// password, whichever request met the challenge (manifest, tags,
// referrers, blob), though the /v2/ check found nothing wrong. A realm the
// registry's cfg.yaml entry trusts gets the credentials as before.
func TestEveryChallengeChecked(t *testing.T) {
	ops := []struct {
		name string
		do   func(ctx context.Context, reg *registry.Registry, r ref.Ref) error
	}{
		{"manifest", func(ctx context.Context, reg *registry.Registry, r ref.Ref) error {
			_, err := reg.ManifestGet(ctx, r)
			return err
		}},
		{"tags", func(ctx context.Context, reg *registry.Registry, r ref.Ref) error {
			_, err := reg.TagList(ctx, r)
			return err
		}},
		{"referrers", func(ctx context.Context, reg *registry.Registry, r ref.Ref) error {
			_, err := reg.Referrers(ctx, r, descriptor.Descriptor{Digest: digest.FromString("x"), Size: 1})
			return err
		}},
		{"blob", func(ctx context.Context, reg *registry.Registry, r ref.Ref) error {
			rc, err := reg.BlobGet(ctx, r, descriptor.Descriptor{Digest: digest.FromString("x"), Size: 1})
			if err == nil {
				rc.Close()
			}
			return err
		}},
		{"blob head", func(ctx context.Context, reg *registry.Registry, r ref.Ref) error {
			_, err := reg.BlobExists(ctx, r, descriptor.Descriptor{Digest: digest.FromString("x"), Size: 1})
			return err
		}},
	}
	for _, tlsReg := range []bool{false, true} {
		for _, op := range ops {
			name := op.name
			if tlsReg {
				name = "https registry, " + name
			}
			t.Run(name, func(t *testing.T) {
				sr := regtest.StartSwitchRealm(t, tlsReg)
				h := registry.Host{Registry: sr.Host(), User: sr.User, Pass: sr.Pass}
				if tlsReg {
					h.TLS = registry.TLSInsecure
				}
				reg, err := registry.New(registry.Options{Hosts: []registry.Host{h}, Retries: 1})
				if err != nil {
					t.Fatal(err)
				}
				ctx := context.Background()
				if err := reg.Check(ctx, sr.Host()); err != nil {
					t.Fatalf("Check: %v (the /v2/ challenge is Basic: nothing to refuse there)", err)
				}
				r, _ := ref.New(sr.Host() + "/realm2/app:v1")
				err = op.do(ctx, reg, r)
				if !errors.Is(err, registry.ErrUntrustedRealm) || !strings.Contains(err.Error(), "trustedRealms") {
					t.Errorf("err %v, want ErrUntrustedRealm naming the fix", err)
				}
				if got := sr.Sent(); len(got) != 0 {
					t.Errorf("the foreign realm received credentials %q", got)
				}
			})
		}
	}
	t.Run("trusted realm", func(t *testing.T) {
		sr := regtest.StartSwitchRealm(t, false)
		h := registry.Host{Registry: sr.Host(), User: sr.User, Pass: sr.Pass,
			TrustedRealms: []string{sr.RealmHost()}}
		reg, err := registry.New(registry.Options{Hosts: []registry.Host{h}, Retries: 1})
		if err != nil {
			t.Fatal(err)
		}
		r, _ := ref.New(sr.Host() + "/realm2/app:v1")
		_, err = reg.ManifestGet(context.Background(), r)
		if errors.Is(err, registry.ErrUntrustedRealm) {
			t.Fatalf("a trusted realm was refused: %v", err)
		}
		if got := sr.Sent(); len(got) == 0 || !strings.HasPrefix(got[0], "Basic ") {
			t.Errorf("the trusted realm received %q, want the credentials", got)
		}
	})
}
