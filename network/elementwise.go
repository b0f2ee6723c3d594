package network

import (
	"fmt"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

// binKind selects the function z = f(a, b) of a binaryOp.
type binKind int

const (
	binAdd   binKind = iota // a + b
	binSub                  // a - b
	binMul                  // a * b
	binDiv                  // a / b
	binPRelu                // a if a > 0, else b*a (b is the slope)
)

var binNames = [...]string{binAdd: "Add", binSub: "Sub", binMul: "Mul", binDiv: "Div", binPRelu: "PRelu"}

// binaryOp is an elementwise function of two broadcast operands. All its
// derivatives come from the local partials of f (see partials), so Backward,
// Tangent and BackwardTangent share one loop structure and are exact to
// second order, cross terms included.
type binaryOp struct {
	kind binKind
	// uni requires the output to have in[0]'s shape (unidirectional
	// broadcasting: PRelu, legacy opset<7 broadcast=1).
	uni bool
	// bShape, when set, maps (shape of a, shape of b) to the shape b is
	// broadcast as (legacy opset<7 rules); nil means numpy rules.
	bShape func(a, b []int) ([]int, error)
}

// partials returns the partial derivatives of z = f(a, b) at (a, b, z):
// fa = dz/da, fb = dz/db, fab = d²z/dadb, fbb = d²z/db². d²z/da² is zero
// for every kind (each is affine, or piecewise affine, in a).
func partials(kind binKind, a, b, z float64) (fa, fb, fab, fbb float64) {
	switch kind {
	case binAdd:
		return 1, 1, 0, 0
	case binSub:
		return 1, -1, 0, 0
	case binMul:
		return b, a, 1, 0
	case binDiv:
		r := 1 / b
		return r, -z * r, -r * r, 2 * z * r * r
	case binPRelu:
		if a > 0 {
			return 1, 0, 0, 0
		}
		return b, a, 1, 0
	}
	panic("network: unknown binary kind")
}

func init() {
	for _, k := range []binKind{binAdd, binSub, binMul, binDiv} {
		register(binNames[k], func(n *onnx.Node, _ map[string]*tensor.Tensor, opset int64) (Op, error) {
			return newArithOp(n, k, opset)
		})
	}
	register("Neg", func(n *onnx.Node, _ map[string]*tensor.Tensor, _ int64) (Op, error) {
		if err := wantInputs(n, 1, 1); err != nil {
			return nil, err
		}
		return &unaryOp{f: negFunc{}}, nil
	})
}

// newArithOp builds Add/Sub/Mul/Div. From opset 7 they broadcast like
// numpy; before, B is broadcast to A only with broadcast=1, either as a
// size-1 tensor or aligned to A's axes starting at axis (suffix-aligned
// when axis is absent).
func newArithOp(n *onnx.Node, kind binKind, opset int64) (Op, error) {
	if err := wantInputs(n, 2, 2); err != nil {
		return nil, err
	}
	op := &binaryOp{kind: kind}
	if opset >= 7 {
		return op, nil
	}
	op.uni = true
	if attrInt(n, "broadcast", 0) == 0 {
		op.bShape = func(a, b []int) ([]int, error) {
			if !tensor.SameShape(a, b) {
				return nil, fmt.Errorf("operands of shapes %v and %v differ and broadcast=0 (opset %d): %w", a, b, opset, ErrShape)
			}
			return b, nil
		}
		return op, nil
	}
	axis, hasAxis := int(attrInt(n, "axis", 0)), attrHas(n, "axis")
	op.bShape = func(a, b []int) ([]int, error) {
		return legacyAxisShape(a, b, axis, hasAxis)
	}
	return op, nil
}

// legacyAxisShape places shape b at axis of shape a (opset<7 broadcasting):
// a size-1 b is a scalar; otherwise b's dimensions must match a's starting
// at axis (suffix matching when !hasAxis). It returns b's shape padded with
// 1s to a's rank.
func legacyAxisShape(a, b []int, axis int, hasAxis bool) ([]int, error) {
	if tensor.Size(b) == 1 {
		return nil, nil
	}
	if !hasAxis {
		axis = len(a) - len(b)
	} else if axis < 0 {
		axis += len(a)
	}
	if axis < 0 || axis+len(b) > len(a) {
		return nil, fmt.Errorf("cannot broadcast shape %v into %v at axis %d: %w", b, a, axis, ErrShape)
	}
	s := make([]int, len(a))
	for i := range s {
		s[i] = 1
	}
	for i, d := range b {
		if d != a[axis+i] && d != 1 {
			return nil, fmt.Errorf("cannot broadcast shape %v into %v at axis %d: %w", b, a, axis, ErrShape)
		}
		s[axis+i] = d
	}
	return s, nil
}

func (op *binaryOp) plan(in []*tensor.Tensor) (*bcast, error) {
	if len(in) != 2 || in[0] == nil || in[1] == nil {
		return nil, fmt.Errorf("%s needs 2 inputs", binNames[op.kind])
	}
	bs := in[1].Shape
	if op.bShape != nil {
		var err error
		if bs, err = op.bShape(in[0].Shape, bs); err != nil {
			return nil, err
		}
	}
	p, err := newBcast(in[0].Shape, bs)
	if err != nil {
		return nil, err
	}
	if op.uni && !tensor.SameShape(p.shape, in[0].Shape) {
		return nil, fmt.Errorf("second input of shape %v must broadcast to the first input's shape %v: %w", in[1].Shape, in[0].Shape, ErrShape)
	}
	return p, nil
}

// Forward computes z = f(a, b); the state is the broadcast plan.
func (op *binaryOp) Forward(in []*tensor.Tensor) (*tensor.Tensor, any, error) {
	p, err := op.plan(in)
	if err != nil {
		return nil, nil, err
	}
	out := tensor.New(p.shape...)
	op.compute(p, in[0].Data, in[1].Data, out.Data)
	return out, p, nil
}

// inferAlloc is Forward for Infer when no operand can be overwritten (an
// operand that lives on, or a hook's replacement): the output in memory
// from alloc, without the broadcast plan as state.
func (op *binaryOp) inferAlloc(in []*tensor.Tensor, alloc func(n int) []float64) (*tensor.Tensor, error) {
	p, err := op.plan(in)
	if err != nil {
		return nil, err
	}
	out := tensor.FromData(alloc(tensor.Size(p.shape)), p.shape...)
	op.compute(p, in[0].Data, in[1].Data, out.Data)
	return out, nil
}

// fills: compute writes every value of z.
func (op *binaryOp) fills() {}

// inPlaceInputs lists the operands of output size (not broadcast), which
// forwardInPlace can overwrite: element i of the output reads only element
// i of such an operand, before writing it.
func (op *binaryOp) inPlaceInputs(in []*tensor.Tensor) []int {
	p, err := op.plan(in)
	if err != nil {
		return nil
	}
	var c []int
	if p.na == p.n {
		c = append(c, 0)
	}
	if p.nb == p.n {
		c = append(c, 1)
	}
	return c
}

// forwardInPlace is Forward writing the output over in[i].
func (op *binaryOp) forwardInPlace(in []*tensor.Tensor, i int) (*tensor.Tensor, error) {
	p, err := op.plan(in)
	if err != nil {
		return nil, err
	}
	z := in[i].Data
	op.compute(p, in[0].Data, in[1].Data, z)
	return tensor.FromData(z, p.shape...), nil
}

// compute writes a op b into z along plan p.
func (op *binaryOp) compute(p *bcast, a, b, z []float64) {
	as, bs := p.astep, p.bstep
	p.runs(func(o, ia, ib int) {
		zr := z[o : o+p.inner]
		switch op.kind {
		case binAdd:
			for j := range zr {
				zr[j] = a[ia+j*as] + b[ib+j*bs]
			}
		case binSub:
			for j := range zr {
				zr[j] = a[ia+j*as] - b[ib+j*bs]
			}
		case binMul:
			for j := range zr {
				zr[j] = a[ia+j*as] * b[ib+j*bs]
			}
		case binDiv:
			for j := range zr {
				zr[j] = a[ia+j*as] / b[ib+j*bs]
			}
		case binPRelu:
			for j := range zr {
				if x := a[ia+j*as]; x > 0 {
					zr[j] = x
				} else {
					zr[j] = b[ib+j*bs] * x
				}
			}
		}
	})
}

// Backward returns g·fa and g·fb, summed over the axes each operand was
// broadcast along.
func (op *binaryOp) Backward(in []*tensor.Tensor, out *tensor.Tensor, state any, gout *tensor.Tensor, need []bool) []*tensor.Tensor {
	gin, _ := op.BackwardTangent(in, []*tensor.Tensor{nil, nil}, out, nil, state, gout, nil, need)
	return gin
}

// Tangent returns fa·ta + fb·tb for each direction.
func (op *binaryOp) Tangent(in, tin []*tensor.Tensor, out *tensor.Tensor, state any) *tensor.Tensor {
	p := state.(*bcast)
	ta, tb := dataOf(tin[0]), dataOf(tin[1])
	K := max(directions(tin[0], p.na), directions(tin[1], p.nb))
	if K == 0 {
		return nil
	}
	tout := tensor.New(withK(K, p.shape)...)
	a, b, z, t := in[0].Data, in[1].Data, out.Data, tout.Data
	na, nb, n := p.na, p.nb, p.n
	as, bs := p.astep, p.bstep
	p.runs(func(o, ia, ib int) {
		for j := 0; j < p.inner; j++ {
			oo, ai, bi := o+j, ia+j*as, ib+j*bs
			fa, fb, _, _ := partials(op.kind, a[ai], b[bi], z[oo])
			for k := 0; k < K; k++ {
				v := 0.0
				if ta != nil {
					v += fa * ta[k*na+ai]
				}
				if tb != nil {
					v += fb * tb[k*nb+bi]
				}
				t[k*n+oo] = v
			}
		}
	})
	return tout
}

// BackwardTangent returns the gradients and their tangents:
// d(g·fa) = tg·fa + g·(fab·tb) and d(g·fb) = tg·fb + g·(fab·ta + fbb·tb),
// summed over broadcast axes.
func (op *binaryOp) BackwardTangent(in, tin []*tensor.Tensor, out, tout *tensor.Tensor, state any, gout, tgout *tensor.Tensor, need []bool) (gin, tgin []*tensor.Tensor) {
	p := state.(*bcast)
	a, b, z, g := in[0].Data, in[1].Data, out.Data, gout.Data
	ta, tb, tg := dataOf(tin[0]), dataOf(tin[1]), dataOf(tgout)
	K := directions(tgout, p.n)
	if op.kind != binAdd && op.kind != binSub {
		// Only these have nonzero second partials: the input tangents matter.
		K = max(K, directions(tin[0], p.na), directions(tin[1], p.nb))
	}
	gin = make([]*tensor.Tensor, 2)
	tgin = make([]*tensor.Tensor, 2)
	var ga, gb, tga, tgb []float64
	if need[0] {
		gin[0] = tensor.New(in[0].Shape...)
		ga = gin[0].Data
		if K > 0 {
			tgin[0] = tensor.New(withK(K, in[0].Shape)...)
			tga = tgin[0].Data
		}
	}
	if need[1] {
		gin[1] = tensor.New(in[1].Shape...)
		gb = gin[1].Data
		if K > 0 {
			tgin[1] = tensor.New(withK(K, in[1].Shape)...)
			tgb = tgin[1].Data
		}
	}
	na, nb, n := p.na, p.nb, p.n
	as, bs := p.astep, p.bstep
	p.runs(func(o, ia, ib int) {
		for j := 0; j < p.inner; j++ {
			oo, ai, bi := o+j, ia+j*as, ib+j*bs
			fa, fb, fab, fbb := partials(op.kind, a[ai], b[bi], z[oo])
			gv := g[oo]
			if ga != nil {
				ga[ai] += gv * fa
			}
			if gb != nil {
				gb[bi] += gv * fb
			}
			for k := 0; k < K; k++ {
				var dta, dtb, dtg float64
				if ta != nil {
					dta = ta[k*na+ai]
				}
				if tb != nil {
					dtb = tb[k*nb+bi]
				}
				if tg != nil {
					dtg = tg[k*n+oo]
				}
				if tga != nil {
					tga[k*na+ai] += dtg*fa + gv*fab*dtb
				}
				if tgb != nil {
					tgb[k*nb+bi] += dtg*fb + gv*(fab*dta+fbb*dtb)
				}
			}
		}
	})
	return gin, tgin
}
