package network

import (
	"context"
	"fmt"

	"mpsearch/tensor"
)

// LayerDirectionalDots returns, for every layer li that dir gives
// directions for, the directional derivatives of each sample's loss term
// along each of k directions of that layer's weight alone:
//
//	out[li][j*N+s] = <δ_li,s, T_li,j,s>,
//
// where δ_li = dL/d(out_li) is the gradient of the batch loss at layer li's
// output (gout = dL/d(output), as for Backward; samples do not mix in an
// inference graph, so its rows are per sample) and T_li,j = (∂out_li/∂W)·dir_j
// is the tangent of that output along direction j of its weight (input 1
// of the layer's node). By the chain rule this equals gout dotted, per
// sample, with the output tangent of a forward tangent pass along dir_j —
// what Pass.Tangents computes one layer at a time — but all layers share
// one backward pass. It is also <G_li,s, dir_j>, sample s's gradient of
// the layer's weight dotted with the direction: for Conv, Gemm and MatMul
// that is how it is computed (weightGradDots, persample.go: one per-sample
// weight-gradient product per layer, not k operator tangents); other
// layer forms run the operator's Tangent along the k directions.
//
// dir(li) returns [k]+weight-shape directions, or nil to skip layer li
// (out[li] is then nil). The context is checked per layer.
func (p *Pass) LayerDirectionalDots(ctx context.Context, gout *tensor.Tensor, k int, dir func(li int) (*tensor.Tensor, error)) ([][]float64, error) {
	net := p.net
	grad := p.backwardAll(gout, net.needLayerOutGrad())
	if p.stopped() {
		return nil, p.ctx.Err()
	}
	out := make([][]float64, len(net.layers))
	for li, l := range net.layers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		d, err := dir(li)
		if err != nil || d == nil {
			if err != nil {
				return nil, err
			}
			continue
		}
		nd := net.nodes[l.node]
		if nd.single == nil {
			return nil, fmt.Errorf("node %q (%s): layer tangents need a one-output operator: %w", nd.name, nd.opType, ErrUnsupported)
		}
		ins := make([]*tensor.Tensor, len(nd.in))
		for j, v := range nd.in {
			if v >= 0 {
				ins[j] = p.vals[v]
			}
		}
		tin := make([]*tensor.Tensor, len(ins))
		tin[1] = d
		y := p.vals[nd.out]
		res := make([]float64, k*y.Shape[0])
		out[li] = res
		gy := grad[nd.out]
		if gy == nil {
			continue // the loss does not depend on this layer's output
		}
		if p.weightGradDots(nd, l.node, gy, d, k, res) {
			continue
		}
		t := nd.single.Tangent(ins, tin, y, p.states[l.node])
		if t == nil {
			continue
		}
		n := y.Shape[0]
		per := y.Size() / n
		for j := 0; j < k; j++ {
			for s := 0; s < n; s++ {
				g, tt := gy.Data[s*per:(s+1)*per], t.Data[(j*n+s)*per:(j*n+s+1)*per]
				sum := 0.0
				for e, v := range g {
					sum += v * tt[e]
				}
				res[j*n+s] = sum
			}
		}
	}
	return out, nil
}
