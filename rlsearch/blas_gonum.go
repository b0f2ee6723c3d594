//go:build !cgo || noopenblas

package rlsearch

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// impl runs the networks' matrix products; see blas_openblas.go.
var impl blas.Float64 = gonum.Implementation{}
