// Package cputime reads the CPU time of the calling OS thread, so that
// benchmarks and the cost model can time work on a shared machine without
// counting the time other processes hold the core. Callers lock their
// goroutine to its thread (runtime.LockOSThread).
package cputime

import "time"

// Thread returns the CPU time the calling OS thread has consumed, and
// false where the platform offers no such clock.
func Thread() (time.Duration, bool) { return thread() }
