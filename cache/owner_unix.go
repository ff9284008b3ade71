//go:build unix

package cache

import (
	"io/fs"
	"os"
	"syscall"
)

// ownedByUs reports whether info is of a file this process's user owns.
func ownedByUs(info fs.FileInfo) bool {
	st, ok := info.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}
