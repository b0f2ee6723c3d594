package hessian

import (
	"context"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/mat"
)

// randomOrthogonal returns the Q factor of the QR factorization of an n×n
// standard Gaussian matrix.
func randomOrthogonal(rng *rand.Rand, n int) *mat.Dense {
	g := mat.NewDense(n, n, nil)
	for i := range n {
		for j := range n {
			g.Set(i, j, rng.NormFloat64())
		}
	}
	var qr mat.QR
	qr.Factorize(g)
	var q mat.Dense
	qr.QTo(&q)
	return &q
}

// withSpectrum returns Q diag(lambda) Q^T for a random orthogonal Q.
func withSpectrum(rng *rand.Rand, lambda []float64) *mat.SymDense {
	n := len(lambda)
	q := randomOrthogonal(rng, n)
	ql := mat.NewDense(n, n, nil)
	ql.Apply(func(i, j int, v float64) float64 { return v * lambda[j] }, q)
	var a mat.Dense
	a.Mul(ql, q.T())
	s := mat.NewSymDense(n, nil)
	for i := range n {
		for j := i; j < n; j++ {
			s.SetSym(i, j, (a.At(i, j)+a.At(j, i))/2)
		}
	}
	return s
}

// powerLaw returns n eigenvalues scale * i^-p, i = 1..n.
func powerLaw(n int, scale, p float64) []float64 {
	l := make([]float64, n)
	for i := range l {
		l[i] = scale * math.Pow(float64(i+1), -p)
	}
	return l
}

// blockTrace is the exact trace of the diagonal block blk of a.
func blockTrace(a mat.Symmetric, blk Block) float64 {
	var t float64
	for i := blk.Offset; i < blk.Offset+blk.Len; i++ {
		t += a.At(i, i)
	}
	return t
}

// countingOracle counts the Hessian-vector products passed through it.
type countingOracle struct {
	Oracle
	products, calls int
}

func (c *countingOracle) HVP(ctx context.Context, v, hv []float64, k int) error {
	c.calls++
	c.products += k
	return c.Oracle.HVP(ctx, v, hv, k)
}

// scaleBlocks returns D a D where D is s[b] on block b and 1 elsewhere,
// giving blocks curvatures of different orders of magnitude, as the layers
// of a network have.
func scaleBlocks(a *mat.SymDense, blocks []Block, s []float64) *mat.SymDense {
	n := a.SymmetricDim()
	d := make([]float64, n)
	for i := range d {
		d[i] = 1
	}
	for b, blk := range blocks {
		for i := blk.Offset; i < blk.Offset+blk.Len; i++ {
			d[i] = s[b]
		}
	}
	out := mat.NewSymDense(n, nil)
	for i := range n {
		for j := i; j < n; j++ {
			out.SetSym(i, j, d[i]*d[j]*a.At(i, j))
		}
	}
	return out
}

// decayingProblem is the realistic test spectrum: eigenvalues 10 i^-1.5
// (a few large ones and a long tail, as measured Hessian spectra have),
// every fifth one negative, rotated by a random orthogonal matrix, with
// block scales spanning two orders of magnitude.
func decayingProblem(seed uint64, n int, blocks []Block, scales []float64) *mat.SymDense {
	l := powerLaw(n, 10, 1.5)
	for i := 4; i < n; i += 5 {
		l[i] = -l[i]
	}
	a := withSpectrum(rand.New(rand.NewPCG(seed, 1)), l)
	return scaleBlocks(a, blocks, scales)
}
