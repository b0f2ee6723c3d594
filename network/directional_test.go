package network

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"mpsearch/dataset"
	"mpsearch/onnx"
	"mpsearch/tensor"
)

// layerDirectionalDotsTangent is the earlier LayerDirectionalDots, kept as
// the reference: every layer runs its operator's Tangent along the k
// directions and dots the output tangent with the output gradient.
func (p *Pass) layerDirectionalDotsTangent(gout *tensor.Tensor, k int, dir func(li int) *tensor.Tensor) [][]float64 {
	net := p.net
	grad := p.backwardAll(gout, net.needLayerOutGrad())
	out := make([][]float64, len(net.layers))
	for li, l := range net.layers {
		d := dir(li)
		nd := net.nodes[l.node]
		ins := make([]*tensor.Tensor, len(nd.in))
		for j, v := range nd.in {
			if v >= 0 {
				ins[j] = p.vals[v]
			}
		}
		tin := make([]*tensor.Tensor, len(ins))
		tin[1] = d
		y := p.vals[nd.out]
		res := make([]float64, k*y.Shape[0])
		out[li] = res
		gy := grad[nd.out]
		if gy == nil {
			continue
		}
		t := nd.single.Tangent(ins, tin, y, p.states[l.node])
		n := y.Shape[0]
		per := y.Size() / n
		for j := 0; j < k; j++ {
			for s := 0; s < n; s++ {
				g, tt := gy.Data[s*per:(s+1)*per], t.Data[(j*n+s)*per:(j*n+s+1)*per]
				sum := 0.0
				for e, v := range g {
					sum += v * tt[e]
				}
				res[j*n+s] = sum
			}
		}
	}
	return out
}

// directionalRel bounds the relative difference between LayerDirectionalDots
// (per-sample weight gradients) and the operator-tangent reference in
// float64 (issue 9: the new algorithm equals the previous one within 1e-9
// relative): the same sums of products in another order.
const directionalRel = 1e-9

// layerCase is one layer under test: the node (input "x", weight "w",
// output "y"), its initializers and the input's shape without the batch.
type layerCase struct {
	name  string
	node  onnx.Node
	inits map[string]*tensor.Tensor
	in    []int
	// setup, if not nil, changes conv's memory policy for the case and
	// returns the function that restores it.
	setup func() func()
}

// dotsModel is x → the case's layer → Tanh → Flatten → Gemm (10 classes):
// the nonlinearity after the layer gives every sample its own output
// gradient, and the classifier is a second layer under test (Gemm,
// transB 0). out is the layer's output size per sample.
func dotsModel(rng *rand.Rand, c layerCase, out int) *onnx.Model {
	inits := map[string]*tensor.Tensor{"fcw": randTensor(rng, out, 10)}
	order := []string{}
	for name, v := range c.inits {
		inits[name] = v
		order = append(order, name)
	}
	order = append(order, "fcw")
	dims := []onnx.Dim{{Value: -1, Param: "N"}}
	for _, d := range c.in {
		dims = append(dims, onnx.Dim{Value: int64(d)})
	}
	return &onnx.Model{Opset: 13, Graph: &onnx.Graph{
		Name:    c.name,
		Inputs:  []onnx.ValueInfo{{Name: "x", ElemType: onnx.Float, Shape: dims}},
		Outputs: []onnx.ValueInfo{{Name: "z", ElemType: onnx.Float}},
		Nodes: []onnx.Node{c.node,
			mkNode("tanh", "Tanh", []string{"y"}, []string{"t"}),
			mkNode("flat", "Flatten", []string{"t"}, []string{"f"}, aInt("axis", 1)),
			mkNode("fc", "Gemm", []string{"f", "fcw"}, []string{"z"}),
		},
		Initializers: inits,
		InitTypes:    map[string]onnx.DataType{},
		InitOrder:    order,
	}}
}

func directionalCases(rng *rand.Rand) []layerCase {
	w := func(shape ...int) map[string]*tensor.Tensor {
		return map[string]*tensor.Tensor{"w": randTensor(rng, shape...)}
	}
	conv := func(attrs ...onnx.Attribute) onnx.Node {
		return mkNode("layer", "Conv", []string{"x", "w"}, []string{"y"}, attrs...)
	}
	noKeep := func() func() {
		old := colsKeepLimit
		colsKeepLimit = 0
		return func() { colsKeepLimit = old }
	}
	withBias := w(5, 3, 3, 3)
	withBias["b"] = randTensor(rng, 5)
	return []layerCase{
		{name: "conv chunked, kept columns", node: conv(aInts("pads", 1, 1, 1, 1)), inits: w(4, 2, 3, 3), in: []int{2, 6, 6}},
		{name: "conv chunked, recomputed columns", node: conv(aInts("pads", 1, 1, 1, 1)), inits: w(4, 2, 3, 3), in: []int{2, 6, 6}, setup: noKeep},
		{name: "conv per sample, bias", node: mkNode("layer", "Conv", []string{"x", "w", "b"}, []string{"y"}, aInts("pads", 1, 1, 1, 1)), inits: withBias, in: []int{3, 10, 10}},
		{name: "conv stride 2, asymmetric pads, dilation 2", node: conv(aInts("strides", 2, 2), aInts("pads", 1, 0, 2, 1), aInts("dilations", 2, 2)), inits: w(4, 3, 3, 3), in: []int{3, 12, 11}},
		{name: "conv strides 1x2 per sample", node: conv(aInts("strides", 1, 2), aInts("pads", 2, 2, 2, 2)), inits: w(3, 2, 5, 5), in: []int{2, 16, 16}},
		{name: "conv groups 2", node: conv(aInt("group", 2), aInts("pads", 1, 1, 1, 1)), inits: w(6, 2, 3, 3), in: []int{4, 7, 7}},
		{name: "conv groups 2 per sample", node: conv(aInt("group", 2)), inits: w(4, 3, 3, 3), in: []int{6, 12, 12}},
		{name: "depthwise stride 2", node: conv(aInt("group", 4), aInts("strides", 2, 2), aInts("pads", 1, 1, 1, 1)), inits: w(4, 1, 3, 3), in: []int{4, 9, 9}},
		{name: "depthwise multiplier 2, dilation 2", node: conv(aInt("group", 3), aInts("dilations", 2, 2), aInts("pads", 2, 2, 2, 2)), inits: w(6, 1, 3, 3), in: []int{3, 8, 8}},
		{name: "pointwise per sample", node: conv(), inits: w(5, 3, 1, 1), in: []int{3, 10, 10}},
		{name: "conv 1-D", node: conv(aInts("pads", 1, 1), aInts("strides", 2)), inits: w(4, 3, 3), in: []int{3, 20}},
		{name: "gemm transB 1, alpha", node: mkNode("layer", "Gemm", []string{"x", "w"}, []string{"y"}, aInt("transB", 1), aFloat("alpha", 0.75)), inits: w(5, 7), in: []int{7}},
		{name: "gemm transB 0", node: mkNode("layer", "Gemm", []string{"x", "w"}, []string{"y"}), inits: w(7, 5), in: []int{7}},
		{name: "matmul rows", node: mkNode("layer", "MatMul", []string{"x", "w"}, []string{"y"}), inits: w(6, 4), in: []int{6}},
		{name: "matmul sequences", node: mkNode("layer", "MatMul", []string{"x", "w"}, []string{"y"}), inits: w(6, 4), in: []int{5, 6}},
		{name: "matmul sequences rank 4", node: mkNode("layer", "MatMul", []string{"x", "w"}, []string{"y"}), inits: w(6, 4), in: []int{2, 3, 6}},
	}
}

// TestLayerDirectionalDotsMatchTangents checks the per-sample weight-gradient
// dots against the operator-tangent reference on every layer form of
// weightGradDots (convolutions per sample and chunked, with kept and
// recomputed columns, strides, pads, dilations, groups, depthwise, 1-D;
// Gemm with transB 0 and 1; MatMul on rows and on sequences), on random
// data, and on the fixture LeNet.
func TestLayerDirectionalDotsMatchTangents(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 5))
	const n, k = 5, 3
	for _, c := range directionalCases(rng) {
		t.Run(c.name, func(t *testing.T) {
			if c.setup != nil {
				defer c.setup()()
			}
			// The layer's output size: build it alone first.
			probe := dotsModel(rng, c, 1)
			probe.Graph.Nodes = probe.Graph.Nodes[:1]
			probe.Graph.Outputs[0].Name = "y"
			pn, err := Build(probe, Options{})
			if err != nil {
				t.Fatal(err)
			}
			out := tensor.Size(pn.Layers()[0].OutShape[1:])
			net, err := Build(dotsModel(rng, c, out), Options{})
			if err != nil {
				t.Fatal(err)
			}
			x := randTensor(rng, append([]int{n}, c.in...)...)
			checkDirectionalDots(t, net, x, k, 2, rng)
		})
	}
	t.Run("lenet", func(t *testing.T) {
		net := loadLeNet(t)
		ds, err := dataset.Load(fixtureDir+"calib.npy", dataset.Options{})
		if err != nil {
			t.Fatal(err)
		}
		checkDirectionalDots(t, net, tensor.FromData(ds.X.Data[:24*784], 24, 1, 28, 28), 4, 5, rng)
	})
}

// checkDirectionalDots compares LayerDirectionalDots with the reference on
// net's pass over x (random output gradient and directions) and checks
// that it used the per-sample weight gradients on all layers.
func checkDirectionalDots(t *testing.T, net *Network, x *tensor.Tensor, k, layers int, rng *rand.Rand) {
	t.Helper()
	if got := len(net.Layers()); got != layers {
		t.Fatalf("layers: got %d; want %d", got, layers)
	}
	p, err := net.Forward(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	dirs := make([]*tensor.Tensor, len(net.Layers()))
	for li, l := range net.Layers() {
		dirs[li] = randTensor(rng, append([]int{k}, net.Params()[l.Weight].Value.Shape...)...)
		nd := net.nodes[l.node]
		gy := tensor.New(p.vals[nd.out].Shape...)
		if !p.weightGradDots(nd, l.node, gy, dirs[li], k, make([]float64, k*x.Shape[0])) {
			t.Errorf("layer %s: operator tangents; want per-sample weight gradients", l.Node)
		}
	}
	gout := randTensor(rng, p.Output().Shape...)
	got, err := p.LayerDirectionalDots(context.Background(), gout, k, func(li int) (*tensor.Tensor, error) { return dirs[li], nil })
	if err != nil {
		t.Fatal(err)
	}
	want := p.layerDirectionalDotsTangent(gout, k, func(li int) *tensor.Tensor { return dirs[li] })
	for li, l := range net.Layers() {
		if len(got[li]) != len(want[li]) {
			t.Fatalf("layer %s: got %d values; want %d", l.Node, len(got[li]), len(want[li]))
		}
		nonzero := false
		for i, w := range want[li] {
			g := got[li][i]
			nonzero = nonzero || w != 0
			if rel := math.Abs(g-w) / math.Abs(w); !(rel <= directionalRel) && g != w {
				t.Errorf("layer %s, direction %d, sample %d: got %.15g; want %.15g (relative difference %.3g > %g)", l.Node, i/x.Shape[0], i%x.Shape[0], g, w, rel, directionalRel)
			}
		}
		if !nonzero {
			t.Errorf("layer %s: every reference dot is 0; want a case that can fail", l.Node)
		}
	}
}

// TestLayerDirectionalDotsF32 checks the F32 engine's dots (float32
// products for the per-sample gradients) against the float64 reference on
// the fixture LeNet, within the engine's F32 tolerance of 1e-4 relative to
// each layer's largest dot (network/doc.go).
func TestLayerDirectionalDotsF32(t *testing.T) {
	m, err := onnx.Load(fixtureDir + "lenet.onnx")
	if err != nil {
		t.Fatal(err)
	}
	n64, err := Build(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	n32, err := Build(m, Options{Precision: F32})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := dataset.Load(fixtureDir+"calib.npy", dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	x := tensor.FromData(ds.X.Data[:16*784], 16, 1, 28, 28)
	rng := rand.New(rand.NewPCG(4, 4))
	const k = 3
	dirs := make([]*tensor.Tensor, len(n64.Layers()))
	for li, l := range n64.Layers() {
		dirs[li] = randTensor(rng, append([]int{k}, n64.Params()[l.Weight].Value.Shape...)...)
	}
	gout := randTensor(rng, 16, 10)
	run := func(net *Network) [][]float64 {
		p, err := net.Forward(context.Background(), x)
		if err != nil {
			t.Fatal(err)
		}
		d, err := p.LayerDirectionalDots(context.Background(), gout, k, func(li int) (*tensor.Tensor, error) { return dirs[li], nil })
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	got, want := run(n32), run(n64)
	for li, l := range n64.Layers() {
		scale := 0.0
		for _, v := range want[li] {
			scale = math.Max(scale, math.Abs(v))
		}
		for i, w := range want[li] {
			if d := math.Abs(got[li][i] - w); d > fixtureLogitsAbs*scale {
				t.Errorf("layer %s, value %d: got %.9g; want %.9g (float64; difference %.3g > %g of the largest %.3g)", l.Node, i, got[li][i], w, d, fixtureLogitsAbs, scale)
			}
		}
	}
}

// TestLayerDirectionalDotsCancelled: a cancelled context stops the dots
// with the context's error.
func TestLayerDirectionalDotsCancelled(t *testing.T) {
	net := loadLeNet(t)
	rng := rand.New(rand.NewPCG(8, 1))
	p, err := net.Forward(context.Background(), randTensor(rng, 2, 1, 28, 28))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = p.LayerDirectionalDots(ctx, randTensor(rng, 2, 10), 2, func(li int) (*tensor.Tensor, error) {
		return nil, fmt.Errorf("called for layer %d after cancel", li)
	})
	if err != context.Canceled {
		t.Errorf("got %v; want %v", err, context.Canceled)
	}
}
