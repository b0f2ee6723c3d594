package network

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"mpsearch/tensor"
)

// ewInts makes a constant integer tensor (integers are stored as float64).
func ewInts(v ...float64) *tensor.Tensor { return tensor.FromData(v, len(v)) }

// iotaTensor fills a tensor with 0, 1, 2, ...: every element tells where it came
// from.
func iotaTensor(shape ...int) *tensor.Tensor {
	t := tensor.New(shape...)
	for i := range t.Data {
		t.Data[i] = float64(i)
	}
	return t
}

// TestViewOps checks the shapes of Flatten, Reshape, Squeeze, Unsqueeze,
// Identity and Dropout, that they share the input's data unchanged, and
// their derivatives.
func TestViewOps(t *testing.T) {
	consts := map[string]*tensor.Tensor{
		"s0m1":    ewInts(0, -1),
		"m14":     ewInts(-1, 4),
		"s0024":   ewInts(0, 0, 2, 2),
		"s32":     ewInts(3, 2, 4, 1),
		"z":       ewInts(0, 3),
		"ax0m1":   ewInts(0, -1),
		"ax1":     ewInts(1),
		"ratio":   ewInts(0.5),
		"notrain": ewInts(0),
	}
	for _, c := range []struct {
		name   string
		op     string
		inputs []string
		opset  int64
		kv     []any
		in     []int
		want   []int
	}{
		{"Flatten default axis", "Flatten", []string{"x"}, 13, nil, []int{2, 3, 4}, []int{2, 12}},
		{"Flatten axis 0", "Flatten", []string{"x"}, 13, []any{"axis", 0}, []int{2, 3, 4}, []int{1, 24}},
		{"Flatten axis -1", "Flatten", []string{"x"}, 13, []any{"axis", -1}, []int{2, 3, 4}, []int{6, 4}},
		{"Flatten axis rank", "Flatten", []string{"x"}, 13, []any{"axis", 3}, []int{2, 3, 4}, []int{24, 1}},
		{"Flatten 1-D (operator_view)", "Flatten", []string{"x"}, 6, []any{"axis", 1}, []int{1}, []int{1, 1}},
		{"Reshape 0 and -1", "Reshape", []string{"x", "s0m1"}, 13, nil, []int{2, 3, 4}, []int{2, 12}},
		{"Reshape -1 first", "Reshape", []string{"x", "m14"}, 13, nil, []int{2, 3, 4}, []int{6, 4}},
		{"Reshape two zeros", "Reshape", []string{"x", "s0024"}, 13, nil, []int{2, 3, 2, 2}, []int{2, 3, 2, 2}},
		{"Reshape explicit", "Reshape", []string{"x", "s32"}, 13, nil, []int{2, 3, 4}, []int{3, 2, 4, 1}},
		{"Reshape allowzero keeps 0", "Reshape", []string{"x", "z"}, 14, []any{"allowzero", 1}, []int{3, 0}, []int{0, 3}},
		{"Reshape opset 4 attribute", "Reshape", []string{"x"}, 4, []any{"shape", []int64{4, -1}}, []int{2, 3, 4}, []int{4, 6}},
		{"Squeeze attribute", "Squeeze", []string{"x"}, 11, []any{"axes", []int64{0, -1}}, []int{1, 3, 1}, []int{3}},
		{"Squeeze all", "Squeeze", []string{"x"}, 13, nil, []int{1, 3, 1, 2}, []int{3, 2}},
		{"Squeeze input", "Squeeze", []string{"x", "ax0m1"}, 13, nil, []int{1, 3, 1}, []int{3}},
		{"Unsqueeze attribute", "Unsqueeze", []string{"x"}, 11, []any{"axes", []int64{0, -1}}, []int{3, 4}, []int{1, 3, 4, 1}},
		{"Unsqueeze input", "Unsqueeze", []string{"x", "ax1"}, 13, nil, []int{3, 4}, []int{3, 1, 4}},
		{"Unsqueeze out of order", "Unsqueeze", []string{"x"}, 11, []any{"axes", []int64{3, 0}}, []int{3, 4}, []int{1, 3, 4, 1}},
		{"Identity", "Identity", []string{"x"}, 13, nil, []int{2, 3}, []int{2, 3}},
		{"Dropout opset 6", "Dropout", []string{"x"}, 6, []any{"ratio", 0.5, "is_test", 1}, []int{2, 3}, []int{2, 3}},
		{"Dropout opset 13", "Dropout", []string{"x", "ratio", "notrain"}, 13, nil, []int{2, 3}, []int{2, 3}},
	} {
		t.Run(c.name, func(t *testing.T) {
			op := ewBuild(t, ewNode(c.op, c.inputs, c.kv...), consts, c.opset)
			in := make([]*tensor.Tensor, len(c.inputs))
			x := iotaTensor(c.in...)
			for i, name := range c.inputs {
				if name == "x" {
					in[i] = x
				} else {
					in[i] = consts[name]
				}
			}
			out := ewForward(t, op, in...)
			ewCompare(t, "forward", out, iotaTensor(c.want...), 0)
			if len(out.Data) > 0 && &out.Data[0] != &x.Data[0] {
				t.Errorf("output does not share the input's data; want a view")
			}
			if ci, ok := op.(ConstInputs); ok {
				for _, i := range ci.ConstInputs() {
					if c.inputs[i] == "x" {
						t.Errorf("ConstInputs lists the data input")
					}
				}
			}
			rng := rand.New(rand.NewPCG(8, 1))
			in[0] = randTensor(rng, c.in...)
			checkOp(t, op, in, []int{0})
		})
	}
}

func TestViewOpErrors(t *testing.T) {
	consts := map[string]*tensor.Tensor{
		"two": ewInts(-1, -1), "bad": ewInts(5, -1), "frac": ewInts(1.5), "z": ewInts(0, -1),
		"ax": ewInts(1),
	}
	for _, c := range []struct {
		name   string
		op     string
		inputs []string
		opset  int64
		kv     []any
		in     []int
		build  bool // the error comes from the builder
	}{
		{"Reshape two -1", "Reshape", []string{"x", "two"}, 13, nil, []int{2, 3}, false},
		{"Reshape not divisible", "Reshape", []string{"x", "bad"}, 13, nil, []int{2, 3}, false},
		{"Reshape fractional", "Reshape", []string{"x", "frac"}, 13, nil, []int{2, 3}, true},
		{"Reshape non-constant shape", "Reshape", []string{"x", "dyn"}, 13, nil, []int{2, 3}, true},
		{"Reshape allowzero with 0 and -1", "Reshape", []string{"x", "z"}, 14, []any{"allowzero", 1}, []int{2, 3}, true},
		{"Squeeze a non-1 axis", "Squeeze", []string{"x"}, 11, []any{"axes", []int64{1}}, []int{1, 3}, false},
		{"Squeeze axis out of range", "Squeeze", []string{"x", "ax"}, 13, nil, []int{3}, false},
		{"Unsqueeze repeated axis", "Unsqueeze", []string{"x"}, 11, []any{"axes", []int64{0, -3}}, []int{3}, false},
		{"Unsqueeze without axes", "Unsqueeze", []string{"x"}, 11, nil, []int{3}, true},
		{"Flatten axis beyond rank", "Flatten", []string{"x"}, 13, []any{"axis", 3}, []int{2, 3}, false},
		{"Dropout in training mode", "Dropout", []string{"x", "", "ax"}, 13, nil, []int{2}, true},
	} {
		op, err := ewTryBuild(ewNode(c.op, c.inputs, c.kv...), consts, c.opset)
		if c.build {
			if err == nil {
				t.Errorf("%s: builder got no error; want one", c.name)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: build: %v", c.name, err)
		}
		in := []*tensor.Tensor{tensor.New(c.in...)}
		for _, name := range c.inputs[1:] {
			in = append(in, consts[name])
		}
		if _, _, err := op.Forward(in); !errors.Is(err, ErrShape) {
			t.Errorf("%s: got %v; want an error wrapping ErrShape", c.name, err)
		}
	}
}

// naiveTranspose permutes axes by unravelling every output index.
func naiveTranspose(x *tensor.Tensor, perm []int) *tensor.Tensor {
	r := x.Rank()
	shape := make([]int, r)
	for i, p := range perm {
		shape[i] = x.Shape[p]
	}
	out := tensor.New(shape...)
	st := tensor.Strides(x.Shape)
	idx := make([]int, r)
	for o := range out.Data {
		rem := o
		for i := r - 1; i >= 0; i-- {
			idx[i] = rem % shape[i]
			rem /= shape[i]
		}
		src := 0
		for i, p := range perm {
			src += idx[i] * st[p]
		}
		out.Data[o] = x.Data[src]
	}
	return out
}

func TestTranspose(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 1))
	for _, c := range []struct {
		shape, perm []int // nil perm: default (reverse)
	}{
		{[]int{2, 3, 4}, []int{1, 2, 0}},
		{[]int{2, 3, 4}, []int{0, 2, 1}},
		{[]int{2, 3, 4}, nil},
		{[]int{2, 3, 4, 2}, []int{0, 3, 1, 2}},
		{[]int{5}, nil},
		{[]int{2, 3}, []int{0, 1}},
	} {
		t.Run(fmt.Sprint(c.shape, c.perm), func(t *testing.T) {
			var kv []any
			ref := c.perm
			if c.perm != nil {
				p := make([]int64, len(c.perm))
				for i, v := range c.perm {
					p[i] = int64(v)
				}
				kv = []any{"perm", p}
			} else {
				ref = make([]int, len(c.shape))
				for i := range ref {
					ref[i] = len(ref) - 1 - i
				}
			}
			op := ewBuild(t, ewNode("Transpose", ewInputs(1), kv...), nil, 13)
			x := randTensor(rng, c.shape...)
			ewCompare(t, "forward", ewForward(t, op, x), naiveTranspose(x, ref), 0)
			checkOp(t, op, []*tensor.Tensor{x}, []int{0})
		})
	}
	if _, err := ewTryBuild(ewNode("Transpose", ewInputs(1), "perm", []int64{0, 0}), nil, 13); err == nil {
		t.Errorf("Transpose with perm [0 0]: got no error; want one")
	}
	op := ewBuild(t, ewNode("Transpose", ewInputs(1), "perm", []int64{1, 0}), nil, 13)
	if _, _, err := op.Forward([]*tensor.Tensor{tensor.New(2, 2, 2)}); !errors.Is(err, ErrShape) {
		t.Errorf("Transpose perm of rank 2 on a 3-D input: got %v; want an error wrapping ErrShape", err)
	}
}

// naiveConcat concatenates by unravelling every output index.
func naiveConcat(in []*tensor.Tensor, axis int) *tensor.Tensor {
	shape := slices.Clone(in[0].Shape)
	shape[axis] = 0
	for _, t := range in {
		shape[axis] += t.Shape[axis]
	}
	out := tensor.New(shape...)
	r := len(shape)
	idx := make([]int, r)
	for o := range out.Data {
		rem := o
		for i := r - 1; i >= 0; i-- {
			idx[i] = rem % shape[i]
			rem /= shape[i]
		}
		k, a := 0, idx[axis]
		for a >= in[k].Shape[axis] {
			a -= in[k].Shape[axis]
			k++
		}
		src := slices.Clone(idx)
		src[axis] = a
		off := 0
		for i, s := range tensor.Strides(in[k].Shape) {
			off += src[i] * s
		}
		out.Data[o] = in[k].Data[off]
	}
	return out
}

func TestConcat(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 1))
	for _, c := range []struct {
		shapes [][]int
		axis   int
	}{
		{[][]int{{2, 1, 3}, {2, 2, 3}, {2, 3, 3}}, -2},
		{[][]int{{2, 1, 3}, {2, 2, 3}, {2, 3, 3}}, 1},
		{[][]int{{1, 2}, {3, 2}, {2, 2}}, 0},
		{[][]int{{2, 3}, {2, 1}, {2, 2}}, -1},
		{[][]int{{2, 3}}, 1},
		{[][]int{{2, 0}, {2, 2}}, 1},
	} {
		t.Run(fmt.Sprint(c.shapes, c.axis), func(t *testing.T) {
			op := ewBuild(t, ewNode("Concat", ewInputs(len(c.shapes)), "axis", c.axis), nil, 13)
			in := make([]*tensor.Tensor, len(c.shapes))
			all := make([]int, len(in))
			for i, s := range c.shapes {
				in[i] = randTensor(rng, s...)
				all[i] = i
			}
			ax := c.axis
			if ax < 0 {
				ax += len(c.shapes[0])
			}
			ewCompare(t, "forward", ewForward(t, op, in...), naiveConcat(in, ax), 0)
			checkOp(t, op, in, all)
			if len(in) == 3 {
				checkOp(t, op, in, []int{0, 2}) // a nil tangent in the middle
			}
		})
	}
	if _, err := ewTryBuild(ewNode("Concat", ewInputs(2)), nil, 13); err == nil {
		t.Errorf("Concat without axis: got no error; want one")
	}
	op := ewBuild(t, ewNode("Concat", ewInputs(2), "axis", 0), nil, 13)
	if _, _, err := op.Forward([]*tensor.Tensor{tensor.New(2, 3), tensor.New(2, 4)}); !errors.Is(err, ErrShape) {
		t.Errorf("Concat of [2 3] and [2 4] on axis 0: got %v; want an error wrapping ErrShape", err)
	}
}

func TestConstant(t *testing.T) {
	v := tensor.FromData([]float64{1, 2, 3, 4}, 2, 2)
	for _, c := range []struct {
		name string
		kv   []any
		want *tensor.Tensor
	}{
		{"value", []any{"value", v}, v},
		{"value_float", []any{"value_float", 0.5}, tensor.FromData([]float64{0.5})},
		{"value_floats", []any{"value_floats", []float32{1, 0.25}}, tensor.FromData([]float64{1, 0.25}, 2)},
		{"value_int", []any{"value_int", 7}, tensor.FromData([]float64{7})},
		{"value_ints", []any{"value_ints", []int64{3, -1}}, tensor.FromData([]float64{3, -1}, 2)},
	} {
		op := ewBuild(t, ewNode("Constant", nil, c.kv...), nil, 13)
		out := ewForward(t, op)
		ewCompare(t, c.name, out, c.want, 0)
		if op.Tangent(nil, nil, out, nil) != nil {
			t.Errorf("%s: got a tangent; want nil", c.name)
		}
		checkOp(t, op, nil, nil)
	}
	for _, kv := range [][]any{nil, {"value_float", 1.0, "value_int", 2}} {
		if _, err := ewTryBuild(ewNode("Constant", nil, kv...), nil, 13); err == nil {
			t.Errorf("Constant with attributes %v: got no error; want one", kv)
		}
	}
}
