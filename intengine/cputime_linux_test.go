package intengine

import (
	"bytes"
	"os"
	"strconv"
	"time"
)

// threadCPU returns the CPU time consumed by the calling OS thread (the
// first field of /proc/thread-self/schedstat, in nanoseconds), so that the
// benchmarks on a shared machine can report throughput per CPU-second next
// to the wall-clock figure. Callers lock the goroutine to its thread.
func threadCPU() (time.Duration, bool) {
	b, err := os.ReadFile("/proc/thread-self/schedstat")
	if err != nil {
		return 0, false
	}
	f, _, _ := bytes.Cut(b, []byte(" "))
	ns, err := strconv.ParseInt(string(f), 10, 64)
	if err != nil {
		return 0, false
	}
	return time.Duration(ns), true
}
