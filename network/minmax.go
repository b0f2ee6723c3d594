package network

import (
	"fmt"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

// Selection operators: Max and Min of several broadcast inputs, ReduceMax
// and ReduceMin over axes. Each output element is a copy of one input
// element (the first one reaching the extreme, in input order or in
// row-major order over the reduced axes), chosen in Forward; gradients and
// tangents follow that choice, so the ops are piecewise linear.

func init() {
	for _, c := range []struct {
		name string
		max  bool
	}{{"Max", true}, {"Min", false}} {
		register(c.name, func(n *onnx.Node, _ map[string]*tensor.Tensor, opset int64) (Op, error) {
			if err := variadicInputs(n); err != nil {
				return nil, err
			}
			if opset < 8 && len(n.Inputs) > 1 {
				return &selectOp{max: c.max, name: c.name, same: true}, nil
			}
			return &selectOp{max: c.max, name: c.name}, nil
		})
	}
	register("ReduceMax", func(n *onnx.Node, consts map[string]*tensor.Tensor, opset int64) (Op, error) {
		return buildReduceSelect(n, consts, opset, true)
	})
	register("ReduceMin", func(n *onnx.Node, consts map[string]*tensor.Tensor, opset int64) (Op, error) {
		return buildReduceSelect(n, consts, opset, false)
	})
}

// better reports whether v beats the current extreme e (strictly, so the
// first of equal values wins; a NaN wins and then stays, as in numpy).
func better(v, e float64, max bool) bool {
	if e != e {
		return false
	}
	if v != v {
		return true
	}
	if max {
		return v > e
	}
	return v < e
}

// selectOp is variadic Max/Min with numpy broadcasting (before opset 8 the
// inputs must have equal shapes).
type selectOp struct {
	max  bool
	name string
	same bool
}

// selectState records, per output element, the input it was copied from,
// and each input's broadcast plan (a = output shape, b = the input's).
type selectState struct {
	arg   []uint16
	plans []*bcast
}

func (op *selectOp) Forward(in []*tensor.Tensor) (*tensor.Tensor, any, error) {
	if len(in) == 0 || len(in) > 1<<16 {
		return nil, nil, fmt.Errorf("%s needs 1 to 65536 inputs; got %d", op.name, len(in))
	}
	shape := in[0].Shape
	for _, x := range in[1:] {
		if op.same && !tensor.SameShape(x.Shape, shape) {
			return nil, nil, fmt.Errorf("%s before opset 8 needs equal shapes; got %v and %v: %w", op.name, shape, x.Shape, ErrShape)
		}
		s, err := numpyShape(shape, x.Shape)
		if err != nil {
			return nil, nil, err
		}
		shape = s
	}
	st := &selectState{arg: make([]uint16, tensor.Size(shape)), plans: make([]*bcast, len(in))}
	out := tensor.New(shape...)
	z := out.Data
	for i, x := range in {
		p, err := newBcast(shape, x.Shape)
		if err != nil {
			return nil, nil, err
		}
		st.plans[i] = p
		v := x.Data
		p.runs(func(o, _, ib int) {
			for j := 0; j < p.inner; j++ {
				if xv := v[ib+j*p.bstep]; i == 0 || better(xv, z[o+j], op.max) {
					z[o+j] = xv
					st.arg[o+j] = uint16(i)
				}
			}
		})
	}
	return out, st, nil
}

// route moves values between the output and input i along the choice:
// scatter-adds src (output layout) into dst (input i's layout) when back,
// else copies input i's src into dst (output layout) where it was chosen.
func (st *selectState) route(i int, dst, src []float64, back bool) {
	p := st.plans[i]
	want := uint16(i)
	p.runs(func(o, _, ib int) {
		for j := 0; j < p.inner; j++ {
			if st.arg[o+j] != want {
				continue
			}
			if back {
				dst[ib+j*p.bstep] += src[o+j]
			} else {
				dst[o+j] = src[ib+j*p.bstep]
			}
		}
	})
}

// Backward routes each output gradient back to the inputs.
func (op *selectOp) Backward(in []*tensor.Tensor, out *tensor.Tensor, state any, gout *tensor.Tensor, need []bool) []*tensor.Tensor {
	return routeBackward(state.(*selectState), in, gout, need)
}

// Tangent routes each direction of the input tangents forward.
func (op *selectOp) Tangent(in, tin []*tensor.Tensor, out *tensor.Tensor, state any) *tensor.Tensor {
	return routeTangent(state.(*selectState), in, tin, out)
}

// BackwardTangent routes gout and each direction of tgout back.
func (op *selectOp) BackwardTangent(in, _ []*tensor.Tensor, out, _ *tensor.Tensor, state any, gout, tgout *tensor.Tensor, need []bool) (gin, tgin []*tensor.Tensor) {
	return routeBackwardTangent(state.(*selectState), in, out, gout, tgout, need)
}

// reduceSelectOp is ReduceMax/ReduceMin: the axes, keepdims and
// noop_with_empty_axes handling of reduceOp, with a selection instead of a
// sum. Axes come from the attribute before opset 18, from the optional
// constant input 1 from opset 18.
type reduceSelectOp struct {
	r   *reduceOp
	max bool
	// spatial reduces every axis from 2 on, keeping dimensions
	// (GlobalMaxPool).
	spatial bool
}

// reduceSelectState holds, per output element, the input offset chosen.
type reduceSelectState struct{ arg []int }

func buildReduceSelect(n *onnx.Node, consts map[string]*tensor.Tensor, opset int64, max bool) (Op, error) {
	r, err := buildReduce(n, consts, opset, 18, false)
	if err != nil {
		return nil, err
	}
	return &reduceSelectOp{r: r.(*reduceOp), max: max}, nil
}

// ConstInputs lists the axes input when there is one.
func (op *reduceSelectOp) ConstInputs() []int { return op.r.consts }

func (op *reduceSelectOp) Forward(in []*tensor.Tensor) (*tensor.Tensor, any, error) {
	if len(in) < 1 || in[0] == nil {
		return nil, nil, fmt.Errorf("missing input")
	}
	x := in[0]
	if op.r.noop {
		return x.Reshape(x.Shape...), nil, nil
	}
	r := op.r
	if op.spatial {
		if x.Rank() < 3 {
			return nil, nil, fmt.Errorf("input %v: want [N, C, spatial...]: %w", x.Shape, ErrShape)
		}
		r = &reduceOp{keepDims: true}
		for a := 2; a < x.Rank(); a++ {
			r.axes = append(r.axes, int64(a))
		}
	}
	kept, outShape, err := r.shapes(x.Shape)
	if err != nil {
		return nil, nil, err
	}
	if tensor.Size(kept) > 0 && x.Size() == 0 {
		return nil, nil, fmt.Errorf("reducing an empty axis of %v has no extreme: %w", x.Shape, ErrShape)
	}
	p, err := newBcast(x.Shape, kept)
	if err != nil {
		return nil, nil, err
	}
	out := tensor.New(outShape...)
	st := &reduceSelectState{arg: make([]int, out.Size())}
	for i := range st.arg {
		st.arg[i] = -1
	}
	y := out.Data
	p.runs(func(o, _, ib int) {
		for j := 0; j < p.inner; j++ {
			d := ib + j*p.bstep
			if v := x.Data[o+j]; st.arg[d] < 0 || better(v, y[d], op.max) {
				y[d] = v
				st.arg[d] = o + j
			}
		}
	})
	return out, st, nil
}

// Backward sends each output gradient to the chosen input element.
func (op *reduceSelectOp) Backward(in []*tensor.Tensor, _ *tensor.Tensor, state any, gout *tensor.Tensor, need []bool) []*tensor.Tensor {
	gin := make([]*tensor.Tensor, len(in))
	if !need[0] {
		return gin
	}
	if op.r.noop {
		gin[0] = gout.Reshape(in[0].Shape...)
		return gin
	}
	gin[0] = tensor.New(in[0].Shape...)
	for d, a := range state.(*reduceSelectState).arg {
		gin[0].Data[a] += gout.Data[d]
	}
	return gin
}

// Tangent gathers each direction of the input tangent at the choices.
func (op *reduceSelectOp) Tangent(in, tin []*tensor.Tensor, out *tensor.Tensor, state any) *tensor.Tensor {
	n := in[0].Size()
	K := directions(tin[0], n)
	if K == 0 {
		return nil
	}
	if op.r.noop {
		return tin[0].Reshape(withK(K, out.Shape)...)
	}
	m := out.Size()
	tout := tensor.New(withK(K, out.Shape)...)
	for k := 0; k < K; k++ {
		for d, a := range state.(*reduceSelectState).arg {
			tout.Data[k*m+d] = tin[0].Data[k*n+a]
		}
	}
	return tout
}

// BackwardTangent scatters gout and each direction of tgout back.
func (op *reduceSelectOp) BackwardTangent(in, _ []*tensor.Tensor, out, _ *tensor.Tensor, state any, gout, tgout *tensor.Tensor, need []bool) (gin, tgin []*tensor.Tensor) {
	gin = op.Backward(in, out, state, gout, need)
	tgin = make([]*tensor.Tensor, len(in))
	m := out.Size()
	K := directions(tgout, m)
	if !need[0] || K == 0 {
		return gin, tgin
	}
	if op.r.noop {
		tgin[0] = tgout.Reshape(withK(K, in[0].Shape)...)
		return gin, tgin
	}
	n := in[0].Size()
	tgin[0] = tensor.New(withK(K, in[0].Shape)...)
	for k := 0; k < K; k++ {
		for d, a := range state.(*reduceSelectState).arg {
			tgin[0].Data[k*n+a] += tgout.Data[k*m+d]
		}
	}
	return gin, tgin
}
