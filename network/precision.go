package network

import (
	"fmt"
	"sync"
	"unsafe"

	"mpsearch/internal/floatconv"

	"gonum.org/v1/gonum/blas/blas32"
)

// Precision is the arithmetic of the engine's matrix products.
type Precision int

const (
	// F64 runs every product in float64: the reference the exactness
	// tests (finite differences, the R-operator, conformance) use.
	F64 Precision = iota
	// F32 runs the products of Conv, ConvTranspose, Gemm and MatMul
	// (forward, backward and tangents) through sgemm on float32 copies of
	// their operands, with float32 accumulation; tensors between ops and
	// every other op stay float64.
	F32
)

// String returns "f64" or "f32", the --precision values.
func (p Precision) String() string {
	if p == F32 {
		return "f32"
	}
	return "f64"
}

// ParsePrecision reads "f32" or "f64".
func ParsePrecision(s string) (Precision, error) {
	switch s {
	case "f32":
		return F32, nil
	case "f64":
		return F64, nil
	}
	return F64, fmt.Errorf("precision %q: want f32 or f64", s)
}

// precisioned is implemented by the ops that run matrix products; Build
// tells them the network's precision.
type precisioned interface{ setPrecision(Precision) }

// gemmer runs the matrix products of one op call at a precision. In F32 it
// converts each operand to float32 per product, except operands lying in
// an array registered by keep, whose float32 copy is made once per call
// (the weights of a convolution, read by one product per sample). A nil
// or F64 gemmer is plain gemm. A gemmer belongs to one call of one op:
// ops run concurrently on different batches, each with its own.
type gemmer struct {
	f32   bool
	twins []twin
}

// twin is the float32 copy of a float64 array [lo, hi).
type twin struct {
	lo, hi uintptr
	data   []float32
}

// newGemmer returns a gemmer for one call at precision p.
func newGemmer(p Precision) *gemmer { return &gemmer{f32: p == F32} }

// keep registers x, which must not change until the call ends, so that
// products reading from it share one float32 copy. It does nothing in F64.
func (g *gemmer) keep(x []float64) {
	if g == nil || !g.f32 || len(x) == 0 {
		return
	}
	lo := uintptr(unsafe.Pointer(&x[0]))
	for _, t := range g.twins {
		if t.lo == lo && t.hi == lo+uintptr(len(x))*8 {
			return
		}
	}
	d := make([]float32, len(x))
	floatconv.To32(d, x)
	g.twins = append(g.twins, twin{lo: lo, hi: lo + uintptr(len(x))*8, data: d})
}

// gemm is the package's gemm at g's precision.
func (g *gemmer) gemm(tA, tB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	if g == nil || !g.f32 {
		gemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		scaleMatrix(m, n, beta, c, ldc)
		return
	}
	_, _, ar, ac, br, bc := gemmShape(tA, tB, m, n, k)
	conv := m * n // the result, converted back
	if beta != 0 {
		conv += m * n
	}
	ta, tb := g.twinOf(a), g.twinOf(b)
	if ta == nil {
		conv += ar * ac
	}
	if tb == nil {
		conv += br * bc
	}
	if m*n*k < f32MinMACs*conv {
		// Converting would cost more than the float32 product saves.
		gemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	a32, la, fa := operand32(ta, a, ar, ac, lda)
	b32, lb, fb := operand32(tb, b, br, bc, ldb)
	c32 := getScratch32(m * n)
	if beta != 0 {
		toF32(c32, n, c, ldc, m, n)
	} else {
		// C = A·B + 1·0 is exactly A·B, and beta = 1 keeps OpenBLAS off
		// its direct sgemm kernel (alpha 1, beta 0, no transposes), which
		// it chooses by the number of threads available.
		clear(c32)
		beta = 1
	}
	productTiles(m, n, k, func(i0, i1, j0, j1 int) {
		oa, ob := subOperands(tA, tB, la, lb, i0, j0)
		sgemmCall(tA, tB, i1-i0, j1-j0, k, float32(alpha), a32[oa:], la, b32[ob:], lb, float32(beta), c32[i0*n+j0:], n)
	})
	if ldc == n {
		floatconv.To64(c[:m*n], c32)
	} else {
		for i := 0; i < m; i++ {
			floatconv.To64(c[i*ldc:i*ldc+n], c32[i*n:(i+1)*n])
		}
	}
	putScratch32(c32)
	if fa {
		putScratch32(a32)
	}
	if fb {
		putScratch32(b32)
	}
}

// sgemmCall is one blas32 call of gemm's contract.
func sgemmCall(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	ta, tb, ar, ac, br, bc := gemmShape(tA, tB, m, n, k)
	blas32.Gemm(ta, tb, alpha,
		blas32.General{Rows: ar, Cols: ac, Stride: lda, Data: a[:(ar-1)*lda+ac]},
		blas32.General{Rows: br, Cols: bc, Stride: ldb, Data: b[:(br-1)*ldb+bc]},
		beta,
		blas32.General{Rows: m, Cols: n, Stride: ldc, Data: c[:(m-1)*ldc+n]})
}

// operand32 returns the float32 form of the rows×cols matrix x (leading
// dimension ld) and its leading dimension: twin, x's registered float32
// copy (twinOf), when it covers the matrix, else a compact copy in a
// scratch buffer (free reports which, so the caller hands it back).
func operand32(twin []float32, x []float64, rows, cols, ld int) (d []float32, lead int, free bool) {
	if twin != nil && len(twin) >= (rows-1)*ld+cols {
		return twin, ld, false
	}
	d = getScratch32(rows * cols)
	toF32(d, cols, x, ld, rows, cols)
	return d, cols, true
}

// twinOf returns the float32 copy of x's elements from a registered twin
// (from x's first element to the twin's end), or nil.
func (g *gemmer) twinOf(x []float64) []float32 {
	p := uintptr(unsafe.Pointer(&x[0]))
	for _, t := range g.twins {
		if p >= t.lo && p < t.hi {
			return t.data[int(p-t.lo)/8:]
		}
	}
	return nil
}

// f32MinMACs is the number of multiply-adds per converted value below which
// a product runs in float64 even at F32: converting an operand value costs
// about as much as 20-30 float32 multiply-adds (AVX conversions against
// sgemm's peak), so thin products (few input channels, one output row)
// are faster without. The choice depends only on the product's shape.
const f32MinMACs = 32

// toF32 copies the rows×cols float64 matrix src (leading dimension ls)
// into dst (leading dimension ld).
func toF32(dst []float32, ld int, src []float64, ls, rows, cols int) {
	if ld == cols && ls == cols {
		floatconv.To32(dst[:rows*cols], src[:rows*cols])
		return
	}
	for i := 0; i < rows; i++ {
		floatconv.To32(dst[i*ld:i*ld+cols], src[i*ls:i*ls+cols])
	}
}

var scratch32 sync.Pool // of *[]float32

// getScratch32 returns a float32 buffer of n elements with arbitrary
// contents.
func getScratch32(n int) []float32 {
	if p, ok := scratch32.Get().(*[]float32); ok && cap(*p) >= n {
		return (*p)[:n]
	}
	return make([]float32, n)
}

// putScratch32 hands back a buffer from getScratch32.
func putScratch32(b []float32) {
	if cap(b) > 0 {
		scratch32.Put(&b)
	}
}
