package transfer_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/registry/regtest"
	"github.com/ferry-oss/ferry/transfer"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestGoldenMeta(t *testing.T) {
	e := seeded(t)
	for _, c := range []bundle.Codec{bundle.CodecNone, bundle.CodecGzip} {
		t.Run(string(c), func(t *testing.T) {
			dir := t.TempDir()
			w, err := bundle.NewWriter(bundle.WriterOptions{Dir: dir, Codec: c, Single: true, Tool: "ferry golden", Platforms: []string{"linux/amd64", "linux/arm64"},
				Now: func() time.Time { return time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC) }})
			if err != nil {
				t.Fatal(err)
			}
			specs := e.specs(t, "library/multi:1", "team/app:1", "team/tools:1")
			for i := range specs { // the golden file must not depend on the port
				specs[i].Source.Registry = "registry.test:5000"
			}
			src := hostRewrite{e.reg, e.host}
			res, err := transfer.Save(context.Background(), src, w, specs, transfer.SaveOptions{Jobs: 1, Platforms: mustPlatforms(t, "linux/amd64", "linux/arm64")})
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(res.MetaPath)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join(regtest.TestdataDir(), "golden", "meta-"+string(c)+".yaml")
			if *update {
				_ = os.MkdirAll(filepath.Dir(golden), 0o755)
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./transfer -run TestGoldenMeta -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("meta differs from %s (rerun with -update if intended):\n%s", golden, got)
			}
		})
	}
}
