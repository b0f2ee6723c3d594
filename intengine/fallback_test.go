package intengine

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"mpsearch/network"
	"mpsearch/tensor"
)

// torchResidualNet has the patterns torch.onnx writes for torchvision's
// ResNets: convolutions without a bias followed by BatchNormalization (the
// float engine folds them and creates the bias), biases that are Identity
// nodes of one shared initializer (torch.onnx deduplicates equal
// initializers that way), a residual Add with a ReLU, GlobalAveragePool,
// Flatten and a final Gemm.
func torchResidualNet(t testing.TB) *network.Network {
	b := newGraphBuilder(21, []int64{3, 8, 8})
	bn := func(name, in string, seed float64) string {
		return b.node(name, "BatchNormalization", []string{in,
			b.init(name+"_s", 0, []int{8}, 1.1, 0.9, 1.2, 0.8, 1, 1.3, 0.7, 1.05),
			b.init(name+"_b", 0.1*seed, []int{8}), b.init(name+"_m", 0.1, []int{8}),
			b.init(name+"_v", 0, []int{8}, 1, 2, 0.5, 1.5, 1, 0.8, 1.2, 1)})
	}
	pads := aInts("pads", 1, 1, 1, 1)
	c1 := b.node("c1", "Conv", []string{"x", b.init("w1", 0.4, []int{8, 3, 3, 3})}, pads)
	r1 := b.node("r1", "Relu", []string{bn("bn1", c1, 1)})
	c2 := b.node("c2", "Conv", []string{r1, b.init("w2", 0.2, []int{8, 8, 3, 3})}, pads)
	r2 := b.node("r2", "Relu", []string{b.node("add", "Add", []string{bn("bn2", c2, 2), r1})})
	shared := b.init("shared_bias", 0.1, []int{8})
	c3 := b.node("c3", "Conv", []string{r2, b.init("w3", 0.3, []int{8, 8, 1, 1}), b.node("id3", "Identity", []string{shared})})
	r3 := b.node("r3", "Relu", []string{c3})
	c4 := b.node("c4", "Conv", []string{r3, b.init("w4", 0.3, []int{8, 8, 1, 1}), b.node("id4", "Identity", []string{shared})})
	fl := b.node("flat", "Flatten", []string{b.node("gap", "GlobalAveragePool", []string{c4})})
	return b.build(t, b.node("fc", "Gemm", []string{fl, b.init("wf", 0.5, []int{5, 8}), b.init("bf", 0.1, []int{5})}, aInt("transB", 1)))
}

// mobileNet has the patterns of MobileNet, EfficientNet, RegNet, MnasNet,
// SqueezeNet and DenseNet that have no integer path or a new one: SiLU
// (Sigmoid and Mul), a squeeze-excitation block (GlobalAveragePool, two 1x1
// convolutions, Sigmoid, broadcasting Mul), a depthwise convolution with
// ReLU6 (Clip 0..6), a Concat of two branches, a BatchNormalization that
// follows the Concat (not foldable), a standalone ReLU6, a constant Add and
// ReduceMean as the global pool.
func mobileNet(t testing.TB) *network.Network {
	b := newGraphBuilder(22, []int64{4, 8, 8})
	pads := aInts("pads", 1, 1, 1, 1)
	c1 := b.node("c1", "Conv", []string{"x", b.init("w1", 0.4, []int{8, 4, 3, 3}), b.init("b1", 0.1, []int{8})}, pads)
	silu := b.node("silu", "Mul", []string{c1, b.node("sig", "Sigmoid", []string{c1})})
	sq := b.node("sq", "GlobalAveragePool", []string{silu})
	f1 := b.node("f1", "Conv", []string{sq, b.init("wf1", 0.5, []int{4, 8, 1, 1}), b.init("bf1", 0.1, []int{4})})
	f2 := b.node("f2", "Conv", []string{b.node("fr", "Relu", []string{f1}), b.init("wf2", 0.5, []int{8, 4, 1, 1}), b.init("bf2", 0.1, []int{8})})
	se := b.node("se", "Mul", []string{silu, b.node("gate", "Sigmoid", []string{f2})})
	zero, six := b.init("zero", 0, []int{}, 0), b.init("six", 0, []int{}, 6)
	dw := b.node("dw", "Conv", []string{se, b.init("wdw", 1.5, []int{8, 1, 3, 3}), b.init("bdw", 0.5, []int{8})}, pads, aInt("group", 8))
	r6 := b.node("relu6", "Clip", []string{dw, zero, six})
	pw := b.node("pw", "Conv", []string{se, b.init("wpw", 0.6, []int{4, 8, 1, 1}), b.init("bpw", 0.1, []int{4})})
	cat := b.node("cat", "Concat", []string{r6, pw}, aInt("axis", 1))
	bn := b.node("bn", "BatchNormalization", []string{cat, b.init("bn_s", 0.3, []int{12}), b.init("bn_b", 0.2, []int{12}),
		b.init("bn_m", 0.1, []int{12}), b.init("bn_v", 0, []int{12}, 1, 2, 0.5, 1.5, 1, 0.8, 1.2, 1, 0.9, 1.1, 1, 2)})
	r := b.node("r", "Clip", []string{bn, zero, six})
	c2 := b.node("c2", "Conv", []string{r, b.init("w2", 0.3, []int{8, 12, 3, 3}), b.init("b2", 0.1, []int{8})}, pads, aInts("strides", 2, 2))
	shift := b.node("shift", "Add", []string{c2, b.init("k", 0.3, []int{8, 1, 1})})
	rm := b.node("mean", "ReduceMean", []string{shift}, aInts("axes", 2, 3), aInt("keepdims", 0))
	return b.build(t, b.node("fc", "Gemm", []string{rm, b.init("wf", 0.5, []int{8, 5}), b.init("bf", 0.1, []int{5})}))
}

// checkExact compiles net at each bit configuration and checks that the
// integer program equals the simulation bit for bit, that its codes are
// not degenerate, and that FloatNodes lists wantFloat.
func checkExact(t *testing.T, net *network.Network, bitSets [][]int, wantFloat []string) {
	t.Helper()
	x := randBatch(rand.New(rand.NewPCG(31, 4)), 24, net.SampleShape)
	for _, bits := range bitSets {
		m := compileSynthetic(t, net, bits)
		var fl []string
		for _, f := range m.FloatNodes() {
			fl = append(fl, f.Node)
		}
		if !slices.Equal(fl, wantFloat) {
			t.Fatalf("float nodes: got %v; want %v", fl, wantFloat)
		}
		got, _ := runBoth(t, m, x, fmt.Sprintf("bits %v", bits))
		for _, ti := range got.Tensors {
			lo, hi := uint8(255), uint8(0)
			for _, c := range ti.Codes {
				lo, hi = min(lo, c), max(hi, c)
			}
			if hi-lo < 4 {
				t.Errorf("bits %v: tensor %s spans only codes [%d, %d]", bits, ti.Name, lo, hi)
			}
		}
	}
}

// checkCloseToFloat checks the W8A8 logits against the float network
// (synthRelRMS8).
func checkCloseToFloat(t *testing.T, net *network.Network) {
	t.Helper()
	m := compileSynthetic(t, net, nil)
	x := randBatch(rand.New(rand.NewPCG(32, 5)), 40, net.SampleShape)
	got, err := m.Run(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	pass, err := net.Forward(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	want := pass.Output()
	var num, den float64
	for i := range want.Data {
		d := got.Data[i] - want.Data[i]
		num += d * d
		den += want.Data[i] * want.Data[i]
	}
	if rel := math.Sqrt(num / den); rel > synthRelRMS8 || math.IsNaN(rel) {
		t.Errorf("W8A8 logits relative RMS error vs float: got %.3g; want <= %g", rel, synthRelRMS8)
	}
}

func TestTorchResidualMatchesSimulation(t *testing.T) {
	net := torchResidualNet(t)
	for _, l := range net.Layers()[:4] {
		if l.Node == "c3" || l.Node == "c4" {
			if l.Bias >= 0 {
				t.Fatalf("layer %s: the bias is a parameter; the test wants the Identity-of-a-shared-initializer pattern", l.Node)
			}
		} else if l.Bias < 0 {
			t.Fatalf("layer %s: no bias; the test wants a bias created by BatchNorm folding", l.Node)
		}
	}
	checkExact(t, net, [][]int{{8, 8, 8, 8, 8}, {4, 2, 8, 1, 4}}, nil)
	checkCloseToFloat(t, net)
}

func TestFallbackMatchesSimulation(t *testing.T) {
	net := mobileNet(t)
	checkExact(t, net, [][]int{nil, {8, 4, 8, 2, 8, 4, 8}}, []string{"sig", "silu", "gate", "se", "bn", "shift", "mean"})
	checkCloseToFloat(t, net)
	m := compileSynthetic(t, net, nil)
	var tabulated []string
	for _, st := range m.plan.steps {
		if f, ok := st.(*floatStep); ok && f.lut != nil {
			tabulated = append(tabulated, f.node)
		}
	}
	if want := []string{"sig", "silu", "gate"}; !slices.Equal(tabulated, want) {
		t.Errorf("tabulated float steps: got %v; want %v (elementwise, no broadcasting, no constant)", tabulated, want)
	}
	var steps []string
	for _, s := range m.Steps() {
		steps = append(steps, s[0]+":"+s[1])
	}
	want := []string{"input:QuantizeLinear", "c1:Conv", "sig:Sigmoid (float)", "silu:Mul (float)", "sq:GlobalAveragePool",
		"f1+fr:Conv", "f2:Conv", "gate:Sigmoid (float)", "se:Mul (float)", "dw+relu6:Conv", "pw:Conv", "cat:Concat",
		"bn:BatchNormalization (float)", "r:Clip", "c2:Conv", "shift:Add (float)", "mean:ReduceMean (float)", "fc:Gemm"}
	if !slices.Equal(steps, want) {
		t.Errorf("steps:\n got %v\nwant %v", steps, want)
	}
}

// A float step's codes are Quantize(op(dequantized inputs)) with the
// network package's own operator, checked here by hand for the SiLU Mul.
func TestFloatStepFormula(t *testing.T) {
	net := mobileNet(t)
	m := compileSynthetic(t, net, nil)
	x := randBatch(rand.New(rand.NewPCG(33, 6)), 3, net.SampleShape)
	res, err := m.RunInt(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	info := map[string]TensorInfo{}
	codes := map[string][]uint8{}
	for i, ti := range m.Tensors() {
		info[ti.Name], codes[ti.Name] = ti, res.Tensors[i].Codes
	}
	c1, sig, silu := info["c1_out"], info["sig_out"], info["silu_out"]
	for _, ti := range []TensorInfo{c1, sig, silu} {
		if !ti.Own {
			t.Fatalf("tensor %s is not a quantization point", ti.Name)
		}
	}
	deq := func(ti TensorInfo, c uint8) float64 { return float64(int(c)-ti.Quant.ZeroPoint) * ti.Quant.Scale }
	for k, c := range codes["c1_out"] {
		a := deq(c1, c)
		s := sig.Quant.Quantize(1 / (1 + math.Exp(-a)))
		if s != codes["sig_out"][k] {
			t.Fatalf("sigmoid code %d: got %d; want %d", k, codes["sig_out"][k], s)
		}
		if want := silu.Quant.Quantize(a * deq(sig, s)); codes["silu_out"][k] != want {
			t.Fatalf("SiLU code %d: got %d; want %d", k, codes["silu_out"][k], want)
		}
	}
}

// Concat rescales each input into the output quantizer:
// y = z_y + round(m_j·(q - z_j) / 2^c), within one code of
// Quantize((q - z_j)·S_j) (the dyadic multiplier is exact to 2^-31).
func TestConcatRescales(t *testing.T) {
	net := mobileNet(t)
	m := compileSynthetic(t, net, nil)
	x := randBatch(rand.New(rand.NewPCG(34, 7)), 2, net.SampleShape)
	res, err := m.RunInt(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]int{}
	for i, ti := range m.Tensors() {
		byName[ti.Name] = i
	}
	ts := m.Tensors()
	cat, r6, pw := ts[byName["cat_out"]], ts[byName["relu6_out"]], ts[byName["pw_out"]]
	hw := 64
	far := 0
	for n := 0; n < 2; n++ {
		for c := 0; c < 12; c++ {
			src, q, ch := r6, res.Tensors[byName["relu6_out"]].Codes, c
			if c >= 8 {
				src, q, ch = pw, res.Tensors[byName["pw_out"]].Codes, c-8
			}
			per := tensor.Size(src.Shape)
			for p := 0; p < hw; p++ {
				in := q[n*per+ch*hw+p]
				got := res.Tensors[byName["cat_out"]].Codes[n*12*hw+c*hw+p]
				want := cat.Quant.Quantize(float64(int(in)-src.Quant.ZeroPoint) * src.Quant.Scale)
				if d := int(got) - int(want); d < -1 || d > 1 {
					t.Fatalf("sample %d channel %d position %d: got code %d; want %d ± 1", n, c, p, got, want)
				} else if d != 0 {
					far++
				}
			}
		}
	}
	if far > 2*12*hw/50 {
		t.Errorf("%d of %d concatenated codes differ by one from direct requantization; want at most 2%%", far, 2*12*hw)
	}
}

// effNet has EfficientNet's blocks: SiLU (Sigmoid, Mul) around depthwise
// convolutions and squeeze-excitation gates (GlobalAveragePool, 1x1
// convolutions, Sigmoid) applied by a broadcasting Mul, once as x·g on a
// 20x20 map (more than chanMulTable positions: tabulated per channel) and
// once as g·x on 10x10 (quantized per element).
func effNet(t testing.TB) *network.Network {
	b := newGraphBuilder(23, []int64{3, 20, 20})
	pads := aInts("pads", 1, 1, 1, 1)
	silu := func(name, in string) string {
		return b.node(name, "Mul", []string{in, b.node(name+"_sig", "Sigmoid", []string{in})})
	}
	se := func(name, x string, c int, gateFirst bool) string {
		sq := b.node(name+"_sq", "GlobalAveragePool", []string{x})
		f1 := silu(name+"_s1", b.node(name+"_f1", "Conv", []string{sq, b.init(name+"_wf1", 0.5, []int{4, c, 1, 1}), b.init(name+"_bf1", 0.1, []int{4})}))
		f2 := b.node(name+"_f2", "Conv", []string{f1, b.init(name+"_wf2", 0.5, []int{c, 4, 1, 1}), b.init(name+"_bf2", 0.1, []int{c})})
		g := b.node(name+"_gate", "Sigmoid", []string{f2})
		if gateFirst {
			return b.node(name, "Mul", []string{g, x})
		}
		return b.node(name, "Mul", []string{x, g})
	}
	c1 := silu("a1", b.node("c1", "Conv", []string{"x", b.init("w1", 0.4, []int{16, 3, 3, 3}), b.init("b1", 0.1, []int{16})}, pads))
	d1 := silu("a2", b.node("dw1", "Conv", []string{c1, b.init("wd1", 0.6, []int{16, 1, 3, 3}), b.init("bd1", 0.1, []int{16})}, pads, aInt("group", 16)))
	p1 := b.node("pw1", "Conv", []string{se("se1", d1, 16, false), b.init("wp1", 0.4, []int{16, 16, 1, 1}), b.init("bp1", 0.1, []int{16})})
	r1 := b.node("res", "Add", []string{p1, c1})
	d2 := silu("a3", b.node("dw2", "Conv", []string{r1, b.init("wd2", 0.6, []int{16, 1, 3, 3}), b.init("bd2", 0.1, []int{16})}, pads, aInts("strides", 2, 2), aInt("group", 16)))
	p2 := b.node("pw2", "Conv", []string{se("se2", d2, 16, true), b.init("wp2", 0.4, []int{24, 16, 1, 1}), b.init("bp2", 0.1, []int{24})})
	fl := b.node("flat", "Flatten", []string{b.node("gap", "GlobalAveragePool", []string{p2})})
	return b.build(t, b.node("fc", "Gemm", []string{fl, b.init("wf", 0.5, []int{5, 24}), b.init("bf", 0.1, []int{5})}, aInt("transB", 1)))
}

// TestChannelMulMatchesSimulation: on effNet the squeeze-excitation Muls
// run as channel Muls (runChanMul, both operand orders, tabulated and
// not), the SiLU steps are tabulated (the Mul's table composed with the
// Sigmoid's), every convolution's tensors are
// channels-last (the depthwise convolutions take kernels.DepthwiseNHWC),
// and the codes equal the simulation bit for bit.
func TestChannelMulMatchesSimulation(t *testing.T) {
	net := effNet(t)
	checkExact(t, net, [][]int{nil, {8, 4, 8, 4, 2, 8, 4, 8, 4, 8}}, []string{"a1_sig", "a1", "a2_sig", "a2", "se1_s1_sig", "se1_s1", "se1_gate", "se1", "a3_sig", "a3", "se2_s1_sig", "se2_s1", "se2_gate", "se2"})
	m := compileSynthetic(t, net, nil)
	var chanMuls []string
	for _, st := range m.plan.steps {
		switch s := st.(type) {
		case *floatStep:
			if s.chanMul {
				chanMuls = append(chanMuls, fmt.Sprintf("%s:x=%d", s.node, s.xIn))
			} else if s.lut == nil {
				t.Errorf("float step %s: neither tabulated nor a channel Mul", s.node)
			}
		case *layerStep:
			if s.conv && s.rows > 1 && !(s.inNHWC && s.outNHWC) {
				t.Errorf("convolution %s: input NHWC %v, output NHWC %v; want both", s.node, s.inNHWC, s.outNHWC)
			}
			if s.groups > 1 && s.dw == nil {
				t.Errorf("depthwise convolution %s: not on kernels.DepthwiseNHWC", s.node)
			}
		}
	}
	var composed []string
	for _, st := range m.plan.steps {
		if s, ok := st.(*floatStep); ok && s.composed != nil {
			composed = append(composed, s.node)
		}
	}
	if want := []string{"a1", "a2", "se1_s1", "a3", "se2_s1"}; !slices.Equal(composed, want) {
		t.Errorf("composed SiLU tables: got %v; want %v", composed, want)
	}
	if want := []string{"se1:x=0", "se2:x=1"}; !slices.Equal(chanMuls, want) {
		t.Errorf("channel Muls: got %v; want %v", chanMuls, want)
	}
}

// seFlatNet applies squeeze-excitation gates to tensors that a Flatten
// reads, so they stay channels-first: x·g on 20x20 (tabulated) and g·x on
// 10x10 (per element), concatenated into a Gemm.
func seFlatNet(t testing.TB) *network.Network {
	b := newGraphBuilder(24, []int64{3, 20, 20})
	pads := aInts("pads", 1, 1, 1, 1)
	gate := func(name, x string) string {
		sq := b.node(name+"_sq", "GlobalAveragePool", []string{x})
		f := b.node(name+"_f", "Conv", []string{sq, b.init(name+"_wf", 0.5, []int{8, 8, 1, 1}), b.init(name+"_bf", 0.1, []int{8})})
		return b.node(name+"_gate", "Sigmoid", []string{f})
	}
	c1 := b.node("c1", "Conv", []string{"x", b.init("w1", 0.4, []int{8, 3, 3, 3}), b.init("b1", 0.1, []int{8})}, pads)
	c2 := b.node("c2", "Conv", []string{c1, b.init("w2", 0.3, []int{8, 8, 3, 3}), b.init("b2", 0.1, []int{8})}, pads, aInts("strides", 2, 2))
	fa := b.node("fa", "Flatten", []string{b.node("sea", "Mul", []string{c1, gate("ga", c1)})})
	fb := b.node("fb", "Flatten", []string{b.node("seb", "Mul", []string{gate("gb", c2), c2})})
	cat := b.node("cat", "Concat", []string{fa, fb}, aInt("axis", 1))
	return b.build(t, b.node("fc", "Gemm", []string{cat, b.init("wf", 0.05, []int{5, 4000}), b.init("bf", 0.1, []int{5})}, aInt("transB", 1)))
}

// TestChannelMulChannelsFirst: the channel Muls of seFlatNet run on
// channels-first tensors and equal the simulation bit for bit.
func TestChannelMulChannelsFirst(t *testing.T) {
	net := seFlatNet(t)
	checkExact(t, net, [][]int{nil, {8, 4, 4, 2, 8}}, []string{"ga_gate", "sea", "gb_gate", "seb"})
	m := compileSynthetic(t, net, nil)
	for _, st := range m.plan.steps {
		if s, ok := st.(*floatStep); ok && s.lut == nil && (!s.chanMul || m.plan.nhwc[s.out]) {
			t.Errorf("float step %s: channel Mul %v, NHWC %v; want a channels-first channel Mul", s.node, s.chanMul, m.plan.nhwc[s.out])
		}
	}
}
