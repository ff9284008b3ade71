package transfer_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/selection"
	"github.com/ferry-oss/ferry/transfer"
)

func TestRegistryTargetAndRenames(t *testing.T) {
	m := &meta.Meta{Images: []meta.Image{
		{Source: "src.example:5000/team/app:1", Repository: "team/app", Tag: "1"},
		{Source: "src.example:5000/library/base:1", Repository: "library/base", Tag: "1"},
	}}
	specs, err := selection.ParseList(stringsReader("src.example:5000/team/app:1 -> apps/app\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	renames, err := transfer.Renames(m, specs)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := ref.NewHost("reg.local:5000")
	target := transfer.RegistryTarget(host, "mirror", renames)
	tests := map[string]string{
		"team/app":     "reg.local:5000/mirror/apps/app",
		"library/base": "reg.local:5000/mirror/library/base",
	}
	for repo, want := range tests {
		r, err := target(repo)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Registry + "/" + r.Repository; got != want {
			t.Errorf("%s -> %s, want %s", repo, got, want)
		}
	}
	bad, _ := selection.ParseList(stringsReader("src.example:5000/nope:1 -> x/y\n"), "")
	if _, err := transfer.Renames(m, bad); !errors.Is(err, selection.ErrBadList) {
		t.Errorf("rename of an image not in the bundle: %v", err)
	}
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }
