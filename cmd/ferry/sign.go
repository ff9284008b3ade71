package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta/sign"
)

// errSignature marks a bundle whose meta signature is missing, by an
// untrusted key or wrong: a failure (exit 1), not a usage error.
var errSignature = errors.New("signature check failed")

// signFlag and keyFlag are the signing flags of save, and of verify and
// upload.
func signFlag() cli.Flag {
	return &cli.StringFlag{Name: "sign-key", Usage: "SSH private key (ssh-keygen -t ed25519) to sign the meta file with: writes META.sig, checkable with ssh-keygen -Y verify -n ferry (cfg.yaml: signKey; passphrase from FERRY_SIGN_PASSPHRASE)", TakesFile: true}
}

func keyFlag() cli.Flag {
	return &cli.StringFlag{Name: "key", Usage: "SSH public keys (.pub, authorized_keys or allowed_signers file) one of which must have signed the meta file; unsigned bundles are refused (cfg.yaml: verifyKey, requireSignature)", TakesFile: true}
}

// metaSigner returns the writer's SignMeta for --sign-key (or cfg
// signKey), nil when none is set. A key that cannot be used is a usage
// error before anything is fetched.
func (e *env) metaSigner(c *cli.Context) (func(io.Reader) ([]byte, error), string, error) {
	file := firstNonZero(c.String("sign-key"), e.cfg.SignKey)
	if file == "" {
		return nil, "", nil
	}
	s, err := sign.LoadSigner(file, []byte(os.Getenv("FERRY_SIGN_PASSPHRASE")))
	if err != nil {
		return nil, "", usageError{err}
	}
	return s.Sign, s.Fingerprint(), nil
}

// openSetChecked opens the bundles of several meta files (an increment
// and its bases) for serve and export, each checked as openChecked does.
func (e *env) openSetChecked(c *cli.Context, paths []string) (*bundle.Set, error) {
	var bds []*bundle.Bundle
	for _, p := range paths {
		bd, err := e.openChecked(p, c.String("key"))
		if err != nil {
			return nil, err
		}
		bds = append(bds, bd)
	}
	return bundle.NewSet(bds...)
}

// openChecked opens a bundle for verify and upload, checking its meta
// signature first: with --key (keyFlag), or cfg verifyKey and requireSignature, a
// valid signature by one of the keys is required; with verifyKey alone a
// signature present must be valid and an unsigned bundle is accepted with
// a warning. The bundle is parsed from the very bytes that were verified,
// streamed once through the decoder and the check (sign.Keys.LoadFile).
func (e *env) openChecked(path, keyFlag string) (*bundle.Bundle, error) {
	keyFile := firstNonZero(keyFlag, e.cfg.VerifyKey)
	if keyFile == "" {
		if _, err := os.Stat(sign.SigPath(path)); err == nil {
			e.log.Info("the bundle is signed; pass --key to check the signature", "signature", sign.SigPath(path))
		}
		return openBundle(path)
	}
	required := keyFlag != "" || e.cfg.RequireSignature
	keys, err := sign.LoadKeys(keyFile)
	if err != nil {
		return nil, usageError{err}
	}
	m, pub, err := keys.LoadFile(path)
	switch {
	case errors.Is(err, sign.ErrNoSignature) && !required:
		e.log.Warn("the bundle is not signed (requireSignature is off)", "meta", path)
		return openBundle(path)
	case errors.Is(err, sign.ErrNoSignature), errors.Is(err, sign.ErrBadSignature), errors.Is(err, sign.ErrUntrusted):
		return nil, tr().Errorf("%w: %w; nothing was read or pushed", errSignature, err)
	case err != nil:
		return nil, usageError{err}
	}
	e.log.Info("meta signature OK", "key", sign.Fingerprint(pub))
	return &bundle.Bundle{Meta: m, MetaPath: path, Dir: filepath.Dir(path)}, nil
}
