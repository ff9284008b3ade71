package imagearchive

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzOpen: an archive is untrusted input; its manifest.json and
// index.json must fail cleanly, never panic.
func FuzzOpen(f *testing.F) {
	for _, seed := range []struct{ name, body string }{
		{"manifest.json", `[{"Config":"blobs/sha256/aa.json","RepoTags":["a:1"],"Layers":["x/layer.tar"]}]`},
		{"index.json", `{"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + "00000000000000000000000000000000000000000000000000000000000000aa" + `","size":2,"annotations":{"io.containerd.image.name":"r.test/a:1"}}]}`},
	} {
		f.Add(seed.name, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, name string, body []byte) {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		_ = tw.WriteHeader(&tar.Header{Name: "oci-layout", Size: 2, Mode: 0o644})
		_, _ = tw.Write([]byte("{}"))
		_ = tw.WriteHeader(&tar.Header{Name: name, Size: int64(len(body)), Mode: 0o644})
		_, _ = tw.Write(body)
		_ = tw.Close()
		p := filepath.Join(t.TempDir(), "a.tar")
		_ = os.WriteFile(p, buf.Bytes(), 0o644)
		_, _, _ = Format{}.Open(p)
	})
}
