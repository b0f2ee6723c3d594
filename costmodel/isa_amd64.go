//go:build amd64 && !purego

package costmodel

import "golang.org/x/sys/cpu"

// kernelISA names the instruction set the kernels dispatch to on this CPU,
// with the same rule as package kernels (cpu.X86.HasAVX2).
func kernelISA() string {
	if cpu.X86.HasAVX2 {
		return "avx2"
	}
	return "go"
}
