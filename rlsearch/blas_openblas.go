//go:build cgo && !noopenblas

package rlsearch

// #cgo LDFLAGS: -lopenblas
import "C"

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/netlib/blas/netlib"
)

// impl runs the networks' matrix products: OpenBLAS through
// gonum.org/v1/netlib in cgo builds (about four times gonum's pure-Go speed
// on these 32x32 products), gonum's implementation otherwise
// (blas_gonum.go). The choice depends only on the build, not on the
// process-wide blas64 setting other packages may change, so a seed gives
// the same result in every binary of the same build.
var impl blas.Float64 = netlib.Implementation{}
