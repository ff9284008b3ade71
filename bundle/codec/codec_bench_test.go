package codec_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/ferry-oss/ferry/bundle/codec"
)

// benchData: "layer" is a gzip layer (incompressible, what registries
// hold); "text" is uncompressed text-like data (what an uncompressed tar
// layer of sources or binaries looks like at best).
func benchData(kind string, n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	words := []string{"ferry ", "image ", "layer ", "blob ", "digest ", "sha256 ", "manifest ", "\n", "func ", "return ", "{", "}", "0x", "if err != nil "}
	var text bytes.Buffer
	for text.Len() < n {
		text.WriteString(words[r.IntN(len(words))])
	}
	if kind == "text" {
		return text.Bytes()[:n]
	}
	// a gzip layer is as good as random to a second compressor
	out := make([]byte, n)
	for i := range out {
		out[i] = byte(r.Uint32())
	}
	return out
}

// BenchmarkCodec measures encode and decode throughput of each part codec;
// the ratio metric is compressed/original size.
func BenchmarkCodec(b *testing.B) {
	for _, kind := range []string{"layer", "text"} {
		data := benchData(kind, 8<<20)
		for _, c := range codec.All {
			var enc bytes.Buffer
			b.Run(kind+"/"+string(c)+"/encode", func(b *testing.B) {
				b.SetBytes(int64(len(data)))
				for b.Loop() {
					enc.Reset()
					w, _ := c.NewEncoder(&enc)
					w.Write(data)
					w.Close()
				}
				b.ReportMetric(float64(enc.Len())/float64(len(data)), "ratio")
			})
			b.Run(kind+"/"+string(c)+"/decode", func(b *testing.B) {
				b.SetBytes(int64(len(data)))
				for b.Loop() {
					r, _ := c.NewDecoder(bytes.NewReader(enc.Bytes()))
					io.Copy(io.Discard, r)
					r.Close()
				}
			})
		}
	}
}
