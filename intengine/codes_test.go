package intengine

import (
	"context"
	"math"
	"slices"
	"testing"

	"mpsearch/quant"
	"mpsearch/tensor"
)

// TestLeNetGPTQCodesExact: with GPTQ codes (quant.NewGPTQCodes, H from the
// 256 calibration images) the engine holds exactly the source's codes and
// scales, which differ from round-to-nearest's; every uint8 code and int32
// logit equals the simulated reference on 2000 test images; a variant
// (WithLayerBits) takes its layer's codes from the same source; and the
// top-1 predictions agree with package quant's simulation of the same
// weights (WeightSetter on the source, ActHook) as for round to nearest.
func TestLeNetGPTQCodesExact(t *testing.T) {
	net := loadLeNet(t)
	ctx := context.Background()
	calib := loadCalib(t).X
	src, err := quant.NewGPTQCodes(ctx, net, []*tensor.Tensor{calib}, quant.CodesOptions{Widths: []int{1, 2, 3, 4, 8}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := ObserveRanges(ctx, net, []*tensor.Tensor{calib})
	if err != nil {
		t.Fatal(err)
	}
	bits := []int{8, 4, 3, 2, 1}
	m, err := Compile(net, Config{Bits: bits, Ranges: r, Weights: src})
	if err != nil {
		t.Fatal(err)
	}
	differs := 0
	for i, l := range m.Layers() {
		want, err := src.Codes(i, bits[i])
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(l.Weights, want.Q) || !slices.Equal(l.WeightScales, want.Scales) {
			t.Fatalf("%s: the engine's codes or scales are not the source's", l.Node)
		}
		nl := net.Layers()[i]
		w := net.Params()[nl.Weight].Value
		rtn, err := quant.QuantizeWeights(w.Data, w.Shape, nl.ChannelAxis, bits[i])
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(rtn.Q, want.Q) {
			differs++
		}
	}
	if differs < 4 {
		t.Errorf("GPTQ codes differ from round-to-nearest's in %d of 5 layers; want at least 4 (else this test checks little)", differs)
	}
	runExact(t, m, 2000, 1000)
	v, err := m.WithLayerBits(2, 4)
	if err != nil {
		t.Fatal(err)
	}
	want, err := src.Codes(2, 4)
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Layers()[2]; !slices.Equal(got.Weights, want.Q) || !slices.Equal(got.WeightScales, want.Scales) {
		t.Errorf("WithLayerBits(2, 4): the layer's codes are not the source's at 4 bits")
	}
	// Package quant's simulation of the same weights (float biases, float
	// rescaling) predicts the same class on nearly every image.
	qr, err := quant.ObserveRanges(ctx, net, []*tensor.Tensor{calib})
	if err != nil {
		t.Fatal(err)
	}
	ws := quant.NewWeightSetterCodes(net, src)
	defer ws.Restore()
	if err := ws.SetAll(bits); err != nil {
		t.Fatal(err)
	}
	hook := quant.ActHook(qr.ActQuantizers())
	ds := loadTest(t).Subset(0, 2000)
	same := 0
	for b := 0; b < ds.NumBatches(1000); b++ {
		x, _ := ds.Batch(b, 1000)
		got, err := m.Run(ctx, x)
		if err != nil {
			t.Fatal(err)
		}
		pass, err := net.ForwardHook(ctx, x, hook)
		if err != nil {
			t.Fatal(err)
		}
		pi, ps := argmaxRows(got), argmaxRows(pass.Output())
		for i := range pi {
			same += boolInt(pi[i] == ps[i])
		}
	}
	if agree := float64(same) / float64(ds.Len()); agree < quantSimAgreement {
		t.Errorf("top-1 agreement with package quant's simulation of the GPTQ weights: got %.2f%%; want >= %.0f%%", 100*agree, 100*quantSimAgreement)
	}
}

// TestLeNetBiasCorrection: with a bias-corrected source
// (quant.WithBiasCorrection over GPTQ codes) every layer's int32 bias is
// the float bias plus the source's shift at the layer's width, rounded at
// S_x*S_w[c] (checked from the definition, and different from the
// uncorrected engine's in every layer); codes and logits stay exact
// against the reference; a variant (WithLayerBits) takes the shift of its
// new width; and the top-1 predictions agree with package quant's
// simulation, which applies the same corrected biases.
func TestLeNetBiasCorrection(t *testing.T) {
	net := loadLeNet(t)
	ctx := context.Background()
	calib := loadCalib(t).X
	batches := []*tensor.Tensor{calib}
	g, err := quant.NewGPTQCodes(ctx, net, batches, quant.CodesOptions{Widths: []int{2, 3, 4, 8}})
	if err != nil {
		t.Fatal(err)
	}
	src, err := quant.WithBiasCorrection(ctx, g, net, batches)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ObserveRanges(ctx, net, batches)
	if err != nil {
		t.Fatal(err)
	}
	bits := []int{8, 4, 3, 2, 8}
	plain, err := Compile(net, Config{Bits: bits, Ranges: r, Weights: g})
	if err != nil {
		t.Fatal(err)
	}
	m, err := Compile(net, Config{Bits: bits, Ranges: r, Weights: src})
	if err != nil {
		t.Fatal(err)
	}
	checkBiases := func(m *Model, li, b int) {
		t.Helper()
		l := m.Layers()[li]
		nl := net.Layers()[li]
		fb := net.Params()[nl.Bias].Value.Data
		shift, err := src.(quant.BiasShifter).BiasShift(li, b)
		if err != nil {
			t.Fatal(err)
		}
		for c, got := range l.Bias {
			if want := int32(math.Round((fb[c] + shift[c]) / (l.In.Scale * l.WeightScales[c]))); got != want {
				t.Fatalf("%s at %d bits channel %d: int32 bias %d; want %d (float bias %g + shift %g)", l.Node, b, c, got, want, fb[c], shift[c])
			}
		}
	}
	for li, l := range m.Layers() {
		checkBiases(m, li, bits[li])
		if slices.Equal(l.Bias, plain.Layers()[li].Bias) {
			t.Errorf("%s: the corrected int32 biases equal the uncorrected ones (else this test checks little)", l.Node)
		}
	}
	runExact(t, m, 2000, 1000)
	v, err := m.WithLayerBits(2, 4)
	if err != nil {
		t.Fatal(err)
	}
	checkBiases(v, 2, 4)
	qr, err := quant.ObserveRanges(ctx, net, batches)
	if err != nil {
		t.Fatal(err)
	}
	ws := quant.NewWeightSetterCodes(net, src)
	defer ws.Restore()
	if err := ws.SetAll(bits); err != nil {
		t.Fatal(err)
	}
	x, _ := loadTest(t).Subset(0, 2000).Batch(0, 2000)
	got, err := m.Run(ctx, x)
	if err != nil {
		t.Fatal(err)
	}
	pass, err := net.ForwardHook(ctx, x, quant.ActHook(qr.ActQuantizers()))
	if err != nil {
		t.Fatal(err)
	}
	pi, ps := argmaxRows(got), argmaxRows(pass.Output())
	same := 0
	for i := range pi {
		same += boolInt(pi[i] == ps[i])
	}
	if agree := float64(same) / float64(len(pi)); agree < quantSimAgreement {
		t.Errorf("top-1 agreement with package quant's simulation of the corrected model: got %.2f%%; want >= %.0f%%", 100*agree, 100*quantSimAgreement)
	}
}

// splitRangeTol is the relative difference allowed between ranges observed
// on a whole batch and on sub-batches of one sample: the float engine's
// float32 products round differently with the number of rows (OpenBLAS
// takes another kernel for one row; 2.5e-16 relative was seen on the
// LeNet's fourth ReLU), which float32's 6e-8 precision bounds.
const splitRangeTol = 1e-6

// TestRangesSplitPasses: ranges observed on one batch equal the ranges
// observed when batchRanges runs the batch in sub-batches of one sample
// (rangePassBytes of 1 byte) up to splitRangeTol, and the minima and
// maxima taken by hand over the whole batch's float values exactly.
func TestRangesSplitPasses(t *testing.T) {
	ctx := context.Background()
	net := loadLeNet(t)
	x := loadCalib(t).X
	whole, err := ObserveRanges(ctx, net, []*tensor.Tensor{x})
	if err != nil {
		t.Fatal(err)
	}
	old := rangePassBytes
	rangePassBytes = 1
	defer func() { rangePassBytes = old }()
	split, err := ObserveRanges(ctx, net, []*tensor.Tensor{x})
	if err != nil {
		t.Fatal(err)
	}
	if len(split) != len(whole) || len(whole) == 0 {
		t.Fatalf("%d split ranges, %d whole; want the same non-zero count", len(split), len(whole))
	}
	pass, err := net.Forward(ctx, x)
	if err != nil {
		t.Fatal(err)
	}
	for name, w := range whole {
		for i := range w {
			if d := math.Abs(split[name][i] - w[i]); d > splitRangeTol*math.Max(1, math.Abs(w[i])) {
				t.Errorf("%s: split range %v; want %v within %g", name, split[name], w, splitRangeTol)
			}
		}
		v := pass.Value(name)
		lo, hi := slices.Min(v.Data), slices.Max(v.Data)
		if w != [2]float64{lo, hi} {
			t.Errorf("%s: range %v; want [%g %g] (the values' extremes)", name, w, lo, hi)
		}
	}
}
