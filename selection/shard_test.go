package selection_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/ferry-oss/ferry/selection"
)

func TestParseShard(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want selection.Shard
		ok   bool
	}{
		{"1/1", selection.Shard{K: 1, N: 1}, true},
		{"2/4", selection.Shard{K: 2, N: 4}, true},
		{"4/4", selection.Shard{K: 4, N: 4}, true},
		{"0/4", selection.Shard{}, false},
		{"5/4", selection.Shard{}, false},
		{"2", selection.Shard{}, false},
		{"a/b", selection.Shard{}, false},
		{"1/0", selection.Shard{}, false},
		{"-1/4", selection.Shard{}, false},
	} {
		got, err := selection.ParseShard(tc.in)
		if tc.ok != (err == nil) || got != tc.want {
			t.Errorf("ParseShard(%q) = %v, %v", tc.in, got, err)
		}
		if err != nil && !errors.Is(err, selection.ErrBadList) {
			t.Errorf("ParseShard(%q): %v is not ErrBadList", tc.in, err)
		}
	}
}

// TestShardPartition: the shards of a list are disjoint, cover it, keep
// every repository whole and are not all in one shard.
func TestShardPartition(t *testing.T) {
	var list []selection.ImageSpec
	for i := range 200 {
		for _, tag := range []string{"1", "2"} {
			s, err := selection.ParseImage(fmt.Sprintf("src.example/team/app-%03d:%s", i, tag), "")
			if err != nil {
				t.Fatal(err)
			}
			list = append(list, s)
		}
	}
	const n = 4
	where := map[string]int{}
	total := 0
	for k := 1; k <= n; k++ {
		got := selection.Shard{K: k, N: n}.Filter(list)
		if len(got) < len(list)/n/2 {
			t.Errorf("shard %d/%d has %d of %d images", k, n, len(got), len(list))
		}
		total += len(got)
		for _, s := range got {
			if prev, ok := where[s.Repository]; ok && prev != k {
				t.Errorf("%s in shards %d and %d", s.Repository, prev, k)
			}
			where[s.Repository] = k
		}
	}
	if total != len(list) {
		t.Errorf("shards hold %d images, list %d", total, len(list))
	}
	if got := (selection.Shard{K: 1, N: 1}).Filter(list); len(got) != len(list) {
		t.Errorf("1/1 keeps %d of %d", len(got), len(list))
	}
}
