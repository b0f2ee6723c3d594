//go:build !amd64 || purego

package costmodel

// kernelISA names the instruction set the kernels dispatch to: the pure-Go
// twins on this build.
func kernelISA() string { return "go" }
