package regtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Podman returns a runner of podman with a private storage (vfs), run
// root and config home, removed when the test ends; env are more
// variables for it (CONTAINERS_REGISTRIES_CONF=...). The runner fails the
// test when podman does, and returns its trimmed output. It needs root.
func Podman(t testing.TB, env ...string) func(args ...string) string {
	t.Helper()
	podman := Need(t, "podman")
	dir := daemonDir(t, "podman with a private root", "fp")
	global := []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"), "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none"}
	t.Cleanup(func() {
		_ = exec.Command(podman, append(global, "system", "reset", "-f")...).Run()
		_ = os.RemoveAll(dir)
	})
	return func(args ...string) string {
		t.Helper()
		cmd := exec.Command(podman, append(global, args...)...)
		cmd.Env = append(append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config")), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("podman %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
}
