package regtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// DistributionOptions choose a docker-registry variant.
type DistributionOptions struct {
	// User and Pass turn on htpasswd basic auth (needs apache2-utils).
	User, Pass string
	// TLS serves HTTPS with a self-signed certificate for 127.0.0.1.
	TLS bool
	// V3 runs distribution v3 (its `registry` binary) instead of
	// Debian's docker-registry 2.8.
	V3 bool
	// StorageSize, when set, puts the registry's storage on a tmpfs of
	// this many bytes (a full disk at the target; needs root).
	StorageSize int64
}

// distributionV3 is the go install path of distribution v3's registry.
const distributionV3 = "github.com/distribution/distribution/v3/cmd/registry@v3.1.2"

// Distribution is a running Debian docker-registry (distribution 2.8).
type Distribution struct {
	Host   string // 127.0.0.1:port
	CAFile string // with TLS: the self-signed certificate
	Dir    string
	cmd    *exec.Cmd
	mount  string // the tmpfs of StorageSize, unmounted by Stop
}

// Need returns the path of a binary a test needs; it skips the test when
// it is missing, except under CI (CI=true), where .ci/run installs it and
// a missing binary is a failure.
func Need(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	for _, dir := range []string{"/usr/bin", "/usr/sbin"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return filepath.Join(dir, name)
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (.ci/run installs it)", name)
	}
	t.Skipf("%s is not installed", name)
	return ""
}

// NeedGoBinary returns the path of a binary installed with go install
// (pkg names it, for the message): $(go env GOPATH)/bin first, then PATH.
// Like Need, it skips the test when the binary is missing, except under CI.
func NeedGoBinary(t testing.TB, name, pkg string) string {
	t.Helper()
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	if gopath != "" {
		p := filepath.Join(strings.Split(gopath, string(os.PathListSeparator))[0], "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (go install %s; .ci/run installs it)", name, pkg)
	}
	t.Skipf("%s is not installed (go install %s)", name, pkg)
	return ""
}

// StartDistribution starts docker-registry on a free loopback port and
// stops it (by PID) when the test ends.
func StartDistribution(t testing.TB, opts DistributionOptions) *Distribution {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: no docker-registry")
	}
	bin := ""
	if opts.V3 {
		bin = NeedGoBinary(t, "registry", distributionV3)
	} else {
		bin = Need(t, "docker-registry")
	}
	dir := t.TempDir()
	if opts.StorageSize > 0 && os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("a tmpfs for the registry storage needs root")
		}
		t.Skip("a tmpfs for the registry storage needs root")
	}
	d, err := startDistribution(bin, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	return d
}

func startDistribution(bin, dir string, opts DistributionOptions) (_ *Distribution, err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	d := &Distribution{Host: addr, Dir: dir}
	if opts.StorageSize > 0 {
		data := filepath.Join(dir, "data")
		if err := MountTmpfs(data, opts.StorageSize); err != nil {
			return nil, err
		}
		d.mount = data
		defer func() {
			if err != nil {
				d.Stop() // unmounts
			}
		}()
	}
	cfgFile, err := d.writeConfig(opts)
	if err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		return nil, err
	}
	defer log.Close()
	d.cmd = exec.Command(bin, "serve", cfgFile)
	d.cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none") // v3 exports traces otherwise
	d.cmd.Stdout, d.cmd.Stderr = log, log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	if err := d.waitReady(opts.TLS); err != nil {
		return nil, err
	}
	return d, nil
}

// writeConfig writes the registry's config.yml into d.Dir (with TLS, a
// self-signed certificate; with a user, an htpasswd file) and returns its
// path.
func (d *Distribution) writeConfig(opts DistributionOptions) (string, error) {
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(d.Dir, "data"), d.Host)
	if opts.TLS {
		cert, key, err := selfSigned(d.Dir)
		if err != nil {
			return "", err
		}
		d.CAFile = cert
		cfg += fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", cert, key)
	}
	if opts.User != "" {
		htpasswd, err := exec.LookPath("htpasswd")
		if err != nil {
			return "", fmt.Errorf("basic auth needs htpasswd (apache2-utils): %w", err)
		}
		out, err := exec.Command(htpasswd, "-Bbn", opts.User, opts.Pass).Output()
		if err != nil {
			return "", fmt.Errorf("htpasswd: %w", err)
		}
		pw := filepath.Join(d.Dir, "htpasswd")
		if err := os.WriteFile(pw, out, 0o600); err != nil {
			return "", err
		}
		cfg += fmt.Sprintf("auth:\n  htpasswd:\n    realm: ferry\n    path: %s\n", pw)
	}
	cfgFile := filepath.Join(d.Dir, "config.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		return "", err
	}
	return cfgFile, nil
}

// waitReady waits (15 s at most) until the registry answers /v2/; one that
// does not is stopped.
func (d *Distribution) waitReady(useTLS bool) error {
	scheme := "http"
	client := &http.Client{Timeout: time.Second}
	if useTLS {
		scheme = "https"
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //#nosec G402 -- readiness probe only
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := client.Get(scheme + "://" + d.Host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		if time.Now().After(deadline) {
			d.Stop()
			b, _ := os.ReadFile(filepath.Join(d.Dir, "registry.log"))
			return fmt.Errorf("docker-registry did not start: %v\n%s", err, strings.TrimSpace(string(b)))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends the registry by its PID (and unmounts its tmpfs).
func (d *Distribution) Stop() {
	if d.cmd != nil && d.cmd.Process != nil {
		stopProcess(d.cmd, 5*time.Second)
		d.cmd = nil
	}
	if d.mount != "" {
		_ = syscall.Unmount(d.mount, 0)
		d.mount = ""
	}
}

// MountTmpfs mounts a tmpfs of size bytes at dir (created if missing), for
// tests of a full disk. It needs root; the caller unmounts it.
func MountTmpfs(dir string, size int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		return fmt.Errorf("mounting a tmpfs at %s (needs root): %w", dir, err)
	}
	return nil
}

// NeedTmpfs mounts a tmpfs of size bytes at dir for the test and unmounts
// it at the end; without the privilege it skips the test, except under CI.
func NeedTmpfs(t testing.TB, dir string, size int64) {
	t.Helper()
	if err := MountTmpfs(dir, size); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, 0) })
}

// stopProcess sends SIGTERM to a process started with its own process
// group, waits up to grace, then kills the whole group.
func stopProcess(cmd *exec.Cmd, grace time.Duration) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and localhost.
func selfSigned(dir string) (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "ferry test registry"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

// Tags lists the tags of repo of d straight from its HTTP API (see TagsAt).
func Tags(t testing.TB, d *Distribution, repo string) []string {
	t.Helper()
	if d.CAFile != "" {
		return TagsAt(t, "https://"+d.Host, repo)
	}
	return TagsAt(t, "http://"+d.Host, repo)
}

// TagsAt lists the tags of repo at a registry's base URL straight from its
// HTTP API (no ferry code in between). The registry must not require auth;
// TLS certificates are not checked (loopback test registries).
func TagsAt(t testing.TB, base, repo string) []string {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //#nosec G402 -- test helper on loopback
	resp, err := client.Get(base + "/v2/" + repo + "/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	var tl struct{ Tags []string }
	if err := json.NewDecoder(resp.Body).Decode(&tl); err != nil {
		t.Fatalf("tags of %s: %s: %v", repo, resp.Status, err)
	}
	return tl.Tags
}
