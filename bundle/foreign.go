package bundle

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/ferry-oss/ferry/meta"
)

// ErrNotBundle is returned for a file that is no meta file of any format
// ferry reads.
var ErrNotBundle = errors.New("not a bundle meta file")

// Format reads the bundles of another tool (package foreign and below).
// Open converts its meta file into ferry's meta model, so that every
// command works on it unchanged, and returns the Store that reads its data
// files; a Bundle opened so asks the Store for blobs and whole data files
// instead of reading ferry parts.
type Format interface {
	// Name names the format in messages ("image-transmit").
	Name() string
	// Sniff reports whether head, the first bytes of a meta file that is
	// not ferry's, is this format's meta file.
	Sniff(head []byte) bool
	// Open reads the meta file at path and indexes its data files. The
	// meta's Parts are the data files, each stored blob names the one that
	// holds it, and Manifests carry their bytes (Part empty).
	Open(path string) (*meta.Meta, Store, error)
	// Base reads the meta file at path as the base of an increment: Blobs
	// and BaseBlobs together name every blob it and its own bases carried.
	// Its data files need not be present.
	Base(path string) (*meta.Meta, error)
}

// Store reads the data files of a bundle of another Format. Both methods
// check every byte they return against its digest.
type Store interface {
	// OpenBlob opens the stored blob e: exactly its bytes, size and
	// digest checked at EOF.
	OpenBlob(ctx context.Context, e Entry) (io.ReadCloser, error)
	// ReadPart reads the data file p from start to end, as Bundle.ReadPart:
	// fn gets every blob the meta stores in p, anything else in the file
	// is checked or refused, and a blob p should hold but lacks is an error.
	ReadPart(ctx context.Context, p meta.Part, fn BlobFunc) error
}

// DirFormat is a Format whose bundles may be directories (an OCI layout).
type DirFormat interface {
	Format
	// SniffDir reports whether the directory is this format's bundle.
	SniffDir(dir string) bool
}

var (
	formatsMu sync.Mutex
	formats   []Format
)

// RegisterFormat makes Open and base meta files (--inc) accept f's bundles.
func RegisterFormat(f Format) {
	formatsMu.Lock()
	defer formatsMu.Unlock()
	for _, g := range formats {
		if g.Name() == f.Name() {
			return
		}
	}
	formats = append(formats, f)
}

// foreignFormat tells which format the meta file at path is: nil for
// ferry's own (or a file too broken to tell: meta.Load says why), a
// registered Format, or ErrNotBundle with one line naming what was found.
func foreignFormat(path string) (Format, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return dirFormat(path), nil // none: meta.Load says it is a directory
	}
	f, err := meta.OpenRegular(path)
	if err != nil {
		return nil, nil // meta.Load reports it
	}
	defer f.Close()
	head := make([]byte, 64<<10)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	keys := topLevelKeys(head)
	if keys["schemaVersion"] || keys["kind"] {
		return nil, nil
	}
	formatsMu.Lock()
	defer formatsMu.Unlock()
	names := []string{"ferry's (schemaVersion, kind: ferry-bundle)"}
	for _, fm := range formats {
		if fm.Sniff(head) {
			return fm, nil
		}
		names = append(names, fm.Name()+"'s")
	}
	what := "no YAML mapping"
	if len(keys) > 0 {
		var ks []string
		for k := range keys {
			ks = append(ks, k)
		}
		what = "top-level keys " + strings.Join(sortedFirst(ks, 5), ", ")
	}
	return nil, fmt.Errorf("%s: %w: it is neither %s (%s)", filepath.Base(path), ErrNotBundle, strings.Join(names, " nor "), what)
}

// dirFormat is the registered DirFormat that reads the directory, or nil.
func dirFormat(dir string) Format {
	formatsMu.Lock()
	defer formatsMu.Unlock()
	for _, fm := range formats {
		if df, ok := fm.(DirFormat); ok && df.SniffDir(dir) {
			return fm
		}
	}
	return nil
}

// topLevelKeys lists the keys of the top-level YAML mapping in head
// (lines that start with "key:"), enough to tell formats apart.
func topLevelKeys(head []byte) map[string]bool {
	keys := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(head))
	sc.Buffer(make([]byte, 0, 64<<10), 64<<10)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == ' ' || line[0] == '\t' || line[0] == '#' || line[0] == '-' {
			continue
		}
		if k, _, ok := strings.Cut(line, ":"); ok && !strings.ContainsAny(k, " \"'{[") {
			keys[k] = true
		}
	}
	return keys
}

func sortedFirst(s []string, n int) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	if len(s) > n {
		s = append(s[:n:n], "…")
	}
	return s
}

// openForeign opens a bundle of another format.
func openForeign(f Format, metaPath string) (*Bundle, error) {
	m, st, err := f.Open(metaPath)
	if err != nil {
		return nil, err
	}
	return &Bundle{Meta: m, MetaPath: metaPath, Dir: filepath.Dir(metaPath), store: st}, nil
}

// LoadBase reads a base meta file for --inc: ferry's own, or another
// registered format's (Format.Base).
func LoadBase(file string) (*meta.Meta, error) {
	f, err := foreignFormat(file)
	if err != nil {
		return nil, err
	}
	if f != nil {
		return f.Base(file)
	}
	return meta.Load(file)
}
