package bundle_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/bundle"
)

// BenchmarkWriterJournal is the cost of the resume journal: small blobs
// (4 KiB, the worst case: one record per 4 KiB) put with and without it,
// and the resume of what was written (every entry read back).
func BenchmarkWriterJournal(b *testing.B) {
	blobs := make([][]byte, 2000)
	for i := range blobs {
		blobs[i] = bytes.Repeat(binary.BigEndian.AppendUint32(nil, uint32(i)), 1024)
	}
	r, _ := ref.New("bench/x:1")
	put := func(b *testing.B, mode bundle.ResumeMode) string {
		dir := b.TempDir()
		w, err := bundle.NewWriter(bundle.WriterOptions{Dir: dir, Parts: 2, Codec: bundle.CodecZstd, Resume: mode, Inputs: []string{"bench"}})
		if err != nil {
			b.Fatal(err)
		}
		for _, data := range blobs {
			d := descriptor.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromBytes(data), Size: int64(len(data))}
			if err := w.BlobPut(context.Background(), r, d, bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
		w.Abort()
		return dir
	}
	for _, bc := range []struct {
		name string
		mode bundle.ResumeMode
	}{{"off", bundle.ResumeOff}, {"journal", bundle.ResumeAuto}} {
		b.Run("put-"+bc.name, func(b *testing.B) {
			for b.Loop() {
				put(b, bc.mode)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(blobs)), "µs/blob")
		})
	}
	b.Run("resume", func(b *testing.B) {
		dir := put(b, bundle.ResumeAuto)
		for b.Loop() {
			w, err := bundle.NewWriter(bundle.WriterOptions{Dir: dir, Parts: 2, Codec: bundle.CodecZstd, Resume: bundle.ResumeRequire, Inputs: []string{"bench"}})
			if err != nil {
				b.Fatal(err)
			}
			if got := w.Resumed().Blobs; got != len(blobs) {
				b.Fatalf("resumed %d", got)
			}
			w.Abort()
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(blobs)), "µs/blob")
	})
}
