package sign_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/meta/sign"
)

// keygen makes an ed25519 key pair with ssh-keygen (passphrase may be "")
// and returns the private and public key paths.
func keygen(t *testing.T, dir, name, passphrase string) (string, string) {
	t.Helper()
	bin, err := exec.LookPath("ssh-keygen")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("ssh-keygen not installed (apt-get install openssh-client)")
		}
		t.Skip("ssh-keygen not installed")
	}
	key := filepath.Join(dir, name)
	out, err := exec.Command(bin, "-q", "-t", "ed25519", "-N", passphrase, "-C", name, "-f", key).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	return key, key + ".pub"
}

func writeMeta(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	b := []byte("schemaVersion: 2\nkind: ferry-bundle\nid: ferry_full_20261201T000000Z\n")
	p := filepath.Join(dir, "ferry_full_20261201T000000Z_meta.yaml")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, b
}

// allowedSigners writes an ssh-keygen allowed_signers file for pub.
func allowedSigners(t *testing.T, dir, pub string) string {
	t.Helper()
	k, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "allowed_signers")
	if err := os.WriteFile(f, []byte(`ferry namespaces="ferry" `+string(k)), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// signed writes a meta file into dir and signs it with key; it returns
// the meta file's path and bytes, the signer and the armored signature.
func signed(t *testing.T, dir, key string) (string, []byte, *sign.Signer, []byte) {
	t.Helper()
	metaPath, b := writeMeta(t, dir)
	s, err := sign.LoadSigner(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	armored, err := s.Sign(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return metaPath, b, s, armored
}

func TestSignVerify(t *testing.T) {
	dir := t.TempDir()
	key, pub := keygen(t, dir, "ferry", "")
	_, otherPub := keygen(t, dir, "other", "")
	metaPath, b, s, armored := signed(t, dir, key)
	if !bytes.HasPrefix(armored, []byte("-----BEGIN SSH SIGNATURE-----")) {
		t.Fatalf("not armored: %q", armored)
	}
	if err := os.WriteFile(sign.SigPath(metaPath), armored, 0o644); err != nil {
		t.Fatal(err)
	}
	trusted, err := sign.LoadKeys(pub)
	if err != nil {
		t.Fatal(err)
	}
	other, err := sign.LoadKeys(otherPub)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(b, []byte("full"), []byte("fule"), 1)
	tests := []struct {
		name string
		keys sign.Keys
		meta []byte
		sig  []byte
		want error
	}{
		{"good", trusted, b, armored, nil},
		{"good among several keys", append(other, trusted...), b, armored, nil},
		{"tampered meta", trusted, tampered, armored, sign.ErrBadSignature},
		{"untrusted key", other, b, armored, sign.ErrUntrusted},
		{"garbage signature", trusted, b, []byte("-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n"), sign.ErrBadSignature},
		{"empty signature", trusted, b, nil, sign.ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.keys.Verify(tt.meta, tt.sig)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			if tt.want == nil && sign.Fingerprint(got) != s.Fingerprint() {
				t.Errorf("verified by %s, signed by %s", sign.Fingerprint(got), s.Fingerprint())
			}
		})
	}
	got, _, err := trusted.VerifyFile(metaPath)
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("VerifyFile: %v", err)
	}
	_ = os.Remove(sign.SigPath(metaPath))
	if _, _, err := trusted.VerifyFile(metaPath); !errors.Is(err, sign.ErrNoSignature) {
		t.Fatalf("unsigned: %v", err)
	}
}

// TestSSHKeygenInterop: ferry's signatures verify with ssh-keygen -Y verify,
// and ssh-keygen -Y sign's verify with ferry, in the namespace "ferry" only.
func TestSSHKeygenInterop(t *testing.T) {
	dir := t.TempDir()
	key, pub := keygen(t, dir, "ferry", "")
	metaPath, b := writeMeta(t, dir)
	signers := allowedSigners(t, dir, pub)
	keys, err := sign.LoadKeys(signers) // allowed_signers format with options
	if err != nil {
		t.Fatal(err)
	}
	verifyCmd := func() error {
		cmd := exec.Command("ssh-keygen", "-Y", "verify", "-f", signers, "-I", "ferry", "-n", "ferry", "-s", sign.SigPath(metaPath))
		cmd.Stdin = bytes.NewReader(b)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return errors.New(string(out))
		}
		return nil
	}

	// ferry signs, ssh-keygen verifies
	s, err := sign.LoadSigner(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	armored, _ := s.Sign(bytes.NewReader(b))
	_ = os.WriteFile(sign.SigPath(metaPath), armored, 0o644)
	if err := verifyCmd(); err != nil {
		t.Fatalf("ssh-keygen does not verify ferry's signature: %v", err)
	}

	// ssh-keygen signs (writes META.sig), ferry verifies
	_ = os.Remove(sign.SigPath(metaPath))
	if out, err := exec.Command("ssh-keygen", "-Y", "sign", "-f", key, "-n", "ferry", metaPath).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -Y sign: %v\n%s", err, out)
	}
	if _, _, err := keys.VerifyFile(metaPath); err != nil {
		t.Fatalf("ferry does not verify ssh-keygen's signature: %v", err)
	}

	// another namespace is refused by both
	_ = os.Remove(sign.SigPath(metaPath))
	if out, err := exec.Command("ssh-keygen", "-Y", "sign", "-f", key, "-n", "file", metaPath).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -Y sign: %v\n%s", err, out)
	}
	if _, _, err := keys.VerifyFile(metaPath); !errors.Is(err, sign.ErrBadSignature) || !strings.Contains(err.Error(), "namespace") {
		t.Fatalf("namespace file accepted: %v", err)
	}
	if verifyCmd() == nil {
		t.Fatal("ssh-keygen accepted namespace file as ferry")
	}
}

func TestLoadSignerPassphrase(t *testing.T) {
	dir := t.TempDir()
	key, _ := keygen(t, dir, "locked", "s3cret-phrase")
	if _, err := sign.LoadSigner(key, nil); !errors.Is(err, sign.ErrKey) || !strings.Contains(err.Error(), "FERRY_SIGN_PASSPHRASE") {
		t.Fatalf("no passphrase: %v", err)
	}
	if _, err := sign.LoadSigner(key, []byte("wrong")); !errors.Is(err, sign.ErrKey) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if _, err := sign.LoadSigner(key, []byte("s3cret-phrase")); err != nil {
		t.Fatal(err)
	}
	if _, err := sign.LoadSigner(key+".pub", nil); !errors.Is(err, sign.ErrKey) {
		t.Fatalf("public key as private: %v", err)
	}
	if _, err := sign.LoadSigner("/dev/zero", nil); !errors.Is(err, sign.ErrKey) {
		t.Fatalf("/dev/zero: %v", err)
	}
}

func TestParseKeys(t *testing.T) {
	const k = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFs1ihXAHF9k1BNYdjq07mEV6GKxFjOkgMBqxqVrl+kR"
	tests := []struct {
		name, in string
		n        int
		ok       bool
	}{
		{".pub", k + " user@host\n", 1, true},
		{"allowed_signers", "# trusted\nferry,ops@example " + k + "\n\nci namespaces=\"ferry\",valid-after=\"20260101\" " + k + " ci\n", 2, true},
		{"authorized_keys options", `command="echo hi",no-pty ` + k + "\n", 1, true},
		{"empty", "# nothing\n\n", 0, false},
		{"garbage", "not a key\n", 0, false},
		{"bad base64", "ssh-ed25519 AAAA\n", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := sign.ParseKeys([]byte(tt.in))
			if (err == nil) != tt.ok || len(keys) != tt.n {
				t.Fatalf("got %d keys, err %v; want %d, ok %v", len(keys), err, tt.n, tt.ok)
			}
		})
	}
}

// FuzzVerify: a signature file is untrusted input; Verify never panics
// and accepts nothing that is not a signature by the trusted key.
func FuzzVerify(f *testing.F) {
	keys, err := sign.ParseKeys([]byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFs1ihXAHF9k1BNYdjq07mEV6GKxFjOkgMBqxqVrl+kR\n"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("-----BEGIN SSH SIGNATURE-----\nU1NIU0lHAAAAAQ==\n-----END SSH SIGNATURE-----\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, sig []byte) {
		if _, err := keys.Verify([]byte("meta"), sig); err == nil {
			t.Fatal("a fuzzed signature verified")
		}
	})
}

func FuzzParseKeys(f *testing.F) {
	f.Add([]byte("ferry ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFs1ihXAHF9k1BNYdjq07mEV6GKxFjOkgMBqxqVrl+kR c\n"))
	f.Add([]byte(`ferry namespaces="git,!x*",valid-after="20260101Z",valid-before="202701011200",cert-authority ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFs1ihXAHF9k1BNYdjq07mEV6GKxFjOkgMBqxqVrl+kR c` + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := sign.ParseKeys(b)
		if err == nil && len(keys) == 0 {
			t.Fatal("no keys and no error")
		}
	})
}

// TestLoadFile: LoadFile returns the Meta only when the signature is good
// over exactly the bytes decoded, on the streaming path and on the
// whole-document fall back (a comment in the file), and reports a bad
// signature before a meta file that does not parse.
func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	key, pub := keygen(t, dir, "ferry", "")
	_, otherPub := keygen(t, dir, "other", "")
	s, err := sign.LoadSigner(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	trusted, _ := sign.LoadKeys(pub)
	other, _ := sign.LoadKeys(otherPub)
	good, err := os.ReadFile("../../testdata/bundles/v1-none/ferry_full_20261101T020000Z_meta.yaml")
	if err != nil {
		t.Fatal(err)
	}
	comment := append([]byte("# a comment: the whole-document decoder\n"), good...)
	invalid := bytes.Replace(good, []byte("kind: ferry-bundle"), []byte("kind: other"), 1)
	tamper := func(b []byte) []byte {
		t.Helper()
		if !bytes.Contains(b, []byte("tool: ferry ")) {
			t.Fatal("nothing to tamper with")
		}
		return bytes.Replace(b, []byte("tool: ferry "), []byte("tool: ferrz "), 1)
	}
	tests := []struct {
		name         string
		keys         sign.Keys
		signed, file []byte
		unsigned     bool
		want         error
	}{
		{"good", trusted, good, good, false, nil},
		{"good, falls back", trusted, comment, comment, false, nil},
		{"tampered", trusted, good, tamper(good), false, sign.ErrBadSignature},
		{"tampered, falls back", trusted, comment, tamper(comment), false, sign.ErrBadSignature},
		{"comment added", trusted, good, comment, false, sign.ErrBadSignature},
		{"invalid and tampered", trusted, good, invalid, false, sign.ErrBadSignature},
		{"signed but invalid", trusted, invalid, invalid, false, meta.ErrInvalid},
		{"untrusted", other, good, good, false, sign.ErrUntrusted},
		{"unsigned", trusted, good, good, true, sign.ErrNoSignature},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, fmt.Sprintf("b%d_meta.yaml", i))
			if err := os.WriteFile(p, tt.file, 0o644); err != nil {
				t.Fatal(err)
			}
			if !tt.unsigned {
				armored, err := s.Sign(bytes.NewReader(tt.signed))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(sign.SigPath(p), armored, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			m, got, err := tt.keys.LoadFile(p)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			if tt.want != nil {
				if m != nil {
					t.Fatal("a Meta returned with an error")
				}
				return
			}
			want, err := meta.Parse(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m, want) || sign.Fingerprint(got) != s.Fingerprint() {
				t.Fatalf("LoadFile returned another Meta or key")
			}
		})
	}
}
