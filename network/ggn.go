package network

import (
	"context"
	"fmt"

	"mpsearch/tensor"
)

// piecewiseLinearOps are the operators through which the logits stay
// piecewise linear in any single layer's weights (given the other
// parameters fixed): linear maps, ReLU-like activations, max/average
// pooling, sums, and data movement.
var piecewiseLinearOps = map[string]bool{
	"Conv": true, "Gemm": true, "MatMul": true, "Relu": true, "LeakyRelu": true,
	"PRelu": true, "Clip": true, "MaxPool": true, "AveragePool": true,
	"GlobalAveragePool": true, "Add": true, "Sub": true, "Neg": true,
	"BatchNormalization": true, "Flatten": true, "Reshape": true,
	"Transpose": true, "Squeeze": true, "Unsqueeze": true, "Identity": true,
	"Dropout": true, "Concat": true, "Pad": true, "Constant": true,
	"ReduceMean": true, "ReduceSum": true,
	// Shape arithmetic and data movement: constant, piecewise constant
	// (comparisons, integer casts, Where's condition) or a selection of
	// input elements.
	"Shape": true, "Size": true, "Gather": true, "Slice": true, "Split": true,
	"Expand": true, "Tile": true, "ScatterND": true, "Where": true, "Cast": true,
	"Equal": true, "Less": true, "Greater": true, "LessOrEqual": true,
	"GreaterOrEqual": true, "Not": true, "And": true, "Or": true, "Xor": true,
	"Mod": true, "Range": true, "ConstantOfShape": true,
}

// PiecewiseLinear reports whether the logits are piecewise linear in each
// single layer's weights, so that every diagonal Hessian block of a
// softmax cross-entropy equals its Gauss-Newton block and GGNTraces are
// exact Hessian traces. When not, it names the first node that breaks it.
func (net *Network) PiecewiseLinear() (bool, string) {
	for _, nd := range net.nodes {
		if !piecewiseLinearOps[nd.opType] {
			return false, fmt.Sprintf("node %q (%s)", nd.name, nd.opType)
		}
	}
	// Each layer weight must feed exactly one node (no weight sharing).
	uses := map[int]int{}
	for _, nd := range net.nodes {
		for j, v := range nd.in {
			if v >= 0 && !nd.constIn[j] {
				uses[v]++
			}
		}
	}
	for _, l := range net.layers {
		if uses[net.pvals[l.Weight]] != 1 {
			return false, fmt.Sprintf("weight %q is shared by several nodes", net.params[l.Weight].Name)
		}
	}
	return true, ""
}

// GGNTraces returns, for each layer of Layers(), the trace of the
// Gauss-Newton block of the softmax cross-entropy over this pass's batch,
//
//	(1/denom) Σ_n Σ_c p_nc ||∇_{W_l} CE(z_n, c)||²,
//
// with p_n the softmax of the logits z_n (rows of the output [N, C]). It
// does not depend on the labels. When PiecewiseLinear holds it is the exact
// trace of the Hessian block of the cross-entropy (with labels) and of the
// KL divergence to fixed targets alike.
//
// Cost: one backward pass per class down to the first layer (no weight
// gradients), and per class the per-sample weight-gradient norms from the
// batch's layer inputs a and output gradients δ: ||a_n||²·||δ_n||² for a
// Gemm or a MatMul on rows (the gradient of sample n is the outer product
// a_n δ_nᵀ), one product δ_n·cols(x_n)ᵀ per sample and group for a Conv
// (on the columns the forward pass kept when it kept them), and A_nᵀΔ_n
// for a MatMul on sequences. Any other layer form falls back to re-running
// its operator on the sample (ggnTracesPerSample, the reference algorithm).
// ctx is checked once per class.
func (p *Pass) GGNTraces(ctx context.Context, denom float64) ([]float64, error) {
	net := p.net
	z := p.Output()
	if z.Rank() != 2 {
		return nil, fmt.Errorf("network: GGN traces need logits [N, classes]; got %v: %w", z.Shape, ErrShape)
	}
	n, c := z.Shape[0], z.Shape[1]
	prob := Softmax(z)
	norms := make([]sampleNorms, len(net.layers))
	for li, l := range net.layers {
		norms[li] = p.newSampleNorms(net.nodes[l.node], l.node)
	}
	need := net.needLayerOutGrad()
	traces := make([]float64, len(net.layers))
	gout := tensor.New(n, c)
	sq := make([]float64, n)
	for cls := 0; cls < c; cls++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("network: GGN traces stopped at class %d of %d: %w", cls, c, err)
		}
		// Per-sample gradient of CE(z_n, cls) with respect to z_n.
		copy(gout.Data, prob.Data)
		for i := 0; i < n; i++ {
			gout.Data[i*c+cls] -= 1
		}
		grad := p.backwardAll(gout, need)
		for li, l := range net.layers {
			gy := grad[net.nodes[l.node].out]
			if gy == nil {
				continue
			}
			if err := norms[li].norms(gy, sq); err != nil {
				return nil, err
			}
			for s := 0; s < n; s++ {
				traces[li] += prob.Data[s*c+cls] * sq[s]
			}
		}
	}
	for i := range traces {
		traces[i] /= denom
	}
	return traces, nil
}

// needLayerOutGrad marks the values whose gradient GGNTraces needs: every
// value that depends on some layer's output (so no parameter gradients and
// nothing before the first layer are computed).
func (net *Network) needLayerOutGrad() []bool {
	need := make([]bool, net.nvals)
	for _, l := range net.layers {
		need[net.nodes[l.node].out] = true
	}
	for _, nd := range net.nodes {
		for j, v := range nd.in {
			if v >= 0 && need[v] && !nd.constIn[j] {
				for _, o := range nd.outs {
					if o >= 0 {
						need[o] = true
					}
				}
			}
		}
	}
	return need
}

// sampleNorms computes ||∇_W loss_s||² of one layer for every sample s of
// the batch from the layer's output gradient.
type sampleNorms struct {
	p   *Pass
	nd  *node
	ni  int
	a2  []float64 // Gemm/MatMul on rows: alpha²·||a_s||²
	cv  *convPass // Conv
	src colSource
	mm  [2]int // MatMul on sequences: rows per sample T, K
}

func (p *Pass) newSampleNorms(nd *node, ni int) sampleNorms {
	sn := sampleNorms{p: p, nd: nd, ni: ni}
	x := p.vals[nd.in[0]]
	w := p.vals[nd.in[1]]
	switch op := nd.single.(type) {
	case *gemmOp:
		if !op.ta && x.Rank() == 2 {
			sn.a2 = rowNorms(x.Data, x.Shape[0], x.Shape[1], op.alpha*op.alpha)
		}
	case *matMul:
		switch {
		case w.Rank() != 2 || x.Rank() < 2:
		case x.Rank() == 2:
			sn.a2 = rowNorms(x.Data, x.Shape[0], x.Shape[1], 1)
		default:
			sn.mm = [2]int{x.Size() / x.Shape[0] / w.Shape[0], w.Shape[0]}
		}
	case *conv:
		if st, ok := p.states[ni].(*convState); ok {
			sn.cv = op.pass([]*tensor.Tensor{x, w}, &st.geo)
			sn.src = colSource{x: x.Data, cols: st.cols}
		}
	}
	return sn
}

// batched reports whether the layer's norms come from the batch's values
// (not from re-running its operator per sample).
func (sn *sampleNorms) batched() bool { return sn.a2 != nil || sn.cv != nil || sn.mm[0] > 0 }

// rowNorms returns scale·||row||² of each of the n rows of x.
func rowNorms(x []float64, n, k int, scale float64) []float64 {
	out := make([]float64, n)
	for s := range out {
		out[s] = scale * sumSquares(x[s*k:(s+1)*k])
	}
	return out
}

func sumSquares(x []float64) float64 {
	s := 0.0
	for _, v := range x {
		s += v * v
	}
	return s
}

// norms sets sq[s] to the squared norm of sample s's weight gradient given
// the batch's output gradient gy.
func (sn *sampleNorms) norms(gy *tensor.Tensor, sq []float64) error {
	n := len(sq)
	per := gy.Size() / n
	switch {
	case sn.a2 != nil:
		for s := range sq {
			sq[s] = sn.a2[s] * sumSquares(gy.Data[s*per:(s+1)*per])
		}
	case sn.cv != nil:
		sn.convNorms(gy, sq)
	case sn.mm[0] > 0:
		t, k := sn.mm[0], sn.mm[1]
		m := per / t
		x := sn.p.vals[sn.nd.in[0]].Data
		g := getScratch(k * m)
		defer putScratch(g)
		for s := range sq {
			gemm(true, false, k, m, t, 1, x[s*t*k:], k, gy.Data[s*per:], m, 0, g, m)
			sq[s] = sumSquares(g[:k*m])
		}
	default:
		for s := range sq {
			g, err := sn.p.sampleWeightGrad(sn.nd, s, gy)
			if err != nil {
				return err
			}
			sq[s] = sumSquares(g.Data)
		}
	}
	return nil
}

// convNorms: sample s's weight gradient of group g is δ_s,g (Mg×P) times
// the transposed columns of x_s for that group (P×Cg·kh·kw).
func (sn *sampleNorms) convNorms(gy *tensor.Tensor, sq []float64) {
	cp := sn.cv
	buf := cp.colsBuf(sn.src, 1)
	if buf != nil {
		defer putScratch(buf)
	}
	g := getScratch(cp.mg * cp.ckk)
	defer putScratch(g)
	for s := range sq {
		cols, ld := cp.columns(sn.src, s, 1, buf)
		d := gy.Data[s*cp.mp:]
		sum := 0.0
		for gr := 0; gr < cp.g; gr++ {
			cp.gm.gemm(false, true, cp.mg, cp.ckk, cp.p, 1, d[gr*cp.mg*cp.p:], cp.p, cols[gr*cp.ckk*ld:], ld, 0, g, cp.ckk)
			sum += sumSquares(g[:cp.mg*cp.ckk])
		}
		sq[s] = sum
	}
}

// ggnTracesPerSample is the reference algorithm of GGNTraces: per class one
// full backward pass, then per sample the layer's operator re-run forward
// and backward on that sample alone for its weight gradient.
func (p *Pass) ggnTracesPerSample(denom float64) ([]float64, error) {
	net := p.net
	z := p.Output()
	if z.Rank() != 2 {
		return nil, fmt.Errorf("network: GGN traces need logits [N, classes]; got %v: %w", z.Shape, ErrShape)
	}
	n, c := z.Shape[0], z.Shape[1]
	prob := Softmax(z)
	need := net.needGrad(false)
	traces := make([]float64, len(net.layers))
	gout := tensor.New(n, c)
	for cls := 0; cls < c; cls++ {
		// Per-sample gradient of CE(z_n, cls) with respect to z_n.
		copy(gout.Data, prob.Data)
		for i := 0; i < n; i++ {
			gout.Data[i*c+cls] -= 1
		}
		grad := p.backwardAll(gout, need)
		for li, l := range net.layers {
			nd := net.nodes[l.node]
			gy := grad[nd.out]
			if gy == nil {
				continue
			}
			for s := 0; s < n; s++ {
				w := prob.Data[s*c+cls]
				if w == 0 {
					continue
				}
				g, err := p.sampleWeightGrad(nd, s, gy)
				if err != nil {
					return nil, err
				}
				sq := 0.0
				for _, v := range g.Data {
					sq += v * v
				}
				traces[li] += w * sq
			}
		}
	}
	for i := range traces {
		traces[i] /= denom
	}
	return traces, nil
}

// sampleWeightGrad returns the gradient of node nd's weight (input 1) for
// sample s alone, given the output gradient gy of the whole batch.
func (p *Pass) sampleWeightGrad(nd *node, s int, gy *tensor.Tensor) (*tensor.Tensor, error) {
	ins := make([]*tensor.Tensor, len(nd.in))
	for j, v := range nd.in {
		if v < 0 {
			continue
		}
		ins[j] = p.vals[v]
		if j == 0 {
			ins[j] = sampleOf(p.vals[v], s)
		}
	}
	if nd.single == nil {
		return nil, fmt.Errorf("node %q (%s): per-sample weight gradients need a one-output operator with constant shapes: %w", nd.name, nd.opType, ErrUnsupported)
	}
	out, st, err := nd.single.Forward(ins)
	if err != nil {
		return nil, err
	}
	need := make([]bool, len(ins))
	need[1] = true
	return nd.single.Backward(ins, out, st, sampleOf(gy, s), need)[1], nil
}

// sampleOf returns sample s of a batch tensor as a batch of one (a view).
func sampleOf(t *tensor.Tensor, s int) *tensor.Tensor {
	size := t.Size() / t.Shape[0]
	shape := append([]int{1}, t.Shape[1:]...)
	return tensor.FromData(t.Data[s*size:(s+1)*size], shape...)
}
