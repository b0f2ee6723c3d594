package network

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

// modernModel is a small network through the operators of modern CNNs and
// vision transformers (InstanceNormalization, Gelu, Mish, HardSwish,
// ConvTranspose, Resize, LayerNormalization, Elu, Softplus, Log, Pow with
// a data-dependent exponent, Sqrt, Erf, Exp, Reciprocal, HardSigmoid, Max,
// ReduceMax with an axes input, Min, Mean, LogSoftmax), for end-to-end
// gradient and Hessian-vector product checks.
func modernModel(rng *rand.Rand) *onnx.Model {
	inits := map[string]*tensor.Tensor{}
	var order []string
	add := func(name string, t *tensor.Tensor) {
		inits[name] = t
		order = append(order, name)
	}
	r := func(scale float64, shape ...int) *tensor.Tensor {
		t := randTensor(rng, shape...)
		for i := range t.Data {
			t.Data[i] *= scale
		}
		return t
	}
	add("w1", r(0.5, 4, 2, 3, 3))
	add("b1", r(0.5, 4))
	add("s_in", r(1, 4))
	add("b_in", r(1, 4))
	add("wt", r(0.5, 4, 2, 2, 2))
	add("bt", r(0.5, 2))
	add("scales", tensor.FromData([]float64{1, 1, 0.5, 0.5}, 4))
	add("shape", tensor.FromData([]float64{0, 2, 36}, 3))
	add("s_ln", r(1, 36))
	add("b_ln", r(1, 36))
	add("p_off", tensor.FromData([]float64{0.5}, 1))
	add("axes2", tensor.FromData([]float64{2}, 1))
	add("axes", tensor.FromData([]float64{1}, 1))
	hi := r(0.5, 36)
	for i := range hi.Data {
		hi.Data[i] += 3 // within the range of the values it bounds, so Min passes some
	}
	add("hi", hi)
	add("w4", r(0.5, 36, 5))
	nodes := []onnx.Node{
		mkNode("conv1", "Conv", []string{"x", "w1", "b1"}, []string{"c1"}, aInts("pads", 1, 1, 1, 1)),
		mkNode("inorm", "InstanceNormalization", []string{"c1", "s_in", "b_in"}, []string{"in1"}),
		mkNode("gelu", "Gelu", []string{"in1"}, []string{"g1"}),
		mkNode("mish", "Mish", []string{"g1"}, []string{"mi"}),
		mkNode("hswish", "HardSwish", []string{"mi"}, []string{"hs"}),
		mkNode("up", "ConvTranspose", []string{"hs", "wt", "bt"}, []string{"ct"}, aInts("strides", 2, 2)),
		mkNode("down", "Resize", []string{"ct", "", "scales"}, []string{"rs"}, onnx.Attribute{Name: "mode", Type: onnx.AttrString, S: "linear"}),
		mkNode("reshape", "Reshape", []string{"rs", "shape"}, []string{"fl"}),
		mkNode("ln", "LayerNormalization", []string{"fl", "s_ln", "b_ln"}, []string{"ln1"}),
		mkNode("elu", "Elu", []string{"ln1"}, []string{"el"}),
		mkNode("softplus", "Softplus", []string{"el"}, []string{"sp"}),
		mkNode("log", "Log", []string{"sp"}, []string{"lg"}),
		// The exponent depends on the data and a parameter, so Pow
		// differentiates it (broadcast from [N, 2, 1]).
		mkNode("rmean", "ReduceMean", []string{"sp", "axes2"}, []string{"e1"}),
		mkNode("eadd", "Add", []string{"e1", "p_off"}, []string{"p_exp"}),
		mkNode("pow", "Pow", []string{"sp", "p_exp"}, []string{"pw"}),
		mkNode("sqrt", "Sqrt", []string{"pw"}, []string{"sq"}),
		mkNode("erf", "Erf", []string{"lg"}, []string{"er"}),
		mkNode("exp", "Exp", []string{"er"}, []string{"ex"}),
		mkNode("recip", "Reciprocal", []string{"ex"}, []string{"rc"}),
		mkNode("hsig", "HardSigmoid", []string{"sq"}, []string{"hg"}),
		mkNode("add1", "Add", []string{"rc", "hg"}, []string{"a1"}),
		mkNode("add2", "Add", []string{"a1", "sq"}, []string{"a2"}),
		mkNode("max", "Max", []string{"a2", "er", "ex"}, []string{"mx"}),
		mkNode("rmax", "ReduceMax", []string{"mx", "axes"}, []string{"rm"}, aInt("keepdims", 0)),
		mkNode("min", "Min", []string{"rm", "hi"}, []string{"mn"}),
		mkNode("mean", "Mean", []string{"mn", "rm"}, []string{"av"}),
		mkNode("mm", "MatMul", []string{"av", "w4"}, []string{"z0"}),
		mkNode("logsm", "LogSoftmax", []string{"z0"}, []string{"z"}, aInt("axis", 1)),
	}
	return &onnx.Model{Opset: 20, Graph: &onnx.Graph{
		Name:         "modern",
		Inputs:       []onnx.ValueInfo{{Name: "x", ElemType: onnx.Float, Shape: []onnx.Dim{{Value: -1, Param: "N"}, {Value: 2}, {Value: 6}, {Value: 6}}}},
		Outputs:      []onnx.ValueInfo{{Name: "z", ElemType: onnx.Float}},
		Nodes:        nodes,
		Initializers: inits,
		InitTypes:    map[string]onnx.DataType{"shape": onnx.Int64, "axes": onnx.Int64, "axes2": onnx.Int64},
		InitOrder:    order,
	}}
}

// TestModernModelGradients checks every parameter and input gradient of the
// cross-entropy of modernModel against central finite differences.
func TestModernModelGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 1))
	net, err := Build(modernModel(rng), Options{})
	if err != nil {
		t.Fatal(err)
	}
	x := randTensor(rng, 3, 2, 6, 6)
	loss := CrossEntropy{Labels: []int{0, 3, 4}}
	lossAt := func() float64 {
		p, err := net.Forward(context.Background(), x)
		if err != nil {
			t.Fatal(err)
		}
		l, _, err := loss.Eval(p.Output())
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	p, err := net.Forward(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	_, gout, _ := loss.Eval(p.Output())
	g := p.Backward(gout, true)
	check := func(what string, vals, grad []float64) {
		if !slices.ContainsFunc(grad, func(v float64) bool { return v != 0 }) {
			t.Errorf("d loss/d %s is zero: the check would be vacuous", what)
		}
		for j := range vals {
			old := vals[j]
			vals[j] = old + fdStep
			lp := lossAt()
			vals[j] = old - fdStep
			lm := lossAt()
			vals[j] = old
			want := (lp - lm) / (2 * fdStep)
			if !closeEnough(grad[j], want) {
				t.Errorf("d loss/d %s[%d]: got %.10g; want %.10g (finite differences)", what, j, grad[j], want)
				return
			}
		}
	}
	names := map[string]bool{}
	for i, prm := range net.Params() {
		names[prm.Name] = true
		check(prm.Name, prm.Value.Data, g.Params[i].Data)
	}
	check("input", x.Data, g.Input.Data)
	for _, want := range []string{"s_in", "wt", "bt", "s_ln", "b_ln", "p_off", "hi"} {
		if !names[want] {
			t.Errorf("parameter %s is missing from Params(); the check did not cover it", want)
		}
	}
}

// TestModernModelHVP checks exact Hessian-vector products through
// modernModel against central finite differences of the gradient.
func TestModernModelHVP(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 2))
	net, err := Build(modernModel(rng), Options{})
	if err != nil {
		t.Fatal(err)
	}
	x := randTensor(rng, 3, 2, 6, 6)
	loss := CrossEntropy{Labels: []int{1, 2, 4}}
	const K = 2
	dirs := make([]*tensor.Tensor, len(net.Params()))
	for i, prm := range net.Params() {
		dirs[i] = randTensor(rng, append([]int{K}, prm.Value.Shape...)...)
	}
	p, err := net.Forward(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	_, hv, err := p.HVP(loss, dirs, K)
	if err != nil {
		t.Fatal(err)
	}
	gradAt := func(k int, s float64) []*tensor.Tensor {
		for i, prm := range net.Params() {
			n := prm.Value.Size()
			for j := range prm.Value.Data {
				prm.Value.Data[j] += s * dirs[i].Data[k*n+j]
			}
		}
		p, err := net.Forward(context.Background(), x)
		if err != nil {
			t.Fatal(err)
		}
		_, gout, _ := loss.Eval(p.Output())
		g := p.Backward(gout, false)
		for i, prm := range net.Params() {
			n := prm.Value.Size()
			for j := range prm.Value.Data {
				prm.Value.Data[j] -= s * dirs[i].Data[k*n+j]
			}
		}
		return g.Params
	}
	for k := 0; k < K; k++ {
		gp, gm := gradAt(k, fdStep), gradAt(k, -fdStep)
		for i, prm := range net.Params() {
			n := prm.Value.Size()
			if !slices.ContainsFunc(hv[i].Data[k*n:(k+1)*n], func(v float64) bool { return v != 0 }) {
				t.Errorf("Hv dir %d %s is zero: the check would be vacuous", k, prm.Name)
			}
			for j := 0; j < n; j++ {
				want := (gp[i].Data[j] - gm[i].Data[j]) / (2 * fdStep)
				got := hv[i].Data[k*n+j]
				// As TestMixedModelHVP: FD of gradients along a direction
				// moving every parameter at once.
				if math.Abs(got-want) > 1e-7+1e-5*math.Abs(want) {
					t.Errorf("Hv dir %d %s[%d]: got %.10g; want %.10g (finite differences of gradients)", k, prm.Name, j, got, want)
					break
				}
			}
		}
	}
}
