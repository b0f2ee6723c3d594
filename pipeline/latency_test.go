package pipeline

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"mpsearch/costmodel"
	"mpsearch/intengine"
	"mpsearch/kernels"
	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/tensor"
)

func loadNet(t *testing.T, path string) *network.Network {
	t.Helper()
	m, err := onnx.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	net, err := network.Build(m, network.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return net
}

// TestOpShapes checks the operations between layers of the fixture LeNet
// (worked out from its graph: a 1x28x28 input, two 2x2 max pools after
// 6 channels of 28x28 and 16 of 10x10, 10 logits; the first pool lies
// between two convolutions, so channels-last, the second feeds the Flatten,
// so channels-first) and, for both fixtures,
// that they are the steps the integer engine runs besides its layers.
func TestOpShapes(t *testing.T) {
	lenet := loadNet(t, "../testdata/fmnist-lenet/lenet.onnx")
	ops, err := OpShapes(lenet)
	if err != nil {
		t.Fatal(err)
	}
	want := []costmodel.OpShape{
		{Op: costmodel.OpQuantize, Elements: 784},
		{Op: costmodel.OpMaxPool, Elements: 6 * 14 * 14, Taps: 4, Max2x2: true, NHWC: true, Channels: 6},
		{Op: costmodel.OpMaxPool, Elements: 16 * 5 * 5, Taps: 4, Max2x2: true, Channels: 16},
		{Op: costmodel.OpDequantize, Elements: 10},
	}
	if len(ops) != len(want) {
		t.Fatalf("OpShapes(LeNet) = %+v; want %d operations", ops, len(want))
	}
	for i, o := range ops {
		o.Name = ""
		if o != want[i] {
			t.Errorf("OpShapes(LeNet)[%d] = %+v; want %+v", i, o, want[i])
		}
	}

	ctx := context.Background()
	for _, path := range []string{"../testdata/fmnist-lenet/lenet.onnx", "../testdata/vgg-fmnist/model.onnx"} {
		net := loadNet(t, path)
		ops, err := OpShapes(net)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		x := tensor.New(append([]int{4}, net.SampleShape...)...)
		for i := range x.Data {
			x.Data[i] = rng.NormFloat64()
		}
		ranges, err := intengine.ObserveRanges(ctx, net, []*tensor.Tensor{x})
		if err != nil {
			t.Fatal(err)
		}
		bits := make([]int, len(net.Layers()))
		for i := range bits {
			bits[i] = 8
		}
		eng, err := intengine.Compile(net, intengine.Config{Bits: bits, Ranges: ranges})
		if err != nil {
			t.Fatal(err)
		}
		tm, err := eng.Time(ctx, tensor.FromData(x.Data[:x.Size()/4], append([]int{1}, net.SampleShape...)...), 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		// The engine's steps besides its layers, then the dequantization
		// it does after the program.
		var steps []string
		for _, s := range tm.Steps {
			switch s.Op {
			case "Conv", "Gemm", "MatMul":
			case "Relu", "Clip":
				steps = append(steps, costmodel.OpClamp+" "+s.Node)
			case "GlobalAveragePool":
				steps = append(steps, costmodel.OpAvgPool+" "+s.Node)
			case "QuantizeLinear":
				steps = append(steps, s.Op)
			default:
				steps = append(steps, s.Op+" "+s.Node)
			}
		}
		steps = append(steps, costmodel.OpDequantize)
		var got []string
		for _, o := range ops {
			switch o.Op {
			case costmodel.OpQuantize, costmodel.OpDequantize:
				got = append(got, o.Op)
			default:
				got = append(got, o.Op+" "+o.Name)
			}
		}
		if len(got) != len(steps) {
			t.Fatalf("%s: OpShapes gives %q; the engine runs %q", path, got, steps)
		}
		for i := range got {
			if got[i] != steps[i] {
				t.Errorf("%s: operation %d is %q; the engine runs %q", path, i, got[i], steps[i])
			}
		}
	}
}

// TestProfileLatencyOps checks that OpsLatency is PredictOps in
// milliseconds.
func TestProfileLatencyOps(t *testing.T) {
	prof, _, err := LoadProfile("../profiles/avx2-analytic.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ops := []costmodel.OpShape{{Op: costmodel.OpQuantize, Elements: 784}, {Op: costmodel.OpDequantize, Elements: 10}}
	pl := &ProfileLatency{Profile: prof, Ops: ops}
	got, err := pl.OpsLatency()
	if err != nil {
		t.Fatal(err)
	}
	d, err := costmodel.PredictOps(prof, ops, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := float64(d.Nanoseconds()) / 1e6; got != want || got <= 0 {
		t.Errorf("OpsLatency() = %v ms; want PredictOps = %v ms (positive)", got, want)
	}
}

// TestLoadProfileKeysOnISA: the profile picked for this machine describes
// the kernels it runs (kernels.ISA), unless it is the analytic fallback,
// whose name then says it describes other kernels; a given profile of
// other kernels is flagged the same way, one of these kernels is not.
func TestLoadProfileKeysOnISA(t *testing.T) {
	isa := kernels.ISA()
	p, name, err := LoadProfile("")
	if err != nil {
		t.Fatal(err)
	}
	mismatch := "kernels, but this machine runs the " + isa + " ones"
	switch {
	case p.Source == "measured" && p.CPU.KernelISA != isa:
		t.Errorf("picked %s, measured with the %s kernels; this machine runs %s", name, p.CPU.KernelISA, isa)
	case p.CPU.KernelISA != isa && !strings.Contains(name, mismatch):
		t.Errorf("fallback %s describes the %s kernels on a %s machine without saying so", name, p.CPU.KernelISA, isa)
	}
	_, name, err = LoadProfile("../profiles/avx2-analytic.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Contains(name, mismatch), isa != kernels.ISAAVX2; got != want {
		t.Errorf("the analytic AVX2 profile on a %s machine: name %q; flagged %v, want %v", isa, name, got, want)
	}
}

// TestLayerShapesGroupedConv checks the cost-model shapes of grouped and
// depthwise convolutions (MobileNet's): the geometry is that of the whole
// input, and the shape's multiply-adds equal the layer's. Depthwise layers
// used to be refused ("1 input and 16 output channels are not divisible
// into 16 groups").
func TestLayerShapesGroupedConv(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	w := func(shape ...int) *tensor.Tensor { return normalTensor(rng, shape...) }
	attrs := func(group, stride int64) map[string]onnx.Attribute {
		return map[string]onnx.Attribute{
			"group":   {Name: "group", Type: onnx.AttrInt, I: group},
			"pads":    {Name: "pads", Type: onnx.AttrInts, Ints: []int64{1, 1, 1, 1}},
			"strides": {Name: "strides", Type: onnx.AttrInts, Ints: []int64{stride, stride}},
		}
	}
	m := &onnx.Model{Opset: 13, Graph: &onnx.Graph{
		Name:    "grouped",
		Inputs:  []onnx.ValueInfo{{Name: "x", ElemType: onnx.Float, Shape: []onnx.Dim{{Value: -1, Param: "N"}, {Value: 16}, {Value: 9}, {Value: 9}}}},
		Outputs: []onnx.ValueInfo{{Name: "z", ElemType: onnx.Float}},
		Nodes: []onnx.Node{
			{Name: "dw", OpType: "Conv", Inputs: []string{"x", "w1"}, Outputs: []string{"a"}, Attrs: attrs(16, 2)},
			{Name: "grouped", OpType: "Conv", Inputs: []string{"a", "w2"}, Outputs: []string{"z"}, Attrs: attrs(4, 1)},
		},
		Initializers: map[string]*tensor.Tensor{"w1": w(16, 1, 3, 3), "w2": w(8, 4, 3, 3)},
		InitOrder:    []string{"w1", "w2"},
		InitTypes:    map[string]onnx.DataType{"w1": onnx.Float, "w2": onnx.Float},
	}}
	net, err := network.Build(m, network.Options{})
	if err != nil {
		t.Fatal(err)
	}
	shapes, err := LayerShapes(net)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range net.Layers() {
		s := shapes[i]
		if s.MACs != l.MACs || s.Groups != []int{16, 4}[i] {
			t.Errorf("%s: got %d MACs in %d groups; want %d in %d", l.Node, s.MACs, s.Groups, l.MACs, []int{16, 4}[i])
		}
		if err := s.Validate(); err != nil {
			t.Errorf("%s: %v", l.Node, err)
		}
	}
}

// TestFloatStepsMs: a model whose engine runs a float step (a Sigmoid
// between two convolutions) gets a positive time; the fixture LeNet, which
// has none, gets 0.
func TestFloatStepsMs(t *testing.T) {
	ctx := context.Background()
	lenet := loadNet(t, "../testdata/fmnist-lenet/lenet.onnx")
	if ms, err := FloatStepsMs(ctx, lenet, tensor.New(append([]int{1}, lenet.SampleShape...)...)); err != nil || ms != 0 {
		t.Errorf("LeNet: %v ms, %v; want 0 (no float step)", ms, err)
	}
	rng := rand.New(rand.NewPCG(23, 24))
	w := func(shape ...int) *tensor.Tensor { return normalTensor(rng, shape...) }
	m := &onnx.Model{Opset: 13, Graph: &onnx.Graph{
		Name:    "sigmoid",
		Inputs:  []onnx.ValueInfo{{Name: "x", ElemType: onnx.Float, Shape: []onnx.Dim{{Value: -1, Param: "N"}, {Value: 4}, {Value: 16}, {Value: 16}}}},
		Outputs: []onnx.ValueInfo{{Name: "z", ElemType: onnx.Float}},
		Nodes: []onnx.Node{
			{Name: "c1", OpType: "Conv", Inputs: []string{"x", "w1"}, Outputs: []string{"a"}},
			{Name: "s", OpType: "Sigmoid", Inputs: []string{"a"}, Outputs: []string{"b"}},
			{Name: "c2", OpType: "Conv", Inputs: []string{"b", "w2"}, Outputs: []string{"z"}},
		},
		Initializers: map[string]*tensor.Tensor{"w1": w(8, 4, 1, 1), "w2": w(2, 8, 1, 1)},
		InitOrder:    []string{"w1", "w2"},
		InitTypes:    map[string]onnx.DataType{"w1": onnx.Float, "w2": onnx.Float},
	}}
	net, err := network.Build(m, network.Options{})
	if err != nil {
		t.Fatal(err)
	}
	x := w(2, 4, 16, 16)
	ms, err := FloatStepsMs(ctx, net, x)
	if err != nil || !(ms > 0) {
		t.Fatalf("Sigmoid model: %v ms, %v; want a positive time", ms, err)
	}
}

// TestOpShapesFloatAdd: an Add of a constant, which the engine runs as a
// float fallback step, is not an operation of the cost model (FloatStepsMs
// times it), while an Add of two layers' codes is.
func TestOpShapesFloatAdd(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	w := func(shape ...int) *tensor.Tensor { return normalTensor(rng, shape...) }
	m := &onnx.Model{Opset: 13, Graph: &onnx.Graph{
		Name:    "adds",
		Inputs:  []onnx.ValueInfo{{Name: "x", ElemType: onnx.Float, Shape: []onnx.Dim{{Value: -1, Param: "N"}, {Value: 4}, {Value: 8}, {Value: 8}}}},
		Outputs: []onnx.ValueInfo{{Name: "z", ElemType: onnx.Float}},
		Nodes: []onnx.Node{
			{Name: "c1", OpType: "Conv", Inputs: []string{"x", "w1"}, Outputs: []string{"a"}},
			{Name: "shift", OpType: "Add", Inputs: []string{"a", "bias"}, Outputs: []string{"b"}},
			{Name: "c2", OpType: "Conv", Inputs: []string{"b", "w2"}, Outputs: []string{"c"}},
			{Name: "res", OpType: "Add", Inputs: []string{"c", "a"}, Outputs: []string{"d"}},
			{Name: "c3", OpType: "Conv", Inputs: []string{"d", "w3"}, Outputs: []string{"z"}},
		},
		Initializers: map[string]*tensor.Tensor{"w1": w(8, 4, 1, 1), "bias": w(8, 1, 1), "w2": w(8, 8, 1, 1), "w3": w(2, 8, 1, 1)},
		InitOrder:    []string{"w1", "bias", "w2", "w3"},
		InitTypes:    map[string]onnx.DataType{"w1": onnx.Float, "bias": onnx.Float, "w2": onnx.Float, "w3": onnx.Float},
	}}
	net, err := network.Build(m, network.Options{})
	if err != nil {
		t.Fatal(err)
	}
	float, err := intengine.FloatStepNodes(net)
	if err != nil {
		t.Fatal(err)
	}
	if !float["shift"] || float["res"] {
		t.Fatalf("float steps %v; want shift (an Add of a constant) and not res", float)
	}
	ops, err := OpShapes(net)
	if err != nil {
		t.Fatal(err)
	}
	var adds []string
	for _, o := range ops {
		if o.Op == costmodel.OpAdd {
			adds = append(adds, o.Name)
		}
	}
	if len(adds) != 1 || adds[0] != "res" {
		t.Errorf("OpShapes's Adds: got %q; want [res] (shift runs in float)", adds)
	}
}

// normalTensor returns a tensor of shape with rng's standard normal draws,
// in order.
func normalTensor(rng *rand.Rand, shape ...int) *tensor.Tensor {
	x := tensor.New(shape...)
	for i := range x.Data {
		x.Data[i] = rng.NormFloat64()
	}
	return x
}
