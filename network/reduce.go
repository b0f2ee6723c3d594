package network

import (
	"fmt"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

func init() {
	register("ReduceSum", func(n *onnx.Node, consts map[string]*tensor.Tensor, opset int64) (Op, error) {
		return buildReduce(n, consts, opset, 13, false)
	})
	register("ReduceMean", func(n *onnx.Node, consts map[string]*tensor.Tensor, opset int64) (Op, error) {
		return buildReduce(n, consts, opset, 18, true)
	})
}

// reduceOp sums (or averages) over a set of axes. It is linear: the
// reduction of x over the axes is the adjoint of broadcasting the kept-dims
// shape back to x's shape, so both directions use one broadcast plan.
type reduceOp struct {
	axes     []int64 // nil: every axis (unless noop)
	keepDims bool
	noop     bool // no axes and noop_with_empty_axes=1: the identity
	mean     bool
	consts   []int
}

// reduceState is a reduceOp's plan for one input shape.
type reduceState struct {
	p     *bcast // a = input shape, b = kept-dims output shape
	scale float64
}

// buildReduce reads the axes from the attribute (opset < axesInput) or the
// optional constant input 1, keepdims (default 1) and noop_with_empty_axes.
func buildReduce(n *onnx.Node, consts map[string]*tensor.Tensor, opset, axesInput int64, mean bool) (Op, error) {
	hi := 1
	if opset >= axesInput {
		hi = 2
	}
	if err := wantInputs(n, 1, hi); err != nil {
		return nil, err
	}
	axes, has, ci, err := axesFrom(n, consts, opset, axesInput)
	if err != nil {
		return nil, err
	}
	op := &reduceOp{keepDims: attrInt(n, "keepdims", 1) != 0, mean: mean, consts: ci}
	if has && len(axes) > 0 {
		op.axes = axes
	} else if attrInt(n, "noop_with_empty_axes", 0) != 0 {
		op.noop = true
	}
	return op, nil
}

// ConstInputs lists the axes input when there is one.
func (op *reduceOp) ConstInputs() []int { return op.consts }

// shapes returns the kept-dims shape and the output shape for input shape x.
func (op *reduceOp) shapes(x []int) (kept, out []int, err error) {
	kept = append([]int(nil), x...)
	red := make([]bool, len(x))
	if op.axes == nil {
		for i := range red {
			red[i] = true
		}
	} else {
		ax, err := normAxes(op.axes, len(x))
		if err != nil {
			return nil, nil, err
		}
		for _, a := range ax {
			red[a] = true
		}
	}
	for i := range x {
		if red[i] {
			kept[i] = 1
		} else {
			out = append(out, x[i])
		}
	}
	if op.keepDims {
		out = kept
	}
	if out == nil {
		out = []int{}
	}
	return kept, out, nil
}

// Forward reduces in[0]; the state is the plan (nil for the identity).
func (op *reduceOp) Forward(in []*tensor.Tensor) (*tensor.Tensor, any, error) {
	if len(in) < 1 || in[0] == nil {
		return nil, nil, fmt.Errorf("missing input")
	}
	x := in[0]
	if op.noop {
		return x.Reshape(x.Shape...), nil, nil
	}
	kept, outShape, err := op.shapes(x.Shape)
	if err != nil {
		return nil, nil, err
	}
	p, err := newBcast(x.Shape, kept)
	if err != nil {
		return nil, nil, err
	}
	st := &reduceState{p: p, scale: 1}
	if op.mean && p.nb > 0 {
		st.scale = float64(p.nb) / float64(p.na)
	}
	out := tensor.New(outShape...)
	st.reduce(out.Data, x.Data)
	return out, st, nil
}

// reduce sets dst (kept-dims layout) to scale times the sum of src (input
// layout) over the reduced axes.
func (st *reduceState) reduce(dst, src []float64) {
	p := st.p
	clear(dst)
	p.runs(func(o, _, ib int) {
		for j := 0; j < p.inner; j++ {
			dst[ib+j*p.bstep] += src[o+j]
		}
	})
	if st.scale != 1 {
		for i := range dst {
			dst[i] *= st.scale
		}
	}
}

// expand sets dst (input layout) to scale times src (kept-dims layout)
// broadcast over the reduced axes: the adjoint of reduce.
func (st *reduceState) expand(dst, src []float64) {
	p := st.p
	p.runs(func(o, _, ib int) {
		for j := 0; j < p.inner; j++ {
			dst[o+j] = st.scale * src[ib+j*p.bstep]
		}
	})
}

// Backward broadcasts gout back over the reduced axes.
func (op *reduceOp) Backward(in []*tensor.Tensor, _ *tensor.Tensor, state any, gout *tensor.Tensor, need []bool) []*tensor.Tensor {
	gin := make([]*tensor.Tensor, len(in))
	if !need[0] {
		return gin
	}
	if op.noop {
		gin[0] = gout.Reshape(in[0].Shape...)
		return gin
	}
	gin[0] = tensor.New(in[0].Shape...)
	state.(*reduceState).expand(gin[0].Data, gout.Data)
	return gin
}

// Tangent reduces each direction of the input tangent.
func (op *reduceOp) Tangent(in, tin []*tensor.Tensor, out *tensor.Tensor, state any) *tensor.Tensor {
	n := in[0].Size()
	K := directions(tin[0], n)
	if K == 0 {
		return nil
	}
	if op.noop {
		return tin[0].Reshape(withK(K, out.Shape)...)
	}
	st := state.(*reduceState)
	m := out.Size()
	tout := tensor.New(withK(K, out.Shape)...)
	for k := 0; k < K; k++ {
		st.reduce(tout.Data[k*m:(k+1)*m], tin[0].Data[k*n:(k+1)*n])
	}
	return tout
}

// BackwardTangent broadcasts gout and each direction of tgout back (the op
// is linear: the input tangent does not move the gradient).
func (op *reduceOp) BackwardTangent(in, _ []*tensor.Tensor, out, _ *tensor.Tensor, state any, gout, tgout *tensor.Tensor, need []bool) (gin, tgin []*tensor.Tensor) {
	gin = op.Backward(in, out, state, gout, need)
	tgin = make([]*tensor.Tensor, len(in))
	m := out.Size()
	K := directions(tgout, m)
	if !need[0] || K == 0 {
		return gin, tgin
	}
	if op.noop {
		tgin[0] = tgout.Reshape(withK(K, in[0].Shape)...)
		return gin, tgin
	}
	st := state.(*reduceState)
	n := in[0].Size()
	tgin[0] = tensor.New(withK(K, in[0].Shape)...)
	for k := 0; k < K; k++ {
		st.expand(tgin[0].Data[k*n:(k+1)*n], tgout.Data[k*m:(k+1)*m])
	}
	return gin, tgin
}
