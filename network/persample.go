package network

import (
	"mpsearch/tensor"
)

// weightGradDots sets res[j*n+s] to <G_s, dir_j> for every sample s of the
// batch and direction j < k, where G_s is sample s's gradient of the loss
// with respect to node nd's weight (input 1), given the layer's output
// gradient gy, and dir holds k directions [k]+weight shape. That equals
// <δ_s, T_j,s>, the output gradient dotted with the tangent of the
// layer's output along dir_j (what LayerDirectionalDots defines), by the
// chain rule; it is computed from the batch's values without running the
// operator along the directions:
//
//   - Conv: G_s of group g is δ_s,g (Mg×P) times the transposed columns
//     of x_s for that group (P×Cg·kh·kw), one product per sample and
//     group on the columns the forward pass kept when it kept them (a
//     depthwise convolution correlates each output plane with its input
//     plane), then k dots of the weight's size: one forward's
//     multiply-adds for the layer instead of k;
//   - MatMul on sequences (x [N, ..., T, K], W [K, M]): G_s = A_sᵀΔ_s,
//     likewise;
//   - Gemm without transA and MatMul on rows (a_s, δ_s rows of x and gy):
//     G_s is an outer product, <G_s, D> = α·a_s·(D δ_s) (α δ_s·(D a_s) for
//     transB), one product Δ·D per direction for the whole batch.
//
// It reports false, leaving res alone, for any other layer form (Gemm
// with transA, MatMul whose operands are not of those shapes, a Conv
// without its Forward state): the caller then runs the operator's Tangent.
func (p *Pass) weightGradDots(nd *node, ni int, gy, dir *tensor.Tensor, k int, res []float64) bool {
	x, w := p.vals[nd.in[0]], p.vals[nd.in[1]]
	switch op := nd.single.(type) {
	case *conv:
		st, ok := p.states[ni].(*convState)
		if !ok {
			return false
		}
		// The weight's shape only: its values are not read here, so the
		// pass must not make their float32 copy (gemmer.keep).
		cp := op.pass([]*tensor.Tensor{x, {Shape: w.Shape}}, &st.geo)
		cp.gradDots(colSource{x: x.Data, cols: st.cols}, gy.Data, dir.Data, k, res)
		return true
	case *gemmOp:
		if op.ta || x.Rank() != 2 || w.Rank() != 2 {
			return false
		}
		rowGradDots(newGemmer(op.prec), x, gy, dir.Data, k, op.alpha, op.tb, res)
		return true
	case *matMul:
		switch {
		case w.Rank() != 2 || x.Rank() < 2:
			return false
		case x.Rank() == 2:
			rowGradDots(newGemmer(op.prec), x, gy, dir.Data, k, 1, false, res)
		default:
			seqGradDots(newGemmer(op.prec), x, gy, w.Shape[0], w.Shape[1], dir.Data, k, res)
		}
		return true
	}
	return false
}

// gradDots is weightGradDots for a convolution: src holds the batch's
// samples (and kept columns), g its output gradient [N, M, P], dir the k
// weight directions [k, M, Cg*kh*kw].
func (cp *convPass) gradDots(src colSource, g, dir []float64, k int, res []float64) {
	size := cp.m * cp.ckk
	gs := getScratch(size)
	defer putScratch(gs)
	if cp.depthwise() {
		for s := 0; s < cp.n; s++ {
			clear(gs)
			one := colSource{x: src.x[s*cp.chw : (s+1)*cp.chw]}
			cp.backwardWeightDepthwise(1, []weightTerm{{dw: gs, g: g[s*cp.mp : (s+1)*cp.mp], src: one}})
			directionDots(gs, dir, k, cp.n, s, res)
		}
		return
	}
	buf := cp.colsBuf(src, 1)
	if buf != nil {
		defer putScratch(buf)
	}
	for s := 0; s < cp.n; s++ {
		cols, ld := cp.columns(src, s, 1, buf)
		d := g[s*cp.mp:]
		for gr := 0; gr < cp.g; gr++ {
			cp.gm.gemm(false, true, cp.mg, cp.ckk, cp.p, 1, d[gr*cp.mg*cp.p:], cp.p, cols[gr*cp.ckk*ld:], ld, 0, gs[gr*cp.mg*cp.ckk:], cp.ckk)
		}
		directionDots(gs, dir, k, cp.n, s, res)
	}
}

// rowGradDots is weightGradDots for a product on rows, y = α·x·W (W
// [K, M]) or, with tb, y = α·x·Wᵀ (W [M, K]): x [N, K], gy [N, M]. Per
// direction D_j, U = α·Δ·D_jᵀ (or α·Δ·D_j) is [N, K] and sample s's dot is
// U_s·x_s.
func rowGradDots(gm *gemmer, x, gy *tensor.Tensor, dir []float64, k int, alpha float64, tb bool, res []float64) {
	n, kk := x.Shape[0], x.Shape[1]
	m := gy.Size() / n
	u := getScratch(n * kk)
	defer putScratch(u)
	ld := m // D_j is [K, M], used transposed
	if tb {
		ld = kk // D_j is [M, K]
	}
	for j := 0; j < k; j++ {
		gm.gemm(false, !tb, n, kk, m, alpha, gy.Data, m, dir[j*kk*m:], ld, 0, u, kk)
		for s := 0; s < n; s++ {
			res[j*n+s] = dot(u[s*kk:(s+1)*kk], x.Data[s*kk:(s+1)*kk])
		}
	}
}

// seqGradDots is weightGradDots for a MatMul on sequences: x [N, ..., T,
// K] times W [K, M]; sample s's gradient is A_sᵀΔ_s [K, M] with A_s its T
// rows of x and Δ_s those of gy.
func seqGradDots(gm *gemmer, x, gy *tensor.Tensor, kk, m int, dir []float64, k int, res []float64) {
	n := x.Shape[0]
	t := x.Size() / n / kk
	gs := getScratch(kk * m)
	defer putScratch(gs)
	for s := 0; s < n; s++ {
		gm.gemm(true, false, kk, m, t, 1, x.Data[s*t*kk:], kk, gy.Data[s*t*m:], m, 0, gs, m)
		directionDots(gs, dir, k, n, s, res)
	}
}

// directionDots sets res[j*n+s] = <g, dir_j> for the k directions dir
// [k, len(g)].
func directionDots(g, dir []float64, k, n, s int, res []float64) {
	size := len(g)
	for j := 0; j < k; j++ {
		res[j*n+s] = dot(g, dir[j*size:(j+1)*size])
	}
}

// dot returns Σ a_i b_i over len(a) (b at least as long), with four
// independent partial sums (as rowSum) in a fixed order.
func dot(a, b []float64) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	for len(a) >= 4 {
		s0 += a[0] * b[0]
		s1 += a[1] * b[1]
		s2 += a[2] * b[2]
		s3 += a[3] * b[3]
		a, b = a[4:], b[4:]
	}
	for i, v := range a {
		s0 += v * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}
