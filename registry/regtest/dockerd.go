package regtest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Dockerd is a Docker engine started for a test.
type Dockerd struct {
	Socket string
	Dir    string
	cmd    *exec.Cmd
}

// StartDockerd starts Debian's dockerd with no networking on a private
// socket and data root, waits until it answers, and stops it by PID when
// the test ends. It needs root.
func StartDockerd(t testing.TB) *Dockerd {
	t.Helper()
	bin := Need(t, "dockerd")
	dir := daemonDir(t, "dockerd", "fd")
	d := &Dockerd{Socket: filepath.Join(dir, "docker.sock"), Dir: dir}
	d.cmd = startLogged(t, filepath.Join(dir, "dockerd.log"), bin, "--iptables=false", "--ip6tables=false", "--bridge=none",
		"--host=unix://"+d.Socket, "--data-root="+filepath.Join(dir, "root"),
		"--exec-root="+filepath.Join(dir, "exec"), "--pidfile="+filepath.Join(dir, "pid"))
	t.Cleanup(d.Stop)
	client := d.Client()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := client.Get("http://docker/_ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "dockerd.log"))
			t.Fatalf("dockerd did not start: %v\n%s", err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Client talks HTTP to the engine's socket.
func (d *Dockerd) Client() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var nd net.Dialer
			return nd.DialContext(ctx, "unix", d.Socket)
		},
	}}
}

// Stop ends dockerd by its PID and removes its directory.
func (d *Dockerd) Stop() {
	if d.cmd == nil {
		return
	}
	stopProcess(d.cmd, 20*time.Second)
	d.cmd = nil
	// the data root may hold mounts from overlay layers
	_ = exec.Command("sh", "-c", fmt.Sprintf("grep -o ' %s[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l", d.Dir)).Run()
	_ = os.RemoveAll(d.Dir)
}

// daemonDir skips (or, under CI, fails) a test that needs root for a
// daemon when it is not root, and makes the daemon's directory: short,
// under /tmp, as unix socket paths are limited.
func daemonDir(t testing.TB, daemon, prefix string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s needs root", daemon)
		}
		t.Skipf("%s needs root", daemon)
	}
	dir, err := os.MkdirTemp("/tmp", prefix)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// startLogged starts bin with args in its own process group, its output
// in logFile; the caller stops it (stopProcess).
func startLogged(t testing.TB, logFile, bin string, args ...string) *exec.Cmd {
	t.Helper()
	log, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}
