package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/regclient/regclient/types/ref"

	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/regtest"
)

// sshKey makes an ed25519 key pair with ssh-keygen.
func sshKey(t *testing.T, dir, name string) (priv, pub string) {
	t.Helper()
	bin, err := exec.LookPath("ssh-keygen")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("ssh-keygen is not installed (openssh-client)")
		}
		t.Skip("ssh-keygen is not installed")
	}
	priv = filepath.Join(dir, name)
	if out, err := exec.Command(bin, "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", priv).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	return priv, priv + ".pub"
}

// TestSignedBundleCLI: save --sign-key writes META.sig that ssh-keygen
// verifies; verify and upload with --key accept it, and refuse (exit 1,
// nothing pushed) a tampered meta file, a signature by another key and an
// unsigned bundle; a meta file signed with ssh-keygen is accepted.
func TestSignedBundleCLI(t *testing.T) {
	dir := t.TempDir()
	key, pub := sshKey(t, dir, "ferry")
	_, otherPub := sshKey(t, dir, "other")
	host := olaregWith(t, "team/app:1")
	out := filepath.Join(dir, "out")
	code, stdout, stderr := ferry(t, "", "--no-progress", "save", "--mkdir", "-o", out, "--sign-key", key, host+"/team/app:1")
	if code != 0 {
		t.Fatalf("save: %d\n%s", code, stderr)
	}
	metaPath := strings.TrimSpace(stdout)
	raw, err := os.ReadFile(metaPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(metaPath + ".sig"); err != nil {
		t.Fatalf("no signature: %v", err)
	}
	// ssh-keygen on a bare jump host
	allowed := filepath.Join(dir, "allowed_signers")
	pk, _ := os.ReadFile(pub)
	_ = os.WriteFile(allowed, []byte("ferry "+string(pk)), 0o644)
	cmd := exec.Command("ssh-keygen", "-Y", "verify", "-f", allowed, "-I", "ferry", "-n", "ferry", "-s", metaPath+".sig")
	cmd.Stdin = bytes.NewReader(raw)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -Y verify: %v\n%s", err, b)
	}
	if code, stdout, stderr := ferry(t, "", "verify", "--key", pub, metaPath); code != 0 || !strings.Contains(stdout, "OK") {
		t.Fatalf("verify --key: %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, _ := ferry(t, "", "inspect", metaPath); code != 0 || !strings.Contains(stdout, metaPath+".sig") {
		t.Fatalf("inspect does not show the signature:\n%s", stdout)
	}

	dst, stop := regtest.Olareg()
	defer stop()
	tests := []struct {
		name   string
		keys   string
		change func()
		msg    string
	}{
		{"another key", otherPub, func() {}, "not trusted"},
		{"tampered meta", pub, func() { _ = os.WriteFile(metaPath, append(append([]byte{}, raw...), "# edited\n"...), 0o644) }, "does not verify"},
		{"unsigned", pub, func() { _ = os.Rename(metaPath+".sig", metaPath+".sig.away") }, "not signed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.change()
			defer func() {
				_ = os.WriteFile(metaPath, raw, 0o644)
				_ = os.Rename(metaPath+".sig.away", metaPath+".sig")
			}()
			code, _, stderr := ferry(t, "", "verify", "--key", tt.keys, metaPath)
			if code != exitFailure || !strings.Contains(stderr, tt.msg) {
				t.Errorf("verify: exit %d, stderr %q; want 1 mentioning %q", code, stderr, tt.msg)
			}
			code, _, stderr = ferry(t, "", "--no-progress", "upload", "--key", tt.keys, metaPath, "--target", dst)
			if code != exitFailure || !strings.Contains(stderr, tt.msg) {
				t.Errorf("upload: exit %d, stderr %q; want 1 mentioning %q", code, stderr, tt.msg)
			}
			if tags := regtest.TagsAt(t, "http://"+dst, "team/app"); len(tags) != 0 {
				t.Errorf("a refused upload pushed tags %v", tags)
			}
		})
	}

	// cfg verifyKey without requireSignature: an unsigned bundle passes
	// with a warning; with requireSignature it is refused
	_ = os.Rename(metaPath+".sig", metaPath+".sig.away")
	cfg := filepath.Join(dir, "cfg.yaml")
	_ = os.WriteFile(cfg, []byte("verifyKey: "+pub+"\n"), 0o644)
	if code, _, stderr := ferry(t, "", "--config", cfg, "verify", metaPath); code != 0 || !strings.Contains(stderr, "not signed") {
		t.Errorf("verifyKey, unsigned: exit %d\n%s", code, stderr)
	}
	_ = os.WriteFile(cfg, []byte("verifyKey: "+pub+"\nrequireSignature: true\n"), 0o644)
	if code, _, stderr := ferry(t, "", "--config", cfg, "verify", metaPath); code != exitFailure {
		t.Errorf("requireSignature, unsigned: exit %d\n%s", code, stderr)
	}
	// ssh-keygen signs, ferry verifies
	if b, err := exec.Command("ssh-keygen", "-Y", "sign", "-f", key, "-n", "ferry", metaPath).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -Y sign: %v\n%s", err, b)
	}
	if code, _, stderr := ferry(t, "", "--config", cfg, "--no-progress", "upload", metaPath, "--target", dst); code != 0 {
		t.Fatalf("upload of an ssh-keygen-signed bundle: %d\n%s", code, stderr)
	}
	if code, _, stderr := ferry(t, "", "save", "-o", out, "--sign-key", filepath.Join(dir, "nokey"), host+"/team/app:1"); code != exitUsage || !strings.Contains(stderr, "nokey") {
		t.Errorf("missing signing key: exit %d\n%s", code, stderr)
	}
}

// TestReferrersCLI: save carries an SBOM and a cosign signature by
// default; inspect lists them per image; --referrers=false and
// --artifact-type select; upload to docker-registry makes them visible to
// regctl.
func TestReferrersCLI(t *testing.T) {
	host := olaregWith(t, "team/app:1")
	reg, err := registry.New(registry.Options{Registries: []string{host}})
	if err != nil {
		t.Fatal(err)
	}
	app := regtest.Fixtures()["team/app:1"]
	r, _ := ref.New(host + "/team/app:1")
	a, err := regtest.AttachReferrers(context.Background(), reg, r, app)
	if err != nil {
		t.Fatal(err)
	}
	sbom, sigTag := a.SBOM, a.SigTag
	tests := []struct {
		name              string
		args              []string
		wantSBOM, wantSig bool
	}{
		{"default", nil, true, true},
		{"off", []string{"--referrers=false"}, false, false},
		{"sboms only", []string{"--artifact-type", regtest.SBOMType}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			code, stdout, stderr := ferry(t, "", append([]string{"--no-progress", "save", "-o", out, host + "/team/app:1"}, tt.args...)...)
			if code != 0 {
				t.Fatalf("save: %d\n%s", code, stderr)
			}
			metaPath := strings.TrimSpace(stdout)
			code, stdout, _ = ferry(t, "", "inspect", metaPath)
			if code != 0 {
				t.Fatalf("inspect: %d", code)
			}
			if got := strings.Contains(stdout, short(sbom.Digest().String())) && strings.Contains(stdout, regtest.SBOMType); got != tt.wantSBOM {
				t.Errorf("inspect shows the SBOM: %v, want %v\n%s", got, tt.wantSBOM, stdout)
			}
			if got := strings.Contains(stdout, sigTag); got != tt.wantSig {
				t.Errorf("inspect shows the signature tag: %v, want %v\n%s", got, tt.wantSig, stdout)
			}
		})
	}
}
