package network

import (
	"fmt"
	"math"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

// This file holds the ops of shape arithmetic, whose outputs do not depend
// differentiably on their inputs: Shape, Size, integer Cast and Div,
// comparisons (Equal, Less, Greater, LessOrEqual, GreaterOrEqual), logic
// (Not, And, Or, Xor), Mod, Range and ConstantOfShape. Integers and
// booleans are float64 values (exact below 2^53); true is 1.

func init() {
	register("Shape", buildShape)
	register("Size", func(n *onnx.Node, _ map[string]*tensor.Tensor, _ int64) (Op, error) {
		if err := wantInputs(n, 1, 1); err != nil {
			return nil, err
		}
		return &funcOp{nondiff: []int{0}, f: func(in []*tensor.Tensor) (*tensor.Tensor, error) {
			return tensor.FromData([]float64{float64(in[0].Size())}), nil
		}}, nil
	})
	register("Cast", buildCast)
	cmp := map[string]func(a, b float64) bool{
		"Equal":          func(a, b float64) bool { return a == b },
		"Less":           func(a, b float64) bool { return a < b },
		"Greater":        func(a, b float64) bool { return a > b },
		"LessOrEqual":    func(a, b float64) bool { return a <= b },
		"GreaterOrEqual": func(a, b float64) bool { return a >= b },
		"And":            func(a, b float64) bool { return a != 0 && b != 0 },
		"Or":             func(a, b float64) bool { return a != 0 || b != 0 },
		"Xor":            func(a, b float64) bool { return (a != 0) != (b != 0) },
	}
	for name, f := range cmp {
		register(name, func(n *onnx.Node, _ map[string]*tensor.Tensor, _ int64) (Op, error) {
			if err := wantInputs(n, 2, 2); err != nil {
				return nil, err
			}
			return binaryFunc(func(a, b float64) (float64, error) { return b2f(f(a, b)), nil }), nil
		})
	}
	register("Not", func(n *onnx.Node, _ map[string]*tensor.Tensor, _ int64) (Op, error) {
		if err := wantInputs(n, 1, 1); err != nil {
			return nil, err
		}
		return &funcOp{nondiff: []int{0}, f: func(in []*tensor.Tensor) (*tensor.Tensor, error) {
			out := tensor.New(in[0].Shape...)
			for i, v := range in[0].Data {
				out.Data[i] = b2f(v == 0)
			}
			return out, nil
		}}, nil
	})
	register("Mod", buildMod)
	register("Range", buildRange)
	register("ConstantOfShape", buildConstantOfShape)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// funcOp is an op without gradients computed by f.
type funcOp struct {
	noGrad
	nondiff []int
	consts  []int
	f       func(in []*tensor.Tensor) (*tensor.Tensor, error)
}

func (op *funcOp) NonDiffInputs() []int { return op.nondiff }
func (op *funcOp) ConstInputs() []int   { return op.consts }

func (op *funcOp) Forward(in []*tensor.Tensor) (*tensor.Tensor, any, error) {
	for i, t := range in {
		if t == nil && !contains(op.consts, i) {
			return nil, nil, fmt.Errorf("input %d is missing", i)
		}
	}
	out, err := op.f(in)
	return out, nil, err
}

// binaryFunc is a broadcasting elementwise op of two inputs without
// gradients.
func binaryFunc(f func(a, b float64) (float64, error)) *funcOp {
	return &funcOp{nondiff: []int{0, 1}, f: func(in []*tensor.Tensor) (*tensor.Tensor, error) {
		shape, err := numpyShape(in[0].Shape, in[1].Shape)
		if err != nil {
			return nil, err
		}
		ia, ib := bcastIndex(in[0].Shape, shape), bcastIndex(in[1].Shape, shape)
		out := tensor.New(shape...)
		for i := range out.Data {
			if out.Data[i], err = f(in[0].Data[ia[i]], in[1].Data[ib[i]]); err != nil {
				return nil, err
			}
		}
		return out, nil
	}}
}

// buildShape makes Shape: the input's dimensions (from start to end, opset
// 15) as a 1-D tensor.
func buildShape(n *onnx.Node, _ map[string]*tensor.Tensor, _ int64) (Op, error) {
	if err := wantInputs(n, 1, 1); err != nil {
		return nil, err
	}
	start, end := attrInt(n, "start", 0), attrInt(n, "end", math.MaxInt32)
	return &funcOp{nondiff: []int{0}, f: func(in []*tensor.Tensor) (*tensor.Tensor, error) {
		r := int64(in[0].Rank())
		clamp := func(v int64) int64 {
			if v < 0 {
				v += r
			}
			return min(max(v, 0), r)
		}
		s, e := clamp(start), clamp(end)
		out := tensor.New(int(max(e-s, 0)))
		for i := range out.Data {
			out.Data[i] = float64(in[0].Shape[int(s)+i])
		}
		return out, nil
	}}, nil
}

// buildCast makes Cast: the identity to a floating type (the engine
// computes in float64), truncation toward zero to an integer type, x != 0
// to bool.
func buildCast(n *onnx.Node, _ map[string]*tensor.Tensor, _ int64) (Op, error) {
	if err := wantInputs(n, 1, 1); err != nil {
		return nil, err
	}
	to := onnx.DataType(attrInt(n, "to", 0))
	switch {
	case isFloatType(to) && to != onnx.Undefined:
		return &viewOp{shape: sameShape}, nil
	case to == onnx.Bool:
		return &funcOp{nondiff: []int{0}, f: func(in []*tensor.Tensor) (*tensor.Tensor, error) {
			out := tensor.New(in[0].Shape...)
			for i, v := range in[0].Data {
				out.Data[i] = b2f(v != 0)
			}
			return out, nil
		}}, nil
	case isIntType(to):
		return &funcOp{nondiff: []int{0}, f: func(in []*tensor.Tensor) (*tensor.Tensor, error) {
			out := tensor.New(in[0].Shape...)
			for i, v := range in[0].Data {
				out.Data[i] = math.Trunc(v)
			}
			return out, nil
		}}, nil
	}
	return nil, nodeErrWrap(n, ErrUnsupported, "cast to element type %d is not supported", to)
}

// buildIntDiv makes Div of two integer tensors: the quotient truncated
// toward zero, as ONNX Runtime computes it. Build picks it over the float
// Div from the inputs' element types.
func buildIntDiv(n *onnx.Node, _ map[string]*tensor.Tensor, _ int64) (Op, error) {
	if err := wantInputs(n, 2, 2); err != nil {
		return nil, err
	}
	return binaryFunc(func(a, b float64) (float64, error) {
		if b == 0 {
			return 0, fmt.Errorf("integer division by zero: %w", ErrShape)
		}
		return math.Trunc(a / b), nil
	}), nil
}

// buildMod makes Mod: the remainder with the divisor's sign (fmod=0, for
// integers) or the dividend's (fmod=1, C's fmod). Mod is shape arithmetic
// in the exported models; it carries no gradient.
func buildMod(n *onnx.Node, _ map[string]*tensor.Tensor, _ int64) (Op, error) {
	if err := wantInputs(n, 2, 2); err != nil {
		return nil, err
	}
	fmod := attrInt(n, "fmod", 0) != 0
	return binaryFunc(func(a, b float64) (float64, error) {
		if b == 0 {
			if fmod {
				return math.NaN(), nil
			}
			return 0, fmt.Errorf("integer modulo by zero: %w", ErrShape)
		}
		r := math.Mod(a, b)
		if !fmod && r != 0 && (r < 0) != (b < 0) {
			r += b
		}
		return r, nil
	}), nil
}

// buildRange makes Range(start, limit, delta): max(ceil((limit-start)/delta), 0)
// values start + i*delta. Its inputs are read as constants.
func buildRange(n *onnx.Node, consts map[string]*tensor.Tensor, _ int64) (Op, error) {
	if err := wantInputs(n, 3, 3); err != nil {
		return nil, err
	}
	var v [3]float64
	for i := range v {
		t, _, err := constInput(n, consts, i)
		if err != nil {
			return nil, err
		}
		if t.Size() != 1 {
			return nil, nodeErr(n, "input %d has %d values; Range takes scalars", i, t.Size())
		}
		v[i] = t.Data[0]
	}
	if v[2] == 0 {
		return nil, nodeErr(n, "delta is 0")
	}
	cnt := int(max(math.Ceil((v[1]-v[0])/v[2]), 0))
	out := tensor.New(cnt)
	for i := range out.Data {
		out.Data[i] = v[0] + float64(i)*v[2]
	}
	return &funcOp{consts: []int{0, 1, 2}, f: func([]*tensor.Tensor) (*tensor.Tensor, error) { return out, nil }}, nil
}

// buildConstantOfShape makes ConstantOfShape: a tensor of the constant
// input's shape filled with the value attribute (0 by default).
func buildConstantOfShape(n *onnx.Node, consts map[string]*tensor.Tensor, _ int64) (Op, error) {
	if err := wantInputs(n, 1, 1); err != nil {
		return nil, err
	}
	t, _, err := constInput(n, consts, 0)
	if err != nil {
		return nil, err
	}
	dims, err := intsOf(n, t, "shape")
	if err != nil {
		return nil, err
	}
	shape := make([]int, len(dims))
	for i, d := range dims {
		if d < 0 {
			return nil, nodeErrWrap(n, ErrShape, "shape %v has a negative dimension", dims)
		}
		shape[i] = int(d)
	}
	fill := 0.0
	if a, ok := n.Attrs["value"]; ok && a.T != nil {
		if a.T.Size() != 1 {
			return nil, nodeErr(n, "the value attribute has %d values; want 1", a.T.Size())
		}
		fill = a.T.Data[0]
	}
	out := tensor.New(shape...)
	for i := range out.Data {
		out.Data[i] = fill
	}
	return &funcOp{consts: []int{0}, f: func([]*tensor.Tensor) (*tensor.Tensor, error) { return out, nil }}, nil
}
