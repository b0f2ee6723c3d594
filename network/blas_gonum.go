//go:build !cgo || noopenblas

package network

// BLASName reports the BLAS implementation matrix products run on:
// "gonum" in this build (no cgo, or the "noopenblas" tag), "openblas"
// otherwise.
func BLASName() string { return "gonum" }

// SetBLASThreads sets the number of threads OpenBLAS uses for one product.
// In this build (gonum's pure-Go BLAS, which chooses its own parallelism)
// it does nothing.
func SetBLASThreads(n int) {}
