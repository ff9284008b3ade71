package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"time"
)

// startProfiles starts the profiles hidden environment variables ask for
// (to measure ferry at scale; not meant for users): FERRY_CPUPROFILE=file
// writes a CPU profile; FERRY_MEMPROFILE=file a heap profile taken when
// the heap was largest (checked every 100 ms; its inuse_space is what the
// peak RSS holds), file.last every 5 s (what a long run holds after its
// start) and file.exit at exit (its alloc_space counts every allocation
// of the run). The returned function ends them.
func startProfiles() func() {
	var stops []func()
	if file := os.Getenv("FERRY_CPUPROFILE"); file != "" {
		f, err := os.Create(file)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "ferry: FERRY_CPUPROFILE: %v\n", err)
		} else {
			stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
		}
	}
	if file := os.Getenv("FERRY_MEMPROFILE"); file != "" {
		done, stopped := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(stopped)
			var peak uint64
			write := func(file string) {
				if f, err := os.Create(file); err == nil {
					_ = pprof.Lookup("heap").WriteTo(f, 0)
					f.Close()
				}
			}
			check := func() {
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				if ms.HeapAlloc > peak+peak/10 || peak == 0 {
					peak = ms.HeapAlloc
					write(file)
				}
			}
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for n := 1; ; n++ {
				select {
				case <-t.C:
					check()
					if n%50 == 0 {
						write(file + ".last")
					}
				case <-done:
					check()
					write(file + ".exit")
					return
				}
			}
		}()
		stops = append(stops, func() { close(done); <-stopped })
	}
	return func() {
		for _, stop := range stops {
			stop()
		}
	}
}
