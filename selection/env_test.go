package selection_test

import (
	"testing"

	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
	"github.com/ferry-oss/ferry/selection"
)

// env is a source registry seeded with images and a client for it.
type env struct {
	host string
	reg  *registry.Registry
	imgs map[string]*regtest.Image
}

func newReg(t testing.TB, hosts ...string) *registry.Registry { return regtest.Client(t, hosts...) }

func (e *env) specs(t testing.TB, names ...string) []selection.ImageSpec {
	return regtest.Specs(t, e.host, names...)
}
