package export

import (
	"context"
	"math/rand/v2"
	"testing"

	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/quant"
	"mpsearch/tensor"
)

// cnnGraph assembles the small ONNX graphs of the ImageNet-CNN tests.
type cnnGraph struct {
	g   *onnx.Graph
	rng *rand.Rand
}

func newCNNGraph(seed uint64, c, h, w int64) *cnnGraph {
	dims := []onnx.Dim{{Value: -1, Param: "N"}, {Value: c}, {Value: h}, {Value: w}}
	return &cnnGraph{
		g: &onnx.Graph{Name: "cnn", Inputs: []onnx.ValueInfo{{Name: "x", ElemType: onnx.Float, Shape: dims}},
			Initializers: map[string]*tensor.Tensor{}, InitTypes: map[string]onnx.DataType{}},
		rng: rand.New(rand.NewPCG(seed, 1)),
	}
}

// init adds a FLOAT initializer of N(0, scale²) values, or of values.
func (b *cnnGraph) init(name string, scale float64, shape []int, values ...float64) string {
	t := tensor.New(shape...)
	copy(t.Data, values)
	if values == nil {
		for i := range t.Data {
			t.Data[i] = float64(float32(scale * b.rng.NormFloat64()))
		}
	}
	b.g.Initializers[name] = t
	b.g.InitTypes[name] = onnx.Float
	b.g.InitOrder = append(b.g.InitOrder, name)
	return name
}

func (b *cnnGraph) node(name, op string, in []string, attrs ...onnx.Attribute) string {
	m := map[string]onnx.Attribute{}
	for _, a := range attrs {
		m[a.Name] = a
	}
	b.g.Nodes = append(b.g.Nodes, onnx.Node{Name: name, OpType: op, Inputs: in, Outputs: []string{name + "_out"}, Attrs: m})
	return name + "_out"
}

// bn adds an inference BatchNormalization over c channels.
func (b *cnnGraph) bn(name, in string, c int) string {
	scale := make([]float64, c)
	variance := make([]float64, c)
	for i := range scale {
		scale[i] = 0.8 + 0.05*float64(i%8)
		variance[i] = 0.6 + 0.1*float64(i%5)
	}
	return b.node(name, "BatchNormalization", []string{in, b.init(name+"_s", 0, []int{c}, scale...),
		b.init(name+"_b", 0.1, []int{c}), b.init(name+"_m", 0.1, []int{c}), b.init(name+"_v", 0, []int{c}, variance...)})
}

func (b *cnnGraph) build(t testing.TB, out string) *network.Network {
	t.Helper()
	b.g.Outputs = []onnx.ValueInfo{{Name: out, ElemType: onnx.Float}}
	net, err := network.Build(&onnx.Model{IRVersion: 8, Opset: 13, Graph: b.g}, network.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return net
}

func ints(name string, v ...int64) onnx.Attribute {
	return onnx.Attribute{Name: name, Type: onnx.AttrInts, Ints: v}
}

func intAttr(name string, v int64) onnx.Attribute {
	return onnx.Attribute{Name: name, Type: onnx.AttrInt, I: v}
}

// torchResNet has torch.onnx's ResNet patterns: bias-free convolutions
// followed by BatchNormalization (folded by the float engine, which creates
// the bias), biases that are Identity nodes of one shared initializer, a
// residual Add, MaxPool, GlobalAveragePool, Flatten and Gemm.
func torchResNet(t testing.TB) *network.Network {
	b := newCNNGraph(41, 3, 12, 12)
	pads := ints("pads", 1, 1, 1, 1)
	c0 := b.node("c0", "Conv", []string{"x", b.init("w0", 0.4, []int{8, 3, 3, 3})}, pads)
	r0 := b.node("r0", "Relu", []string{b.bn("bn0", c0, 8)})
	mp := b.node("mp", "MaxPool", []string{r0}, ints("kernel_shape", 3, 3), ints("strides", 2, 2), pads)
	c1 := b.node("c1", "Conv", []string{mp, b.init("w1", 0.2, []int{8, 8, 3, 3})}, pads)
	r1 := b.node("r1", "Relu", []string{b.bn("bn1", c1, 8)})
	c2 := b.node("c2", "Conv", []string{r1, b.init("w2", 0.2, []int{8, 8, 3, 3})}, pads)
	r2 := b.node("r2", "Relu", []string{b.node("add", "Add", []string{b.bn("bn2", c2, 8), mp})})
	shared := b.init("shared_bias", 0.1, []int{8})
	c3 := b.node("c3", "Conv", []string{r2, b.init("w3", 0.3, []int{8, 8, 1, 1}), b.node("id3", "Identity", []string{shared})})
	c4 := b.node("c4", "Conv", []string{b.node("r3", "Relu", []string{c3}), b.init("w4", 0.3, []int{8, 8, 1, 1}), b.node("id4", "Identity", []string{shared})})
	fl := b.node("flat", "Flatten", []string{b.node("gap", "GlobalAveragePool", []string{c4})})
	return b.build(t, b.node("fc", "Gemm", []string{fl, b.init("wf", 0.5, []int{10, 8}), b.init("bf", 0.1, []int{10})}, intAttr("transB", 1)))
}

// mobileCNN has the patterns of MobileNet, EfficientNet, RegNet, MnasNet,
// SqueezeNet and DenseNet: SiLU (Sigmoid, Mul), squeeze-excitation
// (GlobalAveragePool, 1x1 convolutions, Sigmoid, broadcasting Mul), a
// depthwise convolution with ReLU6 (Clip 0..6), Concat, a
// BatchNormalization after the Concat (not foldable) and ReduceMean.
func mobileCNN(t testing.TB) *network.Network {
	b := newCNNGraph(42, 4, 10, 10)
	pads := ints("pads", 1, 1, 1, 1)
	c1 := b.node("c1", "Conv", []string{"x", b.init("w1", 0.4, []int{8, 4, 3, 3}), b.init("b1", 0.1, []int{8})}, pads)
	silu := b.node("silu", "Mul", []string{c1, b.node("sig", "Sigmoid", []string{c1})})
	sq := b.node("sq", "GlobalAveragePool", []string{silu})
	f1 := b.node("f1", "Conv", []string{sq, b.init("wf1", 0.5, []int{4, 8, 1, 1}), b.init("bf1", 0.1, []int{4})})
	f2 := b.node("f2", "Conv", []string{b.node("fr", "Relu", []string{f1}), b.init("wf2", 0.5, []int{8, 4, 1, 1}), b.init("bf2", 0.1, []int{8})})
	se := b.node("se", "Mul", []string{silu, b.node("gate", "Sigmoid", []string{f2})})
	zero, six := b.init("zero", 0, []int{}, 0), b.init("six", 0, []int{}, 6)
	dw := b.node("dw", "Conv", []string{se, b.init("wdw", 1.5, []int{8, 1, 3, 3}), b.init("bdw", 0.5, []int{8})}, pads, intAttr("group", 8))
	r6 := b.node("relu6", "Clip", []string{dw, zero, six})
	pw := b.node("pw", "Conv", []string{se, b.init("wpw", 0.6, []int{4, 8, 1, 1}), b.init("bpw", 0.1, []int{4})})
	cat := b.node("cat", "Concat", []string{r6, pw}, intAttr("axis", 1))
	r := b.node("r", "Relu", []string{b.bn("bn", cat, 12)})
	c2 := b.node("c2", "Conv", []string{r, b.init("w2", 0.3, []int{8, 12, 3, 3}), b.init("b2", 0.1, []int{8})}, pads, ints("strides", 2, 2))
	rm := b.node("mean", "ReduceMean", []string{c2}, ints("axes", 2, 3), intAttr("keepdims", 0))
	return b.build(t, b.node("fc", "Gemm", []string{rm, b.init("wf", 0.5, []int{8, 10}), b.init("bf", 0.1, []int{10})}))
}

// cnnData returns n random images of the network's input shape, float32
// values (what ONNX Runtime is fed).
func cnnData(net *network.Network, n int, seed uint64) *tensor.Tensor {
	rng := rand.New(rand.NewPCG(seed, 9))
	x := tensor.New(append([]int{n}, net.SampleShape...)...)
	for i := range x.Data {
		x.Data[i] = float64(float32(rng.NormFloat64()))
	}
	return x
}

func cnnBits(net *network.Network, pattern ...int) []int {
	bits := make([]int, len(net.Layers()))
	for i := range bits {
		bits[i] = pattern[i%len(pattern)]
	}
	return bits
}

// The exported file, read back by ONNX's definitions of QuantizeLinear and
// DequantizeLinear (dequantizeGraph), computes the simulated quantization
// of the CNN patterns.
func TestQDQCNNPatternsEqualSimulation(t *testing.T) {
	for _, tc := range []struct {
		name string
		net  *network.Network
	}{{"resnet", torchResNet(t)}, {"mobile", mobileCNN(t)}} {
		t.Run(tc.name, func(t *testing.T) {
			net := tc.net
			x := cnnData(net, 64, 1)
			r, err := quant.ObserveRanges(context.Background(), net, []*tensor.Tensor{x})
			if err != nil {
				t.Fatal(err)
			}
			act := r.ActQuantizers()
			bits := cnnBits(net, 8, 4, 8, 2)
			m, err := QDQ(net, Config{Bits: bits, Act: act})
			if err != nil {
				t.Fatal(err)
			}
			data, err := onnx.Marshal(m, onnx.SaveOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if m, err = onnx.Parse(data, ""); err != nil {
				t.Fatal(err)
			}
			fm, fact, err := dequantizeGraph(m)
			if err != nil {
				t.Fatal(err)
			}
			if len(fact) != len(act) {
				t.Errorf("activation quantizers in the file: got %d; want %d", len(fact), len(act))
			}
			fnet, err := network.Build(fm, network.Options{})
			if err != nil {
				t.Fatal(err)
			}
			got := forwardBatches(t, fnet, network.Hook(quant.ActHook(fact)), x)
			want := simLogits(t, net, bits, act, x)
			far := 0
			for i := range x.Shape[0] {
				if maxAbsDiff(rowOf(got, i), rowOf(want, i)) > qdqLogitAbs {
					far++
				}
			}
			if far > qdqFlipImages {
				t.Errorf("images with a logit off by more than %g: got %d; want <= %d", qdqLogitAbs, far, qdqFlipImages)
			}
			if a := agreement(argmax(got), argmax(want)); a != 100 {
				t.Errorf("top-1 agreement with the simulation: got %.2f%%; want 100%%", a)
			}
		})
	}
}

// ONNX Runtime runs the exported CNN patterns (folded BatchNorm biases,
// shared Identity biases, residual Add, SiLU, squeeze-excitation, ReLU6,
// Concat, a leftover BatchNormalization, ReduceMean) and agrees with the
// simulated quantization (compareORT's bounds), unoptimized and with its
// QLinear fusions.
func TestORTCNNPatterns(t *testing.T) {
	run := ortRunner(t)
	for _, tc := range []struct {
		name string
		net  *network.Network
	}{{"resnet", torchResNet(t)}, {"mobile", mobileCNN(t)}} {
		net := tc.net
		x := cnnData(net, 200, 2)
		r, err := quant.ObserveRanges(context.Background(), net, []*tensor.Tensor{x})
		if err != nil {
			t.Fatal(err)
		}
		act := r.ActQuantizers()
		for _, bc := range []struct {
			name string
			bits []int
		}{{"W8A8", cnnBits(net, 8)}, {"W8-4-8-3 A8", cnnBits(net, 8, 4, 8, 3)}} {
			path, _ := exportTo(t, net, Config{Bits: bc.bits, Act: act})
			want := simLogits(t, net, bc.bits, act, x)
			for _, level := range []string{"disabled", "all"} {
				t.Run(tc.name+" "+bc.name+" "+level, func(t *testing.T) {
					compareORT(t, run(t, path, level, ortInput{X: x}), want, level)
				})
			}
		}
	}
}
