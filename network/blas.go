package network

import (
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// The BLAS backend behind every matrix product of the engine (Conv, Gemm,
// MatMul) is gonum's blas64 package. Built with cgo (and without the
// "noopenblas" build tag) the package routes blas64 to OpenBLAS through
// gonum.org/v1/netlib (blas_openblas.go, linked with -lopenblas); otherwise
// gonum's pure-Go implementation is used (blas_gonum.go). BLASName reports
// which one is active and SetBLASThreads sets OpenBLAS's thread count
// (default 1: the engine is usually run with other work on the same cores).

// gemm computes C = alpha*op(A)*op(B) + beta*C on row-major matrices given
// as (data, leading dimension): op(A) is m×k, op(B) is k×n, C is m×n.
// A transposed A is stored k×m (lda >= m), likewise B. Empty products only
// scale C.
func gemm(tA, tB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		scaleMatrix(m, n, beta, c, ldc)
		return
	}
	ta, tb := blas.NoTrans, blas.NoTrans
	ar, ac := m, k
	if tA {
		ta, ar, ac = blas.Trans, k, m
	}
	br, bc := k, n
	if tB {
		tb, br, bc = blas.Trans, n, k
	}
	blas64.Gemm(ta, tb, alpha,
		blas64.General{Rows: ar, Cols: ac, Stride: lda, Data: a[:(ar-1)*lda+ac]},
		blas64.General{Rows: br, Cols: bc, Stride: ldb, Data: b[:(br-1)*ldb+bc]},
		beta,
		blas64.General{Rows: m, Cols: n, Stride: ldc, Data: c[:(m-1)*ldc+n]})
}

// scaleMatrix sets C = beta*C for an m×n matrix with leading dimension ldc.
func scaleMatrix(m, n int, beta float64, c []float64, ldc int) {
	if beta == 1 {
		return
	}
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}

// scratch recycles the large temporary buffers of the layer ops (column
// matrices, channel-major copies) so that repeated passes do not fault in
// fresh memory every time. Buffers come back with arbitrary contents:
// callers overwrite every element they read.
var scratch sync.Pool // of *[]float64

// getScratch returns a buffer of n elements with arbitrary contents.
func getScratch(n int) []float64 {
	if p, ok := scratch.Get().(*[]float64); ok && cap(*p) >= n {
		return (*p)[:n]
	}
	return make([]float64, n)
}

// putScratch hands a buffer from getScratch back; the caller must not use
// it afterwards.
func putScratch(b []float64) {
	if cap(b) > 0 {
		scratch.Put(&b)
	}
}
