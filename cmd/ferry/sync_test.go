package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
)

// syncEnv: a plain docker-registry source seeded with the fixtures and
// team/versions at every regtest.VersionTags tag, and two targets: A with
// basic auth, B with TLS (self-signed).
type syncEnv struct {
	src, a, b *regtest.Distribution
	reg       *registry.Registry // knows all three
	imgs      map[string]*regtest.Image
	versions  map[string]*regtest.Image
	cfg       string
	dir       string
}

const syncPass = "sync-Secret-42"

func newSyncEnv(t *testing.T) *syncEnv {
	t.Helper()
	e := &syncEnv{
		src: regtest.StartDistribution(t, regtest.DistributionOptions{}),
		a:   regtest.StartDistribution(t, regtest.DistributionOptions{User: "ferry", Pass: syncPass}),
		b:   regtest.StartDistribution(t, regtest.DistributionOptions{TLS: true}),
		dir: t.TempDir(),
	}
	var err error
	e.reg, err = registry.New(registry.Options{Hosts: []registry.Host{
		{Registry: e.src.Host},
		{Registry: e.a.Host, User: "ferry", Pass: syncPass},
		{Registry: e.b.Host, TLS: registry.TLSEnabled, CAFile: e.b.CAFile},
	}})
	if err != nil {
		t.Fatal(err)
	}
	e.imgs, e.versions = regtest.Fixtures(), regtest.Versioned()
	for n, img := range e.imgs {
		e.push(t, n, img)
	}
	for tag, img := range e.versions {
		e.push(t, "team/versions:"+tag, img)
	}
	t.Setenv("SYNC_PASS", syncPass)
	e.cfg = filepath.Join(e.dir, "cfg.yaml")
	_ = os.WriteFile(e.cfg, []byte(`registries:
  - registry: `+e.a.Host+`
    user: ferry
    pass: ${SYNC_PASS}
  - registry: `+e.b.Host+`
    tls: enabled
    caFile: `+e.b.CAFile+`
targets: [`+e.a.Host+`/mirror, `+e.b.Host+`]
dockerConfig: false
`), 0o644)
	return e
}

func (e *syncEnv) push(t *testing.T, name string, img *regtest.Image) {
	t.Helper()
	r, _ := ref.New(e.src.Host + "/" + name)
	if err := regtest.Push(context.Background(), e.reg, r, img); err != nil {
		t.Fatal(err)
	}
}

func (e *syncEnv) tags(t *testing.T, repo string) []string {
	t.Helper()
	r, _ := ref.New(repo)
	tags, err := e.reg.TagList(context.Background(), r)
	if err != nil {
		t.Fatalf("tags of %s: %v", repo, err)
	}
	slices.Sort(tags)
	return tags
}

func (e *syncEnv) digest(t *testing.T, name string) digest.Digest {
	t.Helper()
	r, _ := ref.New(name)
	dg, err := e.reg.ManifestDigest(context.Background(), r)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return dg
}

func decodeReport(t *testing.T, s string) syncReport {
	t.Helper()
	var rep syncReport
	if err := json.Unmarshal([]byte(s), &rep); err != nil {
		t.Fatalf("not a JSON report: %v\n%s", err, s)
	}
	return rep
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

func TestSyncEndToEnd(t *testing.T) {
	e := newSyncEnv(t)
	s := e.src.Host
	args := []string{"--config", e.cfg, "--no-progress", "sync", "--json", "--platform", "linux/amd64,linux/arm64",
		s + "/library/multi:1", s + "/team/versions:*", s + `/team/versions:/^v1\./ -> regex/versions`, s + "/team/app:1 -> renamed/app:stable"}
	code, stdout, stderr := ferry(t, "", args...)
	if code != 0 {
		t.Fatalf("sync: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if strings.Contains(stdout+stderr, syncPass) {
		t.Fatal("password in the output")
	}
	rep := decodeReport(t, stdout)
	// bytes read from the source: one copy of every blob both targets got
	want := map[digest.Digest]int64{}
	for _, c := range e.imgs["library/multi:1"].Children[:2] { // amd64, arm64
		for _, b := range c.Blobs {
			want[b.Desc.Digest] = b.Desc.Size
		}
	}
	for _, img := range append(mapValues(e.versions), e.imgs["team/app:1"]) {
		for _, b := range img.Blobs {
			want[b.Desc.Digest] = b.Desc.Size
		}
	}
	var oneCopy int64
	for _, n := range want {
		oneCopy += n
	}
	if rep.Failed != 0 || rep.BytesRead != oneCopy || rep.BytesPushed != 2*oneCopy || len(rep.Targets) != 2 {
		t.Errorf("report: %+v; want %d bytes read once and pushed twice", rep, oneCopy)
	}
	if rep.Copies != 2*(1+5+3+1) {
		t.Errorf("%d copies", rep.Copies)
	}
	all := sorted(regtest.VersionTags)
	for _, prefix := range []string{e.a.Host + "/mirror/", e.b.Host + "/"} {
		if got := e.tags(t, prefix+"team/versions"); !slices.Equal(got, all) {
			t.Errorf("%steam/versions: %v, want %v", prefix, got, all)
		}
		if got := e.tags(t, prefix+"regex/versions"); !slices.Equal(got, []string{"v1.0.0", "v1.10.0", "v1.2.0"}) {
			t.Errorf("%sregex/versions: %v", prefix, got)
		}
		if got := e.digest(t, prefix+"renamed/app:stable"); got != e.imgs["team/app:1"].Digest() {
			t.Errorf("%srenamed/app:stable is %s", prefix, got)
		}
		for _, tag := range regtest.VersionTags {
			if got := e.digest(t, prefix+"team/versions:"+tag); got != e.versions[tag].Digest() {
				t.Errorf("%steam/versions:%s is %s", prefix, tag, got)
			}
		}
		r, _ := ref.New(prefix + "library/multi:1")
		m, err := e.reg.ManifestGet(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		dl, _ := m.(manifest.Indexer).GetManifestList()
		if len(dl) != 2 || dl[0].Platform.Architecture != "amd64" || dl[1].Platform.Architecture != "arm64" {
			t.Errorf("%slibrary/multi:1 has %d children", prefix, len(dl))
		}
	}

	// read back by a tool no one here wrote
	skopeo := regtest.Need(t, "skopeo")
	for _, args := range [][]string{
		{"--creds", "ferry:" + syncPass, "docker://" + e.a.Host + "/mirror/renamed/app:stable"},
		{"docker://" + e.b.Host + "/renamed/app:stable"},
	} {
		raw, err := exec.Command(skopeo, append([]string{"inspect", "--raw", "--tls-verify=false"}, args...)...).Output()
		if err != nil || digestOf(raw) != e.imgs["team/app:1"].Digest().String() {
			t.Errorf("skopeo inspect %v: %v, digest %s", args, err, digestOf(raw))
		}
	}

	// a second run pushes nothing
	code, stdout, stderr = ferry(t, "", args...)
	if code != 0 {
		t.Fatalf("second sync: exit %d\n%s", code, stderr)
	}
	rep = decodeReport(t, stdout)
	if rep.Pushed != 0 || rep.Manifests != 0 || rep.BytesRead != 0 || rep.UpToDate != rep.Copies {
		t.Errorf("second run: %+v", rep)
	}

	// semver: v1.10.0 is above v1.2.0 (string order would say otherwise)
	code, _, stderr = ferry(t, "", "--config", e.cfg, "--no-progress", "sync", "--latest", "2", s+"/team/versions:>=1.0.0 -> semver/versions")
	if code != 0 {
		t.Fatalf("semver sync: exit %d\n%s", code, stderr)
	}
	for _, prefix := range []string{e.a.Host + "/mirror/", e.b.Host + "/"} {
		if got := e.tags(t, prefix+"semver/versions"); !slices.Equal(got, []string{"v1.10.0", "v1.2.0"}) {
			t.Errorf("%ssemver/versions: %v", prefix, got)
		}
	}

	// resolve pins the selection; sync reads the lock file
	code, lock, stderr := ferry(t, "", "--config", e.cfg, "resolve", s+"/team/versions:~1.2 -> locked/versions")
	if code != 0 || !strings.Contains(lock, s+"/team/versions@"+e.versions["v1.2.0"].Digest().String()+" -> locked/versions:v1.2.0") {
		t.Fatalf("resolve: exit %d\n%s\n%s", code, lock, stderr)
	}
	code, _, stderr = ferry(t, lock, "--config", e.cfg, "--no-progress", "sync", "--list", "-")
	if code != 0 || e.digest(t, e.b.Host+"/locked/versions:v1.2.0") != e.versions["v1.2.0"].Digest() {
		t.Fatalf("sync of the lock: exit %d\n%s", code, stderr)
	}

	// target B down: exit 1, A still gets the new tag
	e.b.Stop()
	newer := regtest.NewImage("linux/amd64", regtest.RootfsLayer("base", nil), regtest.Layer(map[string]string{"version.txt": "v1.11.0\n"}))
	e.push(t, "team/versions:v1.11.0", newer)
	code, stdout, stderr = ferry(t, "", "--config", e.cfg, "--no-progress", "sync", "--json", "--retries", "1", s+"/team/versions:*")
	if code != exitFailure {
		t.Fatalf("one target down: exit %d\n%s\n%s", code, stdout, stderr)
	}
	rep = decodeReport(t, stdout)
	if len(rep.Failures) != 6 || !strings.Contains(stderr, "FAILED") {
		t.Errorf("failures: %+v\n%s", rep.Failures, stderr)
	}
	for _, f := range rep.Failures {
		if !strings.Contains(f.Image, e.b.Host) {
			t.Errorf("failure at the target that is up: %+v", f)
		}
	}
	if got := e.digest(t, e.a.Host+"/mirror/team/versions:v1.11.0"); got != newer.Digest() {
		t.Errorf("target A did not complete: v1.11.0 is %q", got)
	}
}

func mapValues[K comparable, V any](m map[K]V) []V {
	var out []V
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// TestSyncWatch: two rounds with a new tag pushed in between; the report
// has two objects and the second pushed only the new image's blobs.
func TestSyncWatch(t *testing.T) {
	e := newSyncEnv(t)
	report := filepath.Join(e.dir, "report.jsonl")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var stdout, stderr strings.Builder
	go func() {
		done <- run(ctx, []string{"ferry", "--config", e.cfg, "--no-progress", "sync", "--target", e.a.Host + "/mirror",
			"--watch", "2s", "--report", report, e.src.Host + "/team/versions:*"}, strings.NewReader(""), &stdout, &stderr)
	}()
	lines := func() []string {
		b, _ := os.ReadFile(report)
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}
	waitLines := func(n int) {
		deadline := time.Now().Add(60 * time.Second)
		for len(lines()) < n || lines()[0] == "" {
			if time.Now().After(deadline) {
				t.Fatalf("no report line %d; stderr:\n%s", n, stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitLines(1)
	newer := regtest.NewImage("linux/amd64", regtest.RootfsLayer("base", nil), regtest.Layer(map[string]string{"version.txt": "v1.11.0\n"}))
	e.push(t, "team/versions:v1.11.0", newer)
	waitLines(2)
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("watch ended with exit %d\n%s", code, stderr.String())
	}
	ls := lines()
	if len(ls) != 2 {
		t.Fatalf("%d report lines:\n%s", len(ls), strings.Join(ls, "\n"))
	}
	r1, r2 := decodeReport(t, ls[0]), decodeReport(t, ls[1])
	if r1.Round != 1 || r2.Round != 2 || r1.Copies != 5 || r1.Failed != 0 || r1.Pushed == 0 {
		t.Errorf("round 1: %+v", r1)
	}
	// the new image: its version layer and its config (the base layer is there)
	if r2.Copies != 6 || r2.UpToDate != 5 || r2.Pushed != 2 || r2.BytesPushed != newer.Blobs[0].Desc.Size+newer.Blobs[2].Desc.Size {
		t.Errorf("round 2: %+v", r2)
	}
	if !r2.Start.After(r1.End) {
		t.Errorf("rounds overlap: %v %v", r1.End, r2.Start)
	}
	if got := e.digest(t, e.a.Host+"/mirror/team/versions:v1.11.0"); got != newer.Digest() {
		t.Errorf("v1.11.0 at the target: %q", got)
	}
}

// TestSyncImageSyncerFiles runs image-syncer's images and auth files from
// testdata (YAML, then JSON: the second run finds everything there).
func TestSyncImageSyncerFiles(t *testing.T) {
	e := newSyncEnv(t)
	e.push(t, "library/base:latest", e.imgs["library/base:1"])
	t.Setenv("FERRY_TEST_PASS", syncPass)
	dir := filepath.Join(regtest.TestdataDir(), "image-syncer")
	for i, ext := range []string{"yaml", "json"} {
		var files []string
		for _, name := range []string{"images", "auth"} {
			b, err := os.ReadFile(filepath.Join(dir, name+"."+ext))
			if err != nil {
				t.Fatal(err)
			}
			s := strings.ReplaceAll(strings.ReplaceAll(string(b), "source.test:5000", e.src.Host), "target.test:5000", e.a.Host)
			f := filepath.Join(e.dir, name+"."+ext)
			_ = os.WriteFile(f, []byte(s), 0o600)
			files = append(files, f)
		}
		code, stdout, stderr := ferry(t, "", "--no-progress", "sync", "--json", "--images", files[0], "--auth", files[1],
			"--target", e.b.Host+"/def", "--ca-file", e.b.CAFile)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s\n%s", ext, code, stdout, stderr)
		}
		rep := decodeReport(t, stdout)
		// app: every tag (1); base: 1 and latest; versions: 3 tags to two repos; tools: 1
		if rep.Copies != 1+2+6+1 || rep.Failed != 0 || (i == 1 && rep.UpToDate != rep.Copies) {
			t.Errorf("%s: %+v", ext, rep)
		}
	}
	a := e.a.Host + "/"
	if e.digest(t, a+"mirror/app:1") != e.imgs["team/app:1"].Digest() || e.digest(t, a+"mirror/base:latest") != e.imgs["library/base:1"].Digest() {
		t.Error("app or base missing at A")
	}
	for _, repo := range []string{"mirror/v1", "other/v1"} {
		if got := e.tags(t, a+repo); !slices.Equal(got, []string{"v1.0.0", "v1.10.0", "v1.2.0"}) {
			t.Errorf("%s: %v", repo, got)
		}
	}
	if e.digest(t, e.b.Host+"/def/team/tools:1") != e.imgs["team/tools:1"].Digest() {
		t.Error("the default destination did not get team/tools:1")
	}
}

func TestSyncUsageErrors(t *testing.T) {
	dir := t.TempDir()
	images := filepath.Join(dir, "images.yaml")
	_ = os.WriteFile(images, []byte("localhost:5000/a/b: \"\"\n"), 0o600)
	for _, tt := range []struct {
		args []string
		msg  string
	}{
		{[]string{"sync", "localhost:5000/a:1"}, "--target"},
		{[]string{"sync", "--target", "docker", "localhost:5000/a:1"}, "registries"},
		{[]string{"sync", "--target", "localhost:5001"}, "no images"},
		{[]string{"sync", "--target", "localhost:5001", "--auth", "a.yaml", "localhost:5000/a:1"}, "--images"},
		{[]string{"sync", "--images", images}, "no destination"},
		{[]string{"sync", "--target", "localhost:5001", "--watch", "10ms", "localhost:5000/a:1"}, "--watch"},
		{[]string{"sync", "--target", "localhost:5001", "localhost:5000/a:/(/"}, "regular expression"},
		{[]string{"resolve"}, "no images"},
	} {
		code, _, stderr := ferry(t, "", tt.args...)
		if code != exitUsage || !strings.Contains(stderr, tt.msg) {
			t.Errorf("%v: exit %d, stderr %q (want %q)", tt.args, code, stderr, tt.msg)
		}
	}
	// two sources onto one tag: refused before any copy (every registry
	// of a sync is pinged first, so these must be up)
	host, stop := regtest.Olareg()
	defer stop()
	args := []string{"sync", "--target", host, "--watch", "1s", host + "/a/app:1 -> x/app:1", host + "/b/app:1 -> x/app:1"}
	if code, _, stderr := ferry(t, "", args...); code != exitUsage || !strings.Contains(stderr, "both") {
		t.Errorf("%v: exit %d, stderr %q (want both)", args, code, stderr)
	}
}

// TestSyncWatchFailedRoundGoesOn: a round whose target refuses manifests
// is reported as failed; the next round finishes the image (its blobs
// landed in the first).
func TestSyncWatchFailedRoundGoesOn(t *testing.T) {
	src, dst, img := olaregPair(t)
	p := regtest.StartFaultProxy(t, dst)
	p.Add(regtest.Fault{Method: "PUT", Path: "/manifests/", Action: regtest.Status(400, "")})
	report := filepath.Join(t.TempDir(), "report.jsonl")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var stderr strings.Builder
	go func() {
		done <- run(ctx, []string{"ferry", "--no-progress", "sync", "--retries", "1", "--target", p.Host, "--watch", "1s", "--report", report, src + "/team/app:1"}, strings.NewReader(""), io.Discard, &stderr)
	}()
	var reps []syncReport
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, _ := os.ReadFile(report)
		reps = nil
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if l != "" {
				reps = append(reps, decodeReport(t, l))
			}
		}
		if len(reps) == 1 {
			p.Reset() // the target recovers
		}
		if len(reps) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reports %+v\n%s", reps, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	if reps[0].Failed != 1 || len(reps[0].Failures) != 1 || reps[0].Copies != 0 {
		t.Errorf("round 1: %+v", reps[0])
	}
	if reps[0].Pushed != len(img.Blobs) || reps[1].Failed != 0 || reps[1].Copies != 1 || reps[1].Pushed != 0 || reps[1].Manifests != 1 {
		t.Errorf("round 2: %+v", reps[1])
	}
}
