package intengine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"weak"

	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/quant"
	"mpsearch/tensor"
)

func aInts(name string, v ...int64) onnx.Attribute {
	return onnx.Attribute{Name: name, Type: onnx.AttrInts, Ints: v}
}

func aInt(name string, v int64) onnx.Attribute {
	return onnx.Attribute{Name: name, Type: onnx.AttrInt, I: v}
}

// graphBuilder assembles small ONNX graphs for tests.
type graphBuilder struct {
	g   *onnx.Graph
	rng *rand.Rand
}

func newGraphBuilder(seed uint64, input []int64) *graphBuilder {
	dims := []onnx.Dim{{Value: -1, Param: "N"}}
	for _, d := range input {
		dims = append(dims, onnx.Dim{Value: d})
	}
	return &graphBuilder{
		g: &onnx.Graph{Name: "synthetic", Inputs: []onnx.ValueInfo{{Name: "x", ElemType: onnx.Float, Shape: dims}},
			Initializers: map[string]*tensor.Tensor{}, InitTypes: map[string]onnx.DataType{}},
		rng: rand.New(rand.NewPCG(seed, 1)),
	}
}

// init adds an initializer of N(0, scale²) values (or the given values).
func (b *graphBuilder) init(name string, scale float64, shape []int, values ...float64) string {
	t := tensor.New(shape...)
	if values != nil {
		copy(t.Data, values)
	} else {
		for i := range t.Data {
			t.Data[i] = scale * b.rng.NormFloat64()
		}
	}
	b.g.Initializers[name] = t
	b.g.InitTypes[name] = onnx.Float
	b.g.InitOrder = append(b.g.InitOrder, name)
	return name
}

// node adds a node whose output is named after it.
func (b *graphBuilder) node(name, op string, in []string, attrs ...onnx.Attribute) string {
	m := map[string]onnx.Attribute{}
	for _, a := range attrs {
		m[a.Name] = a
	}
	b.g.Nodes = append(b.g.Nodes, onnx.Node{Name: name, OpType: op, Inputs: in, Outputs: []string{name + "_out"}, Attrs: m})
	return name + "_out"
}

func (b *graphBuilder) build(t testing.TB, out string) *network.Network {
	t.Helper()
	b.g.Outputs = []onnx.ValueInfo{{Name: out, ElemType: onnx.Float}}
	net, err := network.Build(&onnx.Model{IRVersion: 8, Opset: 13, Graph: b.g}, network.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return net
}

// residualNet is a small CNN with every pattern the engine supports: a
// folded BatchNormalization, a grouped convolution, residual Adds (fused
// ReLU and not), average pools with even and odd divisors over signed values, MaxPool
// with padding, Clip, GlobalAveragePool, Flatten, Gemm with transB=0 and a
// final MatMul producing the logits.
func residualNet(t testing.TB) *network.Network {
	b := newGraphBuilder(7, []int64{3, 8, 8})
	c1 := b.node("c1", "Conv", []string{"x", b.init("w1", 0.4, []int{8, 3, 3, 3}), b.init("b1", 0.1, []int{8})}, aInts("pads", 1, 1, 1, 1))
	bn := b.node("bn", "BatchNormalization", []string{c1, b.init("bn_s", 0, []int{8}, 1.1, 0.9, 1.2, 0.8, 1, 1.3, 0.7, 1.05),
		b.init("bn_b", 0.1, []int{8}), b.init("bn_m", 0.1, []int{8}), b.init("bn_v", 0, []int{8}, 1, 2, 0.5, 1.5, 1, 0.8, 1.2, 1)})
	r1 := b.node("r1", "Relu", []string{bn})
	c2 := b.node("c2", "Conv", []string{r1, b.init("w2", 0.3, []int{8, 4, 3, 3}), b.init("b2", 0.1, []int{8})}, aInts("pads", 1, 1, 1, 1), aInt("group", 2))
	a1 := b.node("add1", "Add", []string{r1, c2})
	r2 := b.node("r2", "Relu", []string{a1})
	ap := b.node("ap", "AveragePool", []string{r2}, aInts("kernel_shape", 2, 2), aInts("strides", 2, 2))
	c3 := b.node("c3", "Conv", []string{ap, b.init("w3", 0.4, []int{8, 8, 1, 1}), b.init("b3", 0.1, []int{8})})
	cl := b.node("clip", "Clip", []string{c3, b.init("lo", 0, []int{}, 0), b.init("hi", 0, []int{}, 0.6)})
	mp := b.node("mp", "MaxPool", []string{cl}, aInts("kernel_shape", 3, 3), aInts("pads", 1, 1, 1, 1))
	c4 := b.node("c4", "Conv", []string{ap, b.init("w4", 0.4, []int{8, 8, 1, 1}), b.init("b4", 0.1, []int{8})})
	a2 := b.node("add2", "Add", []string{mp, c4})
	ap2 := b.node("ap2", "AveragePool", []string{a2}, aInts("kernel_shape", 3, 3), aInts("strides", 2, 2), aInts("pads", 1, 1, 1, 1))
	r3 := b.node("r3", "Relu", []string{ap2})
	gap := b.node("gap", "GlobalAveragePool", []string{r3})
	fl := b.node("flat", "Flatten", []string{gap})
	fc := b.node("fc", "Gemm", []string{fl, b.init("wf", 0.5, []int{8, 16}), b.init("bf", 0.1, []int{16})})
	rf := b.node("rf", "Relu", []string{fc})
	out := b.node("head", "MatMul", []string{rf, b.init("wh", 0.5, []int{16, 5})})
	return b.build(t, out)
}

func randBatch(rng *rand.Rand, n int, sample []int) *tensor.Tensor {
	x := tensor.New(append([]int{n}, sample...)...)
	for i := range x.Data {
		x.Data[i] = rng.NormFloat64()
	}
	return x
}

// compileSynthetic calibrates on one random batch and compiles.
func compileSynthetic(t *testing.T, net *network.Network, bits []int) *Model {
	t.Helper()
	rng := rand.New(rand.NewPCG(11, 2))
	r, err := ObserveRanges(context.Background(), net, []*tensor.Tensor{randBatch(rng, 64, net.SampleShape)})
	if err != nil {
		t.Fatal(err)
	}
	m, err := Compile(net, Config{Bits: bits, Ranges: r})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestResidualMatchesSimulation(t *testing.T) {
	net := residualNet(t)
	wantSteps := []string{"input", "c1+r1", "c2", "add1+r2", "ap", "c3+clip", "mp", "c4", "add2", "ap2", "r3", "gap", "fc+rf", "head"}
	x := randBatch(rand.New(rand.NewPCG(12, 3)), 50, net.SampleShape)
	for _, bits := range [][]int{{8, 8, 8, 8, 8, 8}, {4, 2, 8, 1, 4, 8}, {2, 2, 2, 2, 2, 2}, {1, 1, 1, 1, 1, 1}} {
		m := compileSynthetic(t, net, bits)
		var steps []string
		for _, s := range m.Steps() {
			steps = append(steps, s[0])
		}
		if strings.Join(steps, " ") != strings.Join(wantSteps, " ") {
			t.Fatalf("steps: got %v; want %v", steps, wantSteps)
		}
		got, _ := runBoth(t, m, x, fmt.Sprintf("bits %v", bits))
		// The codes must not be degenerate (all clamped or all equal).
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

// At 8 bits the integer logits stay close to the float network's: the
// relative RMS error of 8-bit per-channel weights and uint8 activations
// through six layers is a few percent; 0.1 leaves room and still catches
// a wrong scale, layout or zero point (which give errors near 1).
const synthRelRMS8 = 0.1

func TestResidualCloseToFloat(t *testing.T) {
	net := residualNet(t)
	m := compileSynthetic(t, net, nil)
	x := randBatch(rand.New(rand.NewPCG(12, 3)), 50, net.SampleShape)
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
	} else {
		t.Logf("W8A8 logits relative RMS error vs float: %.3g", rel)
	}
}

// A network whose output is a uint8 tensor (after a pool and a Reshape
// view) is dequantized at the end.
func TestUint8OutputMatchesSimulation(t *testing.T) {
	b := newGraphBuilder(9, []int64{2, 6, 6})
	c := b.node("c", "Conv", []string{"x", b.init("w", 0.5, []int{4, 2, 3, 3})}, aInts("strides", 2, 2), aInts("pads", 0, 0, 1, 1))
	r := b.node("r", "Relu", []string{c})
	g := b.node("gap", "GlobalAveragePool", []string{r})
	out := b.node("view", "Reshape", []string{g, b.init("shape", 0, []int{2}, 0, -1)})
	net := b.build(t, out)
	m := compileSynthetic(t, net, []int{4})
	x := randBatch(rand.New(rand.NewPCG(5, 5)), 20, net.SampleShape)
	got, _ := runBoth(t, m, x, "run")
	if got.Acc != nil || !tensor.SameShape(got.Output.Shape, []int{20, 4}) {
		t.Fatalf("output: got shape %v (acc %v); want [20 4] from uint8 codes", got.Output.Shape, got.Acc != nil)
	}
	q := m.Tensors()[len(m.Tensors())-1].Quant
	last := got.Tensors[len(got.Tensors)-1]
	for i, c := range last.Codes {
		if w := float64(int(c)-q.ZeroPoint) * q.Scale; got.Output.Data[i] != w {
			t.Fatalf("output %d: got %v; want (%d - %d)·%g = %v", i, got.Output.Data[i], c, q.ZeroPoint, q.Scale, w)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	// The int32 logits consumed by a float fallback step.
	logitsUsed := func() *network.Network {
		b := newGraphBuilder(1, []int64{4})
		h := b.node("fc", "Gemm", []string{"x", b.init("w", 1, []int{3, 4})}, aInt("transB", 1))
		b.node("squash", "Sigmoid", []string{h})
		return b.build(t, h)
	}
	batchView := func() *network.Network {
		b := newGraphBuilder(1, []int64{4})
		h := b.node("fc", "Gemm", []string{"x", b.init("w", 1, []int{3, 4})}, aInt("transB", 1))
		r := b.node("r", "Relu", []string{h})
		return b.build(t, b.node("all", "Reshape", []string{r, b.init("shape", 0, []int{1}, -1)}))
	}
	lenet := loadLeNet(t)
	for _, tc := range []struct {
		name    string
		net     *network.Network
		cfg     Config
		want    error
		mention string
	}{
		{"logits consumed", logitsUsed(), Config{}, ErrUnsupported, `"fc" (Gemm): the graph output "fc_out" is also consumed`},
		{"view across the batch", batchView(), Config{}, ErrUnsupported, `"all" (Reshape)`},
		{"bit count", lenet, Config{Bits: []int{8, 8}}, ErrConfig, "2 bit widths for 5 layers"},
		{"bit width", lenet, Config{Bits: []int{8, 8, 9, 8, 8}}, ErrConfig, `"/fc1/Gemm": 9-bit`},
		{"no ranges", lenet, Config{}, ErrConfig, `no range for tensor "input"`},
		{"bad quantizer", lenet, Config{Quantizers: map[string]quant.ActQuant{"input": {Scale: 0, ZeroPoint: 3}}}, ErrConfig, `quantizer of "input"`},
	} {
		_, err := Compile(tc.net, tc.cfg)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%s: got error %v; want %v mentioning %s", tc.name, err, tc.want, tc.mention)
		}
	}
}

func TestRunRejectsWrongShape(t *testing.T) {
	net := loadLeNet(t)
	m := lenetModel(t, net, nil)
	for _, shape := range [][]int{{1, 1, 28}, {2, 1, 28, 27}, {0, 1, 28, 28}} {
		if _, err := m.Run(context.Background(), tensor.New(shape...)); !errors.Is(err, network.ErrShape) {
			t.Errorf("input %v: got error %v; want network.ErrShape", shape, err)
		}
	}
}

// Concurrent Runs share a Model and give identical results.
func TestConcurrentRuns(t *testing.T) {
	net := residualNet(t)
	m := compileSynthetic(t, net, []int{8, 4, 2, 1, 8, 4})
	x := randBatch(rand.New(rand.NewPCG(8, 8)), 7, net.SampleShape)
	want, err := m.Run(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			for range 20 {
				got, err := m.Run(context.Background(), x)
				if err != nil {
					errs <- err
					return
				}
				for i := range got.Data {
					if got.Data[i] != want.Data[i] {
						errs <- fmt.Errorf("output %d: got %v; want %v", i, got.Data[i], want.Data[i])
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestTimeReportsEveryStep(t *testing.T) {
	net := residualNet(t)
	m := compileSynthetic(t, net, nil)
	x := randBatch(rand.New(rand.NewPCG(8, 9)), 3, net.SampleShape)
	tm, err := m.Time(context.Background(), x, 1, 5)
	if err != nil {
		t.Fatal(err)
	}
	if tm.Batch != 3 || tm.Runs != 5 || len(tm.Steps) != len(m.Steps()) {
		t.Fatalf("timing: batch %d, runs %d, %d steps; want 3, 5, %d", tm.Batch, tm.Runs, len(tm.Steps), len(m.Steps()))
	}
	if !(tm.Min <= tm.Median && tm.Median <= tm.Max && tm.Min > 0) {
		t.Errorf("timing: min %v, median %v, max %v; want 0 < min <= median <= max", tm.Min, tm.Median, tm.Max)
	}
	for i, s := range tm.Steps {
		if s.Node != m.Steps()[i][0] {
			t.Errorf("step %d: got %s; want %s", i, s.Node, m.Steps()[i][0])
		}
	}
	if _, err := m.Time(context.Background(), x, 0, 0); !errors.Is(err, ErrConfig) {
		t.Errorf("0 runs: got error %v; want ErrConfig", err)
	}
}

// TestTimeSettlesHeap checks that Time collects the heap before timing: a
// large buffer the caller dropped just before is gone when Time returns
// (its runs allocate far too little to trigger a collection themselves).
// Without the collection the runs' allocations fault in fresh pages.
func TestTimeSettlesHeap(t *testing.T) {
	net := residualNet(t)
	m := compileSynthetic(t, net, nil)
	x := randBatch(rand.New(rand.NewPCG(8, 9)), 1, net.SampleShape)
	type block [64 << 20]byte
	b := new(block)
	for i := range b {
		b[i] = byte(i)
	}
	wp := weak.Make(b)
	b = nil
	if _, err := m.Time(context.Background(), x, 0, 1); err != nil {
		t.Fatal(err)
	}
	if wp.Value() != nil {
		t.Errorf("a dropped 64 MB buffer was still on the heap after Time; want the heap collected before timing")
	}
}

// Integer logits from other layer kinds: a MatMul over a rank-3 input
// (rows = leading dims) and a grouped, strided convolution whose int32
// accumulators are the output.
func TestAccumulatorOutputsMatchSimulation(t *testing.T) {
	matmul := func() *network.Network {
		b := newGraphBuilder(3, []int64{3, 4})
		h := b.node("mm1", "MatMul", []string{"x", b.init("w1", 0.6, []int{4, 5})})
		r := b.node("r", "Relu", []string{h})
		return b.build(t, b.node("mm2", "MatMul", []string{r, b.init("w2", 0.6, []int{5, 2})}))
	}
	conv := func() *network.Network {
		b := newGraphBuilder(4, []int64{4, 5, 5})
		return b.build(t, b.node("gc", "Conv", []string{"x", b.init("w", 0.5, []int{6, 2, 3, 3}), b.init("bias", 0.2, []int{6})},
			aInts("pads", 1, 1, 1, 1), aInts("strides", 2, 2), aInt("group", 2)))
	}
	for _, tc := range []struct {
		name  string
		net   *network.Network
		bits  []int
		shape []int // per-sample output
	}{
		{"matmul", matmul(), []int{4, 8}, []int{3, 2}},
		{"grouped conv", conv(), []int{2}, []int{6, 3, 3}},
		{"grouped conv 8-bit", conv(), []int{8}, []int{6, 3, 3}},
	} {
		m := compileSynthetic(t, tc.net, tc.bits)
		x := randBatch(rand.New(rand.NewPCG(6, 6)), 9, tc.net.SampleShape)
		got, want := runBoth(t, m, x, tc.name)
		if !tensor.SameShape(got.AccShape, tc.shape) {
			t.Fatalf("%s: accumulator shape %v; want %v", tc.name, got.AccShape, tc.shape)
		}
		for i := range got.Output.Data {
			if got.Output.Data[i] != want.Output.Data[i] {
				t.Fatalf("%s: output %d: got %v; want %v", tc.name, i, got.Output.Data[i], want.Output.Data[i])
			}
		}
	}
}
