package network

import (
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
// Cost: one backward pass per class, and per sample and class the weight
// gradient of each layer.
func (p *Pass) GGNTraces(denom float64) ([]float64, error) {
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
