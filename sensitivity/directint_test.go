package sensitivity

import (
	"bytes"
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"mpsearch/dataset"
	"mpsearch/intengine"
	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/tensor"
)

// residualModel is a small residual CNN: Conv+ReLU, a second Conv added
// back to it (a residual Add with a fused ReLU), a Tanh (a float fallback
// step of the integer engine), global average pooling and a Gemm head.
func residualModel(rng *rand.Rand) *onnx.Model {
	r := func(scale float64, shape ...int) *tensor.Tensor {
		t := tensor.New(shape...)
		for i := range t.Data {
			t.Data[i] = scale * rng.NormFloat64()
		}
		return t
	}
	ints := func(name string, v ...int64) onnx.Attribute {
		return onnx.Attribute{Name: name, Type: onnx.AttrInts, Ints: v}
	}
	pads := map[string]onnx.Attribute{"pads": ints("pads", 1, 1, 1, 1)}
	return &onnx.Model{Opset: 13, Graph: &onnx.Graph{
		Inputs:  []onnx.ValueInfo{{Name: "x", ElemType: onnx.Float, Shape: []onnx.Dim{{Value: -1}, {Value: 2}, {Value: 6}, {Value: 6}}}},
		Outputs: []onnx.ValueInfo{{Name: "z", ElemType: onnx.Float}},
		Nodes: []onnx.Node{
			{Name: "c1", OpType: "Conv", Inputs: []string{"x", "w1", "b1"}, Outputs: []string{"c1"}, Attrs: pads},
			{Name: "r1", OpType: "Relu", Inputs: []string{"c1"}, Outputs: []string{"r1"}},
			{Name: "c2", OpType: "Conv", Inputs: []string{"r1", "w2", "b2"}, Outputs: []string{"c2"}, Attrs: pads},
			{Name: "add", OpType: "Add", Inputs: []string{"r1", "c2"}, Outputs: []string{"a"}},
			{Name: "r2", OpType: "Relu", Inputs: []string{"a"}, Outputs: []string{"r2"}},
			{Name: "c3", OpType: "Conv", Inputs: []string{"r2", "w3", "b3"}, Outputs: []string{"c3"}},
			{Name: "tanh", OpType: "Tanh", Inputs: []string{"c3"}, Outputs: []string{"t"}},
			{Name: "gap", OpType: "GlobalAveragePool", Inputs: []string{"t"}, Outputs: []string{"g"}},
			{Name: "flat", OpType: "Flatten", Inputs: []string{"g"}, Outputs: []string{"f"}},
			{Name: "fc", OpType: "Gemm", Inputs: []string{"f", "w4", "b4"}, Outputs: []string{"z"}, Attrs: map[string]onnx.Attribute{"transB": {Name: "transB", Type: onnx.AttrInt, I: 1}}},
		},
		Initializers: map[string]*tensor.Tensor{
			"w1": r(0.4, 6, 2, 3, 3), "b1": r(0.1, 6), "w2": r(0.3, 6, 6, 3, 3), "b2": r(0.1, 6),
			"w3": r(0.5, 8, 6, 1, 1), "b3": r(0.1, 8), "w4": r(0.8, 5, 8), "b4": r(0.1, 5),
		},
		InitTypes: map[string]onnx.DataType{},
		InitOrder: []string{"w1", "b1", "w2", "b2", "w3", "b3", "w4", "b4"},
	}}
}

func residualData(t testing.TB, n int) (*network.Network, *dataset.Dataset) {
	t.Helper()
	rng := rand.New(rand.NewPCG(31, 7))
	net, err := network.Build(residualModel(rng), network.Options{})
	if err != nil {
		t.Fatal(err)
	}
	x := tensor.New(n, 2, 6, 6)
	for i := range x.Data {
		x.Data[i] = rng.NormFloat64()
	}
	return net, &dataset.Dataset{X: x, Source: "synthetic residual"}
}

// simulatedDirect is the direct metric computed independently of the
// prefix reuse: for every cell the model compiled with that configuration
// runs as simulated quantization in float64 (intengine.Reference) on every
// mini-batch, and the losses are summed in batch order as directIntMetric
// sums them.
func simulatedDirect(t *testing.T, net *network.Network, o *Oracle, bits []int) [][]float64 {
	t.Helper()
	ctx := context.Background()
	ranges, err := intengine.ObserveRanges(ctx, net, o.batches)
	if err != nil {
		t.Fatal(err)
	}
	nl := len(net.Layers())
	lossOf := func(cfgBits []int) float64 {
		m, err := intengine.Compile(net, intengine.Config{Bits: cfgBits, Ranges: ranges})
		if err != nil {
			t.Fatal(err)
		}
		ref, err := intengine.NewReference(m)
		if err != nil {
			t.Fatal(err)
		}
		s := 0.0
		for bi, x := range o.batches {
			r, err := ref.RunInt(ctx, x)
			if err != nil {
				t.Fatal(err)
			}
			l, _, err := o.losses[bi].Eval(r.Output)
			if err != nil {
				t.Fatal(err)
			}
			s += l
		}
		return s
	}
	all8 := slices.Repeat([]int{8}, nl)
	base := lossOf(all8)
	out := make([][]float64, nl)
	for li := range out {
		for _, b := range bits {
			cb := slices.Clone(all8)
			cb[li] = b
			out[li] = append(out[li], lossOf(cb)-base)
		}
	}
	return out
}

// The direct metric on the integer engine (prefix reuse, chunks, workers)
// equals the simulated quantization of every cell's configuration bit for
// bit, and the table is byte-identical for any thread count (must-show 2
// of issue 9). LeNet uses the labels (cross-entropy), the residual model
// the KL divergence from the float model.
func TestDirectIntMatchesSimulation(t *testing.T) {
	lenet, calib := loadFixture(t)
	resNet, resData := residualData(t, 45)
	bits := []int{1, 2, 4, 8}
	for _, tc := range []struct {
		name  string
		net   *network.Network
		ds    *dataset.Dataset
		batch int
	}{
		{"lenet", lenet, calib.Subset(0, 100), 40}, // batches of 40, 40, 20: chunks of 8 and a short one
		{"residual", resNet, resData, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			var tables [][]byte
			var got *Table
			for _, threads := range []int{1, 2, 3} {
				cfg := Config{Bits: bits, Metrics: []string{MetricDirect}, Trace: TraceNone, Batch: tc.batch, Threads: threads}
				tb, err := Compute(ctx, tc.net, tc.ds, cfg)
				if err != nil {
					t.Fatal(err)
				}
				b, err := tb.Marshal()
				if err != nil {
					t.Fatal(err)
				}
				tables = append(tables, b)
				got = tb
			}
			for i, th := range []int{2, 3} {
				if !bytes.Equal(tables[i+1], tables[0]) {
					t.Errorf("%d threads: table differs from 1 thread's:\n got %s\nwant %s", th, tables[i+1], tables[0])
				}
			}
			o, err := NewOracle(ctx, tc.net, tc.ds, OracleOptions{Batch: tc.batch})
			if err != nil {
				t.Fatal(err)
			}
			want := simulatedDirect(t, tc.net, o, bits)
			nonzero := 0
			for li, l := range got.Layers {
				for j, b := range bits {
					g := l.Metrics[MetricDirect][b]
					if g != want[li][j] {
						t.Errorf("%s at %d bits: got %.17g; want %.17g (simulated quantization)", l.Name, b, g, want[li][j])
					}
					if b == 8 && g != 0 {
						t.Errorf("%s at 8 bits: got %g; want 0 (the baseline configuration)", l.Name, g)
					}
					if g != 0 {
						nonzero++
					}
				}
			}
			if nonzero < len(got.Layers) {
				t.Errorf("only %d non-zero cells; want at least one per layer (the 1-bit ones)", nonzero)
			}
		})
	}
}

// A model the integer engine refuses (here: a bias beyond int32 at the
// input's scale, as GoogLeNet's last layer with random weights) is
// measured on the float engine, with a note in the progress, and gives
// the float engine's table.
func TestDirectFallsBackToFloat(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	m := smallModel(rng)
	m.Graph.Initializers["b2"].Data[0] = 1e6
	net, err := network.Build(m, network.Options{})
	if err != nil {
		t.Fatal(err)
	}
	x := tensor.New(10, 1, 4, 4)
	for i := range x.Data {
		x.Data[i] = 1e-9 * rng.NormFloat64()
	}
	ds := &dataset.Dataset{X: x, Source: "tiny inputs"}
	var notes []string
	cfg := Config{Bits: []int{2, 8}, Metrics: []string{MetricDirect}, Trace: TraceNone}
	cfg.Progress = func(p Progress) {
		if p.Stage == "direct" {
			notes = append(notes, p.Detail)
		}
	}
	got, err := Compute(context.Background(), net, ds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) == 0 || !strings.Contains(notes[0], "integer engine cannot run this model") || !strings.Contains(notes[0], "beyond int32") {
		t.Errorf("first progress note of the direct stage: got %q; want the integer engine's refusal", notes[:min(1, len(notes))])
	}
	cfg.Progress, cfg.DirectEngine = nil, EngineFloat
	want, err := Compute(context.Background(), net, ds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range got.Layers {
		for _, b := range cfg.Bits {
			if g, w := l.Metrics[MetricDirect][b], want.Layers[i].Metrics[MetricDirect][b]; g != w {
				t.Errorf("%s at %d bits: got %g; want %g (float engine)", l.Name, b, g, w)
			}
		}
	}
}
