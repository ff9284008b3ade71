package regtest

import (
	"testing"
	"time"

	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/selection"
)

// Client is a registry client for hosts that retries once, 10 ms later.
func Client(t testing.TB, hosts ...string) *registry.Registry {
	t.Helper()
	reg, err := registry.New(registry.Options{Registries: hosts, Retries: 1, RetryDelay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// Specs parses list lines (paths on host, "SRC -> DST" renames).
func Specs(t testing.TB, host string, lines ...string) []selection.ImageSpec {
	t.Helper()
	var out []selection.ImageSpec
	for _, n := range lines {
		s, err := selection.ParseImage(n, host)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}
