package network

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

func aInts(name string, v ...int64) onnx.Attribute {
	return onnx.Attribute{Name: name, Type: onnx.AttrInts, Ints: v}
}
func aInt(name string, v int64) onnx.Attribute {
	return onnx.Attribute{Name: name, Type: onnx.AttrInt, I: v}
}
func aFloat(name string, v float32) onnx.Attribute {
	return onnx.Attribute{Name: name, Type: onnx.AttrFloat, F: v}
}

func mkNode(name, op string, in, out []string, attrs ...onnx.Attribute) onnx.Node {
	m := map[string]onnx.Attribute{}
	for _, a := range attrs {
		m[a.Name] = a
	}
	return onnx.Node{Name: name, OpType: op, Inputs: in, Outputs: out, Attrs: m}
}

// mixedModel is a small network using every differentiable operator kind
// the engine supports, for end-to-end gradient and Hessian checks.
func mixedModel(rng *rand.Rand) *onnx.Model {
	inits := map[string]*tensor.Tensor{}
	var order []string
	add := func(name string, t *tensor.Tensor) {
		inits[name] = t
		order = append(order, name)
	}
	r := func(shape ...int) *tensor.Tensor {
		t := randTensor(rng, shape...)
		for i := range t.Data {
			t.Data[i] *= 0.5
		}
		return t
	}
	add("w1", r(4, 2, 3, 3))
	add("b1", r(4))
	add("bn_scale", r(4))
	add("bn_bias", r(4))
	add("bn_mean", r(4))
	v := r(4)
	for i := range v.Data {
		v.Data[i] = 0.5 + v.Data[i]*v.Data[i]
	}
	add("bn_var", v)
	add("slope", r(4, 1, 1))
	add("w2", r(4, 1, 3, 3))
	add("w3", r(10, 72))
	add("b3", r(10))
	add("w4", r(10, 5))
	add("shape", tensor.FromData([]float64{0, 72}, 2))
	add("two", tensor.FromData([]float64{2}, 1))
	nodes := []onnx.Node{
		mkNode("conv1", "Conv", []string{"x", "w1", "b1"}, []string{"c1"}, aInts("pads", 1, 1, 1, 1), aInts("kernel_shape", 3, 3)),
		mkNode("bn", "BatchNormalization", []string{"c1", "bn_scale", "bn_bias", "bn_mean", "bn_var"}, []string{"bn1"}, aFloat("epsilon", 1e-5)),
		mkNode("prelu", "PRelu", []string{"bn1", "slope"}, []string{"a1"}),
		mkNode("pool", "MaxPool", []string{"a1"}, []string{"m1"}, aInts("kernel_shape", 2, 2), aInts("strides", 2, 2)),
		mkNode("dw", "Conv", []string{"m1", "w2"}, []string{"c2"}, aInts("pads", 1, 1, 1, 1), aInt("group", 4)),
		mkNode("leaky", "LeakyRelu", []string{"c2"}, []string{"l2"}, aFloat("alpha", 0.1)),
		mkNode("res", "Add", []string{"m1", "l2"}, []string{"s"}),
		mkNode("avg", "AveragePool", []string{"s"}, []string{"ap"}, aInts("kernel_shape", 3, 3), aInts("pads", 1, 1, 1, 1), aInt("count_include_pad", 0)),
		mkNode("cat", "Concat", []string{"s", "ap"}, []string{"cc"}, aInt("axis", 1)),
		mkNode("tanh", "Tanh", []string{"cc"}, []string{"t"}),
		mkNode("reshape", "Reshape", []string{"t", "shape"}, []string{"rs"}),
		mkNode("fc", "Gemm", []string{"rs", "w3", "b3"}, []string{"g1"}, aInt("transB", 1)),
		mkNode("sig", "Sigmoid", []string{"g1"}, []string{"sg"}),
		mkNode("swish", "Mul", []string{"sg", "g1"}, []string{"mu"}),
		mkNode("mm", "MatMul", []string{"mu", "w4"}, []string{"z0"}),
		mkNode("div", "Div", []string{"z0", "two"}, []string{"z"}),
	}
	return &onnx.Model{Opset: 13, Graph: &onnx.Graph{
		Name:         "mixed",
		Inputs:       []onnx.ValueInfo{{Name: "x", ElemType: onnx.Float, Shape: []onnx.Dim{{Value: -1, Param: "N"}, {Value: 2}, {Value: 6}, {Value: 6}}}},
		Outputs:      []onnx.ValueInfo{{Name: "z", ElemType: onnx.Float}},
		Nodes:        nodes,
		Initializers: inits,
		InitTypes:    map[string]onnx.DataType{},
		InitOrder:    order,
	}}
}

// TestMixedModelGradients checks parameter and input gradients of the
// cross-entropy of a model mixing all operator kinds against central finite
// differences, with BatchNormalization executed and folded.
func TestMixedModelGradients(t *testing.T) {
	for _, fold := range []bool{false, true} {
		rng := rand.New(rand.NewPCG(1, 2))
		net, err := Build(mixedModel(rng), Options{NoFold: !fold})
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
			for j := range vals {
				old := vals[j]
				vals[j] = old + fdStep
				lp := lossAt()
				vals[j] = old - fdStep
				lm := lossAt()
				vals[j] = old
				want := (lp - lm) / (2 * fdStep)
				if !closeEnough(grad[j], want) {
					t.Errorf("fold=%v d loss/d %s[%d]: got %.10g; want %.10g (finite differences)", fold, what, j, grad[j], want)
					return
				}
			}
		}
		for i, prm := range net.Params() {
			check(prm.Name, prm.Value.Data, g.Params[i].Data)
		}
		check("input", x.Data, g.Input.Data)
	}
}

// TestMixedModelHVP checks exact Hessian-vector products against central
// finite differences of the gradient along the same directions.
func TestMixedModelHVP(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	net, err := Build(mixedModel(rng), Options{NoFold: true})
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
			for j := 0; j < n; j++ {
				want := (gp[i].Data[j] - gm[i].Data[j]) / (2 * fdStep)
				got := hv[i].Data[k*n+j]
				if math.Abs(got-want) > 1e-7+1e-5*math.Abs(want) {
					t.Errorf("Hv dir %d %s[%d]: got %.10g; want %.10g (finite differences of gradients)", k, prm.Name, j, got, want)
					break
				}
			}
		}
	}
}
