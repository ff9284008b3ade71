package regtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Containerd is a containerd started for a test.
type Containerd struct {
	Socket string
	Dir    string
	ctr    string
}

// StartContainerd starts containerd (CRI off) on a private socket and
// root, waits until ctr reaches it, and stops it by PID when the test
// ends. It needs root.
func StartContainerd(t testing.TB) *Containerd {
	t.Helper()
	ctr := Need(t, "ctr")
	bin := Need(t, "containerd")
	dir := daemonDir(t, "containerd", "fc")
	c := &Containerd{Socket: filepath.Join(dir, "c.sock"), Dir: dir, ctr: ctr}
	cfg := filepath.Join(dir, "config.toml")
	_ = os.WriteFile(cfg, []byte(fmt.Sprintf("version = 2\nroot = %q\nstate = %q\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = %q\n",
		filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.Socket)), 0o644)
	cmd := startLogged(t, filepath.Join(dir, "containerd.log"), bin, "--config", cfg)
	t.Cleanup(func() {
		stopProcess(cmd, 15*time.Second)
		_ = exec.Command("sh", "-c", fmt.Sprintf("grep -o ' %s[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l", dir)).Run()
		_ = os.RemoveAll(dir)
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if exec.Command(ctr, "--address", c.Socket, "version").Run() == nil {
			return c
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "containerd.log"))
			t.Fatalf("containerd did not start:\n%s", b)
		}
	}
}

// Ctr runs ctr against this containerd and returns its output.
func (c *Containerd) Ctr(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(c.ctr, append([]string{"--address", c.Socket}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ctr %v: %v\n%s", args, err, out)
	}
	return string(out)
}
