package export

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/quant"
	"mpsearch/tensor"
)

// A mixed configuration covering every storage case: 8 bits, INT4-eligible
// 4 and 3 bits, 2 bits and binary.
var mixedBits = []int{8, 4, 3, 2, 1}

func TestQDQLeNetLayout(t *testing.T) {
	net := loadLeNet(t)
	act := calibActs(t, net, loadCalib(t))
	gptq := lenetGPTQ(t, net)
	for _, tc := range []struct {
		name    string
		opset21 bool
		opset   int64
		ir      int64
		low     onnx.DataType // storage of layers at 4 bits or fewer
		codes   quant.WeightCodes
	}{
		{"opset13", false, 13, 8, onnx.Int8, nil},
		{"opset21", true, 21, 10, onnx.Int4, nil},
		{"opset13 GPTQ", false, 13, 8, onnx.Int8, gptq},
		{"opset21 GPTQ", true, 21, 10, onnx.Int4, gptq},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, err := onnx.Marshal(net.Model, onnx.SaveOptions{})
			if err != nil {
				t.Fatal(err)
			}
			m, err := QDQ(net, Config{Bits: mixedBits, Act: act, Opset21: tc.opset21, Weights: tc.codes})
			if err != nil {
				t.Fatal(err)
			}
			after, err := onnx.Marshal(net.Model, onnx.SaveOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Errorf("QDQ modified net.Model")
			}
			// Write and read back: what is checked is the file.
			data, err := onnx.Marshal(m, onnx.SaveOptions{})
			if err != nil {
				t.Fatal(err)
			}
			m2, err := QDQ(net, Config{Bits: mixedBits, Act: act, Opset21: tc.opset21, Weights: tc.codes})
			if err != nil {
				t.Fatal(err)
			}
			if again, _ := onnx.Marshal(m2, onnx.SaveOptions{}); !bytes.Equal(data, again) {
				t.Errorf("two exports of the same network and config differ")
			}
			m, err = onnx.Parse(data, "")
			if err != nil {
				t.Fatal(err)
			}
			if m.Opset != tc.opset || m.IRVersion != tc.ir {
				t.Errorf("opset, IR version: got %d, %d; want %d, %d", m.Opset, m.IRVersion, tc.opset, tc.ir)
			}
			g := m.Graph
			count := map[string]int{}
			for _, n := range g.Nodes {
				count[n.OpType]++
			}
			nl := len(net.Layers())
			if count["QuantizeLinear"] != nl || count["DequantizeLinear"] != 2*nl || len(g.Nodes) != len(net.Model.Graph.Nodes)+3*nl {
				t.Errorf("nodes: got %d with %d QuantizeLinear, %d DequantizeLinear; want %d with %d and %d",
					len(g.Nodes), count["QuantizeLinear"], count["DequantizeLinear"], len(net.Model.Graph.Nodes)+3*nl, nl, 2*nl)
			}
			prod := producers(g)
			byName := map[string]onnx.Node{}
			for _, n := range g.Nodes {
				byName[n.Name] = n
			}
			for li, l := range net.Layers() {
				n := byName[l.Node]
				checkWeight(t, g, prod, n, li, net, tc.codes, mixedBits[li], tc.low)
				checkAct(t, g, prod, n, net, act[l.Node])
			}
			for _, p := range net.Params() {
				_, isW := g.Initializers[p.Name]
				if isW && p.Input == 1 {
					t.Errorf("float weight %q is still an initializer", p.Name)
				}
			}
		})
	}
}

// checkWeight verifies that layer li's node n reads its weight through a
// per-channel DequantizeLinear of the integers of codes (nil:
// quant.QuantizeWeights's).
func checkWeight(t *testing.T, g *onnx.Graph, prod map[string]int, n onnx.Node, li int, net *network.Network, codes quant.WeightCodes, bits int, low onnx.DataType) {
	t.Helper()
	l := net.Layers()[li]
	i, ok := prod[n.Inputs[1]]
	if !ok || g.Nodes[i].OpType != "DequantizeLinear" {
		t.Errorf("%s: weight input %q is not a DequantizeLinear output", l.Node, n.Inputs[1])
		return
	}
	dq := g.Nodes[i]
	if got := dq.Int("axis", 1); got != int64(l.ChannelAxis) {
		t.Errorf("%s: DequantizeLinear axis: got %d; want %d", l.Node, got, l.ChannelAxis)
	}
	w := net.Model.Graph.Initializers[net.Params()[l.Weight].Name]
	want, err := quant.QuantizeWeights(w.Data, w.Shape, l.ChannelAxis, bits)
	if codes != nil {
		want, err = codes.Codes(li, bits)
	}
	if err != nil {
		t.Fatal(err)
	}
	wantType := onnx.Int8
	if bits <= 4 {
		wantType = low
	}
	q, s, zp := dq.Inputs[0], dq.Inputs[1], dq.Inputs[2]
	if g.InitTypes[q] != wantType || g.InitTypes[zp] != wantType || g.InitTypes[s] != onnx.Float {
		t.Errorf("%s: types of quantized weight, zero point, scale: got %v %v %v; want %v %v FLOAT",
			l.Node, g.InitTypes[q], g.InitTypes[zp], g.InitTypes[s], wantType, wantType)
	}
	qt := g.Initializers[q]
	if !tensor.SameShape(qt.Shape, w.Shape) {
		t.Fatalf("%s: quantized weight shape: got %v; want %v", l.Node, qt.Shape, w.Shape)
	}
	qmax := float64(quant.QMax(bits))
	for k, v := range qt.Data {
		if v != float64(want.Q[k]) || math.Abs(v) > qmax || (bits == 1 && math.Abs(v) != 1) {
			t.Fatalf("%s: quantized weight %d: got %v; want %d within ±%v", l.Node, k, v, want.Q[k], qmax)
		}
	}
	st, zt := g.Initializers[s], g.Initializers[zp]
	if st.Size() != len(want.Scales) || zt.Size() != len(want.Scales) {
		t.Fatalf("%s: %d scales and %d zero points; want %d", l.Node, st.Size(), zt.Size(), len(want.Scales))
	}
	for c, sc := range want.Scales {
		if st.Data[c] != float64(float32(sc)) || zt.Data[c] != 0 {
			t.Errorf("%s: channel %d: scale %v, zero point %v; want %v, 0", l.Node, c, st.Data[c], zt.Data[c], float32(sc))
		}
	}
}

// checkAct verifies that n reads its input through QuantizeLinear →
// DequantizeLinear of the original input with the quantizer a.
func checkAct(t *testing.T, g *onnx.Graph, prod map[string]int, n onnx.Node, net *network.Network, a quant.ActQuant) {
	t.Helper()
	i, ok := prod[n.Inputs[0]]
	if !ok || g.Nodes[i].OpType != "DequantizeLinear" {
		t.Errorf("%s: input %q is not a DequantizeLinear output", n.Name, n.Inputs[0])
		return
	}
	dq := g.Nodes[i]
	j, ok := prod[dq.Inputs[0]]
	if !ok || g.Nodes[j].OpType != "QuantizeLinear" {
		t.Errorf("%s: %q is not a QuantizeLinear output", n.Name, dq.Inputs[0])
		return
	}
	q := g.Nodes[j]
	var orig string
	for _, on := range net.Model.Graph.Nodes {
		if on.Name == n.Name {
			orig = on.Inputs[0]
		}
	}
	if q.Inputs[0] != orig {
		t.Errorf("%s: QuantizeLinear reads %q; want the layer's input %q", n.Name, q.Inputs[0], orig)
	}
	s, zp := g.Initializers[q.Inputs[1]], g.Initializers[q.Inputs[2]]
	if s.Rank() != 0 || zp.Rank() != 0 || g.InitTypes[q.Inputs[2]] != onnx.Uint8 {
		t.Errorf("%s: activation scale/zero point: got shapes %v %v, type %v; want scalars, UINT8", n.Name, s.Shape, zp.Shape, g.InitTypes[q.Inputs[2]])
	}
	if s.Data[0] != float64(float32(a.Scale)) || zp.Data[0] != float64(a.ZeroPoint) || dq.Inputs[1] != q.Inputs[1] || dq.Inputs[2] != q.Inputs[2] {
		t.Errorf("%s: activation quantizer: got scale %v zp %v; want %v %d (shared by Q and DQ)", n.Name, s.Data[0], zp.Data[0], float32(a.Scale), a.ZeroPoint)
	}
}

// Reading the exported file back by ONNX's operator definitions
// (dequantizeGraph) and running it on the float engine must give the
// simulated-quantization logits. The only differences are float32
// roundings of the scales and dequantized weights: relative 2^-24 per
// weight, which moves a logit of this network (|logit| < 40, sums of
// < 500 products) by far less than 1e-4. An activation code can flip where
// x/scale lands within that rounding of a .5 tie; a flip moves logits by
// about one activation step (scale·|w| summed, ~1e-2), so top-1 must agree
// on every image and logits within qdqLogitAbs except on such rare images.
const (
	qdqLogitAbs   = 1e-4
	qdqFlipImages = 2 // of 256
)

func TestQDQEqualsSimulation(t *testing.T) {
	net := loadLeNet(t)
	ds := loadCalib(t)
	act := calibActs(t, net, ds)
	gptq := lenetGPTQ(t, net)
	for _, tc := range []struct {
		name  string
		bits  []int
		act   map[string]quant.ActQuant
		codes quant.WeightCodes
	}{
		{"mixed W8-4-3-2-1 A8", mixedBits, act, nil},
		{"W8 float activations", []int{8, 8, 8, 8, 8}, nil, nil},
		{"float weights A8", []int{0, 32, 0, 0, 0}, act, nil},
		{"GPTQ mixed W8-4-3-2-1 A8", mixedBits, act, gptq},
		{"GPTQ W2A8", []int{2, 2, 2, 2, 2}, act, gptq},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := QDQ(net, Config{Bits: tc.bits, Act: tc.act, Weights: tc.codes})
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
			if len(fact) != len(tc.act) {
				t.Errorf("activation quantizers in the file: got %d; want %d", len(fact), len(tc.act))
			}
			fnet, err := network.Build(fm, network.Options{})
			if err != nil {
				t.Fatal(err)
			}
			got := forwardBatches(t, fnet, network.Hook(quant.ActHook(fact)), ds.X)
			want := simLogitsCodes(t, net, tc.codes, tc.bits, tc.act, ds.X)
			far := 0
			worst := 0.0
			for i := range ds.Len() {
				d := maxAbsDiff(rowOf(got, i), rowOf(want, i))
				worst = math.Max(worst, d)
				if d > qdqLogitAbs {
					far++
				}
			}
			if far > qdqFlipImages {
				t.Errorf("images with a logit off by more than %g: got %d; want <= %d (max diff %.3g)", qdqLogitAbs, far, qdqFlipImages, worst)
			}
			if a := agreement(argmax(got), argmax(want)); a != 100 {
				t.Errorf("top-1 agreement with the simulation: got %.2f%%; want 100%%", a)
			}
			t.Logf("max |logit diff| vs simulation: %.3g; images beyond %g: %d", worst, qdqLogitAbs, far)
		})
	}
}

func rowOf(y *tensor.Tensor, i int) *tensor.Tensor {
	k := y.Size() / y.Shape[0]
	return tensor.FromData(y.Data[i*k:(i+1)*k], k)
}

func TestQDQConfigErrors(t *testing.T) {
	net := loadLeNet(t)
	good := quant.ActQuant{Scale: 0.1, ZeroPoint: 10}
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"too few bits", Config{Bits: []int{8, 8, 8, 8}}},
		{"9 bits", Config{Bits: []int{8, 9, 8, 8, 8}}},
		{"negative bits", Config{Bits: []int{8, -1, 8, 8, 8}}},
		{"16 bits", Config{Bits: []int{8, 16, 8, 8, 8}}},
		{"unknown layer", Config{Bits: []int{8, 8, 8, 8, 8}, Act: map[string]quant.ActQuant{"/conv9/Conv": good}}},
		{"zero scale", Config{Bits: []int{8, 8, 8, 8, 8}, Act: map[string]quant.ActQuant{"/conv1/Conv": {Scale: 0}}}},
		{"NaN scale", Config{Bits: []int{8, 8, 8, 8, 8}, Act: map[string]quant.ActQuant{"/conv1/Conv": {Scale: math.NaN()}}}},
		{"scale underflows float32", Config{Bits: []int{8, 8, 8, 8, 8}, Act: map[string]quant.ActQuant{"/conv1/Conv": {Scale: 1e-50}}}},
		{"zero point 256", Config{Bits: []int{8, 8, 8, 8, 8}, Act: map[string]quant.ActQuant{"/fc1/Gemm": {Scale: 1, ZeroPoint: 256}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := QDQ(net, tc.cfg)
			if !errors.Is(err, ErrConfig) || m != nil {
				t.Errorf("got %v, model %v; want an error wrapping ErrConfig and no model", err, m != nil)
			}
		})
	}
}

// Raising old models to opset 13 (and 21) must keep their meaning: every
// ONNX conformance case (opset 6 and 12), exported with float weights and
// with 8-bit weights, is read back and run on the float engine, whose
// opset-6 and opset-13 semantics are both tested against ONNX's outputs.
// With float weights the outputs must equal ONNX's reference outputs to the
// conformance tolerance; with 8-bit weights the export must at least build.
const (
	conformanceRel = 1e-5 // the network package's conformance tolerance
	conformanceAbs = 1e-6
)

func TestQDQRaisesOpset(t *testing.T) {
	dirs, err := filepath.Glob("../network/testdata/onnx-conformance/test_*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no conformance cases: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m, err := onnx.Load(filepath.Join(dir, "model.onnx"))
			if err != nil {
				t.Fatal(err)
			}
			net, err := network.Build(m, network.Options{})
			if err != nil {
				t.Fatal(err)
			}
			xs := make([]*tensor.Tensor, len(net.InputNames))
			for i := range xs {
				if xs[i], _, err = onnx.ReadTensor(filepath.Join(dir, "test_data_set_0", fmt.Sprintf("input_%d.pb", i))); err != nil {
					t.Fatal(err)
				}
			}
			want, _, err := onnx.ReadTensor(filepath.Join(dir, "test_data_set_0", "output_0.pb"))
			if err != nil {
				t.Fatal(err)
			}
			for _, opset21 := range []bool{false, true} {
				float := make([]int, len(net.Layers()))
				e, err := QDQ(net, Config{Bits: float, Opset21: opset21})
				if err != nil {
					t.Fatalf("opset 21 %v: %v", opset21, err)
				}
				got := runExported(t, e, xs)
				if !tensor.SameShape(got.Shape, want.Shape) {
					t.Fatalf("output shape: got %v; want %v", got.Shape, want.Shape)
				}
				for i := range got.Data {
					if d := math.Abs(got.Data[i] - want.Data[i]); d > conformanceAbs+conformanceRel*math.Abs(want.Data[i]) {
						t.Fatalf("opset %d (from %d): output %d: got %v; want %v", e.Opset, m.Opset, i, got.Data[i], want.Data[i])
					}
				}
				eight := make([]int, len(net.Layers()))
				for i := range eight {
					eight[i] = 8
				}
				q, err := QDQ(net, Config{Bits: eight, Opset21: opset21})
				if err != nil {
					t.Fatal(err)
				}
				if _, _, err := dequantizeGraph(q); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// runExported writes m, reads it back and runs it on the float engine.
func runExported(t *testing.T, m *onnx.Model, xs []*tensor.Tensor) *tensor.Tensor {
	t.Helper()
	data, err := onnx.Marshal(m, onnx.SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	back, err := onnx.Parse(data, "")
	if err != nil {
		t.Fatal(err)
	}
	n, err := network.Build(back, network.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := n.ForwardAll(context.Background(), xs, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p.Output()
}

// Opset-6 nodes whose meaning changed are converted; those that cannot be
// carried over are refused.
func TestUpgradeRefusesSoftmaxOverFlattenedBlock(t *testing.T) {
	w := tensor.New(2, 3, 1, 1)
	for i := range w.Data {
		w.Data[i] = float64(i) - 2
	}
	m := &onnx.Model{Opset: 11, Graph: &onnx.Graph{
		Inputs:  []onnx.ValueInfo{{Name: "x", ElemType: onnx.Float, Shape: []onnx.Dim{{Value: -1}, {Value: 3}, {Value: 2}, {Value: 2}}}},
		Outputs: []onnx.ValueInfo{{Name: "y", ElemType: onnx.Float}},
		Nodes: []onnx.Node{
			{Name: "conv", OpType: "Conv", Inputs: []string{"x", "w"}, Outputs: []string{"c"}},
			{Name: "softmax", OpType: "Softmax", Inputs: []string{"c"}, Outputs: []string{"y"}},
		},
		Initializers: map[string]*tensor.Tensor{"w": w},
		InitTypes:    map[string]onnx.DataType{"w": onnx.Float},
		InitOrder:    []string{"w"},
	}}
	net, err := network.Build(m, network.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := QDQ(net, Config{Bits: []int{8}}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Softmax axis 1 of a rank-4 value at opset 11: got %v; want an error wrapping ErrUnsupported", err)
	}
	m.Graph.Nodes[1].Attrs = map[string]onnx.Attribute{"axis": {Name: "axis", Type: onnx.AttrInt, I: 3}}
	if net, err = network.Build(m, network.Options{}); err != nil {
		t.Fatal(err)
	}
	e, err := QDQ(net, Config{Bits: []int{8}})
	if err != nil {
		t.Fatalf("Softmax over the last axis: %v", err)
	}
	if e.Opset != MinOpset {
		t.Errorf("opset: got %d; want %d", e.Opset, MinOpset)
	}
}

// An opset-6 Add whose B is aligned at axis 1 of a rank-4 A (legacy
// broadcasting, which numpy rules would align with the last axis) gets an
// Unsqueeze; the raised model must compute what the original computes
// (the float engine implements both rules).
func TestUpgradeLegacyBroadcastAxis(t *testing.T) {
	w := tensor.New(2, 3, 1, 1)
	for i := range w.Data {
		w.Data[i] = float64(i) - 2.5
	}
	b := tensor.FromData([]float64{0.5, -1.25}, 2)
	m := &onnx.Model{Opset: 6, Graph: &onnx.Graph{
		Inputs:  []onnx.ValueInfo{{Name: "x", ElemType: onnx.Float, Shape: []onnx.Dim{{Value: -1}, {Value: 3}, {Value: 2}, {Value: 2}}}},
		Outputs: []onnx.ValueInfo{{Name: "y", ElemType: onnx.Float}},
		Nodes: []onnx.Node{
			{Name: "conv", OpType: "Conv", Inputs: []string{"x", "w"}, Outputs: []string{"c"}},
			{Name: "add", OpType: "Add", Inputs: []string{"c", "b"}, Outputs: []string{"y"}, Attrs: map[string]onnx.Attribute{
				"broadcast": {Name: "broadcast", Type: onnx.AttrInt, I: 1},
				"axis":      {Name: "axis", Type: onnx.AttrInt, I: 1},
			}},
		},
		Initializers: map[string]*tensor.Tensor{"w": w, "b": b},
		InitTypes:    map[string]onnx.DataType{"w": onnx.Float, "b": onnx.Float},
		InitOrder:    []string{"w", "b"},
	}}
	net, err := network.Build(m, network.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := QDQ(net, Config{Bits: []int{0}})
	if err != nil {
		t.Fatal(err)
	}
	unsq := 0
	for _, n := range e.Graph.Nodes {
		if n.OpType == "Unsqueeze" {
			unsq++
		}
		if n.OpType == "Add" && (n.Has("broadcast") || n.Has("axis")) {
			t.Errorf("Add keeps its legacy attributes at opset %d", e.Opset)
		}
	}
	if unsq != 1 {
		t.Errorf("Unsqueeze nodes: got %d; want 1", unsq)
	}
	x := tensor.New(2, 3, 2, 2)
	for i := range x.Data {
		x.Data[i] = math.Sin(float64(i))
	}
	p, err := net.Forward(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	want := p.Output()
	got := runExported(t, e, []*tensor.Tensor{x})
	if !tensor.SameShape(got.Shape, want.Shape) || maxAbsDiff(got, want) != 0 {
		t.Errorf("raised model: got shape %v, max diff %g; want shape %v, identical values", got.Shape, maxAbsDiff(got, want), want.Shape)
	}
}
