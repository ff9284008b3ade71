package selection

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// Shard is one of N parts of an image list, for splitting a very large
// mirror across build hosts: shard K of N keeps the images whose target
// repository hashes (FNV-1a) to K-1 modulo N. Every image of a repository
// lands in the same shard, so the layers that a repository's tags share
// are carried by one bundle, and the same list gives every host the same
// partition without any coordination.
type Shard struct{ K, N int }

// ParseShard parses "K/N" (1 <= K <= N).
func ParseShard(s string) (Shard, error) {
	ks, ns, ok := strings.Cut(s, "/")
	k, err1 := strconv.Atoi(ks)
	n, err2 := strconv.Atoi(ns)
	if !ok || err1 != nil || err2 != nil || n < 1 || k < 1 || k > n {
		return Shard{}, fmt.Errorf("%w: shard %q: want K/N with 1 <= K <= N (2/4: the second of four)", ErrBadList, s)
	}
	return Shard{K: k, N: n}, nil
}

// Has reports whether the image with target repository repo is in the
// shard.
func (s Shard) Has(repo string) bool {
	if s.N <= 1 {
		return true
	}
	h := fnv.New32a()
	h.Write([]byte(repo))
	return int(h.Sum32()%uint32(s.N)) == s.K-1
}

// Filter keeps the images of the shard, in order.
func (s Shard) Filter(images []ImageSpec) []ImageSpec {
	var out []ImageSpec
	for _, im := range images {
		if s.Has(im.Repository) {
			out = append(out, im)
		}
	}
	return out
}

func (s Shard) String() string { return strconv.Itoa(s.K) + "/" + strconv.Itoa(s.N) }
