package costmodel

import (
	"time"

	"mpsearch/internal/cputime"
)

// threadCPU returns the CPU time consumed so far by the calling OS thread.
// Callers lock the goroutine to its thread.
func threadCPU() (time.Duration, bool) { return cputime.Thread() }
