package quant

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"mpsearch/network"
	"mpsearch/tensor"
)

// biasTol: the mean output change from two float64 forward passes against
// (W-Ŵ)·E[x] from the accumulated sums: float64 rounding of sums of a few
// thousand products of values of order 1.
const biasTol = 1e-10

// TestBiasShift checks BiasShift by brute force on every input layout of
// testNet (grouped Conv with strides, dilations and uneven zero padding,
// Gemm with transA, Gemm [in, out], MatMul on a 3-D input): quantizing one
// layer's weights at 3 bits moves the mean of each output channel over the
// data by exactly -BiasShift, measured from the network's outputs.
func TestBiasShift(t *testing.T) {
	net := testNet(t)
	rng := rand.New(rand.NewPCG(33, 1))
	batches := []*tensor.Tensor{tensor.New(5, 4, 9, 8), tensor.New(3, 4, 9, 8)}
	for _, b := range batches {
		for i := range b.Data {
			b.Data[i] = rng.NormFloat64() + 0.5 // a nonzero mean
		}
	}
	layers := net.Layers()
	hs, err := AccumulateHessians(context.Background(), net, batches, []int{0, 1, 2, 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The consumer whose first input is each layer's output ("" for the
	// graph output), and the axis of its channels.
	consumer := map[string]string{"conv": "relu", "fcA": "relu1", "fcB": "rs", "head": ""}
	chAxis := map[string]int{"conv": 1, "fcA": 1, "fcB": 1, "head": 2}
	for li, l := range layers {
		w := net.Params()[l.Weight].Value
		q, err := FakeQuantWeights(w.Data, w.Shape, l.ChannelAxis, 3)
		if err != nil {
			t.Fatal(err)
		}
		shift, err := BiasShift(w.Data, q, w.Shape, l.ChannelAxis, hs[li])
		if err != nil {
			t.Fatal(err)
		}
		before := layerOutputMeans(t, net, batches, consumer[l.Node], chAxis[l.Node])
		ws := NewWeightSetter(net)
		if err := ws.SetValues(li, q); err != nil {
			t.Fatal(err)
		}
		after := layerOutputMeans(t, net, batches, consumer[l.Node], chAxis[l.Node])
		ws.Restore()
		if len(before) != len(shift) {
			t.Fatalf("%s: %d channels; BiasShift gave %d", l.Node, len(before), len(shift))
		}
		nonzero := 0
		for c := range shift {
			got, want := shift[c], before[c]-after[c]
			if math.Abs(got-want) > biasTol*(1+math.Abs(want)) {
				t.Errorf("%s channel %d: BiasShift %.15g; want the measured mean output change %.15g", l.Node, c, got, want)
			}
			if math.Abs(want) > 1e-6 {
				nonzero++
			}
		}
		if nonzero == 0 {
			t.Errorf("%s: every mean shift is zero; the test would not see a wrong E[x]", l.Node)
		}
	}
}

// layerOutputMeans returns the per-channel mean over the batches of the
// value consumer reads as its first input (the graph output for "").
func layerOutputMeans(t *testing.T, net *network.Network, batches []*tensor.Tensor, consumer string, axis int) []float64 {
	t.Helper()
	var sum []float64
	n := 0
	add := func(v *tensor.Tensor) {
		ch := v.Shape[axis]
		inner := 1
		for _, d := range v.Shape[axis+1:] {
			inner *= d
		}
		if sum == nil {
			sum = make([]float64, ch)
		}
		for i, x := range v.Data {
			sum[(i/inner)%ch] += x
		}
		n += v.Size() / ch
	}
	for _, x := range batches {
		out, err := net.InferHook(context.Background(), x, func(node string, in int, v *tensor.Tensor) *tensor.Tensor {
			if node == consumer && in == 0 {
				add(v)
			}
			return v
		})
		if err != nil {
			t.Fatal(err)
		}
		if consumer == "" {
			add(out)
		}
	}
	for c := range sum {
		sum[c] /= float64(n)
	}
	return sum
}

// TestWithBiasCorrection: with a bias-corrected source, WeightSetter.Set
// of one layer at 3 bits leaves each output channel's mean over the data
// where the float layer has it (brute force, the layers of testNet that
// have a bias), and Restore puts the biases back.
func TestWithBiasCorrection(t *testing.T) {
	net := testNet(t)
	rng := rand.New(rand.NewPCG(34, 1))
	batches := []*tensor.Tensor{tensor.New(6, 4, 9, 8)}
	for i := range batches[0].Data {
		batches[0].Data[i] = rng.NormFloat64() + 0.5
	}
	c, err := WithBiasCorrection(context.Background(), NewRoundToNearest(net), net, batches)
	if err != nil {
		t.Fatal(err)
	}
	consumer := map[string]string{"conv": "relu", "fcA": "relu1", "fcB": "rs"}
	corrected := 0
	for li, l := range net.Layers() {
		if l.Bias < 0 {
			if s, err := c.(BiasShifter).BiasShift(li, 3); err != nil || s != nil {
				t.Errorf("%s has no bias: shift %v, error %v; want none", l.Node, s, err)
			}
			continue
		}
		bias := append([]float64(nil), net.Params()[l.Bias].Value.Data...)
		want := layerOutputMeans(t, net, batches, consumer[l.Node], 1)
		ws := NewWeightSetterCodes(net, c)
		if err := ws.Set(li, 3); err != nil {
			t.Fatal(err)
		}
		got := layerOutputMeans(t, net, batches, consumer[l.Node], 1)
		ws.Restore()
		for ch := range want {
			if math.Abs(got[ch]-want[ch]) > biasTol*(1+math.Abs(want[ch])) {
				t.Errorf("%s channel %d: mean output %.15g with corrected 3-bit weights; want the float layer's %.15g", l.Node, ch, got[ch], want[ch])
			}
		}
		for i, v := range net.Params()[l.Bias].Value.Data {
			if v != bias[i] {
				t.Fatalf("%s: bias %d is %v after Restore; want %v", l.Node, i, v, bias[i])
			}
		}
		corrected++
	}
	if corrected != 3 {
		t.Errorf("layers corrected: %d; want 3 (conv, fcA, fcB)", corrected)
	}
}

// TestBiasMeansFromGPTQ: the input means that GPTQ's Hessian pass keeps
// (InputMeans) give the bias shifts of a means-only pass over the same
// batches bit for bit, whether the Hessians fit one pass or take one pass
// per layer (HessianBytes 1), and bias correction refuses means of
// another network's layers.
func TestBiasMeansFromGPTQ(t *testing.T) {
	net := testNet(t)
	rng := rand.New(rand.NewPCG(35, 1))
	batches := []*tensor.Tensor{tensor.New(5, 4, 9, 8), tensor.New(3, 4, 9, 8)}
	for _, b := range batches {
		for i := range b.Data {
			b.Data[i] = rng.NormFloat64() + 0.3
		}
	}
	ctx := context.Background()
	for _, limit := range []int64{0, 1} {
		g, err := NewGPTQCodes(ctx, net, batches, CodesOptions{Widths: []int{2, 4}, HessianBytes: limit})
		if err != nil {
			t.Fatal(err)
		}
		means := InputMeans(g)
		if len(means) != len(net.Layers()) {
			t.Fatalf("HessianBytes %d: InputMeans has %d layers; want %d", limit, len(means), len(net.Layers()))
		}
		pass, err := WithBiasCorrection(ctx, g, net, batches)
		if err != nil {
			t.Fatal(err)
		}
		shared, err := WithBiasCorrectionOptions(ctx, g, net, batches, BiasOptions{Means: means})
		if err != nil {
			t.Fatal(err)
		}
		checked := 0
		for li, l := range net.Layers() {
			for _, b := range []int{2, 4} {
				want, err := pass.(BiasShifter).BiasShift(li, b)
				if err != nil {
					t.Fatal(err)
				}
				got, err := shared.(BiasShifter).BiasShift(li, b)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(want) {
					t.Fatalf("%s at %d bits: %d shifts; want %d", l.Node, b, len(got), len(want))
				}
				for c := range want {
					if got[c] != want[c] {
						t.Errorf("HessianBytes %d, %s at %d bits, channel %d: shift %v from GPTQ's means; want %v (means-only pass)", limit, l.Node, b, c, got[c], want[c])
					}
				}
				checked += len(want)
			}
		}
		if checked == 0 {
			t.Fatal("no layer with a bias was checked")
		}
	}
	if InputMeans(NewRoundToNearest(net)) != nil {
		t.Error("round to nearest has input means; want none (it makes no pass)")
	}
	if _, err := WithBiasCorrectionOptions(ctx, NewRoundToNearest(net), net, batches, BiasOptions{Means: make([]*LayerHessian, 1)}); err == nil {
		t.Error("means of 1 layer for a network of 4 accepted; want an error")
	}
}
