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
	C.openblas_set_num_threads(1) // see SetBLASThreads
}

// BLASName reports the BLAS implementation matrix products run on:
// "openblas" in this build (cgo, no "noopenblas" tag), "gonum" otherwise.
func BLASName() string { return "openblas" }
