package main

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
)

// TestJSONResults: with --json, stdout is exactly one JSON object.
func TestJSONResults(t *testing.T) {
	src, stop := regtest.Olareg()
	defer stop()
	dst, stop2 := regtest.Olareg()
	defer stop2()
	reg, err := registry.New(registry.Options{Registries: []string{src, dst}})
	if err != nil {
		t.Fatal(err)
	}
	img := regtest.Fixtures()["team/app:1"]
	r, _ := ref.New(src + "/team/app:1")
	if err := regtest.Push(context.Background(), reg, r, img); err != nil {
		t.Fatal(err)
	}
	decode := func(what, stdout string, v any) {
		t.Helper()
		if err := json.Unmarshal([]byte(stdout), v); err != nil {
			t.Fatalf("%s: stdout is not one JSON object: %v\n%s", what, err, stdout)
		}
	}
	code, stdout, stderr := ferry(t, "", "--no-progress", "save", "--json", src+"/team/app:1", "-o", t.TempDir())
	if code != 0 {
		t.Fatalf("save: %d %s", code, stderr)
	}
	var s saveJSON
	decode("save", stdout, &s)
	if !s.OK || s.Meta == "" || s.Images != 1 || s.Blobs != 3 || len(s.Failures) != 0 {
		t.Errorf("save: %+v", s)
	}
	code, stdout, _ = ferry(t, "", "verify", "--json", s.Meta)
	var v verifyJSON
	decode("verify", stdout, &v)
	if code != 0 || !v.OK || v.Blobs != 3 || v.ID != s.ID {
		t.Errorf("verify: %d %+v", code, v)
	}
	code, stdout, _ = ferry(t, "", "inspect", "--json", s.Meta)
	var in inspectJSON
	decode("inspect", stdout, &in)
	if code != 0 || len(in.Images) != 1 || in.Images[0].Digest != img.Digest().String() || len(in.Parts) == 0 {
		t.Errorf("inspect: %d %+v", code, in)
	}
	code, stdout, stderr = ferry(t, "", "--no-progress", "upload", "--json", s.Meta, "--target", dst+"/m")
	var u uploadJSON
	decode("upload", stdout, &u)
	if code != 0 || !u.OK || u.Pushed != 3 || u.Images != 1 {
		t.Errorf("upload: %d %+v\n%s", code, u, stderr)
	}
	// a failed save still prints its object
	code, stdout, _ = ferry(t, "", "--no-progress", "save", "--json", "--retries", "0", src+"/team/nope:1", "-o", t.TempDir())
	var f saveJSON
	decode("failed save", stdout, &f)
	if code != exitFailure || f.OK || len(f.Failures) != 1 {
		t.Errorf("failed save: %d %+v", code, f)
	}
}
