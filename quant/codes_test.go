package quant

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"mpsearch/internal/fixture"
	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/tensor"
)

var codesWidths = []int{1, 2, 3, 4, 8}

// sameCodes fails unless a and b hold the same codes and scales.
func sameCodes(t *testing.T, what string, got, want *WeightQuant) {
	t.Helper()
	if got.Bits != want.Bits || got.Axis != want.Axis || !slices.Equal(got.Q, want.Q) || !slices.Equal(got.Scales, want.Scales) {
		t.Fatalf("%s: got %d-bit codes on axis %d (%d codes, %d scales); want %d-bit on axis %d (%d, %d), or values differ",
			what, got.Bits, got.Axis, len(got.Q), len(got.Scales), want.Bits, want.Axis, len(want.Q), len(want.Scales))
	}
}

// TestRoundToNearestCodes: the round-to-nearest source is QuantizeWeights
// of the weights the network held when it was made, at every width, even
// after a WeightSetter has overwritten the network's weights; a
// WeightSetter reading it sets exactly what the plain WeightSetter sets.
func TestRoundToNearestCodes(t *testing.T) {
	net := fixture.LeNet(t)
	src := NewRoundToNearest(net)
	if src.Method() != MethodRTN {
		t.Errorf("method: got %q; want %q", src.Method(), MethodRTN)
	}
	plain := NewWeightSetter(net)
	defer plain.Restore()
	if err := plain.SetAll([]int{2, 2, 2, 2, 2}); err != nil {
		t.Fatal(err)
	}
	orig := map[int][]float64{}
	for _, l := range net.Layers() {
		orig[l.Weight] = net.Model.Graph.Initializers[net.Params()[l.Weight].Name].Data
	}
	for li, l := range net.Layers() {
		w := net.Params()[l.Weight].Value
		for _, b := range codesWidths {
			want, err := QuantizeWeights(orig[l.Weight], w.Shape, l.ChannelAxis, b)
			if err != nil {
				t.Fatal(err)
			}
			got, err := src.Codes(li, b)
			if err != nil {
				t.Fatal(err)
			}
			sameCodes(t, l.Node, got, want)
		}
	}
	plain.Restore()
	viaCodes := NewWeightSetterCodes(net, src)
	for _, bits := range [][]int{{8, 4, 3, 2, 1}, {2, 3, 4, 8, 8}} {
		if err := plain.SetAll(bits); err != nil {
			t.Fatal(err)
		}
		want := map[int][]float64{}
		for _, l := range net.Layers() {
			want[l.Weight] = slices.Clone(net.Params()[l.Weight].Value.Data)
		}
		plain.Restore()
		if err := viaCodes.SetAll(bits); err != nil {
			t.Fatal(err)
		}
		for _, l := range net.Layers() {
			if !slices.Equal(net.Params()[l.Weight].Value.Data, want[l.Weight]) {
				t.Errorf("bits %v: %s: the WeightSetter reading the source set other values than the plain one", bits, l.Node)
			}
		}
		viaCodes.Restore()
	}
	if _, err := src.Codes(5, 4); !errors.Is(err, ErrCodes) {
		t.Errorf("layer 5 of 5: got %v; want ErrCodes", err)
	}
}

// TestGPTQCodesMatchGPTQWeights: every code of the GPTQ source on the
// fixture LeNet (H from the 256 calibration images, one pass) equals
// GPTQWeights with its own Cholesky factor per width (the per-channel GPTQ
// of package quant's tests), in the ONNX weight layout; the result does not
// depend on the thread count or on how many Hessians are held at once; and
// its output error ‖ΔW X‖² is below round-to-nearest's at 2 bits and more.
func TestGPTQCodesMatchGPTQWeights(t *testing.T) {
	net := fixture.LeNet(t)
	calib := fixture.LeNetCalib(t)
	ctx := context.Background()
	batches := []*tensor.Tensor{calib.X.Clone()}
	// Progress steps: 5 weights and, per Hessian pass, one batch: one pass
	// when every Hessian fits, five when HessianBytes holds one at a time.
	var progress [2][2]int // [run][done, total]
	src, err := NewGPTQCodes(ctx, net, batches, CodesOptions{Widths: codesWidths, Threads: 1, Progress: func(done, total int, _ string) { progress[0] = [2]int{done, total} }})
	if err != nil {
		t.Fatal(err)
	}
	if src.Method() != MethodGPTQ {
		t.Errorf("method %q; want %q", src.Method(), MethodGPTQ)
	}
	other, err := NewGPTQCodes(ctx, net, batches, CodesOptions{Widths: codesWidths, Threads: 2, HessianBytes: 1, Progress: func(done, total int, _ string) { progress[1] = [2]int{done, total} }})
	if err != nil {
		t.Fatal(err)
	}
	if want := [2][2]int{{6, 6}, {10, 10}}; progress != want {
		t.Errorf("progress (done, total) of the two runs: got %v; want %v", progress, want)
	}
	hs, err := AccumulateHessians(ctx, net, batches, []int{0, 1, 2, 3, 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for li, l := range net.Layers() {
		w := net.Params()[l.Weight].Value
		for _, b := range codesWidths {
			got, err := src.Codes(li, b)
			if err != nil {
				t.Fatal(err)
			}
			fake, gq, err := GPTQWeights(w.Data, w.Shape, l.ChannelAxis, hs[li], GPTQOptions{Bits: b}, false)
			if err != nil {
				t.Fatal(err)
			}
			want, err := gq.WeightQuant(w.Shape, l.ChannelAxis)
			if err != nil {
				t.Fatal(err)
			}
			sameCodes(t, l.Node, got, want)
			o, err := other.Codes(li, b)
			if err != nil {
				t.Fatal(err)
			}
			sameCodes(t, l.Node+" (2 threads, one Hessian per pass)", o, got)
			deq, err := Fake(src, net, li, b)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(deq, fake) {
				t.Fatalf("%s W%d: Fake differs from GPTQWeights's dequantized weights", l.Node, b)
			}
			if b < 2 {
				continue
			}
			rtn, err := FakeQuantWeights(w.Data, w.Shape, l.ChannelAxis, b)
			if err != nil {
				t.Fatal(err)
			}
			if eG, eR := layerError(hs[li], w.Data, deq, w.Shape, l.ChannelAxis), layerError(hs[li], w.Data, rtn, w.Shape, l.ChannelAxis); eG >= eR {
				t.Errorf("%s W%d: GPTQ output error %g; want below round-to-nearest's %g", l.Node, b, eG, eR)
			}
		}
	}
	if _, err := src.Codes(0, 5); !errors.Is(err, ErrCodes) {
		t.Errorf("codes at a width not prepared: got %v; want ErrCodes", err)
	}
}

// TestGPTQCodesGroupedConv: a grouped Conv, Gemms with transA and with
// the weight stored [in, out], and a MatMul (testNet) get the codes of
// GPTQWeights.
func TestGPTQCodesGroupedConv(t *testing.T) {
	net := testNet(t)
	rng := rand.New(rand.NewPCG(35, 1))
	x := tensor.New(8, 4, 9, 8)
	for i := range x.Data {
		x.Data[i] = rng.NormFloat64()
	}
	src, err := NewGPTQCodes(context.Background(), net, []*tensor.Tensor{x}, CodesOptions{Widths: []int{2, 4}})
	if err != nil {
		t.Fatal(err)
	}
	hs, err := AccumulateHessians(context.Background(), net, []*tensor.Tensor{x}, []int{0, 1, 2, 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for li, l := range net.Layers() {
		w := net.Params()[l.Weight].Value
		for _, b := range []int{2, 4} {
			_, gq, err := GPTQWeights(w.Data, w.Shape, l.ChannelAxis, hs[li], GPTQOptions{Bits: b}, false)
			if err != nil {
				t.Fatal(err)
			}
			want, err := gq.WeightQuant(w.Shape, l.ChannelAxis)
			if err != nil {
				t.Fatal(err)
			}
			got, err := src.Codes(li, b)
			if err != nil {
				t.Fatal(err)
			}
			sameCodes(t, l.Node, got, want)
		}
	}
}

// sharedNet is x [N,6] -> Gemm(W) -> Relu -> Gemm(W) with one weight
// parameter W [6,6] (transB) read by both layers.
func sharedNet(t *testing.T) *network.Network {
	t.Helper()
	rng := rand.New(rand.NewPCG(37, 1))
	w := tensor.New(6, 6)
	for i := range w.Data {
		w.Data[i] = 0.4 * rng.NormFloat64()
	}
	tb := onnx.Attribute{Name: "transB", Type: onnx.AttrInt, I: 1}
	g := &onnx.Graph{Name: "shared", Inputs: []onnx.ValueInfo{{Name: "x", ElemType: onnx.Float, Shape: []onnx.Dim{{Value: -1, Param: "N"}, {Value: 6}}}},
		Initializers: map[string]*tensor.Tensor{"w": w}, InitTypes: map[string]onnx.DataType{"w": onnx.Float}, InitOrder: []string{"w"},
		Nodes: []onnx.Node{
			{Name: "fc1", OpType: "Gemm", Inputs: []string{"x", "w"}, Outputs: []string{"h"}, Attrs: map[string]onnx.Attribute{"transB": tb}},
			{Name: "relu", OpType: "Relu", Inputs: []string{"h"}, Outputs: []string{"r"}, Attrs: map[string]onnx.Attribute{}},
			{Name: "fc2", OpType: "Gemm", Inputs: []string{"r", "w"}, Outputs: []string{"y"}, Attrs: map[string]onnx.Attribute{"transB": tb}},
		},
		Outputs: []onnx.ValueInfo{{Name: "y", ElemType: onnx.Float}}}
	net, err := network.Build(&onnx.Model{IRVersion: 8, Opset: 13, Graph: g}, network.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ls := net.Layers(); len(ls) != 2 || ls[0].Weight != ls[1].Weight {
		t.Fatalf("layers %+v; want two layers reading one weight", ls)
	}
	return net
}

// TestGPTQCodesSharedWeight: a weight two layers read is quantized once,
// by GPTQ on the sum of the two layers' Hessians (the sum of their squared
// output errors), and both layers get those codes.
func TestGPTQCodesSharedWeight(t *testing.T) {
	net := sharedNet(t)
	rng := rand.New(rand.NewPCG(39, 1))
	x := tensor.New(64, 6)
	for i := range x.Data {
		x.Data[i] = rng.NormFloat64()
	}
	ctx := context.Background()
	src, err := NewGPTQCodes(ctx, net, []*tensor.Tensor{x}, CodesOptions{Widths: []int{3}})
	if err != nil {
		t.Fatal(err)
	}
	hs, err := AccumulateHessians(ctx, net, []*tensor.Tensor{x}, []int{0, 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := hs[0].Hessian(0)
	for i, v := range hs[1].Hessian(0) {
		h[i] += v
	}
	w := net.Params()[0].Value
	g, err := GPTQ(w.Data, 6, 6, h, GPTQOptions{Bits: 3})
	if err != nil {
		t.Fatal(err)
	}
	want, err := g.WeightQuant(w.Shape, 0)
	if err != nil {
		t.Fatal(err)
	}
	for li := range 2 {
		got, err := src.Codes(li, 3)
		if err != nil {
			t.Fatal(err)
		}
		sameCodes(t, net.Layers()[li].Node, got, want)
		// Either layer's Hessian alone gives other codes on this draw, so
		// the check above tells the sum from either.
		alone, err := GPTQ(w.Data, 6, 6, hs[li].Hessian(0), GPTQOptions{Bits: 3})
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(alone.Q, g.Q) {
			t.Errorf("%s: its Hessian alone gives the codes of the sum; the test cannot tell them apart", net.Layers()[li].Node)
		}
	}
}

// TestNewCodesErrors: unknown methods, widths and a cancelled context are
// errors.
func TestNewCodesErrors(t *testing.T) {
	net := fixture.LeNet(t)
	x := fixture.LeNetCalib(t).X
	ctx := context.Background()
	if _, err := NewCodes(ctx, "adaround", net, nil, CodesOptions{}); !errors.Is(err, ErrCodes) {
		t.Errorf("method adaround: got %v; want ErrCodes", err)
	}
	if c, err := NewCodes(ctx, MethodRTN, net, nil, CodesOptions{}); err != nil || c.Method() != MethodRTN {
		t.Errorf("rtn: got %v, %v; want the round-to-nearest source", c, err)
	}
	if _, err := NewCodes(ctx, MethodGPTQ, net, []*tensor.Tensor{x}, CodesOptions{Widths: []int{9}}); !errors.Is(err, ErrBits) {
		t.Errorf("9 bits: got %v; want ErrBits", err)
	}
	if _, err := NewCodes(ctx, MethodGPTQ, net, nil, CodesOptions{Widths: []int{4}}); err == nil {
		t.Error("no batches: got no error")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := NewCodes(cancelled, MethodGPTQ, net, []*tensor.Tensor{x}, CodesOptions{Widths: []int{4}}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: got %v; want context.Canceled", err)
	}
}
