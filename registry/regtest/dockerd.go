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
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("dockerd needs root")
		}
		t.Skip("dockerd needs root")
	}
	dir, err := os.MkdirTemp("/tmp", "fd") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	d := &Dockerd{Socket: filepath.Join(dir, "docker.sock"), Dir: dir}
	log, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	d.cmd = exec.Command(bin, "--iptables=false", "--ip6tables=false", "--bridge=none",
		"--host=unix://"+d.Socket, "--data-root="+filepath.Join(dir, "root"),
		"--exec-root="+filepath.Join(dir, "exec"), "--pidfile="+filepath.Join(dir, "pid"))
	d.cmd.Stdout, d.cmd.Stderr = log, log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
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
