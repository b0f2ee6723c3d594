package network

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

// exactTol bounds forward values that are computed by the same float64
// operations as the naive references (a few roundings at most).
const exactTol = 1e-14

// ewAttr builds an attribute from a Go value: int (AttrInt), float64
// (AttrFloat, stored as float32 as ONNX does), []int64 (AttrInts),
// []float32 (AttrFloats), *tensor.Tensor (AttrTensor).
func ewAttr(v any) onnx.Attribute {
	switch x := v.(type) {
	case int:
		return onnx.Attribute{Type: onnx.AttrInt, I: int64(x)}
	case float64:
		return onnx.Attribute{Type: onnx.AttrFloat, F: float32(x)}
	case []int64:
		return onnx.Attribute{Type: onnx.AttrInts, Ints: x}
	case []float32:
		return onnx.Attribute{Type: onnx.AttrFloats, Floats: x}
	case *tensor.Tensor:
		return onnx.Attribute{Type: onnx.AttrTensor, T: x, TType: onnx.Float}
	}
	panic(fmt.Sprintf("ewAttr: unsupported %T", v))
}

// ewNode makes a node with inputs named in0, in1, ... (an entry "" in
// omit-positions is kept empty) and attributes given as name, value pairs.
func ewNode(opType string, inputs []string, kv ...any) *onnx.Node {
	attrs := map[string]onnx.Attribute{}
	for i := 0; i < len(kv); i += 2 {
		a := ewAttr(kv[i+1])
		a.Name = kv[i].(string)
		attrs[a.Name] = a
	}
	return &onnx.Node{Name: "n_" + opType, OpType: opType, Inputs: inputs, Outputs: []string{"out"}, Attrs: attrs}
}

// ewInputs returns the input names in0..in(k-1).
func ewInputs(k int) []string {
	s := make([]string, k)
	for i := range s {
		s[i] = fmt.Sprintf("in%d", i)
	}
	return s
}

// ewBuild builds an op through the registered builder, failing the test on
// error.
func ewBuild(t *testing.T, n *onnx.Node, consts map[string]*tensor.Tensor, opset int64) Op {
	t.Helper()
	op, err := ewTryBuild(n, consts, opset)
	if err != nil {
		t.Fatalf("build %s: %v", n.OpType, err)
	}
	return op
}

func ewTryBuild(n *onnx.Node, consts map[string]*tensor.Tensor, opset int64) (Op, error) {
	b, ok := builders[n.OpType]
	if !ok {
		return nil, fmt.Errorf("operator %s is not registered", n.OpType)
	}
	return b(n, consts, opset)
}

// ewForward runs Forward, failing the test on error.
func ewForward(t *testing.T, op Op, in ...*tensor.Tensor) *tensor.Tensor {
	t.Helper()
	out, _, err := op.Forward(in)
	if err != nil {
		t.Fatalf("Forward: %v", err)
	}
	return out
}

// ewCompare fails unless got has shape want.Shape and values within tol.
func ewCompare(t *testing.T, what string, got, want *tensor.Tensor, tol float64) {
	t.Helper()
	if !tensor.SameShape(got.Shape, want.Shape) {
		t.Fatalf("%s: got shape %v; want %v", what, got.Shape, want.Shape)
	}
	for i := range want.Data {
		if d := math.Abs(got.Data[i] - want.Data[i]); !(d <= tol*math.Max(1, math.Abs(want.Data[i]))) {
			t.Fatalf("%s: element %d: got %.17g; want %.17g", what, i, got.Data[i], want.Data[i])
		}
	}
}

// naiveBroadcast computes f(a, b) with numpy broadcasting by unravelling
// every output index (independent of the bcast plan).
func naiveBroadcast(a, b *tensor.Tensor, f func(x, y float64) float64) *tensor.Tensor {
	r := max(a.Rank(), b.Rank())
	shape := make([]int, r)
	dim := func(s []int, i int) int {
		if j := i - (r - len(s)); j >= 0 {
			return s[j]
		}
		return 1
	}
	for i := range shape {
		shape[i] = max(dim(a.Shape, i), dim(b.Shape, i))
	}
	out := tensor.New(shape...)
	idx := make([]int, r)
	flat := func(s []int) int {
		off := 0
		for i := 0; i < r; i++ {
			d := dim(s, i)
			v := idx[i]
			if d == 1 {
				v = 0
			}
			off = off*d + v
		}
		return off
	}
	for o := range out.Data {
		rem := o
		for i := r - 1; i >= 0; i-- {
			idx[i] = rem % shape[i]
			rem /= shape[i]
		}
		out.Data[o] = f(a.Data[flat(a.Shape)], b.Data[flat(b.Shape)])
	}
	return out
}

// nonZero fills a tensor with values of magnitude in [0.5, 2.5) and random
// sign: safe divisors and points away from kinks at 0.
func nonZero(rng *rand.Rand, shape ...int) *tensor.Tensor {
	t := tensor.New(shape...)
	for i := range t.Data {
		v := 0.5 + 2*rng.Float64()
		if rng.IntN(2) == 0 {
			v = -v
		}
		t.Data[i] = v
	}
	return t
}

var arith = map[string]func(x, y float64) float64{
	"Add": func(x, y float64) float64 { return x + y },
	"Sub": func(x, y float64) float64 { return x - y },
	"Mul": func(x, y float64) float64 { return x * y },
	"Div": func(x, y float64) float64 { return x / y },
}

var arithOps = []string{"Add", "Sub", "Mul", "Div"}

// broadcastCases are operand shape pairs for the arithmetic ops.
var broadcastCases = []struct{ a, b []int }{
	{[]int{2, 3}, []int{2, 3}},
	{[]int{2, 3, 4}, []int{4}},
	{[]int{2, 1, 4}, []int{3, 1}},
	{[]int{2, 3}, []int{}},
	{[]int{1}, []int{2, 3}},
	{[]int{2, 3, 1, 2}, []int{3, 4, 1}},
}

func TestArithHandComputed(t *testing.T) {
	a := tensor.FromData([]float64{1, 2, 3, 4, 5, 6}, 2, 3)
	b := tensor.FromData([]float64{10, 20, 40}, 3)
	for _, tc := range []struct {
		op   string
		want []float64
	}{
		{"Add", []float64{11, 22, 43, 14, 25, 46}},
		{"Sub", []float64{-9, -18, -37, -6, -15, -34}},
		{"Mul", []float64{10, 40, 120, 40, 100, 240}},
		{"Div", []float64{0.1, 0.1, 0.075, 0.4, 0.25, 0.15}},
	} {
		got := ewForward(t, ewBuild(t, ewNode(tc.op, ewInputs(2)), nil, 13), a, b)
		ewCompare(t, tc.op, got, tensor.FromData(tc.want, 2, 3), exactTol)
	}
}

func TestArithBroadcastForward(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, name := range arithOps {
		for _, c := range broadcastCases {
			a, b := randTensor(rng, c.a...), nonZero(rng, c.b...)
			got := ewForward(t, ewBuild(t, ewNode(name, ewInputs(2)), nil, 14), a, b)
			ewCompare(t, fmt.Sprintf("%s %v %v", name, c.a, c.b), got, naiveBroadcast(a, b, arith[name]), exactTol)
		}
	}
}

func TestArithDerivatives(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 1))
	for _, name := range arithOps {
		for _, c := range broadcastCases {
			for _, diff := range [][]int{{0, 1}, {0}, {1}} {
				t.Run(fmt.Sprintf("%s_%v_%v_diff%v", name, c.a, c.b, diff), func(t *testing.T) {
					op := ewBuild(t, ewNode(name, ewInputs(2)), nil, 13)
					checkOp(t, op, []*tensor.Tensor{randTensor(rng, c.a...), nonZero(rng, c.b...)}, diff)
				})
			}
		}
	}
}

// TestMulCrossTerm checks the second-order cross term of Mul by hand: for
// z = a*b and gout = 1, the gradient tangents are tga = tb, tgb = ta.
func TestMulCrossTerm(t *testing.T) {
	a := tensor.FromData([]float64{2, 3}, 2)
	b := tensor.FromData([]float64{5, 7}, 2)
	ta := tensor.FromData([]float64{1, 0, 0, 1}, 2, 2)
	tb := tensor.FromData([]float64{10, 20, 30, 40}, 2, 2)
	op := ewBuild(t, ewNode("Mul", ewInputs(2)), nil, 13)
	out, st, _ := op.Forward([]*tensor.Tensor{a, b})
	g := tensor.FromData([]float64{1, 1}, 2)
	gin, tgin := op.BackwardTangent([]*tensor.Tensor{a, b}, []*tensor.Tensor{ta, tb}, out, nil, st, g, nil, []bool{true, true})
	ewCompare(t, "ga", gin[0], b, 0)
	ewCompare(t, "gb", gin[1], a, 0)
	ewCompare(t, "tga", tgin[0], tb, 0)
	ewCompare(t, "tgb", tgin[1], ta, 0)
}

func TestArithLegacyBroadcast(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 1))
	cases := []struct {
		name  string
		a, b  []int
		axis  int // -1: no axis attribute
		bcast int
		ref   []int // shape b broadcasts as in numpy terms
	}{
		{"conformance add_broadcast", []int{2, 3}, []int{3}, 1, 1, []int{3}},
		{"axis 1 inner", []int{2, 3, 4, 5}, []int{3, 4}, 1, 1, []int{3, 4, 1}},
		{"axis 0", []int{2, 3, 4}, []int{2}, 0, 1, []int{2, 1, 1}},
		{"suffix", []int{2, 3, 4}, []int{3, 4}, -1, 1, []int{3, 4}},
		{"scalar", []int{2, 3}, []int{}, -1, 1, []int{}},
		{"one element", []int{2, 3}, []int{1, 1}, -1, 1, []int{}},
		{"equal shapes, broadcast=0", []int{2, 3}, []int{2, 3}, -1, 0, []int{2, 3}},
	}
	for _, name := range arithOps {
		for _, c := range cases {
			t.Run(name+" "+c.name, func(t *testing.T) {
				kv := []any{"broadcast", c.bcast}
				if c.axis >= 0 {
					kv = append(kv, "axis", c.axis)
				}
				op := ewBuild(t, ewNode(name, ewInputs(2), kv...), nil, 6)
				a, b := randTensor(rng, c.a...), nonZero(rng, c.b...)
				got := ewForward(t, op, a, b)
				want := naiveBroadcast(a, b.Reshape(c.ref...), arith[name])
				ewCompare(t, "forward", got, want, exactTol)
				checkOp(t, op, []*tensor.Tensor{a, b}, []int{0, 1})
			})
		}
	}
}

func TestArithErrors(t *testing.T) {
	for _, c := range []struct {
		name  string
		opset int64
		kv    []any
		a, b  []int
	}{
		{"numpy mismatch", 13, nil, []int{2, 3}, []int{2}},
		{"legacy without broadcast", 6, nil, []int{2, 3}, []int{3}},
		{"legacy axis mismatch", 6, []any{"broadcast", 1, "axis", 0}, []int{2, 3}, []int{3}},
		{"legacy b larger than a", 6, []any{"broadcast", 1}, []int{3}, []int{2, 3}},
	} {
		op := ewBuild(t, ewNode("Add", ewInputs(2), c.kv...), nil, c.opset)
		_, _, err := op.Forward([]*tensor.Tensor{tensor.New(c.a...), tensor.New(c.b...)})
		if !errors.Is(err, ErrShape) {
			t.Errorf("%s: got error %v; want one wrapping ErrShape", c.name, err)
		}
	}
	if _, err := ewTryBuild(ewNode("Mul", ewInputs(1)), nil, 13); err == nil {
		t.Errorf("Mul with 1 input: got no error; want one")
	}
}

func TestNeg(t *testing.T) {
	op := ewBuild(t, ewNode("Neg", ewInputs(1)), nil, 6)
	got := ewForward(t, op, tensor.FromData([]float64{1.5, -2, 0}, 3))
	ewCompare(t, "Neg", got, tensor.FromData([]float64{-1.5, 2, 0}, 3), 0)
	rng := rand.New(rand.NewPCG(4, 1))
	checkOp(t, op, []*tensor.Tensor{randTensor(rng, 2, 3)}, []int{0})
}

// TestBcastRuns checks that the plan merges dimensions into the expected
// runs and visits every output element once.
func TestBcastRuns(t *testing.T) {
	for _, c := range []struct {
		a, b        []int
		runs, inner int
	}{
		{[]int{2, 3, 4}, []int{2, 3, 4}, 1, 24},
		{[]int{2, 3, 4}, []int{4}, 6, 4},
		{[]int{2, 3, 4}, []int{}, 1, 24},
		{[]int{4, 5, 6}, []int{5, 1}, 20, 6},
		{[]int{2, 1, 4}, []int{3, 1}, 6, 4},
		{[]int{1, 1}, []int{1}, 1, 1},
		{[]int{0, 3}, []int{3}, 0, 3},
	} {
		p, err := newBcast(c.a, c.b)
		if err != nil {
			t.Fatalf("%v %v: %v", c.a, c.b, err)
		}
		runs := 0
		seen := make([]int, p.n)
		p.runs(func(o, _, _ int) {
			runs++
			for j := 0; j < p.inner; j++ {
				seen[o+j]++
			}
		})
		if runs != c.runs || p.inner != c.inner {
			t.Errorf("%v %v: got %d runs of %d; want %d of %d", c.a, c.b, runs, p.inner, c.runs, c.inner)
		}
		for i, s := range seen {
			if s != 1 {
				t.Errorf("%v %v: output %d visited %d times; want 1", c.a, c.b, i, s)
			}
		}
	}
}

func BenchmarkAddBias(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	x, bias := randTensor(rng, 8, 64, 16, 16), randTensor(rng, 64, 1, 1)
	op := &binaryOp{kind: binAdd}
	in := []*tensor.Tensor{x, bias}
	for b.Loop() {
		out, st, _ := op.Forward(in)
		op.Backward(in, out, st, out, []bool{true, true})
	}
}
