package network

import (
	"fmt"
	"math"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

// Sum and Mean of several broadcast inputs, LogSoftmax, GlobalMaxPool.

func init() {
	for _, c := range []struct {
		name string
		mean bool
	}{{"Sum", false}, {"Mean", true}} {
		register(c.name, func(n *onnx.Node, _ map[string]*tensor.Tensor, opset int64) (Op, error) {
			if err := variadicInputs(n); err != nil {
				return nil, err
			}
			return &sumOp{mean: c.mean, same: opset < 8}, nil
		})
	}
	register("LogSoftmax", func(n *onnx.Node, consts map[string]*tensor.Tensor, opset int64) (Op, error) {
		op, err := buildSoftmax(n, consts, opset)
		if err != nil {
			return nil, err
		}
		return &logSoftmaxOp{sm: op.(*softmaxOp)}, nil
	})
	register("GlobalMaxPool", func(n *onnx.Node, _ map[string]*tensor.Tensor, _ int64) (Op, error) {
		if err := wantInputs(n, 1, 1); err != nil {
			return nil, err
		}
		return &reduceSelectOp{r: &reduceOp{keepDims: true}, max: true, spatial: true}, nil
	})
}

// sumOp is variadic Sum (or Mean) with numpy broadcasting (equal shapes
// before opset 8). It is linear: each input's gradient is the output
// gradient summed over the axes it was broadcast along, times 1/n for Mean.
type sumOp struct {
	mean, same bool
}

// sumState holds each input's broadcast plan (a = output shape) and the
// scale.
type sumState struct {
	plans []*bcast
	scale float64
}

func (op *sumOp) Forward(in []*tensor.Tensor) (*tensor.Tensor, any, error) {
	if len(in) == 0 {
		return nil, nil, fmt.Errorf("no inputs")
	}
	shape := in[0].Shape
	for _, x := range in[1:] {
		if op.same && !tensor.SameShape(x.Shape, shape) {
			return nil, nil, fmt.Errorf("inputs of shapes %v and %v before opset 8 must be equal: %w", shape, x.Shape, ErrShape)
		}
		s, err := numpyShape(shape, x.Shape)
		if err != nil {
			return nil, nil, err
		}
		shape = s
	}
	st := &sumState{plans: make([]*bcast, len(in)), scale: 1}
	if op.mean {
		st.scale = 1 / float64(len(in))
	}
	out := tensor.New(shape...)
	for i, x := range in {
		p, err := newBcast(shape, x.Shape)
		if err != nil {
			return nil, nil, err
		}
		st.plans[i] = p
		st.route(i, out.Data, x.Data, false)
	}
	return out, st, nil
}

// move adds scale·src into dst between the output layout and input i's:
// from input to output (broadcasting) unless back, then from output to
// input (summing over broadcast axes).
func (st *sumState) route(i int, dst, src []float64, back bool) {
	p := st.plans[i]
	p.runs(func(o, _, ib int) {
		for j := 0; j < p.inner; j++ {
			if back {
				dst[ib+j*p.bstep] += st.scale * src[o+j]
			} else {
				dst[o+j] += st.scale * src[ib+j*p.bstep]
			}
		}
	})
}

// Backward routes each output gradient back to the inputs.
func (op *sumOp) Backward(in []*tensor.Tensor, out *tensor.Tensor, state any, gout *tensor.Tensor, need []bool) []*tensor.Tensor {
	return routeBackward(state.(*sumState), in, gout, need)
}

// Tangent routes each direction of the input tangents forward.
func (op *sumOp) Tangent(in, tin []*tensor.Tensor, out *tensor.Tensor, state any) *tensor.Tensor {
	return routeTangent(state.(*sumState), in, tin, out)
}

// BackwardTangent routes gout and each direction of tgout back.
func (op *sumOp) BackwardTangent(in, _ []*tensor.Tensor, out, _ *tensor.Tensor, state any, gout, tgout *tensor.Tensor, need []bool) (gin, tgin []*tensor.Tensor) {
	return routeBackwardTangent(state.(*sumState), in, out, gout, tgout, need)
}

// logSoftmaxOp is y = x - log Σ exp(x) over Softmax's blocks (same axis
// rules). With p = exp(y): gx = g - p·Σg, tangent ty = tx - <p, tx>, and
// d gx = tg - p·Σtg - dp·Σg with dp = p ⊙ (tx - <p, tx>).
type logSoftmaxOp struct{ sm *softmaxOp }

// logSoftmaxState holds the layout and the softmax p.
type logSoftmaxState struct {
	outer, l, inner int
	p               []float64
}

func (op *logSoftmaxOp) Forward(in []*tensor.Tensor) (*tensor.Tensor, any, error) {
	if len(in) < 1 || in[0] == nil {
		return nil, nil, fmt.Errorf("missing input")
	}
	outer, l, inner, err := op.sm.layout(in[0].Shape)
	if err != nil {
		return nil, nil, err
	}
	st := &logSoftmaxState{outer: outer, l: l, inner: inner, p: make([]float64, in[0].Size())}
	out := tensor.New(in[0].Shape...)
	x, y := in[0].Data, out.Data
	st.each(func(base int) {
		m := math.Inf(-1)
		for j := 0; j < l; j++ {
			m = math.Max(m, x[base+j*inner])
		}
		s := 0.0
		for j := 0; j < l; j++ {
			s += math.Exp(x[base+j*inner] - m)
		}
		lse := m + math.Log(s)
		for j := 0; j < l; j++ {
			q := base + j*inner
			y[q] = x[q] - lse
			st.p[q] = math.Exp(y[q])
		}
	})
	return out, st, nil
}

// each calls fn with the offset of every block's first element.
func (st *logSoftmaxState) each(fn func(base int)) {
	for o := 0; o < st.outer; o++ {
		for i := 0; i < st.inner; i++ {
			fn(o*st.l*st.inner + i)
		}
	}
}

// center sets dst = v - c·Σ_block(w∘v) blockwise, with c = 1 and w = p
// (the Jacobian, for tangents) or c = p and w = 1 (its transpose, for
// gradients); adds into dst when add.
func (st *logSoftmaxState) center(dst, v []float64, transpose, add bool) {
	st.each(func(base int) {
		s := 0.0
		for j := 0; j < st.l; j++ {
			q := base + j*st.inner
			if transpose {
				s += v[q]
			} else {
				s += st.p[q] * v[q]
			}
		}
		for j := 0; j < st.l; j++ {
			q := base + j*st.inner
			c := s
			if transpose {
				c = st.p[q] * s
			}
			if add {
				dst[q] += v[q] - c
			} else {
				dst[q] = v[q] - c
			}
		}
	})
}

func (op *logSoftmaxOp) Backward(in []*tensor.Tensor, out *tensor.Tensor, state any, gout *tensor.Tensor, need []bool) []*tensor.Tensor {
	gin := make([]*tensor.Tensor, len(in))
	if need[0] {
		gin[0] = tensor.New(in[0].Shape...)
		state.(*logSoftmaxState).center(gin[0].Data, gout.Data, true, false)
	}
	return gin
}

func (op *logSoftmaxOp) Tangent(in, tin []*tensor.Tensor, out *tensor.Tensor, state any) *tensor.Tensor {
	n := out.Size()
	K := directions(tin[0], n)
	if K == 0 {
		return nil
	}
	tout := tensor.New(withK(K, out.Shape)...)
	for k := 0; k < K; k++ {
		state.(*logSoftmaxState).center(tout.Data[k*n:(k+1)*n], tin[0].Data[k*n:(k+1)*n], false, false)
	}
	return tout
}

func (op *logSoftmaxOp) BackwardTangent(in, tin []*tensor.Tensor, out, _ *tensor.Tensor, state any, gout, tgout *tensor.Tensor, need []bool) (gin, tgin []*tensor.Tensor) {
	st := state.(*logSoftmaxState)
	gin = op.Backward(in, out, state, gout, need)
	tgin = make([]*tensor.Tensor, len(in))
	n := out.Size()
	K := max(directions(tin[0], n), directions(tgout, n))
	if !need[0] || K == 0 {
		return gin, tgin
	}
	tgin[0] = tensor.New(withK(K, in[0].Shape)...)
	dp := make([]float64, n)
	for k := 0; k < K; k++ {
		dst := tgin[0].Data[k*n : (k+1)*n]
		if tgout != nil {
			st.center(dst, tgout.Data[k*n:(k+1)*n], true, false)
		}
		if tin[0] == nil {
			continue
		}
		// dp = p ⊙ ty with ty = tx - <p, tx>; then subtract dp·Σg.
		st.center(dp, tin[0].Data[k*n:(k+1)*n], false, false)
		g := gout.Data
		st.each(func(base int) {
			s := 0.0
			for j := 0; j < st.l; j++ {
				s += g[base+j*st.inner]
			}
			for j := 0; j < st.l; j++ {
				q := base + j*st.inner
				dst[q] -= st.p[q] * dp[q] * s
			}
		})
	}
	return gin, tgin
}

// variadicInputs checks the inputs of a variadic op (Max, Min, Sum, Mean):
// at least one, none omitted.
func variadicInputs(n *onnx.Node) error {
	if len(n.Inputs) < 1 {
		return nodeErr(n, "has no inputs; want at least 1")
	}
	for i, s := range n.Inputs {
		if s == "" {
			return nodeErr(n, "input %d is empty", i)
		}
	}
	return nil
}
