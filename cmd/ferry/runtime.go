package main

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/oci"
	"github.com/ferry-oss/ferry/registry/containerd"
	"github.com/ferry-oss/ferry/registry/docker"
)

// containerdPrefix marks, in parseTarget's socket, a containerd target.
const containerdPrefix = "containerd:"

// containerdTarget parses containerd[:///path/to/containerd.sock] into the
// socket parseTarget returns for a runtime.
func containerdTarget(s string) (string, bool) {
	if s != "containerd" && !strings.HasPrefix(s, containerdPrefix) {
		return "", false
	}
	sock := strings.TrimPrefix(strings.TrimPrefix(s, "containerd"), ":")
	return containerdPrefix + strings.TrimPrefix(sock, "//"), true
}

// containerdNamespaceFlag is upload's --containerd-namespace.
func containerdNamespaceFlag() cli.Flag {
	return &cli.StringFlag{Name: "containerd-namespace", Value: containerd.DefaultNamespace, EnvVars: []string{"CONTAINERD_NAMESPACE"},
		Usage: "containerd target: the namespace to load into (k8s.io is the kubelet's)"}
}

// runtimeSink connects to the container runtime parseTarget named (a
// Docker engine, or containerd when sock has containerdPrefix) and returns
// it with its name for messages and a logger that shows image names as
// the runtime holds them. The caller closes the sink.
func (e *env) runtimeSink(c *cli.Context, bd *bundle.Bundle, sock string, renames map[string]string) (oci.Sink, string, *slog.Logger, error) {
	path, isContainerd := strings.CutPrefix(sock, containerdPrefix)
	if !isContainerd {
		sink, err := e.dockerSink(c, bd, sock)
		if err != nil {
			return nil, "", nil, err
		}
		// the engine names images like Docker Hub does; the log must not
		// read like a push to Docker Hub
		name := "docker engine " + docker.SocketName(sock)
		return sink, name, e.runtimeLogger("docker.io/", name), nil
	}
	if len(renames) > 0 {
		return nil, "", nil, usagef("--list renames repositories at a registry; containerd keeps the source names")
	}
	opts := containerd.Options{Address: path, Namespace: c.String("containerd-namespace"), Log: e.log}
	if p := c.String("platform"); p != "" {
		plats, _, err := parsePlatforms([]string{p})
		if err != nil {
			return nil, "", nil, err
		}
		opts.Platforms = plats
	}
	st, err := containerd.New(c.Context, bd.Meta, opts)
	if err != nil {
		return nil, "", nil, err
	}
	name := fmt.Sprintf("containerd %s (namespace %s)", containerd.SocketPath(path), st.Namespace())
	return st, name, e.runtimeLogger("docker.io/", name), nil
}

// runtimeLogger rewrites the targets Upload logs (prefix + repository)
// into the repository and the runtime's name.
func (e *env) runtimeLogger(prefix, name string) *slog.Logger {
	return e.logger(func(v string) string {
		if repo, ok := strings.CutPrefix(v, prefix); ok {
			return repo + " (" + name + ")"
		}
		return v
	})
}
