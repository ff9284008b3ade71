//go:build unix

package meta

import "syscall"

// openNonBlock makes opening a FIFO return at once instead of waiting for
// a writer; reading a regular file is not affected.
const openNonBlock = syscall.O_NONBLOCK
