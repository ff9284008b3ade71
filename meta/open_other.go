//go:build !unix

package meta

// openNonBlock: no such flag here (Windows has no FIFOs in the file
// system).
const openNonBlock = 0
