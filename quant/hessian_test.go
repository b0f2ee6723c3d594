package quant

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"mpsearch/internal/fixture"
	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/tensor"
)

// hessTol is the relative difference allowed between H accumulated by
// dsyrk over chunks and the plain-loop reference: float64 sums of at most
// a few thousand products, summed in another order.
const hessTol = 1e-12

// testNet is a graph with every input layout LayerHessian reads: a
// grouped Conv with strides, dilations, uneven pads and a non-square
// kernel, a Gemm with transA (after a Transpose), a Gemm with its weight
// stored [in, out], and a MatMul on a 3-D input.
func testNet(t *testing.T) *network.Network {
	t.Helper()
	rng := rand.New(rand.NewPCG(31, 1))
	g := &onnx.Graph{Name: "t", Inputs: []onnx.ValueInfo{{Name: "x", ElemType: onnx.Float, Shape: []onnx.Dim{{Value: -1, Param: "N"}, {Value: 4}, {Value: 9}, {Value: 8}}}},
		Initializers: map[string]*tensor.Tensor{}, InitTypes: map[string]onnx.DataType{}}
	init := func(name string, shape ...int) string {
		v := tensor.New(shape...)
		for i := range v.Data {
			v.Data[i] = 0.3 * rng.NormFloat64()
		}
		g.Initializers[name], g.InitTypes[name] = v, onnx.Float
		g.InitOrder = append(g.InitOrder, name)
		return name
	}
	ints := func(name string, v ...int64) onnx.Attribute {
		return onnx.Attribute{Name: name, Type: onnx.AttrInts, Ints: v}
	}
	node := func(name, op string, in []string, attrs ...onnx.Attribute) string {
		m := map[string]onnx.Attribute{}
		for _, a := range attrs {
			m[a.Name] = a
		}
		g.Nodes = append(g.Nodes, onnx.Node{Name: name, OpType: op, Inputs: in, Outputs: []string{name + "_out"}, Attrs: m})
		return name + "_out"
	}
	// x [N,4,9,8] -> conv (group 2, W [6,2,3,2]) -> [N,6,5,9]
	c := node("conv", "Conv", []string{"x", init("wc", 6, 2, 3, 2), init("bc", 6)},
		onnx.Attribute{Name: "group", Type: onnx.AttrInt, I: 2}, ints("strides", 2, 1), ints("dilations", 1, 2), ints("pads", 1, 2, 0, 1))
	r := node("relu", "Relu", []string{c})
	f := node("flat", "Flatten", []string{r})
	tr := node("tr", "Transpose", []string{f}, ints("perm", 1, 0))
	g1 := node("fcA", "Gemm", []string{tr, init("w1", 16, 216), init("b1", 16)},
		onnx.Attribute{Name: "transA", Type: onnx.AttrInt, I: 1}, onnx.Attribute{Name: "transB", Type: onnx.AttrInt, I: 1})
	r1 := node("relu1", "Relu", []string{g1})
	g2 := node("fcB", "Gemm", []string{r1, init("w2", 16, 12), init("b2", 12)})
	g.Initializers["shape"], g.InitTypes["shape"] = tensor.FromData([]float64{-1, 3, 4}, 3), onnx.Int64
	g.InitOrder = append(g.InitOrder, "shape")
	rs := node("rs", "Reshape", []string{g2, "shape"})
	out := node("head", "MatMul", []string{rs, init("wh", 4, 5)})
	g.Outputs = []onnx.ValueInfo{{Name: out, ElemType: onnx.Float}}
	net, err := network.Build(&onnx.Model{IRVersion: 8, Opset: 13, Graph: g}, network.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return net
}

// captureInputs returns, per layer node, the batches of its first input.
func captureInputs(t *testing.T, net *network.Network, batches []*tensor.Tensor) map[string][]*tensor.Tensor {
	t.Helper()
	got := map[string][]*tensor.Tensor{}
	for _, x := range batches {
		if _, err := net.InferHook(context.Background(), x, func(node string, in int, v *tensor.Tensor) *tensor.Tensor {
			if in == 0 {
				got[node] = append(got[node], tensor.FromData(append([]float64(nil), v.Data...), v.Shape...))
			}
			return v
		}); err != nil {
			t.Fatal(err)
		}
	}
	return got
}

// refConvHessian builds group g's H of the test conv by plain loops over
// patches: kernel 3×2, strides (2,1), dilations (1,2), pads top 1, left 2,
// bottom 0, right 1, 2 channels per group.
func refConvHessian(xs []*tensor.Tensor, g int) []float64 {
	const cg, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr = 2, 3, 2, 2, 1, 1, 2, 1, 2, 0, 1
	cols := cg * kh * kw
	h := make([]float64, cols*cols)
	v := make([]float64, cols)
	for _, x := range xs {
		n, c, hh, ww := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
		oh := (hh+pt+pb-((kh-1)*dh+1))/sh + 1
		ow := (ww+pl+pr-((kw-1)*dw+1))/sw + 1
		for s := 0; s < n; s++ {
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					for ci := 0; ci < cg; ci++ {
						for i := 0; i < kh; i++ {
							for j := 0; j < kw; j++ {
								iy, ix := oy*sh-pt+i*dh, ox*sw-pl+j*dw
								val := 0.0
								if iy >= 0 && iy < hh && ix >= 0 && ix < ww {
									val = x.Data[((s*c+g*cg+ci)*hh+iy)*ww+ix]
								}
								v[(ci*kh+i)*kw+j] = val
							}
						}
					}
					for a := range v {
						for b := range v {
							h[a*cols+b] += v[a] * v[b]
						}
					}
				}
			}
		}
	}
	return h
}

// refRowsHessian is ∑ over rows r of the [rows, k] views of xs of r rᵀ
// (with transposed, the columns of [k, n] views).
func refRowsHessian(xs []*tensor.Tensor, k int, transposed bool) []float64 {
	h := make([]float64, k*k)
	for _, x := range xs {
		n := x.Size() / k
		at := func(s, a int) float64 {
			if transposed {
				return x.Data[a*n+s]
			}
			return x.Data[s*k+a]
		}
		for s := 0; s < n; s++ {
			for a := 0; a < k; a++ {
				for b := 0; b < k; b++ {
					h[a*k+b] += at(s, a) * at(s, b)
				}
			}
		}
	}
	return h
}

func maxRel(got, want []float64) float64 {
	scale := 0.0
	for _, v := range want {
		scale = math.Max(scale, math.Abs(v))
	}
	d := 0.0
	for i := range got {
		d = math.Max(d, math.Abs(got[i]-want[i]))
	}
	return d / scale
}

// TestLayerHessians: H of every layer of testNet, accumulated over two
// batches (the Conv a few samples at a time), equals the plain-loop sums
// over the layer's inputs, whether H is computed as one block or as blocks
// of 5 or 7 columns (uneven tails; every layout of the block products:
// Conv and transA Gemm multiply m mᵀ, the others mᵀ m) on one worker or
// several.
func TestLayerHessians(t *testing.T) {
	for _, c := range []struct{ block, procs int }{{256, 2}, {5, 1}, {5, 2}, {7, 3}} {
		t.Run(fmt.Sprintf("block%d-procs%d", c.block, c.procs), func(t *testing.T) {
			old := hessianBlock
			hessianBlock = c.block
			defer func() { hessianBlock = old }()
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(c.procs))
			layerHessians(t)
		})
	}
}

func layerHessians(t *testing.T) {
	net := testNet(t)
	rng := rand.New(rand.NewPCG(32, 1))
	batches := []*tensor.Tensor{tensor.New(5, 4, 9, 8), tensor.New(3, 4, 9, 8)}
	for _, b := range batches {
		for i := range b.Data {
			b.Data[i] = rng.NormFloat64()
		}
	}
	old := hessianColsLimit
	hessianColsLimit = 2 * 12 * 45 * 2 // two samples' columns per chunk
	defer func() { hessianColsLimit = old }()
	layers := []int{0, 1, 2, 3}
	hs, err := AccumulateHessians(context.Background(), net, batches, layers, nil)
	if err != nil {
		t.Fatal(err)
	}
	in := captureInputs(t, net, batches)
	want := map[string][][]float64{
		"conv": {refConvHessian(in["conv"], 0), refConvHessian(in["conv"], 1)},
		"fcA":  {refRowsHessian(in["fcA"], 216, true)},
		"fcB":  {refRowsHessian(in["fcB"], 16, false)},
		"head": {refRowsHessian(in["head"], 4, false)},
	}
	wantN := map[string]int64{"conv": 8 * 4 * 9, "fcA": 8, "fcB": 8, "head": 24}
	for _, h := range hs {
		w := want[h.Node]
		if h.Groups != len(w) || h.N != wantN[h.Node] {
			t.Errorf("%s: got %d groups, %d vectors; want %d, %d", h.Node, h.Groups, h.N, len(w), wantN[h.Node])
			continue
		}
		for g := range w {
			if d := maxRel(h.Hessian(g), w[g]); d > hessTol {
				t.Errorf("%s group %d: H differs from the plain sums by %.3g relative; want at most %g", h.Node, g, d, hessTol)
			}
		}
	}
	// A wrong input is refused in one line naming the layer.
	if err := hs[1].Add(tensor.New(3, 5)); err == nil {
		t.Error("Gemm input of 3 features: got no error")
	}
}

// TestGPTQWeightsGroupedConv: a grouped Conv is quantized group by group
// with each group's own H, and beats round-to-nearest on its output.
func TestGPTQWeightsGroupedConv(t *testing.T) {
	net := testNet(t)
	rng := rand.New(rand.NewPCG(33, 1))
	// Smooth inputs (random walks along the width): neighbouring taps
	// are correlated, as in images.
	x := tensor.New(16, 4, 9, 8)
	for i := range x.Data {
		x.Data[i] = rng.NormFloat64()
		if i%8 != 0 {
			x.Data[i] += x.Data[i-1]
		}
	}
	hs, err := AccumulateHessians(context.Background(), net, []*tensor.Tensor{x}, []int{0}, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := net.Layers()[0]
	w := net.Params()[l.Weight].Value
	for _, bits := range []int{2, 3, 4, 8} {
		fake, gq, err := GPTQWeights(w.Data, w.Shape, l.ChannelAxis, hs[0], GPTQOptions{Bits: bits}, false)
		if err != nil {
			t.Fatal(err)
		}
		m, _, cols := ToMatrix(w.Data, w.Shape, l.ChannelAxis)
		for g := 0; g < 2; g++ {
			part, err := GPTQ(m[g*3*cols:(g+1)*3*cols], 3, cols, hs[0].Hessian(g), GPTQOptions{Bits: bits})
			if err != nil {
				t.Fatal(err)
			}
			for i, q := range part.Q {
				if gq.Q[g*3*cols+i] != q {
					t.Fatalf("W%d conv group %d: code %d: got %d; want %d", bits, g, i, gq.Q[g*3*cols+i], q)
				}
			}
		}
		rtn, err := FakeQuantWeights(w.Data, w.Shape, l.ChannelAxis, bits)
		if err != nil {
			t.Fatal(err)
		}
		eG, eR := layerError(hs[0], w.Data, fake, w.Shape, l.ChannelAxis), layerError(hs[0], w.Data, rtn, w.Shape, l.ChannelAxis)
		if eG >= eR {
			t.Errorf("W%d grouped conv: GPTQ output error %g; want below round-to-nearest's %g", bits, eG, eR)
		}
	}
}

// layerError is ∑ over conv groups of tr(ΔW H ΔWᵀ) = ‖ΔW X‖² for the
// layer h was accumulated for.
func layerError(h *LayerHessian, w, wq []float64, shape []int, axis int) float64 {
	d := make([]float64, len(w))
	for i := range w {
		d[i] = w[i] - wq[i]
	}
	m, rows, cols := ToMatrix(d, shape, axis)
	rg := rows / h.Groups
	e := 0.0
	for g := 0; g < h.Groups; g++ {
		hg := h.Hessian(g)
		for r := g * rg; r < (g+1)*rg; r++ {
			row := m[r*cols : (r+1)*cols]
			for a := range row {
				for b := range row {
					e += row[a] * hg[a*cols+b] * row[b]
				}
			}
		}
	}
	return e
}

// TestFixtureLayers: on the fixture LeNet's 256 calibration images, each
// layer's H reproduces the network's own outputs (W H Wᵀ = (Y−b)(Y−b)ᵀ
// summed over positions, Y read after the layer), and GPTQ's output error
// is below round-to-nearest's at 2, 3, 4 and 8 bits in every layer, per
// channel and with groups of 32.
func TestFixtureLayers(t *testing.T) {
	net := fixture.LeNet(t)
	calib := fixture.LeNetCalib(t)
	layers := []int{0, 1, 2, 3, 4}
	hs, err := AccumulateHessians(context.Background(), net, []*tensor.Tensor{calib.X}, layers, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The layers' outputs: inputs of the node after each (Relu, Relu, Relu,
	// Relu) and the logits.
	next := map[string]string{"/conv1/Conv": "/Relu", "/conv2/Conv": "/Relu_1", "/fc1/Gemm": "/Relu_2", "/fc2/Gemm": "/Relu_3"}
	outs := map[string]*tensor.Tensor{}
	logits, err := net.InferHook(context.Background(), calib.X, func(node string, in int, v *tensor.Tensor) *tensor.Tensor {
		for l, n := range next {
			if n == node && in == 0 {
				outs[l] = tensor.FromData(append([]float64(nil), v.Data...), v.Shape...)
			}
		}
		return v
	})
	if err != nil {
		t.Fatal(err)
	}
	outs["/fc3/Gemm"] = logits
	for i, h := range hs {
		l := net.Layers()[i]
		w, b := net.Params()[l.Weight].Value, net.Params()[l.Bias].Value
		checkOutputGram(t, h, w, b.Data, outs[l.Node], l.ChannelAxis)
		for _, bits := range []int{2, 3, 4, 8} {
			for _, gs := range []int{0, 32} {
				m, rows, cols := ToMatrix(w.Data, w.Shape, l.ChannelAxis)
				rtn, err := QuantizeMatrix(m, rows, cols, bits, gs, false)
				if err != nil {
					t.Fatal(err)
				}
				fake, _, err := GPTQWeights(w.Data, w.Shape, l.ChannelAxis, h, GPTQOptions{Bits: bits, GroupSize: gs}, false)
				if err != nil {
					t.Fatal(err)
				}
				eR := layerError(h, w.Data, FromMatrix(rtn.Dequantize(), w.Shape, l.ChannelAxis), w.Shape, l.ChannelAxis)
				eG := layerError(h, w.Data, fake, w.Shape, l.ChannelAxis)
				t.Logf("%s W%d group %d: GPTQ/RTN output error %.3f", l.Node, bits, gs, eG/eR)
				if eG >= eR {
					t.Errorf("%s W%d group %d: GPTQ output error %g; want below round-to-nearest's %g", l.Node, bits, gs, eG, eR)
				}
			}
		}
	}
}

// checkOutputGram compares W H Wᵀ with ∑ (y−b)(y−b)ᵀ over the layer's
// output positions y (channels on axis 1 of out).
func checkOutputGram(t *testing.T, h *LayerHessian, w *tensor.Tensor, bias []float64, out *tensor.Tensor, axis int) {
	t.Helper()
	m, rows, cols := ToMatrix(w.Data, w.Shape, axis)
	hm := h.Hessian(0)
	n, inner := out.Shape[0], out.Size()/(out.Shape[0]*rows)
	wh := make([]float64, rows*cols) // W H
	for a := 0; a < rows; a++ {
		for i := 0; i < cols; i++ {
			for j := 0; j < cols; j++ {
				wh[a*cols+j] += m[a*cols+i] * hm[i*cols+j]
			}
		}
	}
	got := make([]float64, rows*rows)
	want := make([]float64, rows*rows)
	for a := 0; a < rows; a++ {
		for b := 0; b < rows; b++ {
			s := 0.0
			for j := 0; j < cols; j++ {
				s += wh[a*cols+j] * m[b*cols+j]
			}
			got[a*rows+b] = s
			s = 0
			for k := 0; k < n; k++ {
				for p := 0; p < inner; p++ {
					s += (out.Data[(k*rows+a)*inner+p] - bias[a]) * (out.Data[(k*rows+b)*inner+p] - bias[b])
				}
			}
			want[a*rows+b] = s
		}
	}
	if d := maxRel(got, want); d > outputGramTol {
		t.Errorf("%s: W H Wᵀ differs from the outputs' Gram matrix by %.3g relative; want at most %g", h.Node, d, outputGramTol)
	}
}

// outputGramTol: the fixture's weights are float32 values but the engine
// computes in float64, so W H Wᵀ and the outputs' Gram matrix differ only
// by float64 rounding of sums of up to ~10⁵ products.
const outputGramTol = 1e-10

// TestSumRowsBits checks sumRows and sumCols against the plain loops, bit for bit, on
// row counts around its groups of four and on values whose sums depend
// on their order.
func TestSumRowsBits(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, rows := range []int{0, 1, 3, 4, 5, 8, 11} {
		for _, c := range []int{0, 1, 7, 64} {
			m := make([]float64, rows*c)
			for i := range m {
				m[i] = rng.NormFloat64() * math.Exp(10*rng.NormFloat64())
			}
			got, want := make([]float64, rows), make([]float64, rows)
			for i := range got {
				got[i] = rng.NormFloat64()
				want[i] = got[i]
			}
			sumRows(got, m, c)
			for i := range want {
				for _, v := range m[i*c : (i+1)*c] {
					want[i] += v
				}
			}
			for i := range want {
				if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
					t.Errorf("sumRows %d×%d, row %d: got %v; want %v", rows, c, i, got[i], want[i])
				}
			}
			// The same matrix by columns, columns [j0, c) of its rows.
			for _, j0 := range []int{0, min(2, c)} {
				got, want := make([]float64, c-j0), make([]float64, c-j0)
				sumCols(got, m, rows, c, j0)
				for i := range rows {
					for j := range want {
						want[j] += m[i*c+j0+j]
					}
				}
				for j := range want {
					if math.Float64bits(got[j]) != math.Float64bits(want[j]) {
						t.Errorf("sumCols %d×%d from column %d, column %d: got %v; want %v", rows, c, j0, j0+j, got[j], want[j])
					}
				}
			}
		}
	}
}
