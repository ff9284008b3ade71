package meta

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// synthetic returns a meta of n images of 5 layers (one shared by all),
// like a bundle of generated images (about 3.2 KB of meta file a image).
func synthetic(n int) *Meta {
	const part = "ferry_full_20261201T000000Z_1.tar"
	m := &Meta{
		SchemaVersion: SchemaVersion, Kind: Kind, ID: "ferry_full_20261201T000000Z", Type: TypeFull,
		Tool: "ferry test", Created: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Compression: "none",
	}
	var off int64
	loc := func(size int64) Location {
		l := Location{Offset: off, Length: 512 + (size+511)/512*512}
		off += l.Length
		return l
	}
	shared := digest.FromString("shared layer")
	m.Blobs = append(m.Blobs, Blob{Digest: shared, Size: 300, MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Part: part, Location: loc(300), Repos: []string{"gen/app-00000"}})
	for i := range n {
		repo := fmt.Sprintf("gen/app-%05d", i)
		var layers []string
		for j := range 5 {
			d := shared
			if j > 0 {
				d = digest.FromString(fmt.Sprintf("layer %d %d", i, j))
				mt := "application/vnd.oci.image.layer.v1.tar+gzip"
				if j == 4 {
					mt = "application/vnd.oci.image.config.v1+json"
				}
				m.Blobs = append(m.Blobs, Blob{Digest: d, Size: 173 + int64(j), MediaType: mt, Part: part, Location: loc(173 + int64(j)), Repos: []string{repo}})
			}
			layers = append(layers, fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%d}`, d, 173+j))
		}
		raw := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` +
			digest.FromString(fmt.Sprint(i)).String() + `","size":475},"layers":[` + strings.Join(layers, ",") + `]}`)
		md := digest.FromBytes(raw)
		m.Manifests = append(m.Manifests, Manifest{Digest: md, MediaType: "application/vnd.oci.image.manifest.v1+json", Size: int64(len(raw)), Part: part, Location: loc(int64(len(raw))), Repos: []string{repo}, Raw: raw})
		m.Images = append(m.Images, Image{Source: "127.0.0.1:5900/" + repo + ":1", Repository: repo, Tag: "1", Digest: md, MediaType: "application/vnd.oci.image.manifest.v1+json"})
	}
	m.Parts = []Part{{Name: part, Size: off, SHA256: hex.EncodeToString(make([]byte, 32))}}
	return m
}

// write10k writes the synthetic 10,000-image meta file once per test
// binary (into dir10k, removed by TestMain).
var (
	dir10k   string
	write10k = sync.OnceValues(func() (string, error) {
		dir, err := os.MkdirTemp("", "ferry-meta-10k-")
		if err != nil {
			return "", err
		}
		dir10k = dir
		file := filepath.Join(dir, "ferry_full_20261201T000000Z_meta.yaml")
		return file, Write(file, synthetic(10000))
	})
)

func file10k(tb testing.TB) string {
	if f := os.Getenv("FERRY_META_10K"); f != "" { // e.g. a real bundle's meta file
		return f
	}
	file, err := write10k()
	if err != nil {
		tb.Fatal(err)
	}
	return file
}

func TestMain(m *testing.M) {
	code := m.Run()
	if dir10k != "" {
		os.RemoveAll(dir10k)
	}
	os.Exit(code)
}

// heapPeak runs f while sampling the heap's object bytes every
// millisecond, with GOGC at 10 so that garbage does not hide the working
// set, and returns the peak above the heap before f and the heap f's
// result keeps (after a GC).
func heapPeak(f func() any) (peak, kept uint64) {
	old := debug.SetGCPercent(10)
	defer debug.SetGCPercent(old)
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	base := read()
	var max atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			if v := read(); v > max.Load() {
				max.Store(v)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	v := f()
	close(done)
	wg.Wait()
	if r := read(); r > max.Load() {
		max.Store(r)
	}
	runtime.GC()
	kept = read() - base
	runtime.KeepAlive(v)
	return max.Load() - base, kept
}

// TestLoadMemoryBounded: loading a 10,000-image meta file (about 30 MB)
// holds little more than the decoded Meta: the peak heap stays within
// the result plus 16 MiB (the result is about 80% of the file's size,
// mostly manifest bytes and digests). The
// whole-document decoder (yaml.v3's node tree of the whole file) needs
// several times the file's size and fails the same bound.
func TestLoadMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and reads a 30 MB meta file")
	}
	file := file10k(t)
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	const slack = 16 << 20
	bound := func(kept uint64) uint64 { return kept + slack }
	var lerr error
	peak, kept := heapPeak(func() any {
		m, err := Load(file)
		lerr = err
		return m
	})
	if lerr != nil {
		t.Fatal(lerr)
	}
	t.Logf("Load of %d bytes: peak heap %d MB, result %d MB", st.Size(), peak>>20, kept>>20)
	if peak > bound(kept) {
		t.Errorf("Load: peak heap %d MB above %d MB (the result's %d MB + 16 MiB)", peak>>20, bound(kept)>>20, kept>>20)
	}
	// The bound is one the old decoder fails.
	peak, kept = heapPeak(func() any {
		b, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		m, err := parseWhole(b)
		lerr = err
		return m
	})
	if lerr != nil {
		t.Fatal(lerr)
	}
	t.Logf("whole-document decode: peak heap %d MB, result %d MB", peak>>20, kept>>20)
	if peak <= bound(kept) {
		t.Errorf("the whole-document decoder stays within the bound too (%d MB): the test cannot tell", peak>>20)
	}
}

// BenchmarkLoad10k loads a 10,000-image meta file (FERRY_META_10K names
// another one) and reports the peak heap of one Load.
func BenchmarkLoad10k(b *testing.B) {
	file := file10k(b)
	st, err := os.Stat(file)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Size())
	peak, _ := heapPeak(func() any {
		m, err := Load(file)
		if err != nil {
			b.Fatal(err)
		}
		return m
	})
	b.ResetTimer()
	for b.Loop() {
		if _, err := Load(file); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
}

// BenchmarkLoad10kWhole is BenchmarkLoad10k with the whole-document
// decoder (what Load did before), for comparison.
func BenchmarkLoad10kWhole(b *testing.B) {
	file := file10k(b)
	load := func() any {
		buf, err := os.ReadFile(file)
		if err != nil {
			b.Fatal(err)
		}
		m, err := parseWhole(buf)
		if err != nil {
			b.Fatal(err)
		}
		return m
	}
	peak, _ := heapPeak(load)
	b.ResetTimer()
	for b.Loop() {
		load()
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
}

// TestWriteMemoryBounded: Write encodes a 10,000-image meta (about 30
// MB) into its file with a few MB of heap beyond the Meta itself;
// Marshal's one []byte (what the writer used before) does not.
func TestWriteMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and writes a 30 MB meta file")
	}
	m := synthetic(10000)
	dir := t.TempDir()
	const bound = 16 << 20
	var werr error
	peak, _ := heapPeak(func() any {
		werr = Write(filepath.Join(dir, "a_meta.yaml"), m)
		return nil
	})
	if werr != nil {
		t.Fatal(werr)
	}
	t.Logf("Write: peak heap %d MB", peak>>20)
	if peak > bound {
		t.Errorf("Write: peak heap %d MB, more than %d MB", peak>>20, bound>>20)
	}
	peak, _ = heapPeak(func() any {
		b, err := Marshal(m)
		if err == nil {
			err = WriteFileAtomic(filepath.Join(dir, "b_meta.yaml"), b)
		}
		werr = err
		return nil
	})
	if werr != nil {
		t.Fatal(werr)
	}
	t.Logf("Marshal and WriteFileAtomic: peak heap %d MB", peak>>20)
	if peak <= bound {
		t.Errorf("Marshal stays within the bound too (%d MB): the test cannot tell", peak>>20)
	}
}
