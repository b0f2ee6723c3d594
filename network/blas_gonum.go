//go:build !cgo || noopenblas

package network

// BLASName reports the BLAS implementation matrix products run on:
// "gonum" in this build (no cgo, or the "noopenblas" tag), "openblas"
// otherwise.
func BLASName() string { return "gonum" }
