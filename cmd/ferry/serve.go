package main

import (
	"crypto/tls"
	"errors"
	"net"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ferry-oss/ferry/registry/serve"
)

func serveCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "serve",
		Usage:     "serve bundles as a read-only registry (no unpacking)",
		ArgsUsage: "META ...",
		Description: `Serves the images of one or more bundles (an increment with its base
bundles) as a read-only OCI registry over plain HTTP, straight from the
parts. Repositories are named as upload would name them at a target
(under --namespace). Every blob's digest is checked while it streams out.
HTTPS with --tls-cert and --tls-key. With --key (or cfg.yaml verifyKey and
requireSignature) every meta file must carry a valid signature, as for
verify and upload. At most 128 MiB of blob streams are served at once
(past it, 503 with Retry-After); a client that stops reading is cut after
60 s. Stops gracefully on Ctrl-C or SIGTERM.

Examples:
  ferry serve out/ferry_full_20261124T101500Z_meta.yaml
  ferry serve out/ferry_full_*_meta.yaml out/ferry_incr_*_meta.yaml --addr 0.0.0.0:5000 --namespace mirror
  crane pull --insecure 127.0.0.1:5000/library/alpine:3.19 alpine.tar`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "addr", Value: "127.0.0.1:5000", Usage: "listen address (host:port; port 0 picks a free one)"},
			&cli.StringFlag{Name: "namespace", Usage: "put every repository under this path, like upload's --target REGISTRY/NAMESPACE"},
			&cli.StringFlag{Name: "tls-cert", Usage: "serve HTTPS with this certificate (PEM; with --tls-key)"},
			&cli.StringFlag{Name: "tls-key", Usage: "private key (PEM) of --tls-cert"},
			keyFlag(),
		},
		Action: func(c *cli.Context) error {
			if c.NArg() < 1 {
				return usagef("serve takes one or more meta files")
			}
			if (c.String("tls-cert") == "") != (c.String("tls-key") == "") {
				return usagef("--tls-cert and --tls-key go together")
			}
			set, err := e.openSetChecked(c, c.Args().Slice())
			if err != nil {
				return err
			}
			reg, err := serve.New(set, serve.Options{Namespace: c.String("namespace"), Log: e.log})
			if errors.Is(err, serve.ErrNamespace) {
				return usageError{err}
			}
			if err != nil {
				return err
			}
			l, err := net.Listen("tcp", c.String("addr"))
			if err != nil {
				return err
			}
			scheme := "http"
			if cert := c.String("tls-cert"); cert != "" {
				kp, err := tls.LoadX509KeyPair(cert, c.String("tls-key"))
				if err != nil {
					l.Close()
					return usagef("--tls-cert/--tls-key: %v", err)
				}
				l = tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS12})
				scheme = "https"
			}
			tr().Fprintf(e.stdout, "serving %d bundle(s), %d repositories at %s://%s (read-only; Ctrl-C stops)\n", len(set.Bundles), len(reg.Repositories()), scheme, l.Addr())
			err = serve.Serve(c.Context, l, serve.AccessLog(reg, e.log), 10*time.Second)
			e.log.Info("stopped serving", "addr", l.Addr().String())
			return err
		},
	}
}
