package bundle

import (
	"fmt"
	"path/filepath"

	"github.com/ferry-oss/ferry/meta"
)

// OpenBytes is Open for a meta file that was already read, and for a
// signed bundle verified: b are its bytes, path is where it lies (parts
// are found next to it). Parsing the verified bytes, not the file again,
// leaves no gap between the check and the use.
func OpenBytes(path string, b []byte) (*Bundle, error) {
	m, err := meta.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &Bundle{Meta: m, MetaPath: path, Dir: filepath.Dir(path)}, nil
}
