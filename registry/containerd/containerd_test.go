package containerd_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/platform"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
	"github.com/ferry-oss/ferry/registry/containerd"
	"github.com/ferry-oss/ferry/registry/regtest"
	"github.com/ferry-oss/ferry/transfer"
)

// upload loads the bundle at metaPath into containerd the way the CLI
// does and returns what the Store wrote.
func upload(t *testing.T, metaPath, sock, ns string, plats ...string) (containerd.Stats, error) {
	t.Helper()
	bd, err := bundle.Open(metaPath)
	if err != nil {
		t.Fatal(err)
	}
	opts := containerd.Options{Address: "unix://" + sock, Namespace: ns}
	for _, p := range plats {
		pl, err := platform.Parse(p)
		if err != nil {
			t.Fatal(err)
		}
		opts.Platforms = append(opts.Platforms, pl)
	}
	ctx := context.Background()
	st, err := containerd.New(ctx, bd.Meta, opts)
	if err != nil {
		return containerd.Stats{}, err
	}
	defer st.Close()
	_, err = transfer.Upload(ctx, bd, st, transfer.UploadOptions{Target: st.Target, Jobs: 3})
	return st.Stats(), err
}

// ctrImages parses `ctr -n NS images ls`: name -> digest.
func ctrImages(t *testing.T, c *regtest.Containerd, ns string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, l := range strings.Split(c.Ctr(t, "-n", ns, "images", "ls"), "\n")[1:] {
		if f := strings.Fields(l); len(f) >= 3 {
			out[f[0]] = f[2]
		}
	}
	return out
}

// ctrContent parses `ctr -n NS content ls`: digest -> size and labels
// (sorted: ctr prints them in map order).
func ctrContent(t *testing.T, c *regtest.Containerd, ns string) map[digest.Digest]string {
	t.Helper()
	out := map[digest.Digest]string{}
	for _, l := range strings.Split(c.Ctr(t, "-n", ns, "content", "ls"), "\n")[1:] {
		if f := strings.Fields(l); len(f) >= 2 {
			labels := strings.Split(f[len(f)-1], ",")
			slices.Sort(labels)
			out[digest.Digest(f[0])] = f[1] + " " + strings.Join(labels, ",")
		}
	}
	return out
}

// collectGarbage makes containerd collect garbage now: deleting a lease
// with --sync runs the collector.
func collectGarbage(t *testing.T, c *regtest.Containerd, ns string) {
	t.Helper()
	id := strings.TrimSpace(strings.TrimPrefix(c.Ctr(t, "-n", ns, "leases", "create"), "Lease"))
	c.Ctr(t, "-n", ns, "leases", "delete", "--sync", strings.Fields(id)[0])
}

// blobsOf lists the digests of every blob and manifest of the images.
func blobsOf(imgs ...*regtest.Image) []digest.Digest {
	var out []digest.Digest
	for _, img := range imgs {
		out = append(out, img.Digest())
		for _, b := range img.Blobs {
			out = append(out, b.Desc.Digest)
		}
		out = append(out, blobsOf(img.Children...)...)
	}
	return out
}

// TestUploadRealContainerd: a full bundle (a three-platform index, two
// images sharing a layer, an SBOM referrer and a cosign-style signature)
// goes into a real containerd: `ctr images ls` shows the source names and
// the source registry's digests, `ctr content ls` every blob and manifest,
// `ctr images check` calls the images complete, the garbage collector
// keeps everything (referrers and signatures too, as content only), and a
// re-run writes nothing.
func TestUploadRealContainerd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts containerd")
	}
	c := regtest.StartContainerd(t)
	src := regtest.NewSource(t)
	app := src.Images["team/app:1"]
	r, _ := ref.New(src.Host + "/team/app")
	att, err := regtest.AttachReferrers(context.Background(), src.Reg, r, app)
	if err != nil {
		t.Fatal(err)
	}
	src.Referrers = true
	metaPath := src.Save(t, t.TempDir(), bundle.CodecZstd, nil, "library/multi:1", "team/app:1", "team/tools:1")

	st, err := upload(t, metaPath, c.Socket, "k8s.io")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, n := range []string{"library/multi:1", "team/app:1", "team/tools:1"} {
		repo, _, _ := strings.Cut(n, ":")
		dg := src.Images[n].Digest().String()
		want[src.Host+"/"+n] = dg
		want[src.Host+"/"+repo+"@"+dg] = dg
	}
	if got := ctrImages(t, c, "k8s.io"); !maps.Equal(got, want) {
		t.Fatalf("ctr images ls:\n%v\nwant\n%v", got, want)
	}
	if st.Images != len(want) || st.Pinned != 2 {
		t.Errorf("stats %+v: want %d images named, 2 referrers pinned", st, len(want))
	}
	all := blobsOf(src.Images["library/multi:1"], app, src.Images["team/tools:1"], att.SBOM, att.Sig)
	checkContent(t, c, all)
	content := ctrContent(t, c, "k8s.io")
	for _, a := range []*regtest.Image{att.SBOM, att.Sig} {
		if !strings.Contains(content[app.Digest()], "containerd.io/gc.ref.content.referrer."+a.Digest().Encoded()) {
			t.Errorf("manifest %s: labels %s do not keep referrer %s", app.Digest(), content[app.Digest()], a.Digest())
		}
	}
	if !strings.Contains(content[app.Digest()], "containerd.io/gc.ref.content.l.1="+app.Blobs[2].Desc.Digest.String()) {
		t.Errorf("manifest %s: labels %s lack its layers", app.Digest(), content[app.Digest()])
	}
	check := c.Ctr(t, "-n", "k8s.io", "images", "check")
	if n := strings.Count(check, "complete"); n != len(want) {
		t.Errorf("ctr images check: %d complete, want %d:\n%s", n, len(want), check)
	}

	// the images (and, through their labels, referrers) hold everything
	collectGarbage(t, c, "k8s.io")
	checkContent(t, c, all)
	if l := strings.TrimSpace(c.Ctr(t, "-n", "k8s.io", "leases", "ls")); strings.Count(l, "\n") != 0 {
		t.Errorf("leases left behind:\n%s", l)
	}

	// re-run: nothing new, nothing written
	before := ctrContent(t, c, "k8s.io")
	st, err = upload(t, metaPath, c.Socket, "k8s.io")
	if err != nil {
		t.Fatal(err)
	}
	if st != (containerd.Stats{Unchanged: len(want)}) {
		t.Errorf("re-run wrote %+v, want nothing", st)
	}
	if after := ctrContent(t, c, "k8s.io"); !maps.Equal(after, before) {
		t.Errorf("re-run changed the content store:\n%v\nwas\n%v", after, before)
	}
}

// checkContent fails unless containerd holds every digest in k8s.io.
func checkContent(t *testing.T, c *regtest.Containerd, want []digest.Digest) {
	t.Helper()
	have := ctrContent(t, c, "k8s.io")
	for _, d := range want {
		if _, ok := have[d]; !ok {
			t.Errorf("ctr content ls lacks %s", d)
		}
	}
}

// TestIncrementRealContainerd: an increment alone is refused before
// anything is written (not even its namespace); after its base bundle it
// sends only its new blobs.
func TestIncrementRealContainerd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts containerd")
	}
	c := regtest.StartContainerd(t)
	src := regtest.NewSource(t)
	dir := t.TempDir()
	full := src.Save(t, dir, bundle.CodecZstd, nil, "team/app:1")
	incr := src.Save(t, dir, bundle.CodecZstd, []string{full}, "team/tools:1", "team/app:1 -> team/app:stable")

	_, err := upload(t, incr, c.Socket, "k8s.io")
	if !errors.Is(err, bundle.ErrBaseMissing) || !strings.Contains(err.Error(), filepath.Base(strings.TrimSuffix(full, "_meta.yaml"))) {
		t.Fatalf("increment alone: %v, want ErrBaseMissing naming the full bundle", err)
	}
	if ns := c.Ctr(t, "namespaces", "ls"); strings.Contains(ns, "k8s.io") {
		t.Fatalf("a refused increment wrote into containerd:\n%s", ns)
	}

	if _, err := upload(t, full, c.Socket, "k8s.io"); err != nil {
		t.Fatal(err)
	}
	st, err := upload(t, incr, c.Socket, "k8s.io")
	if err != nil {
		t.Fatalf("increment after its base: %v", err)
	}
	tools := src.Images["team/tools:1"]
	// new: tools' manifest, config and layer (its base layer and all of
	// app:1 came before) and three names (app@digest is there already)
	if st.Blobs != 2 || st.Manifests != 1 || st.Images != 3 || st.Unchanged != 1 {
		t.Errorf("increment wrote %+v: want 2 blobs, 1 manifest, 3 names, 1 unchanged", st)
	}
	app := src.Images["team/app:1"]
	want := map[string]string{
		src.Host + "/team/app:1": app.Digest().String(), src.Host + "/team/app@" + app.Digest().String(): app.Digest().String(),
		src.Host + "/team/app:stable": app.Digest().String(),
		src.Host + "/team/tools:1":    tools.Digest().String(), src.Host + "/team/tools@" + tools.Digest().String(): tools.Digest().String(),
	}
	if got := ctrImages(t, c, "k8s.io"); !maps.Equal(got, want) {
		t.Fatalf("ctr images ls:\n%v\nwant\n%v", got, want)
	}
	checkContent(t, c, blobsOf(app, tools))
}

// TestSharedRealContainerd: blobs containerd holds for another namespace
// are committed into this one without being sent again.
func TestSharedRealContainerd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts containerd")
	}
	c := regtest.StartContainerd(t)
	src := regtest.NewSource(t)
	metaPath := src.Save(t, t.TempDir(), bundle.CodecZstd, nil, "team/app:1")
	if _, err := upload(t, metaPath, c.Socket, "default"); err != nil {
		t.Fatal(err)
	}
	st, err := upload(t, metaPath, c.Socket, "k8s.io")
	if err != nil {
		t.Fatal(err)
	}
	if st.Blobs != 0 || st.Manifests != 0 || st.Shared != 4 || st.Images != 2 {
		t.Errorf("second namespace: %+v, want 4 shared (config, 2 layers, manifest), nothing sent, 2 names", st)
	}
	checkContent(t, c, blobsOf(src.Images["team/app:1"]))
	collectGarbage(t, c, "k8s.io")
	checkContent(t, c, blobsOf(src.Images["team/app:1"]))
}

// TestPlatformsRealContainerd: --platform keeps the index (its source
// digest names the image) and loads only the children asked for.
func TestPlatformsRealContainerd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts containerd")
	}
	c := regtest.StartContainerd(t)
	src := regtest.NewSource(t)
	metaPath := src.Save(t, t.TempDir(), bundle.CodecZstd, nil, "library/multi:1")
	multi := src.Images["library/multi:1"]

	_, err := upload(t, metaPath, c.Socket, "k8s.io", "linux/s390x")
	if !errors.Is(err, oci.ErrPlatformMismatch) {
		t.Fatalf("no such platform: %v", err)
	}
	if _, err := upload(t, metaPath, c.Socket, "k8s.io", "linux/arm64", "linux/arm/v7"); err != nil {
		t.Fatal(err)
	}
	if got := ctrImages(t, c, "k8s.io")[src.Host+"/library/multi:1"]; got != multi.Digest().String() {
		t.Fatalf("library/multi:1 is %s, want the source's %s", got, multi.Digest())
	}
	have := ctrContent(t, c, "k8s.io")
	list, err := multi.Manifest.(manifest.Indexer).GetManifestList()
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range list {
		cfg := multi.Children[i].Blobs[0].Desc.Digest
		_, loaded := have[d.Digest]
		_, cfgLoaded := have[cfg]
		if wanted := d.Platform.String() != "linux/amd64"; loaded != wanted || cfgLoaded != wanted {
			t.Errorf("child %s (%s): loaded %v (config %v), want %v", d.Digest, d.Platform, loaded, cfgLoaded, wanted)
		}
	}
}

// TestAbortRealContainerd: a blob whose reader fails part way, or whose
// bytes do not match its digest (containerd refuses it at commit), leaves
// nothing in containerd: no content, no ingest; Close ends the lease.
func TestAbortRealContainerd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts containerd")
	}
	c := regtest.StartContainerd(t)
	src := regtest.NewSource(t)
	bd, err := bundle.Open(src.Save(t, t.TempDir(), bundle.CodecZstd, nil, "big/one:1"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := containerd.New(ctx, bd.Meta, containerd.Options{Address: c.Socket})
	if err != nil {
		t.Fatal(err)
	}
	b := slices.MaxFunc(bd.Meta.Blobs, func(a, b meta.Blob) int { return cmp.Compare(a.Size, b.Size) })
	d := descriptor.Descriptor{MediaType: b.MediaType, Digest: b.Digest, Size: b.Size}
	rc, err := bd.OpenBlob(ctx, d.Digest)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	broken := io.MultiReader(io.LimitReader(rc, d.Size/2), iotest.ErrReader(errors.New("the disk went away")))
	if err := st.BlobPut(ctx, ref.Ref{}, d, broken); err == nil || !strings.Contains(err.Error(), "the disk went away") {
		t.Fatalf("a reader that fails: %v", err)
	}
	err = st.BlobPut(ctx, ref.Ref{}, d, bytes.NewReader(make([]byte, d.Size)))
	if err == nil || !strings.Contains(err.Error(), "digest") {
		t.Fatalf("bytes that do not match the digest: %v", err)
	}
	if have := ctrContent(t, c, "k8s.io"); len(have) != 0 {
		t.Errorf("content left: %v", have)
	}
	if active := strings.TrimSpace(c.Ctr(t, "-n", "k8s.io", "content", "active")); strings.Contains(active, "ferry-") {
		t.Errorf("ingests left:\n%s", active)
	}
	if l := c.Ctr(t, "-n", "k8s.io", "leases", "ls"); !strings.Contains(l, "ferry=upload") {
		t.Errorf("no lease while uploading:\n%s", l)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if l := strings.TrimSpace(c.Ctr(t, "-n", "k8s.io", "leases", "ls")); strings.Contains(l, "ferry") {
		t.Errorf("lease left after Close:\n%s", l)
	}
}

// TestOldBundlesRealContainerd: the schema 1 bundles of testdata (parts
// readable only from the start), a full and its increment, go into
// containerd with the digests testdata/bundles/images.txt recorded.
func TestOldBundlesRealContainerd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts containerd")
	}
	c := regtest.StartContainerd(t)
	dir := filepath.Join(regtest.TestdataDir(), "bundles")
	for _, id := range []string{"ferry_full_20261101T020000Z", "ferry_incr_20261102T020000Z"} {
		if _, err := upload(t, filepath.Join(dir, "v1-zstd", id+"_meta.yaml"), c.Socket, "k8s.io"); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	list, err := os.ReadFile(filepath.Join(dir, "images.txt"))
	if err != nil {
		t.Fatal(err)
	}
	got := ctrImages(t, c, "k8s.io")
	n := 0
	for _, l := range strings.Split(string(list), "\n") {
		if f := strings.Fields(l); len(f) >= 3 && !strings.HasPrefix(l, "#") {
			n++
			if name := "registry.test:5000/" + f[1]; got[name] != f[2] {
				t.Errorf("%s: containerd has %q, images.txt %s", name, got[name], f[2])
			}
		}
	}
	if n != 4 {
		t.Fatalf("images.txt lists %d images", n)
	}
}
