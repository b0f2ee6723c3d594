package kernels

import (
	"time"

	"mpsearch/internal/cputime"
)

// threadCPU is the calling thread's CPU time (see internal/cputime).
func threadCPU() (time.Duration, bool) { return cputime.Thread() }
