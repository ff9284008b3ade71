package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/oci"
	"github.com/ferry-oss/ferry/registry/containerd"
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

// isContainerd says that parseTarget's socket names containerd.
func isContainerd(sock string) bool { return strings.HasPrefix(sock, containerdPrefix) }

// containerdNamespaceFlag is upload's --containerd-namespace.
func containerdNamespaceFlag() cli.Flag {
	return &cli.StringFlag{Name: "containerd-namespace", Value: containerd.DefaultNamespace, EnvVars: []string{"CONTAINERD_NAMESPACE"},
		Usage: "containerd target: the namespace to load into (k8s.io is the kubelet's)"}
}

// containerdSink connects to containerd at t.sock and plans the bundle's
// images (t.platform: comma separated platforms to keep), named as for
// connectTarget.
func (e *env) containerdSink(ctx context.Context, bd *bundle.Bundle, t target) (oci.Sink, string, func(string) string, error) {
	path := strings.TrimPrefix(t.sock, containerdPrefix)
	opts := containerd.Options{Address: path, Namespace: t.namespace, Log: e.log}
	if t.platform != "" {
		plats, _, err := parsePlatforms([]string{t.platform})
		if err != nil {
			return nil, "", nil, err
		}
		opts.Platforms = plats
	}
	st, err := containerd.New(ctx, bd.Meta, opts)
	if err != nil {
		return nil, "", nil, err
	}
	name := fmt.Sprintf("containerd %s (namespace %s)", containerd.SocketPath(path), st.Namespace())
	t.host.Registry = "docker.io"
	return st, name, runtimeNames(name), nil
}

// runtimeNames rewrites the targets Upload logs for a runtime
// (docker.io/REPOSITORY) into the repository and the runtime's name.
func runtimeNames(name string) func(string) string {
	return func(v string) string {
		if repo, ok := strings.CutPrefix(v, "docker.io/"); ok {
			return repo + " (" + name + ")"
		}
		return v
	}
}

// closeSink ends a sink that holds something (a runtime's connection, an
// uncommitted load or lease).
func closeSink(s oci.Sink) {
	if c, ok := s.(io.Closer); ok {
		_ = c.Close()
	}
}
