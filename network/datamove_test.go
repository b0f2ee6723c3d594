package network

import (
	"math/rand/v2"
	"testing"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

// outputOf runs output k of a MultiOp as an Op, so that checkOp verifies
// each output's gradients and tangents (the others get zero gradients).
type outputOf struct {
	op MultiOp
	k  int
}

func (o outputOf) Forward(in []*tensor.Tensor) (*tensor.Tensor, any, error) {
	outs, st, err := o.op.ForwardMulti(in)
	if err != nil {
		return nil, nil, err
	}
	return outs[o.k], outsState{outs, st}, nil
}

type outsState struct {
	outs []*tensor.Tensor
	st   any
}

func (o outputOf) only(t *tensor.Tensor, n int) []*tensor.Tensor {
	s := make([]*tensor.Tensor, n)
	s[o.k] = t
	return s
}

func (o outputOf) Backward(in []*tensor.Tensor, _ *tensor.Tensor, state any, gout *tensor.Tensor, need []bool) []*tensor.Tensor {
	s := state.(outsState)
	return o.op.BackwardMulti(in, s.outs, s.st, o.only(gout, len(s.outs)), need)
}

func (o outputOf) Tangent(in, tin []*tensor.Tensor, _ *tensor.Tensor, state any) *tensor.Tensor {
	s := state.(outsState)
	return o.op.TangentMulti(in, tin, s.outs, s.st)[o.k]
}

func (o outputOf) BackwardTangent(in, tin []*tensor.Tensor, _, tout *tensor.Tensor, state any, gout, tgout *tensor.Tensor, need []bool) (gin, tgin []*tensor.Tensor) {
	s := state.(outsState)
	n := len(s.outs)
	return o.op.BackwardTangentMulti(in, tin, s.outs, o.only(tout, n), s.st, o.only(gout, n), o.only(tgout, n), need)
}

func ints(v ...float64) *tensor.Tensor { return tensor.FromData(v, len(v)) }

// TestDataMoveOps checks forward values against hand-computed results and
// backward, tangent and backward-tangent passes against finite differences.
func TestDataMoveOps(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	seq := func(shape ...int) *tensor.Tensor {
		x := tensor.New(shape...)
		for i := range x.Data {
			x.Data[i] = float64(i)
		}
		return x
	}
	cases := []struct {
		name   string
		node   onnx.Node
		consts map[string]*tensor.Tensor
		in     []*tensor.Tensor
		diff   []int
		want   []float64 // forward of seq-valued data, when given
		shape  []int
	}{
		{name: "gather axis 1 negative index", node: mkNode("g", "Gather", []string{"x", "i"}, []string{"y"}, aInt("axis", 1)),
			in: []*tensor.Tensor{seq(2, 3), ints(-1, 0)}, diff: []int{0}, want: []float64{2, 0, 5, 3}, shape: []int{2, 2}},
		{name: "gather repeated 2-D indices", node: mkNode("g", "Gather", []string{"x", "i"}, []string{"y"}),
			in: []*tensor.Tensor{seq(3, 2), tensor.FromData([]float64{0, 2, 0, 0}, 2, 2)}, diff: []int{0}, want: []float64{0, 1, 4, 5, 0, 1, 0, 1}, shape: []int{2, 2, 2}},
		{name: "slice negative step", node: mkNode("s", "Slice", []string{"x", "st", "en", "ax", "sp"}, []string{"y"}),
			consts: map[string]*tensor.Tensor{"st": ints(-1), "en": ints(-1e19), "ax": ints(-1), "sp": ints(-2)},
			in:     []*tensor.Tensor{seq(2, 5), nil, nil, nil, nil}, diff: []int{0}, want: []float64{4, 2, 0, 9, 7, 5}, shape: []int{2, 3}},
		{name: "slice two axes clamped", node: mkNode("s", "Slice", []string{"x", "st", "en", "ax"}, []string{"y"}),
			consts: map[string]*tensor.Tensor{"st": ints(1, 1), "en": ints(9.3e18, 3), "ax": ints(0, 1)},
			in:     []*tensor.Tensor{seq(3, 4), nil, nil, nil}, diff: []int{0}, want: []float64{5, 6, 9, 10}, shape: []int{2, 2}},
		{name: "expand both ways", node: mkNode("e", "Expand", []string{"x", "s"}, []string{"y"}),
			consts: map[string]*tensor.Tensor{"s": ints(2, 1, 1)},
			in:     []*tensor.Tensor{seq(3, 1), nil}, diff: []int{0}, want: []float64{0, 1, 2, 0, 1, 2}, shape: []int{2, 3, 1}},
		{name: "tile", node: mkNode("t", "Tile", []string{"x", "r"}, []string{"y"}),
			consts: map[string]*tensor.Tensor{"r": ints(1, 2)},
			in:     []*tensor.Tensor{seq(2, 2), nil}, diff: []int{0}, want: []float64{0, 1, 0, 1, 2, 3, 2, 3}, shape: []int{2, 4}},
		{name: "where broadcast", node: mkNode("w", "Where", []string{"c", "x", "y"}, []string{"z"}),
			in: []*tensor.Tensor{ints(1, 0, 1), seq(2, 3), ints(-1)}, diff: []int{1, 2}, want: []float64{0, -1, 2, 3, -1, 5}, shape: []int{2, 3}},
		{name: "scatternd rows", node: mkNode("s", "ScatterND", []string{"x", "i", "u"}, []string{"y"}),
			in: []*tensor.Tensor{seq(3, 2), tensor.FromData([]float64{2, -3}, 2, 1), tensor.FromData([]float64{10, 11, 12, 13}, 2, 2)}, diff: []int{0, 2},
			want: []float64{12, 13, 2, 3, 10, 11}, shape: []int{3, 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			op, err := builders[c.node.OpType](&c.node, c.consts, 13)
			if err != nil {
				t.Fatal(err)
			}
			for i, name := range c.node.Inputs {
				if c.in[i] == nil {
					c.in[i] = c.consts[name]
				}
			}
			out, _, err := op.Forward(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if !tensor.SameShape(out.Shape, c.shape) || !equalData(out.Data, c.want) {
				t.Fatalf("forward: got %v %v; want %v %v", out.Shape, out.Data, c.shape, c.want)
			}
			for _, i := range c.diff {
				c.in[i] = randTensor(rng, c.in[i].Shape...)
			}
			checkOp(t, op, c.in, c.diff)
		})
	}
}

func equalData(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestSplitOutputs checks each output of Split (given sizes, and equal
// parts with a smaller last one as opset 18's num_outputs splits).
func TestSplitOutputs(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	n := mkNode("s", "Split", []string{"x", "sp"}, []string{"a", "b"}, aInt("axis", -1))
	op, err := multiBuilders["Split"](&n, map[string]*tensor.Tensor{"sp": ints(1, 3)}, 13)
	if err != nil {
		t.Fatal(err)
	}
	x := tensor.FromData([]float64{0, 1, 2, 3, 4, 5, 6, 7}, 2, 4)
	outs, _, err := op.ForwardMulti([]*tensor.Tensor{x, ints(1, 3)})
	if err != nil {
		t.Fatal(err)
	}
	if !equalData(outs[0].Data, []float64{0, 4}) || !equalData(outs[1].Data, []float64{1, 2, 3, 5, 6, 7}) {
		t.Fatalf("split: got %v and %v; want [0 4] and [1 2 3 5 6 7]", outs[0].Data, outs[1].Data)
	}
	for k := range 2 {
		checkOp(t, outputOf{op, k}, []*tensor.Tensor{randTensor(rng, 2, 4), ints(1, 3)}, []int{0})
	}
	n3 := mkNode("s", "Split", []string{"x"}, []string{"a", "b", "c"})
	op3, err := multiBuilders["Split"](&n3, nil, 18)
	if err != nil {
		t.Fatal(err)
	}
	outs, _, err = op3.ForwardMulti([]*tensor.Tensor{ints(0, 1, 2, 3, 4, 5, 6)})
	if err != nil {
		t.Fatal(err)
	}
	if !equalData(outs[0].Data, []float64{0, 1, 2}) || !equalData(outs[1].Data, []float64{3, 4, 5}) || !equalData(outs[2].Data, []float64{6}) {
		t.Fatalf("split of 7 in 3: got %v %v %v; want [0 1 2] [3 4 5] [6]", outs[0].Data, outs[1].Data, outs[2].Data)
	}
}

// TestShapeArithmetic checks the integer semantics the node cases do not
// cover: Not, integer Div (truncation, as ONNX Runtime), Cast to integers.
func TestShapeArithmetic(t *testing.T) {
	cases := []struct {
		node onnx.Node
		in   []*tensor.Tensor
		want []float64
	}{
		{mkNode("n", "Not", []string{"a"}, []string{"y"}), []*tensor.Tensor{ints(0, 1, 1, 0)}, []float64{1, 0, 0, 1}},
		{mkNode("d", "Div", []string{"a", "b"}, []string{"y"}), []*tensor.Tensor{ints(7, -7, 6, -6), ints(2)}, []float64{3, -3, 3, -3}},
		{mkNode("c", "Cast", []string{"a"}, []string{"y"}, aInt("to", int64(onnx.Int64))), []*tensor.Tensor{ints(2.7, -2.7, 0.5)}, []float64{2, -2, 0}},
		{mkNode("c", "Cast", []string{"a"}, []string{"y"}, aInt("to", int64(onnx.Bool))), []*tensor.Tensor{ints(2.7, 0, -1)}, []float64{1, 0, 1}},
		{mkNode("m", "Mod", []string{"a", "b"}, []string{"y"}), []*tensor.Tensor{ints(-7, 7, 224), ints(3, -3, 7)}, []float64{2, -2, 0}},
	}
	for _, c := range cases {
		var op Op
		var err error
		if c.node.OpType == "Div" {
			op, err = buildIntDiv(&c.node, nil, 13)
		} else {
			op, err = builders[c.node.OpType](&c.node, nil, 13)
		}
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := op.Forward(c.in)
		if err != nil {
			t.Fatal(err)
		}
		if !equalData(out.Data, c.want) {
			t.Errorf("%s%v: got %v; want %v", c.node.OpType, c.node.Attrs, out.Data, c.want)
		}
	}
}
