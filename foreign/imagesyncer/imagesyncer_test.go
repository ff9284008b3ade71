package imagesyncer_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/ferry-oss/ferry/foreign/imagesyncer"
	"github.com/ferry-oss/ferry/registry/regtest"
)

func TestTestdataFiles(t *testing.T) {
	t.Setenv("FERRY_TEST_PASS", "s3cret")
	dir := filepath.Join(regtest.TestdataDir(), "image-syncer")
	wantRoutes := []string{
		"source.test:5000/team/app:* -> mirror/app",
		"source.test:5000/library/base:1,latest -> mirror/base",
		`source.test:5000/team/versions:/^v1\./ -> mirror/v1`,
		`source.test:5000/team/versions:/^v1\./ -> other/v1`,
		"source.test:5000/team/tools:1 -> ns/team/tools",
	}
	for _, ext := range []string{"yaml", "json"} {
		b, err := os.ReadFile(filepath.Join(dir, "images."+ext))
		if err != nil {
			t.Fatal(err)
		}
		rules, err := imagesyncer.ParseImages(b)
		if err != nil {
			t.Fatalf("%s: %v", ext, err)
		}
		var got []string
		for _, r := range rules {
			for _, d := range r.Destinations {
				rt, err := imagesyncer.RouteOf(r.Source, d, "default.test/ns")
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, rt.Line)
				if want := map[bool]string{true: "default.test", false: "target.test:5000"}[d == ""]; rt.Host != want {
					t.Errorf("%s -> %q: host %s", r.Source, d, rt.Host)
				}
			}
		}
		if !reflect.DeepEqual(got, wantRoutes) {
			t.Errorf("%s: routes\n%q\nwant\n%q", ext, got, wantRoutes)
		}
		b, err = os.ReadFile(filepath.Join(dir, "auth."+ext))
		if err != nil {
			t.Fatal(err)
		}
		auth, err := imagesyncer.ParseAuth(b)
		if err != nil {
			t.Fatalf("%s: %v", ext, err)
		}
		hosts, err := imagesyncer.Hosts(auth)
		if err != nil {
			t.Fatal(err)
		}
		want := []imagesyncer.Host{
			{Registry: "source.test:5000", Auth: imagesyncer.Auth{Insecure: true}},
			{Registry: "target.test:5000", Auth: imagesyncer.Auth{Username: "ferry", Password: "s3cret"}},
		}
		if !reflect.DeepEqual(hosts, want) {
			t.Errorf("%s: hosts %+v", ext, hosts)
		}
	}
}

func TestErrors(t *testing.T) {
	for _, bad := range []string{"- a\n- b\n", "a: {b: c}\n", "a: []\n", "a: [b, {c: d}]\n", "{"} {
		if _, err := imagesyncer.ParseImages([]byte(bad)); !errors.Is(err, imagesyncer.ErrConfig) {
			t.Errorf("images %q: %v", bad, err)
		}
	}
	for _, bad := range []string{"a: {user: x}\n", "a: b\n"} {
		if _, err := imagesyncer.ParseAuth([]byte(bad)); !errors.Is(err, imagesyncer.ErrConfig) {
			t.Errorf("auth %q: %v", bad, err)
		}
	}
	if _, err := imagesyncer.Hosts(map[string]imagesyncer.Auth{"r/a": {Username: "x"}, "r/b": {Username: "y"}}); !errors.Is(err, imagesyncer.ErrConfig) {
		t.Errorf("two credentials for one host: %v", err)
	}
	if a, err := imagesyncer.ParseAuth(nil); err != nil || len(a) != 0 {
		t.Errorf("empty auth file: %v %v", a, err)
	}
	if _, err := imagesyncer.RouteOf("r.io/a", "", ""); !errors.Is(err, imagesyncer.ErrConfig) {
		t.Errorf("no destination: %v", err)
	}
}

func FuzzParseImages(f *testing.F) {
	f.Add("a/b: c/d\n")
	f.Add(`{"a/b:1,2": ["x/y", ""]}`)
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = imagesyncer.ParseAuth([]byte(s)) // must not panic
		rules, err := imagesyncer.ParseImages([]byte(s))
		if err != nil {
			return
		}
		for _, r := range rules {
			if r.Source == "" || len(r.Destinations) == 0 {
				t.Fatalf("accepted %+v", r)
			}
		}
	})
}
