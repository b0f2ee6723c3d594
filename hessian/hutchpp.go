package hessian

import (
	"context"
	"fmt"
	"math"
)

// DefaultSketchSize is the default Hutch++ sketch size (columns of S).
const DefaultSketchSize = 32

// balancePilot is the number of Gaussian products DeflateGlobal spends on
// estimating the block scales.
const balancePilot = 8

// Deflation selects how Hutch++ builds its low-rank part.
type Deflation int

const (
	// DeflateGlobal sketches the whole block-restricted Hessian once, after
	// balancing the blocks (see HutchPlusPlus). Cost of the low-rank part:
	// 8 + 2*SketchSize products, independent of the number of
	// blocks.
	DeflateGlobal Deflation = iota
	// DeflatePerBlock deflates each diagonal block with its own basis.
	// Cost: SketchSize + sum over blocks of min(SketchSize, Len) products,
	// that is about (1 + #blocks) * SketchSize; worthwhile only for a few
	// large blocks.
	DeflatePerBlock
)

// String returns "global" or "per-block".
func (d Deflation) String() string {
	switch d {
	case DeflateGlobal:
		return "global"
	case DeflatePerBlock:
		return "per-block"
	}
	return fmt.Sprintf("Deflation(%d)", int(d))
}

// PPOptions configures HutchPlusPlus.
type PPOptions struct {
	Options
	// SketchSize is the number of sketch columns (default DefaultSketchSize).
	SketchSize int
	// Deflation selects the low-rank construction (default DeflateGlobal).
	Deflation Deflation
}

// HutchPlusPlus estimates every diagonal block's trace like Hutchinson but
// with the variance reduction of Hutch++ (Meyer, Musco, Musco and Woodruff,
// "Hutch++: Optimal Stochastic Trace Estimation", SOSA 2021): a sketch
// Q = orth(G S) captures the dominant part of the operator G, whose
// contribution is computed exactly, and Hutchinson is run only on the
// deflated remainder P G P, P = I - QQ^T. For any orthonormal Q,
//
//	Tr_b(G) = Tr_b(QQ^T G) + Tr_b(P G QQ^T) + Tr_b(P G P),
//
// where Tr_b sums the diagonal over block b. The first two terms follow from
// W = G Q alone; the third is estimated with global Rademacher probes g,
// block b's sample being g_b·(P G P g)_b. The sketch and the probes come
// from independent random streams, so the estimate is unbiased and its
// standard error is that of the residual samples (the low-rank part is
// exact given the sketch).
//
// Block products interfere: one product with a direction supported on
// blocks a and b returns H_aa s_a + H_ab s_b in block a, so per-block
// sketches cannot share products. DeflateGlobal avoids the issue by
// deflating the whole block-restricted Hessian with one basis: its cost does
// not grow with the number of blocks. Because the globally dominant
// directions could all lie in the blocks of largest curvature, leaving
// small-curvature blocks undeflated, it first balances the blocks: a pilot of
// 8 Gaussian products estimates each block row's Frobenius norm
// f_b, and the estimator works on G = D H D with D = diag(f_b^{-1/2}) on
// block b (exact, free to apply, and Tr_b(H) = Tr_b(G) f_b). DeflatePerBlock
// deflates each block with its own basis Q_b = orth((H S)_b) taken from one
// shared sketch (generically range(H_{b,:} S) = range(H_bb) when the rank
// of H is below SketchSize and Len_b) but
// needs separate products H Q_b for each block; it pays about
// (1 + #blocks) * SketchSize products up front and is an option only for a
// handful of large blocks.
//
// If ctx is cancelled the error wraps ctx.Err().
func HutchPlusPlus(ctx context.Context, o Oracle, opts PPOptions) (*Result, error) {
	var err error
	opts.Options, err = opts.Options.withDefaults()
	if err != nil {
		return nil, err
	}
	if opts.SketchSize == 0 {
		opts.SketchSize = DefaultSketchSize
	}
	if opts.SketchSize < 1 {
		return nil, fmt.Errorf("hessian: SketchSize is %d; want at least 1: %w", opts.SketchSize, ErrOptions)
	}
	e, err := newEngine(o, "Hutch++", opts.ProbesPerPass)
	if e != nil {
		e.onProducts = opts.Products
	}
	if err != nil {
		return nil, err
	}
	var lowRank []float64
	var project func([]float64)
	switch opts.Deflation {
	case DeflateGlobal:
		lowRank, project, err = e.deflateGlobal(ctx, opts)
	case DeflatePerBlock:
		lowRank, project, err = e.deflatePerBlock(ctx, opts)
	default:
		return nil, fmt.Errorf("hessian: unknown Deflation %d; use DeflateGlobal or DeflatePerBlock: %w", int(opts.Deflation), ErrOptions)
	}
	if err != nil {
		return nil, err
	}
	return e.residual(ctx, opts.Options, lowRank, project)
}

// deflateGlobal balances the blocks, sketches G = D H D, and returns the
// per-block low-rank traces of G and the projector onto range(Q)'s complement.
func (e *engine) deflateGlobal(ctx context.Context, opts PPOptions) ([]float64, func([]float64), error) {
	// Pilot: f_b^2 = E||(H s)_b||^2 = ||H_{b,B}||_F^2 for s ~ N(0, I) on B.
	// A rough estimate suffices: D only balances the blocks.
	k0 := balancePilot
	s := make([]float64, k0*e.n)
	y := make([]float64, len(s))
	gaussian(newRand(opts.Seed, streamPilot), s)
	if err := e.apply(ctx, s, y, k0); err != nil {
		return nil, nil, err
	}
	for b := range e.blocks {
		lo, hi := e.span(b)
		var ss float64
		for j := range k0 {
			yb := y[j*e.n+lo : j*e.n+hi]
			ss += dot(yb, yb)
		}
		if f := math.Sqrt(ss / float64(k0)); f > 0 {
			e.scale[b] = 1 / math.Sqrt(f)
		}
	}

	r := min(opts.SketchSize, e.n)
	s = make([]float64, r*e.n)
	y = make([]float64, len(s))
	gaussian(newRand(opts.Seed, streamSketch), s)
	if err := e.apply(ctx, s, y, r); err != nil {
		return nil, nil, err
	}
	q := orthonormalize(y, r, e.n)
	r = len(q)
	qf := make([]float64, r*e.n)
	for k, qk := range q {
		copy(qf[k*e.n:], qk)
	}
	w := make([]float64, len(qf))
	if err := e.apply(ctx, qf, w, r); err != nil {
		return nil, nil, err
	}
	// C = Q^T G Q; M = G Q - Q C = P G Q (rows are directions).
	m := append([]float64(nil), w...)
	for k := range r {
		for l := range r {
			c := dot(q[l], w[k*e.n:(k+1)*e.n]) // C_lk
			axpy(-c, q[l], m[k*e.n:(k+1)*e.n])
		}
	}
	// Tr_b(QQ^T G) + Tr_b(P G QQ^T) = sum_{i in b} sum_k Q_ki (W_ki + M_ki).
	lowRank := make([]float64, len(e.blocks))
	for b := range e.blocks {
		lo, hi := e.span(b)
		var t float64
		for k := range r {
			qk := q[k][lo:hi]
			t += dot(qk, w[k*e.n+lo:k*e.n+hi]) + dot(qk, m[k*e.n+lo:k*e.n+hi])
		}
		lowRank[b] = t
	}
	project := func(x []float64) {
		for _, qk := range q {
			axpy(-dot(qk, x), qk, x)
		}
	}
	return lowRank, project, nil
}

// deflatePerBlock returns exact traces of Q_b^T H_bb Q_b for per-block bases
// Q_b and the block-diagonal projector I - blockdiag(Q_b Q_b^T).
func (e *engine) deflatePerBlock(ctx context.Context, opts PPOptions) ([]float64, func([]float64), error) {
	r := min(opts.SketchSize, e.n)
	s := make([]float64, r*e.n)
	y := make([]float64, len(s))
	gaussian(newRand(opts.Seed, streamSketch), s)
	if err := e.apply(ctx, s, y, r); err != nil {
		return nil, nil, err
	}
	qs := make([][][]float64, len(e.blocks)) // qs[b][k] has length Len_b
	total := 0
	for b, blk := range e.blocks {
		lo, hi := e.span(b)
		rb := min(r, blk.Len)
		yb := make([]float64, rb*blk.Len)
		for k := range rb {
			copy(yb[k*blk.Len:], y[k*e.n+lo:k*e.n+hi])
		}
		qs[b] = orthonormalize(yb, rb, blk.Len)
		// Complete with unit vectors when the sketch is rank deficient but
		// covers the whole block, so that small blocks are always exact.
		if rb == blk.Len && len(qs[b]) < rb {
			qs[b] = completeBasis(qs[b], blk.Len)
		}
		total += len(qs[b])
	}
	dirs := make([]float64, total*e.n)
	j := 0
	for b := range e.blocks {
		lo, _ := e.span(b)
		for _, qk := range qs[b] {
			copy(dirs[j*e.n+lo:], qk)
			j++
		}
	}
	hq := make([]float64, len(dirs))
	if err := e.apply(ctx, dirs, hq, total); err != nil {
		return nil, nil, err
	}
	lowRank := make([]float64, len(e.blocks))
	j = 0
	for b := range e.blocks {
		lo, hi := e.span(b)
		for _, qk := range qs[b] {
			lowRank[b] += dot(qk, hq[j*e.n+lo:j*e.n+hi])
			j++
		}
	}
	project := func(x []float64) {
		for b := range e.blocks {
			lo, hi := e.span(b)
			xb := x[lo:hi]
			for _, qk := range qs[b] {
				axpy(-dot(qk, xb), qk, xb)
			}
		}
	}
	return lowRank, project, nil
}

// completeBasis extends the orthonormal rows q to a basis of R^n with
// coordinate vectors.
func completeBasis(q [][]float64, n int) [][]float64 {
	for i := 0; i < n && len(q) < n; i++ {
		x := make([]float64, n)
		x[i] = 1
		for range 2 {
			for _, qk := range q {
				axpy(-dot(qk, x), qk, x)
			}
		}
		// A coordinate vector keeps at least 1/sqrt(n) of its norm for some
		// i while the basis is incomplete; 1e-8 only rejects dependence.
		if norm := math.Sqrt(dot(x, x)); norm > 1e-8 {
			for j := range x {
				x[j] /= norm
			}
			q = append(q, x)
		}
	}
	return q
}
