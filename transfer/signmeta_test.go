package transfer_test

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta/sign"
	"github.com/ferry-oss/ferry/transfer"
)

// TestSignedSave: a save with a signer writes META.sig before META; the
// signature checks against the public key, and fails once META changes;
// a failing signer leaves nothing behind.
func TestSignedSave(t *testing.T) {
	e := seeded(t)
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("ssh-keygen not installed")
		}
		t.Skip("ssh-keygen not installed")
	}
	kdir := t.TempDir()
	key := filepath.Join(kdir, "ferry")
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	signer, err := sign.LoadSigner(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := sign.LoadKeys(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	save := func(dir string, fn func(io.Reader) ([]byte, error)) (*transfer.SaveResult, error) {
		w, err := bundle.NewWriter(bundle.WriterOptions{Dir: dir, Parts: 2, SignMeta: fn})
		if err != nil {
			t.Fatal(err)
		}
		return transfer.Save(context.Background(), e.reg, w, e.specs(t, "team/app:1"), transfer.SaveOptions{Jobs: 2, RetryDelay: time.Millisecond})
	}
	dir := t.TempDir()
	res, err := save(dir, signer.Sign)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := keys.VerifyFile(res.MetaPath); err != nil {
		t.Fatalf("signed bundle: %v", err)
	}
	b, _ := os.ReadFile(res.MetaPath)
	_ = os.WriteFile(res.MetaPath, append(b, []byte("# tampered\n")...), 0o644)
	if _, _, err := keys.VerifyFile(res.MetaPath); !errors.Is(err, sign.ErrBadSignature) {
		t.Fatalf("tampered meta: %v", err)
	}

	dir2 := t.TempDir()
	if _, err := save(dir2, func(io.Reader) ([]byte, error) { return nil, errors.New("agent gone") }); err == nil {
		t.Fatal("a failing signer did not fail the save")
	}
	if files, _ := filepath.Glob(filepath.Join(dir2, "*")); len(files) != 0 {
		t.Errorf("files left by a failed signed save: %v", files)
	}
}
