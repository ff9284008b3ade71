package main

import (
	"os"
	"runtime/debug"
)

// memoryBudget is the soft memory limit ferry gives the Go runtime for a
// command that moves jobs blobs at once: a base for the bundle records
// and the client, plus the buffers of each job. Past it the garbage
// collector runs more often instead of letting the heap double (Go's
// default), which is what keeps a 10,000-image save or upload near its
// live data. It is soft: a command that needs more still gets it (at
// some CPU cost); GOMEMLIMIT, when set, wins.
func memoryBudget(jobs int) int64 {
	if jobs < 1 {
		jobs = 1
	}
	return int64(32+3*jobs) << 20
}

// setMemoryLimit applies memoryBudget unless GOMEMLIMIT is set.
func setMemoryLimit(jobs int) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(memoryBudget(jobs))
}
