// Package imagetransmit reads bundles written by image-transmit
// (github.com/wct-devops/image-transmit and its forks): its _meta.yaml and
// its data files (tar, whole-file zstd/gzip/xz/lz4, or squashfs), as a
// bundle.Format, so that every ferry command reads them unchanged.
package imagetransmit

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/mediatype"
	"github.com/regclient/regclient/types/ref"
	"gopkg.in/yaml.v3"

	"github.com/ferry-oss/ferry/meta"
)

// Sentinel errors.
var (
	// ErrInvalid is a meta file or data file that is not what
	// image-transmit writes.
	ErrInvalid = errors.New("invalid image-transmit bundle")
	// ErrNotReproducible is a layer image-transmit's squashfs mode stored
	// unpacked whose exact gzip bytes ferry cannot rebuild.
	ErrNotReproducible = errors.New("layer bytes cannot be rebuilt")
)

// skipPrefix marks, in an increment's blobs, a blob an earlier bundle
// carried: https://last.img/skip/it:<base meta file name>.
const skipPrefix = "https://last.img/skip/it:"

// itMeta is image-transmit's meta file (its CompressionMetadata, written
// with yaml.v2: lowercase keys).
type itMeta struct {
	// Datafiles are the data files, name -> size in bytes.
	Datafiles map[string]int64 `yaml:"datafiles"`
	// Compressor is what the cfg.yaml said (tar, squashfs, zstd, gzip,
	// xz, lz4); the data files themselves tell the truth.
	Compressor string `yaml:"compressor"`
	// Blobs are hex digest -> the images that needed it (references), or
	// skip markers for blobs a base bundle carried.
	Blobs map[string][]string `yaml:"blobs"`
	// Manifests are image reference -> the manifest JSON stored for it
	// (for a multi-platform source, the chosen platform's).
	Manifests map[string]string `yaml:"manifests"`
	// BlobDoing are downloads in flight when the file was written.
	BlobDoing map[string]int `yaml:"blobdoing"`
}

var (
	hexRe      = regexp.MustCompile(`^[a-f0-9]{64}$`)
	fileNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
)

// loadMeta reads and checks an image-transmit meta file.
func loadMeta(path string) (*itMeta, error) {
	f, err := meta.OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, meta.MaxSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > meta.MaxSize {
		return nil, fmt.Errorf("%s: %w: more than %d bytes", filepath.Base(path), meta.ErrMetaTooBig, meta.MaxSize)
	}
	m, err := parseMeta(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return m, nil
}

// parseMeta decodes and validates the meta file's content.
func parseMeta(b []byte) (*itMeta, error) {
	var m itMeta
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return &m, m.validate()
}

func (m *itMeta) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
	}
	if len(m.Manifests) == 0 && len(m.Datafiles) == 0 {
		return bad("no datafiles and no manifests")
	}
	for name, size := range m.Datafiles {
		if !fileNameRe.MatchString(name) || len(name) > 255 {
			return bad("data file name %q", name)
		}
		if size < 0 {
			return bad("data file %s: size %d", name, size)
		}
	}
	for h, refs := range m.Blobs {
		if !hexRe.MatchString(h) {
			return bad("blob %q: not a sha256 hex digest", h)
		}
		for _, r := range refs {
			if base, ok := strings.CutPrefix(r, skipPrefix); ok && (!fileNameRe.MatchString(base) || !strings.HasSuffix(base, metaSuffix)) {
				return bad("blob %s: base meta file %q", h, base)
			}
		}
	}
	for h := range m.BlobDoing {
		if !hexRe.MatchString(h) {
			return bad("blobdoing %q: not a sha256 hex digest", h)
		}
	}
	for name, raw := range m.Manifests {
		if _, err := parseImage(name); err != nil {
			return bad("image %q: %v", name, err)
		}
		if !json.Valid([]byte(raw)) {
			return bad("image %s: manifest is not JSON", name)
		}
	}
	return nil
}

const metaSuffix = "_meta.yaml"

// idOf is a bundle id from its meta file name.
func idOf(metaFile string) string {
	return strings.TrimSuffix(filepath.Base(metaFile), metaSuffix)
}

// baseOf is the base meta file a blob's refs name, if they are only skip
// markers; stored reports a ref that is an image (the bundle carried it).
func baseOf(refs []string) (base string, stored bool) {
	for _, r := range refs {
		if b, ok := strings.CutPrefix(r, skipPrefix); ok {
			if base == "" {
				base = b
			}
			continue
		}
		stored = true
	}
	return base, stored
}

// parseImage parses an image key of the meta file: the source reference
// image-transmit read (registry/path:tag, no scheme).
func parseImage(name string) (ref.Ref, error) {
	s := strings.TrimPrefix(strings.TrimPrefix(name, "http://"), "https://")
	r, err := ref.New(s)
	if err != nil {
		return ref.Ref{}, err
	}
	if !meta.ValidRepository(r.Repository) {
		return ref.Ref{}, fmt.Errorf("repository %q", r.Repository)
	}
	return r, nil
}

// mediaTypeOf reads a manifest's media type from its JSON, inferring it
// for OCI manifests that leave it out.
func mediaTypeOf(raw []byte) string {
	var probe struct {
		SchemaVersion int             `json:"schemaVersion"`
		MediaType     string          `json:"mediaType"`
		Config        json.RawMessage `json:"config"`
		Manifests     json.RawMessage `json:"manifests"`
		Signatures    json.RawMessage `json:"signatures"`
	}
	_ = json.Unmarshal(raw, &probe)
	switch {
	case probe.MediaType != "":
		return probe.MediaType
	case probe.SchemaVersion == 1 && probe.Signatures != nil:
		return mediatype.Docker1ManifestSigned
	case probe.SchemaVersion == 1:
		return mediatype.Docker1Manifest
	case probe.Manifests != nil:
		return mediatype.OCI1ManifestList
	}
	return mediatype.OCI1Manifest
}

// digestOf is the sha256 digest with hex h (validated).
func digestOf(h string) digest.Digest { return digest.NewDigestFromEncoded(digest.SHA256, h) }

// hexOfEntry is the blob hex an entry of a data file is named after:
// <hex>.json, <hex>.raw, <hex>.tar, <hex>.tar.gz; ok is false for any
// other name.
func hexOfEntry(name string) (string, bool) {
	name = strings.TrimPrefix(name, "./")
	h, ext, ok := strings.Cut(name, ".")
	if !ok || !hexRe.MatchString(h) {
		return "", false
	}
	switch ext {
	case "json", "raw", "tar", "tar.gz":
		return h, true
	}
	return "", false
}

// fileSHA256 is the hex sha256 of a file, or "" when it cannot be read.
func fileSHA256(path string) string {
	sum, err := meta.FileSHA256(path)
	if err != nil {
		return ""
	}
	if _, err := hex.DecodeString(sum); err != nil {
		return ""
	}
	return sum
}

// exists reports whether path is a regular file.
func exists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}
