package network

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"mpsearch/dataset"
	"mpsearch/onnx"
	"mpsearch/tensor"
)

// ggnAlgoRel bounds the relative difference between GGNTraces and the
// reference per-sample algorithm (issue 9, must-show 3: 1e-9 in float64).
const ggnAlgoRel = 1e-9

// seqModel has a pointwise Conv (columns are the input itself) on a large
// enough image that products run per sample, and a MatMul on sequences
// (per-sample gradient A_nᵀΔ_n), the layer forms LeNet and mixedModel lack.
func seqModel(rng *rand.Rand) *onnx.Model {
	inits := map[string]*tensor.Tensor{
		"w1":    randTensor(rng, 4, 3, 1, 1),
		"b1":    randTensor(rng, 4),
		"shape": tensor.FromData([]float64{0, 40, 10}, 3),
		"w2":    randTensor(rng, 10, 6),
		"w3":    randTensor(rng, 6, 5),
	}
	nodes := []onnx.Node{
		mkNode("pw", "Conv", []string{"x", "w1", "b1"}, []string{"c1"}),
		mkNode("relu", "Relu", []string{"c1"}, []string{"r1"}),
		mkNode("reshape", "Reshape", []string{"r1", "shape"}, []string{"rs"}),
		mkNode("seq", "MatMul", []string{"rs", "w2"}, []string{"m1"}),
		mkNode("mean", "ReduceMean", []string{"m1"}, []string{"mm"}, aInts("axes", 1), aInt("keepdims", 0)),
		mkNode("fc", "MatMul", []string{"mm", "w3"}, []string{"z"}),
	}
	return &onnx.Model{Opset: 13, Graph: &onnx.Graph{
		Name:         "seq",
		Inputs:       []onnx.ValueInfo{{Name: "x", ElemType: onnx.Float, Shape: []onnx.Dim{{Value: -1, Param: "N"}, {Value: 3}, {Value: 10}, {Value: 10}}}},
		Outputs:      []onnx.ValueInfo{{Name: "z", ElemType: onnx.Float}},
		Nodes:        nodes,
		Initializers: inits,
		InitTypes:    map[string]onnx.DataType{},
		InitOrder:    []string{"w1", "b1", "shape", "w2", "w3"},
	}}
}

// TestGGNTracesMatchPerSample checks the batched per-sample-norm algorithm
// against the reference that re-runs every layer on each sample, on the
// fixture LeNet (per-sample and chunked convolutions, Gemm), the mixed
// model (grouped convolution, Gemm with transB, MatMul on rows) and
// seqModel (pointwise convolution, MatMul on sequences).
func TestGGNTracesMatchPerSample(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 3))
	lenet := loadLeNet(t)
	ds, err := dataset.Load(fixtureDir+"calib.npy", dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	build := func(m *onnx.Model) *Network {
		net, err := Build(m, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return net
	}
	cases := []struct {
		name   string
		net    *Network
		x      *tensor.Tensor
		layers int
	}{
		{"lenet", lenet, tensor.FromData(ds.X.Data[:48*784], 48, 1, 28, 28), 5},
		{"mixed", build(mixedModel(rng)), randTensor(rng, 7, 2, 6, 6), 4},
		{"seq", build(seqModel(rng)), randTensor(rng, 5, 3, 10, 10), 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := len(c.net.Layers()); got != c.layers {
				t.Fatalf("layers: got %d; want %d", got, c.layers)
			}
			p, err := c.net.Forward(context.Background(), c.x)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range c.net.Layers() {
				if sn := p.newSampleNorms(c.net.nodes[l.node], l.node); !sn.batched() {
					t.Errorf("layer %s: per-sample fallback; want batched norms", l.Node)
				}
			}
			got, err := p.GGNTraces(context.Background(), 3)
			if err != nil {
				t.Fatal(err)
			}
			want, err := p.ggnTracesPerSample(3)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if want[i] <= 0 {
					t.Errorf("layer %s: reference trace %g; want > 0", c.net.Layers()[i].Node, want[i])
				}
				if rel := math.Abs(got[i]-want[i]) / math.Abs(want[i]); !(rel <= ggnAlgoRel) {
					t.Errorf("layer %s: got %.15g; want %.15g (relative difference %.3g > %g)", c.net.Layers()[i].Node, got[i], want[i], rel, ggnAlgoRel)
				}
			}
		})
	}
}

func TestGGNTracesCancelled(t *testing.T) {
	net := loadLeNet(t)
	p, err := net.Forward(context.Background(), randTensor(rand.New(rand.NewPCG(1, 2)), 4, 1, 28, 28))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.GGNTraces(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: got error %v; want one wrapping context.Canceled", err)
	}
}
