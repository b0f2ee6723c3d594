package intengine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"mpsearch/network"
	"mpsearch/tensor"
)

// TestLayoutsChosen checks which tensors the synthetic residual network
// and the LeNet store channels-last, so that the exactness tests on them
// (TestResidualMatchesSimulation, TestLeNet*) cover the NHWC paths: the
// grouped convolution, the 1x1 convolutions read in place, the pools, the
// Adds and the clamp; and that a tensor a view reads in ONNX order (the
// LeNet's last pool, flattened) stays NCHW.
func TestLayoutsChosen(t *testing.T) {
	for _, tc := range []struct {
		name string
		net  *network.Network
		nhwc map[string]bool // by value name; tensors not listed are not checked
	}{
		{"residual", residualNet(t), map[string]bool{"x": true, "r1_out": true, "c2_out": true, "r2_out": true, "ap_out": true, "clip_out": true,
			"mp_out": true, "c4_out": true, "add2_out": true, "ap2_out": true, "r3_out": true}},
		{"lenet", loadLeNet(t), map[string]bool{"input": true, "/Relu_output_0": true, "/pool/MaxPool_output_0": true, "/pool_1/MaxPool_output_0": false}},
	} {
		p, err := analyze(tc.net)
		if err != nil {
			t.Fatal(err)
		}
		seen := 0
		for b, buf := range p.bufs {
			want, ok := tc.nhwc[buf.name]
			if !ok {
				continue
			}
			seen++
			if p.nhwc[b] != want {
				t.Errorf("%s: tensor %q (shape %v): got NHWC %v; want %v", tc.name, buf.name, p.shapes[buf.name], p.nhwc[b], want)
			}
		}
		if seen != len(tc.nhwc) {
			var names []string
			for _, b := range p.bufs {
				names = append(names, b.name)
			}
			t.Errorf("%s: found %d of the %d named tensors among %v", tc.name, seen, len(tc.nhwc), names)
		}
	}
}

// TestRunIntoAllocatesNothing: after a first run, RunInto at one thread
// makes no allocation, on the LeNet, on the residual network (grouped
// and 1x1 convolutions, pools, Adds, a MatMul head) and on the MLP, whose
// layers run on the stream kernels at batch 1. No layer is binary:
// without VNNI, 1-bit weights run on the table kernel, which allocates its
// tables per call.
func TestRunIntoAllocatesNothing(t *testing.T) {
	ctx := context.Background()
	lenet := loadLeNet(t)
	res := residualNet(t)
	mlp := mlpNet(t)
	for _, tc := range []struct {
		name string
		m    *Model
		x    *tensor.Tensor
	}{
		{"lenet", lenetModel(t, lenet, []int{8, 4, 2, 4, 8}), loadCalib(t).X},
		{"residual", compileSynthetic(t, res, []int{8, 4, 2, 3, 4, 8}), randBatch(rand.New(rand.NewPCG(3, 4)), 5, res.SampleShape)},
		// batch 1 on the stream kernels, batch 5 on the tile GEMM
		{"mlp", compileSynthetic(t, mlp, []int{8, 4, 2, 3}), randBatch(rand.New(rand.NewPCG(5, 6)), 5, mlp.SampleShape)},
	} {
		for _, n := range []int{1, tc.x.Shape[0]} {
			x := &tensor.Tensor{Shape: append([]int{n}, tc.x.Shape[1:]...), Data: tc.x.Data[:n*tensor.Size(tc.x.Shape[1:])]}
			out := tensor.New(tc.m.OutputShape(n)...)
			if err := tc.m.RunInto(ctx, out, x); err != nil {
				t.Fatal(err)
			}
			allocs := testing.AllocsPerRun(20, func() {
				if err := tc.m.RunInto(ctx, out, x); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("%s, batch %d: got %g allocations per RunInto; want 0", tc.name, n, allocs)
			}
			want, err := tc.m.Run(ctx, x)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want.Data {
				if out.Data[i] != want.Data[i] {
					t.Fatalf("%s, batch %d: RunInto output %d = %v; Run gives %v", tc.name, n, i, out.Data[i], want.Data[i])
				}
			}
		}
	}
}

// depthwiseNet is a MobileNet-style block: a stem convolution, a strided
// depthwise 3x3 convolution with a fused Clip (ReLU6), a 1x1 projection,
// a residual Add with a second depthwise branch, global pooling and a Gemm.
func depthwiseNet(t testing.TB) *network.Network {
	b := newGraphBuilder(9, []int64{3, 10, 10})
	c1 := b.node("c1", "Conv", []string{"x", b.init("w1", 0.4, []int{16, 3, 3, 3}), b.init("b1", 0.1, []int{16})}, aInts("pads", 1, 1, 1, 1))
	r1 := b.node("r1", "Relu", []string{c1})
	dw := b.node("dw", "Conv", []string{r1, b.init("wd", 0.5, []int{16, 1, 3, 3}), b.init("bd", 0.1, []int{16})}, aInts("pads", 1, 1, 1, 1), aInts("strides", 2, 2), aInt("group", 16))
	cl := b.node("clip", "Clip", []string{dw, b.init("lo", 0, []int{}, 0), b.init("hi", 0, []int{}, 6)})
	pw := b.node("pw", "Conv", []string{cl, b.init("wp", 0.3, []int{12, 16, 1, 1}), b.init("bp", 0.1, []int{12})})
	dw2 := b.node("dw2", "Conv", []string{pw, b.init("wd2", 0.5, []int{12, 1, 5, 5}), b.init("bd2", 0.1, []int{12})}, aInts("pads", 2, 2, 2, 2), aInt("group", 12))
	a := b.node("add", "Add", []string{pw, dw2})
	gap := b.node("gap", "GlobalAveragePool", []string{a})
	fl := b.node("flat", "Flatten", []string{gap})
	out := b.node("fc", "Gemm", []string{fl, b.init("wf", 0.5, []int{5, 12}), b.init("bf", 0.1, []int{5})}, aInt("transB", 1))
	return b.build(t, out)
}

// TestDepthwiseMatchesSimulation runs depthwiseNet, whose depthwise
// convolutions take kernels.DepthwiseNHWC, against simulated quantization
// bit for bit.
func TestDepthwiseMatchesSimulation(t *testing.T) {
	net := depthwiseNet(t)
	x := randBatch(rand.New(rand.NewPCG(12, 4)), 9, net.SampleShape)
	for _, bits := range [][]int{{8, 8, 8, 8, 8}, {8, 4, 2, 3, 8}, {2, 8, 4, 1, 4}} {
		m := compileSynthetic(t, net, bits)
		dws := 0
		for _, st := range m.plan.steps {
			if l, ok := st.(*layerStep); ok && l.dw != nil {
				dws++
			}
		}
		if dws != 2 {
			t.Fatalf("bits %v: %d convolutions on the depthwise kernel; want 2 (dw, dw2)", bits, dws)
		}
		runBoth(t, m, x, fmt.Sprint("bits ", bits))
	}
}
