package network

import (
	"math"
	"math/rand/v2"
	"testing"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

// opsNode is ewNode that also takes string attributes.
func opsNode(opType string, inputs []string, kv ...any) *onnx.Node {
	var rest []any
	strs := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		if s, ok := kv[i+1].(string); ok {
			strs[kv[i].(string)] = s
			continue
		}
		rest = append(rest, kv[i], kv[i+1])
	}
	n := ewNode(opType, inputs, rest...)
	for k, s := range strs {
		n.Attrs[k] = onnx.Attribute{Name: k, Type: onnx.AttrString, S: s}
	}
	return n
}

// Selu's default alpha and gamma (float32 values, ONNX spec).
const (
	seluA = 1.67326319217681884765625
	seluG = 1.05070102214813232421875
)

// mathValueTol is the bound of the relative error of the closed forms below
// against the Go math library: a few ulps.
const mathValueTol = 1e-14

// TestMathValues checks the new elementwise functions at points where the
// value has a closed form or a published value.
func TestMathValues(t *testing.T) {
	x := tensor.FromData([]float64{-4, -1, 0, 0.5, 2, 4}, 6)
	for _, c := range []struct {
		op   string
		kv   []any
		want []float64
	}{
		// HardSigmoid defaults alpha 0.2, beta 0.5: clip(0.2x+0.5, 0, 1).
		{"HardSigmoid", nil, []float64{0, 0.3, 0.5, 0.6, 0.9, 1}},
		{"HardSigmoid", []any{"alpha", 0.5, "beta", 0.25}, []float64{0, 0, 0.25, 0.5, 1, 1}},
		// HardSwish: x·clip(x/6+1/2, 0, 1).
		{"HardSwish", nil, []float64{0, -1.0 / 3, 0, 0.5 * 3.5 / 6, 2 * 5.0 / 6, 4}},
		// erf(0.5) = 0.5204998778130465, erf(2) = 0.9953222650189527 (A&S table 7.1).
		{"Erf", nil, []float64{-math.Erf(4), -math.Erf(1), 0, 0.5204998778130465, 0.9953222650189527, math.Erf(4)}},
		// Values of torch.nn.functional.gelu(x) and gelu(x, approximate='tanh')
		// in float64 (torch 1.13).
		{"Gelu", nil, []float64{-0.00012668496733247991, -0.15865525393145702, 0, 0.34573123063700656, 1.9544997361036416, 3.9998733150326675}},
		{"Gelu", []any{"approximate", "tanh"}, []float64{-7.024594819227126e-05, -0.15880800939172324, 0, 0.34571400982514394, 1.954597694087775, 3.9999297540518075}},
		{"Abs", nil, []float64{4, 1, 0, 0.5, 2, 4}},
		{"ThresholdedRelu", []any{"alpha", 0.75}, []float64{0, 0, 0, 0, 2, 4}},
		{"Elu", []any{"alpha", 0.5}, []float64{0.5 * math.Expm1(-4), 0.5 * math.Expm1(-1), 0, 0.5, 2, 4}},
		// Selu's defaults: the float32 values of the ONNX spec.
		{"Selu", nil, []float64{seluG * seluA * math.Expm1(-4), seluG * seluA * math.Expm1(-1), 0, seluG * 0.5, seluG * 2, seluG * 4}},
		// Values of torch.nn.functional.celu(x, alpha=2) and mish(x) in float64.
		{"Celu", []any{"alpha", 2.0}, []float64{-1.7293294335267746, -0.7869386805747332, 0, 0.5, 2, 4}},
		{"Mish", nil, []float64{-0.07259174079202535, -0.30340146137410895, 0, 0.3752452113048951, 1.9439589595339946, 3.9974128069762385}},
		{"Softsign", nil, []float64{-0.8, -0.5, 0, 1.0 / 3, 2.0 / 3, 0.8}},
		{"Exp", nil, []float64{math.Exp(-4), 1 / math.E, 1, math.Sqrt(math.E), math.E * math.E, math.Exp(4)}},
		// softplus(0) = ln 2; softplus(x) - softplus(-x) = x.
		{"Softplus", nil, []float64{math.Log1p(math.Exp(-4)), math.Log1p(1 / math.E), math.Ln2, math.Log1p(math.Sqrt(math.E)), 2 + math.Log1p(math.Exp(-2)), 4 + math.Log1p(math.Exp(-4))}},
	} {
		op := ewBuild(t, opsNode(c.op, ewInputs(1), c.kv...), nil, 20)
		ewCompare(t, c.op, ewForward(t, op, x), tensor.FromData(c.want, 6), mathValueTol)
	}
	pos := tensor.FromData([]float64{0.25, 1, 4, math.E}, 4)
	for _, c := range []struct {
		op   string
		want []float64
	}{
		{"Sqrt", []float64{0.5, 1, 2, math.Sqrt(math.E)}},
		{"Log", []float64{-2 * math.Ln2, 0, 2 * math.Ln2, 1}},
		{"Reciprocal", []float64{4, 1, 0.25, 1 / math.E}},
	} {
		op := ewBuild(t, opsNode(c.op, ewInputs(1)), nil, 13)
		ewCompare(t, c.op, ewForward(t, op, pos), tensor.FromData(c.want, 4), mathValueTol)
	}
	if _, err := ewTryBuild(opsNode("Gelu", ewInputs(1), "approximate", "fast"), nil, 20); err == nil {
		t.Errorf("Gelu approximate=fast: got no error; want unsupported")
	}
}

// TestMathDerivatives checks Backward, Tangent and BackwardTangent of the
// elementwise functions against central finite differences.
func TestMathDerivatives(t *testing.T) {
	rng := rand.New(rand.NewPCG(20, 1))
	for _, c := range []struct {
		op       string
		kv       []any
		kinks    []float64
		positive bool // domain x > 0
	}{
		{"HardSigmoid", nil, []float64{-2.5, 2.5}, false},
		{"HardSigmoid", []any{"alpha", 0.5, "beta", 0.25}, []float64{-0.5, 1.5}, false},
		{"HardSwish", nil, []float64{-3, 3}, false},
		{"Erf", nil, nil, false},
		{"Gelu", nil, nil, false},
		{"Gelu", []any{"approximate", "tanh"}, nil, false},
		{"Exp", nil, nil, false},
		{"Softplus", nil, nil, false},
		{"Sqrt", nil, nil, true},
		{"Log", nil, nil, true},
		{"Reciprocal", nil, nil, true},
		{"Abs", nil, []float64{0}, false},
		{"ThresholdedRelu", []any{"alpha", 0.5}, []float64{0.5}, false},
		{"Elu", []any{"alpha", 0.7}, nil, false},
		{"Selu", nil, nil, false},
		{"Celu", []any{"alpha", 2.0}, nil, false},
		{"Softsign", nil, nil, false},
		{"Mish", nil, nil, false},
	} {
		t.Run(c.op, func(t *testing.T) {
			op := ewBuild(t, opsNode(c.op, ewInputs(1), c.kv...), nil, 20)
			x := awayFrom(rng, c.kinks, 2, 3, 4)
			for i := range x.Data {
				x.Data[i] *= 2 // reach the saturated parts too
				if c.positive {
					x.Data[i] = 0.5 + math.Abs(x.Data[i])
				}
			}
			checkOp(t, op, []*tensor.Tensor{x}, []int{0})
		})
	}
}

// TestPowDerivatives checks Pow with a differentiable exponent and with a
// constant one (no gradient, ConstInputs), broadcast both ways.
func TestPowDerivatives(t *testing.T) {
	rng := rand.New(rand.NewPCG(20, 2))
	a := randTensor(rng, 2, 3, 4)
	for i := range a.Data {
		a.Data[i] = 0.5 + math.Abs(a.Data[i])
	}
	b := randTensor(rng, 3, 1)
	op := ewBuild(t, opsNode("Pow", ewInputs(2)), nil, 13)
	checkOp(t, op, []*tensor.Tensor{a, b}, []int{0, 1})
	if ci, ok := op.(ConstInputs); ok && len(ci.ConstInputs()) > 0 {
		t.Errorf("Pow with a graph exponent: ConstInputs %v; want none", ci.ConstInputs())
	}
	// Constant exponent 2 on values of both signs (the decomposed LayerNorm).
	two := tensor.FromData([]float64{2}, 1)
	op = ewBuild(t, opsNode("Pow", ewInputs(2)), map[string]*tensor.Tensor{"in1": two}, 13)
	if ci := op.(ConstInputs).ConstInputs(); len(ci) != 1 || ci[0] != 1 {
		t.Errorf("Pow with a constant exponent: ConstInputs %v; want [1]", ci)
	}
	x := randTensor(rng, 3, 4)
	checkOp(t, op, []*tensor.Tensor{x, two}, []int{0})
	want := naiveMap(x, func(v float64) float64 { return v * v })
	ewCompare(t, "Pow(x, 2)", ewForward(t, op, x, two), want, 1e-15)
	// The base broadcast against a larger exponent.
	e := randTensor(rng, 2, 3)
	base := tensor.FromData([]float64{0.7, 1.3, 2.1}, 3)
	checkOp(t, ewBuild(t, opsNode("Pow", ewInputs(2)), nil, 13), []*tensor.Tensor{base, e}, []int{0, 1})
}

// TestMinMax checks variadic Max and Min against brute force and finite
// differences (inputs are distinct, so no ties).
func TestMinMax(t *testing.T) {
	rng := rand.New(rand.NewPCG(20, 3))
	a, b, c := randTensor(rng, 2, 3, 4), randTensor(rng, 3, 1), randTensor(rng, 4)
	for _, isMax := range []bool{true, false} {
		name := "Min"
		if isMax {
			name = "Max"
		}
		op := ewBuild(t, opsNode(name, ewInputs(3)), nil, 13)
		f := func(x, y float64) float64 { return math.Min(x, y) }
		if isMax {
			f = math.Max
		}
		want := naiveBroadcast(naiveBroadcast(a, b, f), c, f)
		ewCompare(t, name, ewForward(t, op, a, b, c), want, 0)
		checkOp(t, op, []*tensor.Tensor{a, b, c}, []int{0, 1, 2})
		one := ewBuild(t, opsNode(name, ewInputs(1)), nil, 13)
		ewCompare(t, name+" of one input", ewForward(t, one, a), a, 0)
		checkOp(t, one, []*tensor.Tensor{a}, []int{0})
	}
	// Ties go to the first input.
	op := ewBuild(t, opsNode("Max", ewInputs(2)), nil, 13)
	x := tensor.FromData([]float64{1, 2}, 2)
	y := tensor.FromData([]float64{1, 1}, 2)
	out, st, _ := op.Forward([]*tensor.Tensor{x, y})
	g := op.Backward([]*tensor.Tensor{x, y}, out, st, tensor.FromData([]float64{1, 1}, 2), []bool{true, true})
	if g[0].Data[0] != 1 || g[1].Data[0] != 0 {
		t.Errorf("Max tie gradients: got %v and %v; want [1 1] and [0 0]", g[0].Data, g[1].Data)
	}
}

// TestSumMean checks variadic Sum and Mean against brute force and finite
// differences.
func TestSumMean(t *testing.T) {
	rng := rand.New(rand.NewPCG(20, 4))
	a, b, c := randTensor(rng, 2, 3, 4), randTensor(rng, 3, 1), randTensor(rng, 4)
	add := func(x, y float64) float64 { return x + y }
	sum := naiveBroadcast(naiveBroadcast(a, b, add), c, add)
	for _, mean := range []bool{false, true} {
		name, want := "Sum", sum
		if mean {
			name, want = "Mean", naiveMap(sum, func(v float64) float64 { return v / 3 })
		}
		op := ewBuild(t, opsNode(name, ewInputs(3)), nil, 13)
		ewCompare(t, name, ewForward(t, op, a, b, c), want, 1e-15)
		checkOp(t, op, []*tensor.Tensor{a, b, c}, []int{0, 1, 2})
	}
}

// TestLogSoftmax checks LogSoftmax against the log of Softmax and finite
// differences, at opset 13 (one axis) and 11 (flattened from axis).
func TestLogSoftmax(t *testing.T) {
	rng := rand.New(rand.NewPCG(20, 5))
	x := randTensor(rng, 2, 3, 4)
	for _, c := range []struct {
		opset int64
		axis  int
	}{{13, 1}, {13, -1}, {11, 1}} {
		op := ewBuild(t, opsNode("LogSoftmax", ewInputs(1), "axis", c.axis), nil, c.opset)
		sm := ewBuild(t, opsNode("Softmax", ewInputs(1), "axis", c.axis), nil, c.opset)
		want := naiveMap(ewForward(t, sm, x), math.Log)
		ewCompare(t, "LogSoftmax", ewForward(t, op, x), want, 1e-14)
		checkOp(t, op, []*tensor.Tensor{x}, []int{0})
	}
}

// TestGlobalMaxPool checks GlobalMaxPool against ReduceMax over the
// spatial axes and finite differences.
func TestGlobalMaxPool(t *testing.T) {
	rng := rand.New(rand.NewPCG(20, 6))
	x := randTensor(rng, 2, 3, 4, 5)
	op := ewBuild(t, opsNode("GlobalMaxPool", ewInputs(1)), nil, 13)
	want := naiveReduceSelect(x, []int{2, 3}, true, []int{2, 3, 1, 1})
	ewCompare(t, "GlobalMaxPool", ewForward(t, op, x), want, 0)
	checkOp(t, op, []*tensor.Tensor{x}, []int{0})
}
