package network

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

// selectModel is a small classifier through the piecewise linear operators
// added with the modern-CNN set (HardSigmoid, ConvTranspose, ReduceMax,
// Resize, Max, Min); act replaces HardSigmoid (HardSwish makes the model
// smooth in conv1's weights).
func selectModel(rng *rand.Rand, act string) *onnx.Model {
	inits := map[string]*tensor.Tensor{}
	var order []string
	add := func(name string, t *tensor.Tensor) {
		inits[name] = t
		order = append(order, name)
	}
	w1 := randTensor(rng, 3, 2, 3, 3)
	for i := range w1.Data {
		w1.Data[i] *= 0.3 // conv1 outputs of order 1: on the ramps and past them
	}
	add("w1", w1)
	add("wt", randTensor(rng, 3, 2, 2, 2))
	add("lo", randTensor(rng, 2, 1, 1))
	add("hi", tensor.FromData([]float64{1.5}, 1))
	add("w3", randTensor(rng, 4, 16))
	add("scales", tensor.FromData([]float64{1, 1, 0.5, 2}, 4))
	add("axes", tensor.FromData([]float64{3}, 1))
	nodes := []onnx.Node{
		mkNode("conv1", "Conv", []string{"x", "w1"}, []string{"c1"}, aInts("pads", 1, 1, 1, 1)),
		mkNode("act", act, []string{"c1"}, []string{"h1"}),
		mkNode("up", "ConvTranspose", []string{"h1", "wt"}, []string{"u1"}, aInts("strides", 2, 2)),
		mkNode("rmax", "ReduceMax", []string{"u1", "axes"}, []string{"m1"}),
		mkNode("resize", "Resize", []string{"m1", "", "scales"}, []string{"r1"}),
		mkNode("max", "Max", []string{"r1", "lo"}, []string{"x1"}),
		mkNode("min", "Min", []string{"x1", "hi"}, []string{"x2"}),
		mkNode("flat", "Flatten", []string{"x2"}, []string{"f"}),
		mkNode("fc", "Gemm", []string{"f", "w3"}, []string{"z"}, aInt("transB", 1)),
	}
	return &onnx.Model{Opset: 18, Graph: &onnx.Graph{
		Name:         "select",
		Inputs:       []onnx.ValueInfo{{Name: "x", ElemType: onnx.Float, Shape: []onnx.Dim{{Value: -1, Param: "N"}, {Value: 2}, {Value: 4}, {Value: 4}}}},
		Outputs:      []onnx.ValueInfo{{Name: "z", ElemType: onnx.Float}},
		Nodes:        nodes,
		Initializers: inits,
		InitTypes:    map[string]onnx.DataType{"axes": onnx.Int64},
		InitOrder:    order,
	}}
}

// exactLayerTraces returns, per layer, the trace of the Hessian block of
// the mean cross-entropy, summed from Hessian-vector products along every
// coordinate direction of the layer's weight.
func exactLayerTraces(t *testing.T, net *Network, p *Pass, loss Loss) []float64 {
	t.Helper()
	var out []float64
	for _, l := range net.Layers() {
		w := net.Params()[l.Weight].Value
		k := w.Size()
		dirs := make([]*tensor.Tensor, len(net.Params()))
		dirs[l.Weight] = tensor.New(withK(k, w.Shape)...)
		for e := 0; e < k; e++ {
			dirs[l.Weight].Data[e*k+e] = 1
		}
		_, hv, err := p.HVP(loss, dirs, k)
		if err != nil {
			t.Fatal(err)
		}
		tr := 0.0
		for e := 0; e < k; e++ {
			tr += hv[l.Weight].Data[e*k+e]
		}
		out = append(out, tr)
	}
	return out
}

// ggnExactTol bounds the relative difference of the Gauss-Newton trace and
// the Hessian trace summed from HVPs when they are equal in exact
// arithmetic: rounding of sums of a few hundred terms.
const ggnExactTol = 1e-9

// TestPiecewiseLinearSelectOps checks that a network through HardSigmoid,
// ConvTranspose, ReduceMax, Resize, Max and Min qualifies for exact
// Gauss-Newton traces and that they equal the Hessian traces, and that
// HardSwish (smooth) disqualifies it, rightly: the traces then differ.
func TestPiecewiseLinearSelectOps(t *testing.T) {
	for _, c := range []struct {
		act   string
		exact bool
	}{{"HardSigmoid", true}, {"HardSwish", false}} {
		t.Run(c.act, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(24, 1))
			net, err := Build(selectModel(rng, c.act), Options{})
			if err != nil {
				t.Fatal(err)
			}
			ok, why := net.PiecewiseLinear()
			if ok != c.exact {
				t.Fatalf("PiecewiseLinear: got %v (%s); want %v", ok, why, c.exact)
			}
			if !ok && !strings.Contains(why, c.act) {
				t.Errorf("PiecewiseLinear reason %q does not name %s", why, c.act)
			}
			const n = 3
			x := randTensor(rng, n, 2, 4, 4)
			p, err := net.Forward(context.Background(), x)
			if err != nil {
				t.Fatal(err)
			}
			ggn, err := p.GGNTraces(context.Background(), n)
			if err != nil {
				t.Fatal(err)
			}
			exact := exactLayerTraces(t, net, p, CrossEntropy{Labels: []int{0, 2, 3}, Denom: n})
			for i, l := range net.Layers() {
				if !(exact[i] > 0) {
					t.Fatalf("%s: Hessian trace %g; want > 0 (a test point where the layer matters)", l.Node, exact[i])
				}
				rel := math.Abs(ggn[i]-exact[i]) / math.Abs(exact[i])
				t.Logf("%s: Gauss-Newton trace %.12g, Hessian trace %.12g", l.Node, ggn[i], exact[i])
				if c.exact && rel > ggnExactTol {
					t.Errorf("%s: Gauss-Newton trace %.12g; want the Hessian trace %.12g", l.Node, ggn[i], exact[i])
				}
				if !c.exact && l.Node == "conv1" && rel < 1e-3 {
					t.Errorf("%s: Gauss-Newton trace %.12g equals the Hessian trace %.12g though %s is curved", l.Node, ggn[i], exact[i], c.act)
				}
			}
		})
	}
}
