package network

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"mpsearch/tensor"
)

// kinkGap keeps test points this far from the kinks of piecewise linear
// functions: much more than fdStep, so finite differences never straddle one.
const kinkGap = 0.05

// awayFrom draws N(0,1) values, redrawing any within kinkGap of a kink.
func awayFrom(rng *rand.Rand, kinks []float64, shape ...int) *tensor.Tensor {
	t := tensor.New(shape...)
	for i := range t.Data {
	draw:
		for {
			v := rng.NormFloat64()
			for _, k := range kinks {
				if math.Abs(v-k) < kinkGap {
					continue draw
				}
			}
			t.Data[i] = v
			break
		}
	}
	return t
}

// naiveMap applies f elementwise.
func naiveMap(x *tensor.Tensor, f func(float64) float64) *tensor.Tensor {
	y := tensor.New(x.Shape...)
	for i, v := range x.Data {
		y.Data[i] = f(v)
	}
	return y
}

func TestActivationValues(t *testing.T) {
	x := tensor.FromData([]float64{-2, -0.5, 0, 0.25, math.Log(3), 3}, 6)
	for _, c := range []struct {
		op   string
		kv   []any
		want []float64
	}{
		{"Relu", nil, []float64{0, 0, 0, 0.25, math.Log(3), 3}},
		{"LeakyRelu", []any{"alpha", 0.5}, []float64{-1, -0.25, 0, 0.25, math.Log(3), 3}},
		{"Clip", []any{"min", -1.0, "max", 1.0}, []float64{-1, -0.5, 0, 0.25, 1, 1}},
		// sigmoid(ln 3) = 3/4, sigmoid(-2) = 1/(1+e²).
		{"Sigmoid", nil, []float64{1 / (1 + math.Exp(2)), 1 / (1 + math.Exp(0.5)), 0.5, 1 / (1 + math.Exp(-0.25)), 0.75, 1 / (1 + math.Exp(-3))}},
		// tanh(ln 3) = (9-1)/(9+1).
		{"Tanh", nil, []float64{math.Tanh(-2), math.Tanh(-0.5), 0, math.Tanh(0.25), 0.8, math.Tanh(3)}},
	} {
		op := ewBuild(t, ewNode(c.op, ewInputs(1), c.kv...), nil, 6)
		ewCompare(t, c.op, ewForward(t, op, x), tensor.FromData(c.want, 6), 1e-15)
	}
	// LeakyRelu's default alpha is 0.01.
	op := ewBuild(t, ewNode("LeakyRelu", ewInputs(1)), nil, 6)
	ewCompare(t, "LeakyRelu default", ewForward(t, op, tensor.FromData([]float64{-2}, 1)), tensor.FromData([]float64{-0.02}, 1), 1e-15)
}

func TestActivationDerivatives(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 1))
	for _, c := range []struct {
		op    string
		kv    []any
		kinks []float64
	}{
		{"Relu", nil, []float64{0}},
		{"LeakyRelu", []any{"alpha", 0.1}, []float64{0}},
		{"Clip", []any{"min", -0.5, "max", 0.75}, []float64{-0.5, 0.75}},
		{"Sigmoid", nil, nil},
		{"Tanh", nil, nil},
		{"Neg", nil, nil},
	} {
		t.Run(c.op, func(t *testing.T) {
			op := ewBuild(t, ewNode(c.op, ewInputs(1), c.kv...), nil, 6)
			x := awayFrom(rng, c.kinks, 2, 3, 4)
			for i := range x.Data {
				x.Data[i] *= 2 // reach the saturated parts too
			}
			checkOp(t, op, []*tensor.Tensor{x}, []int{0})
		})
	}
}

// TestActivationSecondDerivatives checks first and second
// derivatives at known points through BackwardTangent with gout = 1 and
// tgout = nil: gin = f'(x), tgin = f2(x)·tx with f2 the second derivative.
func TestActivationSecondDerivatives(t *testing.T) {
	x := tensor.FromData([]float64{0, math.Log(3), 30, -30}, 4)
	tx := tensor.FromData([]float64{1, 1, 1, 1}, 1, 4)
	g := tensor.FromData([]float64{1, 1, 1, 1}, 4)
	e30 := math.Exp(-30)
	sd1 := e30 / ((1 + e30) * (1 + e30)) // sigmoid'(±30)
	for _, c := range []struct {
		op       string
		d1, d2   []float64
		relative float64 // bound of the relative error
	}{
		// s' = s(1-s), s'' = s(1-s)(1-2s); s(ln 3) = 3/4. In the tails
		// s(1-s) = e^-|x|/(1+e^-|x|)², computed without cancellation.
		{"Sigmoid", []float64{0.25, 3.0 / 16, sd1, sd1}, []float64{0, -3.0 / 32, sd1 * (e30 - 1) / (1 + e30), sd1 * (1 - e30) / (1 + e30)}, 1e-14},
		// tanh' = 1-t², tanh'' = -2t(1-t²); t(ln 3) = 4/5.
		{"Tanh", []float64{1, 9.0 / 25, 4 * e30 * e30, 4 * e30 * e30}, []float64{0, -2 * 0.8 * 9 / 25, -8 * e30 * e30, 8 * e30 * e30}, 1e-14},
	} {
		op := ewBuild(t, ewNode(c.op, ewInputs(1)), nil, 13)
		in := []*tensor.Tensor{x}
		out, st, _ := op.Forward(in)
		gin, tgin := op.BackwardTangent(in, []*tensor.Tensor{tx}, out, op.Tangent(in, []*tensor.Tensor{tx}, out, st), st, g, nil, []bool{true})
		for i := range c.d1 {
			if !relClose(gin[0].Data[i], c.d1[i], c.relative) {
				t.Errorf("%s'(%g): got %.17g; want %.17g", c.op, x.Data[i], gin[0].Data[i], c.d1[i])
			}
			if !relClose(tgin[0].Data[i], c.d2[i], c.relative) {
				t.Errorf("%s second derivative at %g: got %.17g; want %.17g", c.op, x.Data[i], tgin[0].Data[i], c.d2[i])
			}
		}
	}
}

// relClose reports |got-want| <= rel·|want| (exact match for want = 0 up to
// 1e-300).
func relClose(got, want, rel float64) bool {
	return math.Abs(got-want) <= rel*math.Abs(want)+1e-300
}

// TestPiecewiseLinearNoCurvature checks that Relu, LeakyRelu and Clip give
// no gradient tangent from the input tangent alone (zero second derivative).
func TestPiecewiseLinearNoCurvature(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 2))
	for _, name := range []string{"Relu", "LeakyRelu", "Clip", "Neg"} {
		op := ewBuild(t, ewNode(name, ewInputs(1)), nil, 6)
		x := awayFrom(rng, []float64{0}, 5)
		in := []*tensor.Tensor{x}
		out, st, _ := op.Forward(in)
		tin := []*tensor.Tensor{randTensor(rng, 3, 5)}
		_, tgin := op.BackwardTangent(in, tin, out, op.Tangent(in, tin, out, st), st, randTensor(rng, 5), nil, []bool{true})
		if tgin[0] != nil {
			t.Errorf("%s: got gradient tangent %v without tgout; want nil (zero second derivative)", name, tgin[0])
		}
	}
}

func TestClipBounds(t *testing.T) {
	x := tensor.FromData([]float64{-3, -0.2, 0.3, 4}, 4)
	lo, hi := tensor.FromData([]float64{-1}), tensor.FromData([]float64{1})
	consts := map[string]*tensor.Tensor{"lo": lo, "hi": hi}
	for _, c := range []struct {
		name   string
		inputs []string
		opset  int64
		kv     []any
		want   []float64
	}{
		{"attributes", []string{"x"}, 6, []any{"min", -1.0, "max", 1.0}, []float64{-1, -0.2, 0.3, 1}},
		{"min attribute only", []string{"x"}, 6, []any{"min", 0.0}, []float64{0, 0, 0.3, 4}},
		{"inputs", []string{"x", "lo", "hi"}, 13, nil, []float64{-1, -0.2, 0.3, 1}},
		{"max input only", []string{"x", "", "hi"}, 11, nil, []float64{-3, -0.2, 0.3, 1}},
		{"min input only", []string{"x", "lo"}, 12, nil, []float64{-1, -0.2, 0.3, 4}},
		{"no bounds", []string{"x"}, 13, nil, []float64{-3, -0.2, 0.3, 4}},
		{"min above max: max wins (numpy)", []string{"x", "hi", "lo"}, 13, nil, []float64{-1, -1, -1, -1}},
	} {
		n := ewNode("Clip", c.inputs, c.kv...)
		op := ewBuild(t, n, consts, c.opset)
		in := make([]*tensor.Tensor, len(c.inputs))
		for i, name := range c.inputs {
			if name == "x" {
				in[i] = x
			} else if name != "" {
				in[i] = consts[name]
			}
		}
		ewCompare(t, c.name, ewForward(t, op, in...), tensor.FromData(c.want, 4), 0)
		if ci, ok := op.(ConstInputs); ok {
			for _, i := range ci.ConstInputs() {
				if c.inputs[i] == "" || c.inputs[i] == "x" {
					t.Errorf("%s: ConstInputs lists input %d (%q); want only bound inputs", c.name, i, c.inputs[i])
				}
			}
		}
	}
	// The bounds must be constants.
	if _, err := ewTryBuild(ewNode("Clip", []string{"x", "dyn"}), consts, 13); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Clip with a non-constant bound: got %v; want an error wrapping ErrUnsupported", err)
	}
	// Derivatives with bound inputs present (not differentiated).
	rng := rand.New(rand.NewPCG(5, 3))
	op := ewBuild(t, ewNode("Clip", []string{"x", "lo", "hi"}), consts, 13)
	checkOp(t, op, []*tensor.Tensor{awayFrom(rng, []float64{-1, 1}, 3, 4), lo, hi}, []int{0})
}

func TestPRelu(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 1))
	x := awayFrom(rng, []float64{0}, 2, 3, 2, 2)
	for _, c := range []struct {
		name  string
		opset int64
		slope []int
		ref   []int // numpy shape the slope broadcasts as
	}{
		{"per channel [3,1,1]", 9, []int{3, 1, 1}, []int{3, 1, 1}},
		{"shared [1]", 9, []int{1}, []int{1}},
		{"full shape", 9, []int{2, 3, 2, 2}, []int{2, 3, 2, 2}},
		{"last axis [2]", 9, []int{2}, []int{2}},
		{"opset 6 per channel [3]", 6, []int{3}, []int{3, 1, 1}},
		{"opset 6 shared [1]", 6, []int{1}, []int{1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			slope := randTensor(rng, c.slope...)
			op := ewBuild(t, ewNode("PRelu", ewInputs(2)), nil, c.opset)
			want := naiveBroadcast(x, slope.Reshape(c.ref...), func(v, s float64) float64 {
				if v < 0 {
					return s * v
				}
				return v
			})
			ewCompare(t, "forward", ewForward(t, op, x, slope), want, 0)
			checkOp(t, op, []*tensor.Tensor{x, slope}, []int{0, 1})
			checkOp(t, op, []*tensor.Tensor{x, slope}, []int{1})
		})
	}
	// The slope must broadcast to X, not X to the slope.
	op := ewBuild(t, ewNode("PRelu", ewInputs(2)), nil, 9)
	if _, _, err := op.Forward([]*tensor.Tensor{tensor.New(3, 1), tensor.New(3, 4)}); !errors.Is(err, ErrShape) {
		t.Errorf("PRelu with a slope larger than X: got %v; want an error wrapping ErrShape", err)
	}
}

// naiveSoftmax normalises exp(x) over groups of elements: group(i) names the
// group of flat index i.
func naiveSoftmax(x *tensor.Tensor, group func(i int) int) *tensor.Tensor {
	sum := map[int]float64{}
	for i, v := range x.Data {
		sum[group(i)] += math.Exp(v)
	}
	y := tensor.New(x.Shape...)
	for i, v := range x.Data {
		y.Data[i] = math.Exp(v) / sum[group(i)]
	}
	return y
}

// softmaxTol bounds the difference between the max-shifted softmax and the
// unshifted naive one for inputs of magnitude ~3: a few ulps.
const softmaxTol = 1e-14

func TestSoftmaxAxes(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 1))
	x := randTensor(rng, 2, 3, 4)
	for _, c := range []struct {
		opset int64
		axis  *int
		group func(i int) int // which elements normalise together
	}{
		// opset < 13: coerced to 2-D at axis.
		{11, intp(1), func(i int) int { return i / 12 }},
		{11, intp(0), func(i int) int { return 0 }},
		{11, intp(2), func(i int) int { return i / 4 }},
		{11, intp(-1), func(i int) int { return i / 4 }},
		{6, nil, func(i int) int { return i / 12 }}, // default axis 1
		// opset >= 13: one axis.
		{13, intp(1), func(i int) int { return (i/12)*4 + i%4 }},
		{13, intp(0), func(i int) int { return i % 12 }},
		{13, intp(-1), func(i int) int { return i / 4 }},
		{13, nil, func(i int) int { return i / 4 }}, // default axis -1
		{13, intp(-3), func(i int) int { return i % 12 }},
	} {
		name := fmt.Sprintf("opset%d_axis", c.opset)
		var kv []any
		if c.axis != nil {
			name += fmt.Sprint(*c.axis)
			kv = []any{"axis", *c.axis}
		} else {
			name += "default"
		}
		t.Run(name, func(t *testing.T) {
			op := ewBuild(t, ewNode("Softmax", ewInputs(1), kv...), nil, c.opset)
			ewCompare(t, "forward", ewForward(t, op, x), naiveSoftmax(x, c.group), softmaxTol)
			checkOp(t, op, []*tensor.Tensor{x.Clone()}, []int{0})
		})
	}
	op := ewBuild(t, ewNode("Softmax", ewInputs(1), "axis", 3), nil, 13)
	if _, _, err := op.Forward([]*tensor.Tensor{x}); !errors.Is(err, ErrShape) {
		t.Errorf("Softmax axis 3 on a 3-D input (opset 13): got %v; want an error wrapping ErrShape", err)
	}
}

// TestSoftmaxStable checks large logits do not overflow.
func TestSoftmaxStable(t *testing.T) {
	op := ewBuild(t, ewNode("Softmax", ewInputs(1)), nil, 13)
	got := ewForward(t, op, tensor.FromData([]float64{1000, 1000 + math.Log(3)}, 1, 2))
	ewCompare(t, "softmax", got, tensor.FromData([]float64{0.25, 0.75}, 1, 2), 1e-12)
}

func intp(v int) *int { return &v }

func BenchmarkSigmoidHVP(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	const K = 4
	x := randTensor(rng, 8, 64, 16, 16)
	tx := randTensor(rng, K, 8, 64, 16, 16)
	op := &unaryOp{f: sigmoidFunc{}}
	in, tin := []*tensor.Tensor{x}, []*tensor.Tensor{tx}
	out, st, _ := op.Forward(in)
	need := []bool{true}
	for b.Loop() {
		tout := op.Tangent(in, tin, out, st)
		op.BackwardTangent(in, tin, out, tout, st, x, tout, need)
	}
}
