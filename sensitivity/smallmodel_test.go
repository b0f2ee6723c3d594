package sensitivity

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"mpsearch/dataset"
	"mpsearch/hessian"
	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/tensor"
)

// smallModel is a Conv-Tanh-Gemm network (not piecewise linear, so only
// Hutchinson applies) small enough to build its Hessian blocks from finite
// differences of gradients.
func smallModel(rng *rand.Rand) *onnx.Model {
	r := func(shape ...int) *tensor.Tensor {
		t := tensor.New(shape...)
		for i := range t.Data {
			t.Data[i] = 0.5 * rng.NormFloat64()
		}
		return t
	}
	attr := func(name string, v ...int64) onnx.Attribute {
		return onnx.Attribute{Name: name, Type: onnx.AttrInts, Ints: v}
	}
	return &onnx.Model{Opset: 13, Graph: &onnx.Graph{
		Inputs:  []onnx.ValueInfo{{Name: "x", ElemType: onnx.Float, Shape: []onnx.Dim{{Value: -1}, {Value: 1}, {Value: 4}, {Value: 4}}}},
		Outputs: []onnx.ValueInfo{{Name: "z", ElemType: onnx.Float}},
		Nodes: []onnx.Node{
			{Name: "conv", OpType: "Conv", Inputs: []string{"x", "w1", "b1"}, Outputs: []string{"c"}, Attrs: map[string]onnx.Attribute{"kernel_shape": attr("kernel_shape", 3, 3)}},
			{Name: "tanh", OpType: "Tanh", Inputs: []string{"c"}, Outputs: []string{"t"}},
			{Name: "flat", OpType: "Flatten", Inputs: []string{"t"}, Outputs: []string{"f"}},
			{Name: "fc", OpType: "Gemm", Inputs: []string{"f", "w2", "b2"}, Outputs: []string{"z"}, Attrs: map[string]onnx.Attribute{"transB": {Name: "transB", Type: onnx.AttrInt, I: 1}}},
		},
		Initializers: map[string]*tensor.Tensor{"w1": r(2, 1, 3, 3), "b1": r(2), "w2": r(3, 8), "b2": r(3)},
		InitTypes:    map[string]onnx.DataType{},
		InitOrder:    []string{"w1", "b1", "w2", "b2"},
	}}
}

// TestSmallModelHessian builds every layer's Hessian block by central
// finite differences of the gradient, checks the oracle's exact products
// against it (1e-6 relative, the bound) and Hutchinson's traces
// against its exact traces (3 standard errors).
func TestSmallModelHessian(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	net, err := network.Build(smallModel(rng), network.Options{})
	if err != nil {
		t.Fatal(err)
	}
	x := tensor.New(12, 1, 4, 4)
	for i := range x.Data {
		x.Data[i] = rng.NormFloat64()
	}
	y := make([]int, 12)
	for i := range y {
		y[i] = i % 3
	}
	ds := &dataset.Dataset{X: x, Y: y, Source: "synthetic"}
	ctx := context.Background()
	o, err := NewOracle(ctx, net, ds, OracleOptions{Batch: 5, MaxCacheBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	dim := o.Dim()
	params := net.Params()
	layers := net.Layers()
	// flat index -> (param, element)
	setW := func(i int, delta float64) {
		for li, b := range o.Blocks() {
			if i >= b.Offset && i < b.Offset+b.Len {
				params[layers[li].Weight].Value.Data[i-b.Offset] += delta
				return
			}
		}
	}
	const h = 1e-5
	exact := make([]float64, dim*dim) // H[i][j] from finite differences
	for j := 0; j < dim; j++ {
		setW(j, h)
		gp, err := o.Gradient(ctx)
		if err != nil {
			t.Fatal(err)
		}
		setW(j, -2*h)
		gm, err := o.Gradient(ctx)
		if err != nil {
			t.Fatal(err)
		}
		setW(j, h)
		for i := 0; i < dim; i++ {
			exact[i*dim+j] = (gp[i] - gm[i]) / (2 * h)
		}
	}
	// Exact products with random directions.
	v := make([]float64, 2*dim)
	for i := range v {
		v[i] = rng.NormFloat64()
	}
	hv := make([]float64, 2*dim)
	if err := o.HVP(ctx, v, hv, 2); err != nil {
		t.Fatal(err)
	}
	for k := 0; k < 2; k++ {
		for i := 0; i < dim; i++ {
			want := 0.0
			for j := 0; j < dim; j++ {
				want += exact[i*dim+j] * v[k*dim+j]
			}
			got := hv[k*dim+i]
			if math.Abs(got-want) > 1e-8+1e-6*math.Abs(want) {
				t.Errorf("Hv dir %d [%d]: got %.10g; want %.10g (finite-difference Hessian)", k, i, got, want)
			}
		}
	}
	// Hutchinson against the exact block traces.
	res, err := hessian.Hutchinson(ctx, o, hessian.Options{Tol: 0.01, MaxProbes: 4000, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	for bi, b := range o.Blocks() {
		tr := 0.0
		for i := b.Offset; i < b.Offset+b.Len; i++ {
			tr += exact[i*dim+i]
		}
		got := res.Blocks[bi]
		if math.Abs(got.Trace-tr) > 3*got.StdErr+1e-9 {
			t.Errorf("block %s: Hutchinson %.6f ± %.6f; exact trace %.6f", b.Name, got.Trace, got.StdErr, tr)
		}
	}
}
