//go:build !linux

package costmodel

import "time"

// threadCPU is not available on this system: measurements use the wall clock.
func threadCPU() (time.Duration, bool) { return 0, false }
