package network

import (
	"sync"
	"sync/atomic"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// The BLAS backend behind every matrix product of the engine (Conv, Gemm,
// MatMul) is gonum's blas64 and blas32 packages. Built with cgo (and
// without the "noopenblas" build tag) the package routes them to OpenBLAS
// through gonum.org/v1/netlib (blas_openblas.go, linked with -lopenblas),
// which it keeps single-threaded; otherwise gonum's pure-Go implementation
// is used (blas_gonum.go). BLASName reports which one is active.
//
// Threads. OpenBLAS's results depend on its thread count (its sgemm
// kernels round differently by the partition), so the engine never lets it
// thread: SetBLASThreads(n) instead lets one product run on n goroutines
// over tiles (productTiles) whose layout depends only on the product's
// sizes, each tile one single-threaded BLAS call. Results are then
// identical for every n.

// blasThreads is the number of goroutines one product may use.
var blasThreads atomic.Int32

func init() { blasThreads.Store(1) }

// SetBLASThreads sets the number of goroutines one matrix product may use
// (values below 1 mean 1; default 1: the engine is usually run with other
// work on the same cores). Results do not depend on it.
func SetBLASThreads(n int) { blasThreads.Store(int32(max(1, n))) }

// Tiling of products (productTiles): products of fewer than tileMinMACs
// multiply-adds are one call; larger ones are cut along the longer side of
// C into strips of tileSize rows or columns.
const (
	tileMinMACs = 1 << 21
	tileSize    = 256
)

// productTiles calls run(i0, i1, j0, j1) for each tile of rows [i0, i1)
// and columns [j0, j1) of an m×n product with inner size k, on up to
// SetBLASThreads goroutines. The tiles depend only on m, n and k.
func productTiles(m, n, k int, run func(i0, i1, j0, j1 int)) {
	if m*n*k < tileMinMACs || max(m, n) <= tileSize {
		run(0, m, 0, n)
		return
	}
	long := max(m, n)
	tiles := (long + tileSize - 1) / tileSize
	tile := func(t int) {
		lo, hi := t*tileSize, min(long, (t+1)*tileSize)
		if n >= m {
			run(0, m, lo, hi)
		} else {
			run(lo, hi, 0, n)
		}
	}
	workers := min(int(blasThreads.Load()), tiles)
	if workers <= 1 {
		for t := 0; t < tiles; t++ {
			tile(t)
		}
		return
	}
	var next atomic.Int32
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := int(next.Add(1)) - 1; t < tiles; t = int(next.Add(1)) - 1 {
				tile(t)
			}
		}()
	}
	wg.Wait()
}

// subOperands returns the offsets into A and B of the tile with rows i0..
// and columns j0.. of C = op(A)·op(B) (A stored k×m when transposed, B
// stored n×k when transposed).
func subOperands(tA, tB bool, lda, ldb, i0, j0 int) (offA, offB int) {
	offA, offB = i0*lda, j0
	if tA {
		offA = i0
	}
	if tB {
		offB = j0 * ldb
	}
	return offA, offB
}

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
	productTiles(m, n, k, func(i0, i1, j0, j1 int) {
		oa, ob := subOperands(tA, tB, lda, ldb, i0, j0)
		gemmCall(tA, tB, i1-i0, j1-j0, k, alpha, a[oa:], lda, b[ob:], ldb, beta, c[i0*ldc+j0:], ldc)
	})
}

// gemmShape returns the BLAS transpose flags and the stored shapes (rows,
// columns) of A and B for a product of op(A) m×k and op(B) k×n.
func gemmShape(tA, tB bool, m, n, k int) (ta, tb blas.Transpose, ar, ac, br, bc int) {
	ta, tb = blas.NoTrans, blas.NoTrans
	ar, ac, br, bc = m, k, k, n
	if tA {
		ta, ar, ac = blas.Trans, k, m
	}
	if tB {
		tb, br, bc = blas.Trans, n, k
	}
	return ta, tb, ar, ac, br, bc
}

// gemmCall is one blas64 call of gemm's contract.
func gemmCall(tA, tB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	ta, tb, ar, ac, br, bc := gemmShape(tA, tB, m, n, k)
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
