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
	"slices"
	"strings"
	"time"

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

// Keys are the public keys trusted to sign meta files, one per line of
// the key file, with the options of that line.
type Keys []Key

// Key is a trusted public key and the allowed_signers options of its
// line, honoured as ssh-keygen -Y verify honours them.
type Key struct {
	ssh.PublicKey
	// CA (cert-authority) trusts certificates the key signed, not
	// signatures by the key itself; ferry does not take certificate
	// signatures, so such a line trusts nothing here.
	CA bool
	// Namespaces, when set, is a pattern list (comma-separated, * and ?
	// wildcards, ! negates) the signature's namespace must match.
	Namespaces string
	// ValidAfter and ValidBefore bound when the key may be used (the
	// moment of the check); zero is no bound.
	ValidAfter, ValidBefore time.Time
	line                    int
}

// keyTypes are the SSH public key types a key file line may name.
var keyTypes = map[string]bool{
	"ssh-ed25519": true, "ssh-rsa": true, "ssh-dss": true,
	"ecdsa-sha2-nistp256": true, "ecdsa-sha2-nistp384": true, "ecdsa-sha2-nistp521": true,
	"sk-ssh-ed25519@openssh.com": true, "sk-ecdsa-sha2-nistp256@openssh.com": true,
}

// LoadKeys reads public keys from a file: a single .pub key, an
// authorized_keys file (its options are read as an allowed_signers
// principals field, as ssh-keygen reads it), or an allowed_signers file
// (`principals [options] key`), one key a line, '#' comments and blank
// lines ignored. The options cert-authority, namespaces, valid-after and
// valid-before are honoured (see Key); any other option, or a line
// ssh-keygen would skip, is an error.
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
		k, err := parseKeyLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", i+1, err)
		}
		k.line = i + 1
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no public key in it")
	}
	return keys, nil
}

// parseKeyLine reads `[principals [options]] keytype base64 [comment]`.
func parseKeyLine(line string) (Key, error) {
	fields := splitQuoted(line)
	at := slices.IndexFunc(fields, func(f string) bool { return keyTypes[f] })
	if at < 0 || at+1 >= len(fields) {
		return Key{}, errors.New(`no public key (want e.g. "ssh-ed25519 AAAA...")`)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(fields[at] + " " + fields[at+1]))
	if err != nil {
		return Key{}, err
	}
	k := Key{PublicKey: pub}
	switch at {
	case 0, 1: // a key, or principals and a key
	case 2:
		if err := k.parseOptions(fields[1]); err != nil {
			return Key{}, err
		}
	default:
		return Key{}, fmt.Errorf("%d fields before the key: want principals, then options", at)
	}
	return k, nil
}

// splitQuoted splits a line at spaces and tabs outside double quotes.
func splitQuoted(s string) []string {
	var out []string
	start, quoted := -1, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && quoted && i+1 < len(s) && s[i+1] == '"':
			i++
		case c == '"':
			quoted = !quoted
		case (c == ' ' || c == '\t') && !quoted:
			if start >= 0 {
				out = append(out, s[start:i])
				start = -1
			}
			continue
		}
		if start < 0 {
			start = i
		}
	}
	if start >= 0 {
		out = append(out, s[start:])
	}
	return out
}

// parseOptions reads an allowed_signers options field as ssh-keygen does
// (sshsigopt_parse): cert-authority, namespaces="...", valid-after="..."
// and valid-before="...", comma-separated, values quoted.
func (k *Key) parseOptions(opts string) error {
	for opts != "" {
		if rest, ok := strings.CutPrefix(opts, "cert-authority"); ok && (rest == "" || rest[0] == ',') {
			k.CA, opts = true, strings.TrimPrefix(rest, ",")
			continue
		}
		name, rest, _ := strings.Cut(opts, "=")
		if !strings.HasPrefix(rest, `"`) {
			return fmt.Errorf("option %q: not one of cert-authority, namespaces=\"...\", valid-after=\"...\", valid-before=\"...\"", opts)
		}
		end := strings.Index(rest[1:], `"`)
		if end < 0 {
			return fmt.Errorf("option %s: no closing quote", name)
		}
		value := rest[1 : 1+end]
		opts = strings.TrimPrefix(rest[2+end:], ",")
		var err error
		switch name {
		case "namespaces":
			k.Namespaces = value
		case "valid-after":
			k.ValidAfter, err = parseSSHTime(value)
		case "valid-before":
			k.ValidBefore, err = parseSSHTime(value)
		default:
			err = errors.New("not an option ssh-keygen -Y verify takes")
		}
		if err != nil {
			return fmt.Errorf("option %s=%q: %v", name, value, err)
		}
	}
	return nil
}

// parseSSHTime reads YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS, in UTC
// with a Z or UTC suffix, in local time without (OpenSSH's
// parse_absolute_time).
func parseSSHTime(s string) (time.Time, error) {
	loc := time.Local
	if u, ok := strings.CutSuffix(strings.ToUpper(s), "Z"); ok {
		s, loc = u, time.UTC
	} else if u, ok := strings.CutSuffix(strings.ToUpper(s), "UTC"); ok {
		s, loc = u, time.UTC
	}
	layout := map[int]string{8: "20060102", 12: "200601021504", 14: "20060102150405"}[len(s)]
	if layout == "" {
		return time.Time{}, errors.New("want YYYYMMDD[HHMM[SS]][Z]")
	}
	return time.ParseInLocation(layout, s, loc)
}

// allows reports why the key may not sign in namespace ns at now ("" when
// it may).
func (k Key) allows(ns string, now time.Time) string {
	switch {
	case k.CA:
		return "it is a cert-authority line, which trusts certificates only (ferry takes plain key signatures)"
	case !k.ValidBefore.IsZero() && now.After(k.ValidBefore):
		return "it expired at " + k.ValidBefore.Format(time.RFC3339) + " (valid-before)"
	case !k.ValidAfter.IsZero() && now.Before(k.ValidAfter):
		return "it is valid only from " + k.ValidAfter.Format(time.RFC3339) + " (valid-after)"
	case k.Namespaces != "" && matchPatternList(ns, k.Namespaces) != 1:
		return fmt.Sprintf("its namespaces=%q do not allow %q", k.Namespaces, ns)
	}
	return ""
}

// matchPatternList is OpenSSH's match_pattern_list: 1 when s matches a
// pattern of the comma-separated list and no negated (!) one, -1 when a
// negated one matches, 0 when none does.
func matchPatternList(s, list string) int {
	got := 0
	for _, p := range strings.Split(list, ",") {
		neg := strings.HasPrefix(p, "!")
		if matchPattern(s, strings.TrimPrefix(p, "!")) {
			if neg {
				return -1
			}
			got = 1
		}
	}
	return got
}

// matchPattern matches s against a pattern of * (any run) and ? (any one
// byte), as OpenSSH's match_pattern.
func matchPattern(s, p string) bool {
	for len(p) > 0 {
		switch p[0] {
		case '*':
			for i := len(s); i >= 0; i-- {
				if matchPattern(s[i:], p[1:]) {
					return true
				}
			}
			return false
		case '?':
			if s == "" {
				return false
			}
		default:
			if s == "" || s[0] != p[0] {
				return false
			}
		}
		s, p = s[1:], p[1:]
	}
	return s == ""
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
	var why []string
	for _, key := range k {
		if ssh.FingerprintSHA256(key.PublicKey) != fp {
			continue
		}
		if reason := key.allows(sig.Namespace, time.Now()); reason != "" {
			why = append(why, fmt.Sprintf("line %d: %s", key.line, reason))
			continue
		}
		return sig, key.PublicKey, nil
	}
	if len(why) > 0 {
		return nil, nil, fmt.Errorf("%w: signed by %s, which may not sign now: %s", ErrUntrusted, fp, strings.Join(why, "; "))
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

// readLimited reads a key or signature file: a regular file (a FIFO or a
// device is refused without blocking, as meta files are), at most maxFile
// bytes.
func readLimited(file string) ([]byte, error) {
	f, err := meta.OpenRegular(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
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
