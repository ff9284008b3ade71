package main

import (
	"context"
	"errors"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/selection"
)

// plainHTTPFlag is global: registries not in cfg.yaml are reached over
// plain HTTP (crane's and oras's --plain-http).
var plainHTTPFlag = &cli.BoolFlag{Name: "plain-http", Usage: "reach registries not in cfg.yaml over plain HTTP (also: write them http://HOST[:PORT])"}

// markPlain records a registry host that was written http://HOST: it is
// reached over plain HTTP, without trying TLS first.
func (e *env) markPlain(host string) {
	if e.plain == nil {
		e.plain = map[string]bool{}
	}
	e.plain[host] = true
}

// isPlain reports whether host is reached over plain HTTP: written with
// http://, or any host with --plain-http.
func (e *env) isPlain(host string) bool { return e.plainAll || e.plain[host] }

// markPlainImages records the registries of images written http://.
func (e *env) markPlainImages(images []selection.ImageSpec) {
	for _, s := range images {
		if s.PlainHTTP {
			e.markPlain(s.Source.Registry)
		}
	}
}

// checkSync pings every registry of a sync before any work: one that
// cannot work as configured (TLS on plain HTTP, an untrusted certificate,
// an unknown host, a token realm elsewhere) fails the sync at once; one
// that is down (connection refused) only fails its own copies, and the
// other targets complete.
func (e *env) checkSync(ctx context.Context, reg *registry.Registry, hosts []string) error {
	seen := map[string]bool{}
	for _, h := range hosts {
		if seen[h] {
			continue
		}
		seen[h] = true
		err := reg.Check(ctx, h)
		if errors.Is(err, syscall.ECONNREFUSED) {
			e.log.Warn("registry is down: its copies will fail", "err", err)
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}
