package transfer_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/transfer"
)

// TestTwoSavesOneDirectory: two saves into one directory at the same time
// (the same second on the clock) get two bundle ids; both bundles are
// complete and verify, and no part of one is named after the other.
func TestTwoSavesOneDirectory(t *testing.T) {
	e := seeded(t)
	dir := t.TempDir()
	clock := func() time.Time { return time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC) }
	var wg sync.WaitGroup
	results := make([]*transfer.SaveResult, 2)
	errs := make([]error, 2)
	for i, img := range []string{"team/app:1", "library/multi:1"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := bundle.NewWriter(bundle.WriterOptions{Dir: dir, Parts: 2, Now: clock})
			if err != nil {
				errs[i] = err
				return
			}
			results[i], errs[i] = transfer.Save(context.Background(), e.reg, w, e.specs(t, img), transfer.SaveOptions{Jobs: 2})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("save %d: %v", i, err)
		}
	}
	if results[0].Meta.ID == results[1].Meta.ID {
		t.Fatalf("both saves are %s", results[0].Meta.ID)
	}
	for _, res := range results {
		bd, err := bundle.Open(res.MetaPath)
		if err != nil {
			t.Fatal(err)
		}
		if err := bd.Verify(context.Background(), 2, nil); err != nil {
			t.Fatalf("%s: %v", res.Meta.ID, err)
		}
	}
	metas, _ := filepath.Glob(filepath.Join(dir, "*_meta.yaml"))
	if len(metas) != 2 {
		t.Errorf("meta files %v", metas)
	}
}
