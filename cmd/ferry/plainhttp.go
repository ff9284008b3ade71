package main

import (
	"github.com/urfave/cli/v2"

	"github.com/ferry-oss/ferry/bundle"
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
func (e *env) markPlainImages(images []bundle.ImageSpec) {
	for _, s := range images {
		if s.PlainHTTP {
			e.markPlain(s.Source.Registry)
		}
	}
}
