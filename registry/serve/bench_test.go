package serve_test

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/registry/regtest"
)

// BenchmarkBlobGet measures serving one 64 MiB layer of an uncompressed
// bundle over loopback HTTP (digest checked while it streams), against
// reading the same blob from the bundle without HTTP.
func BenchmarkBlobGet(b *testing.B) {
	src := regtest.NewSource(b)
	img := regtest.NewBigImage(11, 1, 64<<20)
	r, _ := ref.New(src.Host + "/bench/blob:1")
	if err := regtest.Push(context.Background(), src.Reg, r, img); err != nil {
		b.Fatal(err)
	}
	mp := src.Save(b, b.TempDir(), bundle.CodecNone, nil, "bench/blob:1")
	layer := img.Big[0].Desc
	b.Run("bundle", func(b *testing.B) {
		set, err := bundle.OpenSet(mp)
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 256<<10)
		b.SetBytes(layer.Size)
		for b.Loop() {
			rc, err := set.BlobGet(context.Background(), ref.Ref{}, layer)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, rc, buf); err != nil {
				b.Fatal(err)
			}
			rc.Close()
		}
	})
	b.Run("http", func(b *testing.B) {
		url := "http://" + start(b, "", mp) + "/v2/bench/blob/blobs/" + layer.Digest.String()
		b.SetBytes(layer.Size)
		for b.Loop() {
			resp, err := http.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || n != layer.Size {
				b.Fatalf("%d bytes: %v", n, err)
			}
		}
	})
}
