//go:build cgo && !noopenblas

package network

/*
#cgo LDFLAGS: -lopenblas
extern void openblas_set_num_threads(int num_threads);
*/
import "C"

import (
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/netlib/blas/netlib"
)

func init() {
	blas64.Use(netlib.Implementation{})
	blas32.Use(netlib.Implementation{})
	SetBLASThreads(1)
}

// BLASName reports the BLAS implementation matrix products run on:
// "openblas" in this build (cgo, no "noopenblas" tag), "gonum" otherwise.
func BLASName() string { return "openblas" }

// SetBLASThreads sets the number of threads OpenBLAS uses for one product
// (values below 1 mean 1). The package sets 1 at start-up. It affects the
// whole process, since blas64's implementation is global. Without OpenBLAS
// it does nothing: gonum's pure-Go BLAS chooses its own parallelism.
func SetBLASThreads(n int) {
	if n < 1 {
		n = 1
	}
	C.openblas_set_num_threads(C.int(n))
}
