package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
	"github.com/regclient/regclient/types/ref"
)

// TestShardedSave: the shards of one list, saved as separate bundles into
// one directory, hold every image once, and upload in any order.
func TestShardedSave(t *testing.T) {
	host, stop := regtest.Olareg()
	defer stop()
	reg, _ := registry.New(registry.Options{Registries: []string{host}})
	// repository -> fixture; FNV puts team/web and ops/agent in shard 2
	// of 2, the others in shard 1
	repos := map[string]string{"library/base:1": "library/base:1", "team/app:1": "team/app:1", "library/multi:1": "library/multi:1", "team/web:1": "team/app:1", "ops/agent:1": "team/tools:1", "ops/agent:2": "library/base:1"}
	var names []string
	imgs := regtest.Fixtures()
	list := ""
	for n, fx := range repos {
		names = append(names, n)
		r, _ := ref.New(host + "/" + n)
		if err := regtest.Push(context.Background(), reg, r, imgs[fx]); err != nil {
			t.Fatal(err)
		}
		list += host + "/" + n + "\n"
	}
	out := t.TempDir()
	const n = 2
	seen := map[string]string{}
	var metas []string
	for k := 1; k <= n; k++ {
		shard := string(rune('0'+k)) + "/2"
		code, stdout, stderr := ferry(t, list, "--no-progress", "save", "--list", "-", "--shard", shard, "--prefix", "shard"+string(rune('0'+k)), "-o", out)
		if code != 0 {
			t.Fatalf("save shard %s: exit %d\n%s", shard, code, stderr)
		}
		mp := strings.TrimSpace(stdout)
		if !strings.HasPrefix(filepath.Base(mp), "shard") {
			t.Errorf("meta %s: prefix not used", mp)
		}
		m, err := meta.Load(mp)
		if err != nil {
			t.Fatal(err)
		}
		for _, img := range m.Images {
			if prev, ok := seen[img.Source]; ok {
				t.Errorf("%s in %s and %s", img.Source, prev, shard)
			}
			seen[img.Source] = shard
		}
		metas = append(metas, mp)
	}
	if len(seen) != len(names) {
		t.Errorf("shards hold %d images, list has %d: %v", len(seen), len(names), seen)
	}
	thost, tstop := regtest.Olareg()
	defer tstop()
	for i := len(metas) - 1; i >= 0; i-- { // any order
		if code, _, stderr := ferry(t, "", "--no-progress", "upload", metas[i], "--target", thost); code != 0 {
			t.Fatalf("upload %s: exit %d\n%s", metas[i], code, stderr)
		}
	}
	reg, _ = registry.New(registry.Options{Registries: []string{host, thost}})
	for _, nm := range names {
		src, _ := ref.New(host + "/" + nm)
		dst, _ := ref.New(thost + "/" + nm)
		want, err := reg.ManifestDigest(context.Background(), src)
		if err != nil {
			t.Fatal(err)
		}
		got, err := reg.ManifestDigest(context.Background(), dst)
		if err != nil || got != want {
			t.Errorf("%s at the target: %s, %v; source %s", nm, got, err, want)
		}
	}
	for _, bad := range []string{"3/2", "x", "0/1"} {
		if code, _, stderr := ferry(t, list, "--no-progress", "save", "--list", "-", "--shard", bad, "-o", out); code != 2 || !strings.Contains(stderr, "shard") {
			t.Errorf("--shard %s: exit %d, want 2 naming the shard:\n%s", bad, code, stderr)
		}
	}
}
