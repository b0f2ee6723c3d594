package network

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"mpsearch/tensor"
)

// naiveReduce sums (or averages) x over axes by unravelling every input
// index; the result has the kept-dims shape reshaped to out.
func naiveReduce(x *tensor.Tensor, axes []int, mean bool, out []int) *tensor.Tensor {
	kept := slices.Clone(x.Shape)
	for _, a := range axes {
		kept[a] = 1
	}
	res := tensor.New(kept...)
	r := x.Rank()
	idx := make([]int, r)
	st := tensor.Strides(kept)
	for i, v := range x.Data {
		rem := i
		for d := r - 1; d >= 0; d-- {
			idx[d] = rem % x.Shape[d]
			rem /= x.Shape[d]
		}
		off := 0
		for d := 0; d < r; d++ {
			if kept[d] != 1 {
				off += idx[d] * st[d]
			}
		}
		res.Data[off] += v
	}
	if mean {
		cnt := float64(x.Size() / res.Size())
		for i := range res.Data {
			res.Data[i] /= cnt
		}
	}
	return res.Reshape(out...)
}

// reduceTol bounds the difference of two summation orders of up to 24
// N(0,1) terms: a few ulps of the sum.
const reduceTol = 1e-14

func TestReduce(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 1))
	x := randTensor(rng, 1, 2, 3, 4)
	consts := map[string]*tensor.Tensor{"a2": ewInts(2), "a0m1": ewInts(0, -1), "none": ewInts()}
	for _, c := range []struct {
		name   string
		op     string
		inputs []string
		opset  int64
		kv     []any
		axes   []int // normalised, for the reference; nil = identity
		out    []int
	}{
		{"mean axis 2 keepdims 0 (conformance)", "ReduceMean", []string{"x"}, 6, []any{"axes", []int64{2}, "keepdims", 0}, []int{2}, []int{1, 2, 4}},
		{"mean axis 2 keepdims 1 (conformance)", "ReduceMean", []string{"x"}, 6, []any{"axes", []int64{2}, "keepdims", 1}, []int{2}, []int{1, 2, 1, 4}},
		{"mean axes 1,-1", "ReduceMean", []string{"x"}, 13, []any{"axes", []int64{1, -1}}, []int{1, 3}, []int{1, 1, 3, 1}},
		{"mean all", "ReduceMean", []string{"x"}, 13, []any{"keepdims", 0}, []int{0, 1, 2, 3}, []int{}},
		{"mean opset 18 axes input", "ReduceMean", []string{"x", "a0m1"}, 18, []any{"keepdims", 0}, []int{0, 3}, []int{2, 3}},
		{"mean opset 18 no axes", "ReduceMean", []string{"x"}, 18, nil, []int{0, 1, 2, 3}, []int{1, 1, 1, 1}},
		{"sum opset 11 attribute", "ReduceSum", []string{"x"}, 11, []any{"axes", []int64{3}}, []int{3}, []int{1, 2, 3, 1}},
		{"sum opset 13 axes input", "ReduceSum", []string{"x", "a2"}, 13, []any{"keepdims", 0}, []int{2}, []int{1, 2, 4}},
		{"sum opset 13 empty axes", "ReduceSum", []string{"x", "none"}, 13, nil, []int{0, 1, 2, 3}, []int{1, 1, 1, 1}},
		{"sum empty axes noop", "ReduceSum", []string{"x", "none"}, 13, []any{"noop_with_empty_axes", 1}, nil, []int{1, 2, 3, 4}},
	} {
		t.Run(c.name, func(t *testing.T) {
			op := ewBuild(t, ewNode(c.op, c.inputs, c.kv...), consts, c.opset)
			in := []*tensor.Tensor{x}
			for _, name := range c.inputs[1:] {
				in = append(in, consts[name])
			}
			want := x
			if c.axes != nil {
				want = naiveReduce(x, c.axes, c.op == "ReduceMean", c.out)
			}
			ewCompare(t, "forward", ewForward(t, op, in...), want, reduceTol)
			in[0] = x.Clone()
			checkOp(t, op, in, []int{0})
		})
	}
	for _, c := range []struct {
		kv    []any
		shape []int
	}{
		{[]any{"axes", []int64{4}}, []int{1, 2, 3, 4}},
		{[]any{"axes", []int64{1, 1}}, []int{1, 2}},
	} {
		op := ewBuild(t, ewNode("ReduceMean", []string{"x"}, c.kv...), nil, 13)
		if _, _, err := op.Forward([]*tensor.Tensor{tensor.New(c.shape...)}); !errors.Is(err, ErrShape) {
			t.Errorf("ReduceMean %v on %v: got %v; want an error wrapping ErrShape", c.kv, c.shape, err)
		}
	}
	if _, err := ewTryBuild(ewNode("ReduceSum", []string{"x", "dyn"}), consts, 13); err == nil {
		t.Errorf("ReduceSum with non-constant axes: got no error; want one")
	}
}

// TestReduceHandComputed checks values by hand.
func TestReduceHandComputed(t *testing.T) {
	x := tensor.FromData([]float64{1, 2, 3, 4, 5, 6}, 2, 3)
	for _, c := range []struct {
		op   string
		axes []int64
		want *tensor.Tensor
	}{
		{"ReduceMean", []int64{1}, tensor.FromData([]float64{2, 5}, 2, 1)},
		{"ReduceMean", []int64{0}, tensor.FromData([]float64{2.5, 3.5, 4.5}, 1, 3)},
		{"ReduceSum", []int64{0, 1}, tensor.FromData([]float64{21}, 1, 1)},
	} {
		op := ewBuild(t, ewNode(c.op, []string{"x"}, "axes", c.axes), nil, 11)
		ewCompare(t, fmt.Sprint(c.op, c.axes), ewForward(t, op, x), c.want, 0)
	}
}
