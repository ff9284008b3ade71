package sign_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-oss/ferry/meta/sign"
)

// TestAllowedSignersOptions: every allowed_signers option that decides
// whether a key may sign (namespaces, valid-after, valid-before,
// cert-authority) gives ferry the verdict ssh-keygen -Y verify gives on
// the same file, signature and meta file, run side by side.
func TestAllowedSignersOptions(t *testing.T) {
	dir := t.TempDir()
	key, pub := keygen(t, dir, "ferry", "")
	_, otherPub := keygen(t, dir, "other", "")
	metaPath, b, _, armored := signed(t, dir, key)
	if err := os.WriteFile(sign.SigPath(metaPath), armored, 0o644); err != nil {
		t.Fatal(err)
	}
	k := strings.TrimSpace(readFile(t, pub))
	other := strings.TrimSpace(readFile(t, otherPub))
	now := time.Now()
	utc := func(d time.Duration) string { return now.Add(d).UTC().Format("20060102150405") + "Z" }
	local := func(d time.Duration) string { return now.Add(d).Format("200601021504") }
	day := func(d time.Duration) string { return now.Add(d).UTC().Format("20060102") + "Z" }
	tests := []struct {
		name, lines string
		ok          bool // ssh-keygen's verdict (checked below)
	}{
		{"no options", "ferry " + k, true},
		{"namespace ferry", `ferry namespaces="ferry" ` + k, true},
		{"namespace git only", `ferry namespaces="git" ` + k, false},
		{"namespaces git and ferry", `ferry namespaces="git,ferry" ` + k, true},
		{"namespace wildcard", `ferry namespaces="f*" ` + k, true},
		{"namespace negated", `ferry namespaces="!ferry,*" ` + k, false},
		{"expired", `ferry valid-before="` + utc(-time.Hour) + `" ` + k, false},
		{"not yet expired", `ferry valid-before="` + utc(time.Hour) + `" ` + k, true},
		{"not yet valid", `ferry valid-after="` + utc(time.Hour) + `" ` + k, false},
		{"valid since", `ferry valid-after="` + utc(-time.Hour) + `" ` + k, true},
		{"valid window", `ferry valid-after="` + utc(-time.Hour) + `",valid-before="` + utc(time.Hour) + `" ` + k, true},
		{"expired, local time", `ferry valid-before="` + local(-2*time.Hour) + `" ` + k, false},
		{"valid, local time", `ferry valid-before="` + local(2*time.Hour) + `" ` + k, true},
		{"expired yesterday (date only)", `ferry valid-before="` + day(-24*time.Hour) + `" ` + k, false},
		{"valid until the day after tomorrow", `ferry valid-before="` + day(48*time.Hour) + `" ` + k, true},
		{"cert-authority", `ferry cert-authority ` + k, false},
		{"cert-authority among options", `ferry namespaces="ferry",cert-authority ` + k, false},
		{"an expired line and a valid one", `ferry valid-before="` + utc(-time.Hour) + `" ` + k + "\nferry " + k, true},
		{"rotated: the old key expired, the new key trusted", `ferry valid-before="` + utc(-time.Hour) + `" ` + k + "\nferry " + other, false},
		{"namespaces and expiry", `ferry namespaces="ferry",valid-before="` + utc(-time.Hour) + `" ` + k, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "allowed_signers")
			if err := os.WriteFile(file, []byte(tt.lines+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("ssh-keygen", "-Y", "verify", "-f", file, "-I", "ferry", "-n", "ferry", "-s", sign.SigPath(metaPath))
			cmd.Stdin = bytes.NewReader(b)
			out, kerr := cmd.CombinedOutput()
			if (kerr == nil) != tt.ok {
				t.Fatalf("ssh-keygen says ok=%v (%s), the test says %v", kerr == nil, strings.TrimSpace(string(out)), tt.ok)
			}
			keys, err := sign.LoadKeys(file)
			if err == nil {
				_, err = keys.Verify(b, armored)
			}
			if (err == nil) != tt.ok {
				t.Fatalf("ferry: %v; ssh-keygen: ok=%v (%s)", err, tt.ok, strings.TrimSpace(string(out)))
			}
			if err != nil && !errors.Is(err, sign.ErrUntrusted) {
				t.Errorf("ferry refused with %v, want ErrUntrusted", err)
			}
		})
	}
}

// TestUnknownOption: an option ssh-keygen does not know makes it skip
// the line; ferry refuses the file, naming the line, rather than trust
// the key with an option it cannot honour.
func TestUnknownOption(t *testing.T) {
	const k = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFs1ihXAHF9k1BNYdjq07mEV6GKxFjOkgMBqxqVrl+kR"
	for _, line := range []string{`ferry verify-required ` + k, `ferry valid-before="yesterday" ` + k, `ferry namespaces=ferry ` + k, `a b c ` + k} {
		if _, err := sign.ParseKeys([]byte(line + "\n")); err == nil {
			t.Errorf("%q: accepted", line)
		}
	}
}

// TestSignatureFIFO: a FIFO (or a device) at META.sig, or at the key
// file, is refused at once: opening it must not block.
func TestSignatureFIFO(t *testing.T) {
	dir := t.TempDir()
	_, pub := keygen(t, dir, "ferry", "")
	metaPath, _ := writeMeta(t, dir)
	if err := syscall.Mkfifo(sign.SigPath(metaPath), 0o644); err != nil {
		t.Fatal(err)
	}
	fifoKey := filepath.Join(dir, "key.pub")
	if err := syscall.Mkfifo(fifoKey, 0o644); err != nil {
		t.Fatal(err)
	}
	keys, err := sign.LoadKeys(pub)
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func() error{
		"LoadFile":   func() error { _, _, err := keys.LoadFile(metaPath); return err },
		"VerifyFile": func() error { _, _, err := keys.VerifyFile(metaPath); return err },
		"LoadKeys":   func() error { _, err := sign.LoadKeys(fifoKey); return err },
		"LoadSigner": func() error { _, err := sign.LoadSigner(fifoKey, nil); return err },
	} {
		done := make(chan error, 1)
		go func() { done <- f() }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "FIFO") {
				t.Errorf("%s: %v, want a refusal naming the FIFO", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s blocked on a FIFO", name)
		}
	}
}

func readFile(t *testing.T, f string) string {
	t.Helper()
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
