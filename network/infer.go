package network

import (
	"context"
	"fmt"

	"mpsearch/tensor"
)

// Forward-only inference. Forward keeps every value of the pass and every
// op's state for a later Backward, HVP or Tangents; a caller that only
// wants the output (evaluation, running a model over a data set,
// calibration hooks) uses Infer, which holds a value only until its last
// consumer has run. Its peak memory is then that of the widest cut of the
// graph (a residual block's input, its current value and the next), not
// the sum of all activations.

// releasePlan returns, for each node, the node-produced values to drop
// once it has run: those it reads for the last time and its own outputs
// that nothing reads. The graph output, data inputs, parameters and
// constants are never dropped. Computed once by Build.
func (net *Network) releasePlan() [][]int {
	last := make([]int, net.nvals)
	for i := range last {
		last[i] = -1
	}
	produced := make([]bool, net.nvals)
	for k, nd := range net.nodes {
		for _, v := range nd.outs {
			if v >= 0 {
				produced[v] = true
				last[v] = max(last[v], k)
			}
		}
		for _, v := range nd.in {
			if v >= 0 {
				last[v] = max(last[v], k)
			}
		}
	}
	plan := make([][]int, len(net.nodes))
	for v, k := range last {
		if k >= 0 && produced[v] && v != net.outVal {
			plan[k] = append(plan[k], v)
		}
	}
	return plan
}

// inferStats counts what an inference pass holds (for tests): the most
// node-produced values held at once, and how many are held at the end.
type inferStats struct {
	peakLive, endLive int
}

// Infer runs the network forward on a batch x of shape [N]+SampleShape and
// returns the output only. The output equals Forward's bit for bit (the
// same ops run on the same values in the same order); intermediate values
// and op states are released as soon as no later node reads them. The
// context is checked before every node.
func (net *Network) Infer(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return net.InferHook(ctx, x, nil)
}

// InferHook is Infer with a hook on node inputs, called as ForwardHook
// calls it.
func (net *Network) InferHook(ctx context.Context, x *tensor.Tensor, hook Hook) (*tensor.Tensor, error) {
	if err := net.CheckInput(x); err != nil {
		return nil, err
	}
	if len(net.inVals) != 1 {
		return nil, fmt.Errorf("network: the model has %d data inputs %v; mpsearch runs models with exactly one: %w", len(net.inVals), net.InputNames, ErrUnsupported)
	}
	return net.infer(ctx, []*tensor.Tensor{x}, hook, nil)
}

// infer is the inference pass on one tensor per data input; st, when not
// nil, receives the pass's counts.
func (net *Network) infer(ctx context.Context, xs []*tensor.Tensor, hook Hook, st *inferStats) (*tensor.Tensor, error) {
	if len(xs) != len(net.inVals) {
		return nil, fmt.Errorf("network: got %d inputs; the model has %d %v: %w", len(xs), len(net.inVals), net.InputNames, ErrShape)
	}
	plan := net.release
	if plan == nil { // a Network not made by Build
		plan = net.releasePlan()
	}
	vals := make([]*tensor.Tensor, net.nvals)
	for i, t := range net.consts {
		vals[i] = t
	}
	for i, v := range net.pvals {
		vals[v] = net.params[i].Value
	}
	for i, v := range net.inVals {
		vals[v] = xs[i]
	}
	ins := make([]*tensor.Tensor, 0, 4)
	live := 0
	for k, nd := range net.nodes {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		outs, _, err := nd.run(vals, hook, &ins)
		if err != nil {
			return nil, err
		}
		for j, v := range nd.outs {
			if v >= 0 {
				vals[v] = outs[j]
				live++
			}
		}
		if st != nil {
			st.peakLive = max(st.peakLive, live)
		}
		for _, v := range plan[k] {
			vals[v] = nil
			live--
		}
	}
	if st != nil {
		st.endLive = live
	}
	return vals[net.outVal], nil
}

// ActivationBytesPerSample estimates, from the layer shapes (batch 1), the
// bytes one sample's values take at the peak of Infer: three float64
// tensors of the largest layer input or output (a residual block's input
// held across the block, the current layer's input and its output). It is
// 0 when the layer shapes are unknown (models not probed at build).
func (net *Network) ActivationBytesPerSample() int64 {
	widest := 0
	for _, l := range net.layers {
		widest = max(widest, tensor.Size(l.InShape), tensor.Size(l.OutShape))
	}
	return 3 * 8 * int64(widest)
}

// InferBatch returns the largest batch size up to limit whose estimated
// activations (ActivationBytesPerSample) fit in budget bytes, and at
// least 1; limit when the estimate is unknown.
func (net *Network) InferBatch(budget int64, limit int) int {
	per := net.ActivationBytesPerSample()
	if per <= 0 {
		return limit
	}
	return max(1, min(limit, int(budget/per)))
}
