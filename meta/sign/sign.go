// Package sign signs and verifies ferry meta files with SSH signatures: the
// SSHSIG format that `ssh-keygen -Y sign` writes and `ssh-keygen -Y verify`
// checks, in the namespace "ferry", with SHA-512.
//
// A bundle's meta file pins the sha256 of every part and the digest of
// every blob and manifest, so a valid signature of the meta file covers the
// whole bundle. The signature is a detached, armored file next to the meta
// file (SigPath: the meta path plus ".sig", as ssh-keygen names it), so a
// jump host with nothing but OpenSSH can check a bundle:
//
//	ssh-keygen -Y verify -f allowed_signers -I ferry -n ferry \
//	    -s BUNDLE_meta.yaml.sig < BUNDLE_meta.yaml
//
// Signature files and key files are untrusted input: sizes are limited
// before parsing, and a signature is accepted only from a key the caller
// trusts (Keys), in the ferry namespace, over the exact bytes given.
package sign

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"

	"github.com/ferry-oss/ferry/meta"
)

// Namespace is the SSHSIG namespace of ferry meta signatures (ssh-keygen's
// -n).
const Namespace = "ferry"

// Suffix is appended to a meta file's path to name its signature.
const Suffix = ".sig"

// maxFile bounds key and signature files read; maxMeta the meta file
// (as package meta does).
const (
	maxFile = 1 << 20
	maxMeta = meta.MaxSize
)

// Sentinel errors; test them with errors.Is.
var (
	ErrNoSignature  = errors.New("meta file is not signed")
	ErrBadSignature = errors.New("meta signature does not verify")
	ErrUntrusted    = errors.New("meta file signed by a key that is not trusted")
	ErrKey          = errors.New("bad key file")
)

// SigPath is the signature file of a meta file.
func SigPath(metaPath string) string { return metaPath + Suffix }

// Signer signs meta files with a private key.
type Signer struct {
	s ssh.Signer
}

// LoadSigner reads an OpenSSH (or PEM) private key file, such as one made by
// `ssh-keygen -t ed25519`. An encrypted key needs its passphrase; nil means
// none.
func LoadSigner(file string, passphrase []byte) (*Signer, error) {
	b, err := readLimited(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	var s ssh.Signer
	if len(passphrase) > 0 {
		s, err = ssh.ParsePrivateKeyWithPassphrase(b, passphrase)
	} else {
		s, err = ssh.ParsePrivateKey(b)
	}
	var missing *ssh.PassphraseMissingError
	switch {
	case errors.As(err, &missing):
		return nil, fmt.Errorf("%w: %s is encrypted: set FERRY_SIGN_PASSPHRASE", ErrKey, file)
	case err != nil:
		return nil, fmt.Errorf("%w: %s: %v (want an OpenSSH private key, e.g. from ssh-keygen -t ed25519)", ErrKey, file, err)
	}
	return &Signer{s: s}, nil
}

// Fingerprint is the SHA256 fingerprint of the signer's public key, as
// ssh-keygen -l prints it.
func (s *Signer) Fingerprint() string { return ssh.FingerprintSHA256(s.s.PublicKey()) }

// Sign returns the armored SSH signature of the meta file's bytes, read
// from r to EOF (streamed: nothing is held but the hash).
func (s *Signer) Sign(r io.Reader) ([]byte, error) {
	sig, err := sshsig.Sign(r, s.s, sshsig.HashSHA512, Namespace)
	if err != nil {
		return nil, fmt.Errorf("signing the meta file: %w", err)
	}
	return sshsig.Armor(sig), nil
}

// Keys are the public keys trusted to sign meta files.
type Keys []ssh.PublicKey

// keyRe finds the key in a line of an authorized_keys, allowed_signers or
// .pub file: a key type and its base64 blob.
var keyRe = regexp.MustCompile(`(?:^|\s)((?:ssh-(?:ed25519|rsa|dss)|ecdsa-sha2-nistp(?:256|384|521)|sk-(?:ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)\s+[A-Za-z0-9+/]+=*)`)

// LoadKeys reads public keys from a file: a single .pub key, an
// authorized_keys file, or an allowed_signers file (`principals [options]
// key`), one key a line, '#' comments and blank lines ignored. Options
// (such as namespaces= or valid-after=) are not interpreted.
func LoadKeys(file string) (Keys, error) {
	b, err := readLimited(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	keys, err := ParseKeys(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrKey, file, err)
	}
	return keys, nil
}

// ParseKeys parses the content of a key file (see LoadKeys).
func ParseKeys(b []byte) (Keys, error) {
	var keys Keys
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := keyRe.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("line %d: no public key (want e.g. \"ssh-ed25519 AAAA...\")", i+1)
		}
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(m[1]))
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", i+1, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no public key in it")
	}
	return keys, nil
}

// Verify checks an armored signature of metaBytes and returns the key that
// made it: one of k, in the ferry namespace.
func (k Keys) Verify(metaBytes, armored []byte) (ssh.PublicKey, error) {
	sig, pub, err := k.match(armored)
	if err != nil {
		return nil, err
	}
	if err := verify(bytes.NewReader(metaBytes), sig, pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// match parses an armored signature and finds the trusted key that is
// to have made it (not yet checked against the message).
func (k Keys) match(armored []byte) (*sshsig.Signature, ssh.PublicKey, error) {
	if len(armored) > maxFile {
		return nil, nil, fmt.Errorf("%w: signature file larger than %d bytes", ErrBadSignature, maxFile)
	}
	sig, err := sshsig.Unarmor(armored)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: not an SSH signature: %v", ErrBadSignature, err)
	}
	if sig.Namespace != Namespace {
		return nil, nil, fmt.Errorf("%w: namespace %q, want %q", ErrBadSignature, sig.Namespace, Namespace)
	}
	if err := sig.HashAlgorithm.Available(); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	fp := ssh.FingerprintSHA256(sig.PublicKey)
	for _, pub := range k {
		if ssh.FingerprintSHA256(pub) == fp {
			return sig, pub, nil
		}
	}
	return nil, nil, fmt.Errorf("%w: signed by %s, which is not among the %d trusted key(s)", ErrUntrusted, fp, len(k))
}

// verify checks sig by pub over the message read from m to EOF.
func verify(m io.Reader, sig *sshsig.Signature, pub ssh.PublicKey) error {
	if err := sshsig.Verify(m, sig, pub, sig.HashAlgorithm, Namespace); err != nil {
		return fmt.Errorf("%w (key %s): the meta file was changed after it was signed, or the signature is damaged: %v", ErrBadSignature, ssh.FingerprintSHA256(pub), err)
	}
	return nil
}

// LoadFile checks the signature file (SigPath) of a meta file against k
// and decodes the meta file (meta.DecodeTee) from the very bytes the
// signature is checked over, streamed through the decoder and the check
// together from one open file: nothing is held but the decoded Meta, and
// nothing can change between the check and the use. The Meta is returned
// only when both succeed; a bad signature is reported before a meta file
// that does not parse (ErrNoSignature, ErrUntrusted and ErrBadSignature
// as VerifyFile; a meta error wraps meta.ErrInvalid and its kin).
func (k Keys) LoadFile(metaPath string) (*meta.Meta, ssh.PublicKey, error) {
	f, err := meta.OpenRegular(metaPath)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > maxMeta {
		return nil, nil, fmt.Errorf("%s: %w", metaPath, meta.ErrMetaTooBig)
	}
	armored, err := readLimited(SigPath(metaPath))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("%s: %w (no %s next to it)", metaPath, ErrNoSignature, SigPath(metaPath))
	}
	if err != nil {
		return nil, nil, err
	}
	sig, pub, err := k.match(armored)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", metaPath, err)
	}
	// One check per pass of the decoder over the file; the last pass is
	// the one its result comes from.
	var pw *io.PipeWriter
	var done chan error
	finish := func(cause error) error {
		if pw == nil {
			return nil
		}
		pw.CloseWithError(cause)
		return <-done
	}
	m, derr := meta.DecodeTee(f, func() io.Writer {
		_ = finish(errRestart)
		var pr *io.PipeReader
		pr, pw = io.Pipe()
		done = make(chan error, 1)
		go func(pr *io.PipeReader, done chan error) {
			err := verify(pr, sig, pub)
			pr.CloseWithError(errRestart)
			done <- err
		}(pr, done)
		return pw
	})
	if verr := finish(nil); verr != nil {
		return nil, nil, fmt.Errorf("%s: %w", metaPath, verr)
	}
	if derr != nil {
		return nil, nil, fmt.Errorf("%s: %w", metaPath, derr)
	}
	return m, pub, nil
}

// errRestart ends a signature check whose pass the decoder abandoned.
var errRestart = errors.New("meta decoder restarted")

// VerifyFile reads the meta file once, checks its signature file (SigPath)
// against k, and returns the verified bytes, which the caller should parse
// rather than reading the file again. It holds the whole file: LoadFile
// streams it.
func (k Keys) VerifyFile(metaPath string) ([]byte, ssh.PublicKey, error) {
	b, err := readMeta(metaPath)
	if err != nil {
		return nil, nil, err
	}
	armored, err := readLimited(SigPath(metaPath))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("%s: %w (no %s next to it)", metaPath, ErrNoSignature, SigPath(metaPath))
	}
	if err != nil {
		return nil, nil, err
	}
	pub, err := k.Verify(b, armored)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", metaPath, err)
	}
	return b, pub, nil
}

// Fingerprint is the SHA256 fingerprint of a public key.
func Fingerprint(pub ssh.PublicKey) string { return ssh.FingerprintSHA256(pub) }

func readLimited(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", file)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", file, maxFile)
	}
	return b, nil
}

// readMeta reads a meta file (a regular file, at most maxMeta bytes).
func readMeta(file string) ([]byte, error) {
	f, err := meta.OpenRegular(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMeta+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxMeta {
		return nil, fmt.Errorf("%s: %w", file, meta.ErrMetaTooBig)
	}
	return b, nil
}
