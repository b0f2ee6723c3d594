package network

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"mpsearch/tensor"
)

func init() {
	// ONNX 1.12's LayerNormalization cases also output Mean and InvStdDev;
	// the engine computes output 0 only (the values are checked against a
	// direct evaluation in TestLayerNorm).
	for _, c := range []string{"2d_axis0", "3d_axis1_epsilon", "4d_axis_negative_1", "default_axis"} {
		conformanceSkips["test_layer_normalization_"+c] = "the model also outputs Mean and InvStdDev; only output 0 (Y) is supported"
	}
}

// naiveReduceSelect is ReduceMax (or ReduceMin) of x over axes by
// unravelling every input index; the result has the kept-dims shape
// reshaped to out.
func naiveReduceSelect(x *tensor.Tensor, axes []int, isMax bool, out []int) *tensor.Tensor {
	kept := slices.Clone(x.Shape)
	for _, a := range axes {
		kept[a] = 1
	}
	res := tensor.New(kept...)
	seen := make([]bool, res.Size())
	st := tensor.Strides(kept)
	idx := make([]int, x.Rank())
	for i, v := range x.Data {
		rem := i
		for d := x.Rank() - 1; d >= 0; d-- {
			idx[d] = rem % x.Shape[d]
			rem /= x.Shape[d]
		}
		off := 0
		for d := range idx {
			if kept[d] != 1 {
				off += idx[d] * st[d]
			}
		}
		if !seen[off] || (isMax && v > res.Data[off]) || (!isMax && v < res.Data[off]) {
			res.Data[off], seen[off] = v, true
		}
	}
	return res.Reshape(out...)
}

// TestReduceSelect checks ReduceMax and ReduceMin against brute force and
// finite differences, with axes as an attribute (opset 13) and as an input
// (opset 18), and ReduceMean/ReduceSum/ReduceMax with opset-18 axes inputs.
func TestReduceSelect(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 1))
	x := randTensor(rng, 2, 3, 4)
	consts := map[string]*tensor.Tensor{"a1": ewInts(1), "a0m1": ewInts(0, -1), "none": ewInts()}
	for _, c := range []struct {
		name   string
		op     string
		inputs []string
		opset  int64
		kv     []any
		axes   []int
		out    []int
	}{
		{"max axis 1 attribute", "ReduceMax", []string{"x"}, 13, []any{"axes", []int64{1}}, []int{1}, []int{2, 1, 4}},
		{"max all keepdims 0", "ReduceMax", []string{"x"}, 13, []any{"keepdims", 0}, []int{0, 1, 2}, []int{}},
		{"max opset 18 axes input", "ReduceMax", []string{"x", "a0m1"}, 18, []any{"keepdims", 0}, []int{0, 2}, []int{3}},
		{"max opset 18 no axes", "ReduceMax", []string{"x"}, 18, nil, []int{0, 1, 2}, []int{1, 1, 1}},
		{"max opset 18 empty axes noop", "ReduceMax", []string{"x", "none"}, 18, []any{"noop_with_empty_axes", 1}, nil, []int{2, 3, 4}},
		{"min axis -1", "ReduceMin", []string{"x"}, 13, []any{"axes", []int64{-1}}, []int{2}, []int{2, 3, 1}},
		{"min opset 18 axes input", "ReduceMin", []string{"x", "a1"}, 18, nil, []int{1}, []int{2, 1, 4}},
	} {
		t.Run(c.name, func(t *testing.T) {
			op := ewBuild(t, ewNode(c.op, c.inputs, c.kv...), consts, c.opset)
			in := []*tensor.Tensor{x}
			for _, name := range c.inputs[1:] {
				in = append(in, consts[name])
			}
			want := x
			if c.axes != nil {
				want = naiveReduceSelect(x, c.axes, c.op == "ReduceMax", c.out)
			}
			ewCompare(t, "forward", ewForward(t, op, in...), want, 0)
			in[0] = x.Clone()
			checkOp(t, op, in, []int{0})
		})
	}
	// Opset 18 axes inputs of the summing reductions.
	for _, opType := range []string{"ReduceMean", "ReduceSum"} {
		op := ewBuild(t, ewNode(opType, []string{"x", "a1"}, "keepdims", 0), consts, 18)
		want := naiveReduce(x, []int{1}, opType == "ReduceMean", []int{2, 4})
		ewCompare(t, opType+" opset 18", ewForward(t, op, x, consts["a1"]), want, reduceTol)
	}
}

// naiveNorm normalises x over the trailing axes from axis on (LayerNorm) by
// two-pass mean and variance per row, then scales by s and adds b, both
// indexed by the position in the row.
func naiveNorm(x *tensor.Tensor, d int, eps float64, s, b func(row, j int) float64) *tensor.Tensor {
	y := tensor.New(x.Shape...)
	for r := 0; r < x.Size()/d; r++ {
		row := x.Data[r*d : (r+1)*d]
		mu, v := 0.0, 0.0
		for _, a := range row {
			mu += a
		}
		mu /= float64(d)
		for _, a := range row {
			v += (a - mu) * (a - mu)
		}
		sd := math.Sqrt(v/float64(d) + eps)
		for j, a := range row {
			y.Data[r*d+j] = (a-mu)/sd*s(r, j) + b(r, j)
		}
	}
	return y
}

// normTol bounds the difference of two evaluations of a normalisation of
// up to 24 N(0,1) values in different orders: a few ulps.
const normTol = 1e-13

// TestLayerNorm checks LayerNormalization's values against a direct
// evaluation and its derivatives against finite differences, for several
// axes, broadcast scales and an absent bias.
func TestLayerNorm(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 2))
	x := randTensor(rng, 2, 3, 4)
	for _, c := range []struct {
		name       string
		axis       int
		sShape     []int
		bShape     []int // nil: no bias
		d          int
		sIdx, bIdx func(j int) int
	}{
		{"axis -1", -1, []int{4}, []int{4}, 4, func(j int) int { return j }, func(j int) int { return j }},
		{"axis 1", 1, []int{3, 4}, []int{3, 4}, 12, func(j int) int { return j }, func(j int) int { return j }},
		{"axis 1 broadcast scale, no bias", 1, []int{1, 4}, nil, 12, func(j int) int { return j % 4 }, nil},
		{"axis 0 scalar scale and bias", 0, []int{1}, []int{3, 1}, 24, func(int) int { return 0 }, func(j int) int { return j / 4 % 3 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, in := randTensor(rng, c.sShape...), []string{"x", "s"}
			args := []*tensor.Tensor{x, s}
			var bt *tensor.Tensor
			if c.bShape != nil {
				bt = randTensor(rng, c.bShape...)
				in = append(in, "b")
				args = append(args, bt)
			}
			op := ewBuild(t, ewNode("LayerNormalization", in, "axis", c.axis, "epsilon", 0.01), nil, 17)
			bias := func(_, j int) float64 {
				if bt == nil {
					return 0
				}
				return bt.Data[c.bIdx(j)]
			}
			// epsilon is a float32 attribute.
			want := naiveNorm(x, c.d, float64(float32(0.01)), func(_, j int) float64 { return s.Data[c.sIdx(j)] }, bias)
			ewCompare(t, "forward", ewForward(t, op, args...), want, normTol)
			diff := []int{0, 1}
			if bt != nil {
				diff = append(diff, 2)
			}
			checkOp(t, op, args, diff)
		})
	}
}

// TestInstanceNorm checks InstanceNormalization like TestLayerNorm, with
// per-channel scale and bias.
func TestInstanceNorm(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 3))
	x, s, b := randTensor(rng, 2, 3, 2, 3), randTensor(rng, 3), randTensor(rng, 3)
	op := ewBuild(t, ewNode("InstanceNormalization", []string{"x", "s", "b"}, "epsilon", 0.01), nil, 6)
	want := naiveNorm(x, 6, float64(float32(0.01)), func(r, _ int) float64 { return s.Data[r%3] }, func(r, _ int) float64 { return b.Data[r%3] })
	ewCompare(t, "forward", ewForward(t, op, x, s, b), want, normTol)
	checkOp(t, op, []*tensor.Tensor{x, s, b}, []int{0, 1, 2})
}
