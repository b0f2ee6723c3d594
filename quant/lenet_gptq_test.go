package quant

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"mpsearch/dataset"
	"mpsearch/internal/fixture"
	"mpsearch/network"
	"mpsearch/tensor"
)

// fixtureAccTol: our simulation of the fixture's round-to-nearest W4A8,
// W3A8 and W2A8 (float64, activation ranges from the 256 shipped images)
// against the fixture's PyTorch float32 figures: a few of the 10,000 test
// images may flip between float32 and float64 logits.
const fixtureAccTol = 0.1

// accuracy is the top-1 accuracy (percent) of net on ds with the hook.
func accuracy(t *testing.T, net *network.Network, ds *dataset.Dataset, hook network.Hook) float64 {
	t.Helper()
	correct := 0
	const batch = 1000
	for i := 0; i < ds.NumBatches(batch); i++ {
		x, y := ds.Batch(i, batch)
		z, err := net.InferHook(context.Background(), x, hook)
		if err != nil {
			t.Fatal(err)
		}
		k := z.Shape[1]
		for s, label := range y {
			best := 0
			for c := 1; c < k; c++ {
				if z.Data[s*k+c] > z.Data[s*k+best] {
					best = c
				}
			}
			if best == label {
				correct++
			}
		}
	}
	return 100 * float64(correct) / float64(ds.Len())
}

// lenetMethod is one weight quantizer of the comparison.
type lenetMethod struct {
	name     string
	gptq     bool
	group    int
	mse, act bool
}

// TestLeNetGPTQAccuracy measures the fixture LeNet's accuracy on the
// 10,000 Fashion-MNIST test images with uniform 2-, 3- and 4-bit weights
// and uint8 activations (ranges and Hessians from the fixture's 256
// calibration images), quantized by round-to-nearest (the fixture's
// convention), GPTQ, and GPTQ with groups of 32 along the input dimension
// (with and without the clipping search and act-order). Round-to-nearest
// must reproduce the fixture's figures; GPTQ must beat it at 2 and 3 bits.
func TestLeNetGPTQAccuracy(t *testing.T) {
	if testing.Short() {
		t.Skip("evaluates 36 configurations on 10,000 images")
	}
	test := fixture.TestSet(t, 0)
	net := fixture.LeNet(t)
	calib := fixture.LeNetCalib(t)
	ctx := context.Background()
	ranges, err := ObserveRanges(ctx, net, []*tensor.Tensor{calib.X})
	if err != nil {
		t.Fatal(err)
	}
	hook := ActHook(ranges.ActQuantizers())
	methods := []lenetMethod{
		{name: "round-to-nearest"},
		{name: "round-to-nearest, g32", group: 32},
		{name: "round-to-nearest, g32, MSE", group: 32, mse: true},
		{name: "GPTQ", gptq: true},
		{name: "GPTQ, act-order", gptq: true, act: true},
		{name: "GPTQ, MSE", gptq: true, mse: true},
		{name: "GPTQ, g32", gptq: true, group: 32},
		{name: "GPTQ, g32, MSE", gptq: true, group: 32, mse: true},
		{name: "GPTQ, g32, MSE, act-order", gptq: true, group: 32, mse: true, act: true},
	}
	fixtureRTN := map[int]float64{4: 89.96, 3: 88.63, 2: 30.03} // reference.json, quantized_accuracy_ranges_first256
	acc := map[string]map[int]float64{}
	ws := NewWeightSetter(net)
	defer ws.Restore()
	for _, m := range methods {
		acc[m.name] = map[int]float64{}
		for _, bits := range []int{2, 3, 4} {
			ws.Restore()
			vals, err := lenetWeights(ctx, net, calib.X, bits, hook, m)
			if err != nil {
				t.Fatal(err)
			}
			for li, v := range vals {
				if err := ws.SetValues(li, v); err != nil {
					t.Fatal(err)
				}
			}
			acc[m.name][bits] = accuracy(t, net, test, hook)
		}
	}
	ws.Restore()
	float := accuracy(t, net, test, nil)
	var sb strings.Builder
	fmt.Fprintf(&sb, "fixture LeNet, 10,000 test images, float %.2f%%; weights uniform, A8:\n| method | W2A8 | W3A8 | W4A8 | size at W3 (bits, scales fp16) |\n|---|---|---|---|---|\n", float)
	for _, m := range methods {
		size := int64(0)
		for _, l := range net.Layers() {
			w := net.Params()[l.Weight].Value
			rows := w.Shape[l.ChannelAxis]
			size += SizeBits(rows, w.Size()/rows, 3, m.group)
		}
		fmt.Fprintf(&sb, "| %s | %.2f | %.2f | %.2f | %d |\n", m.name, acc[m.name][2], acc[m.name][3], acc[m.name][4], size)
	}
	t.Log(sb.String())
	for bits, want := range fixtureRTN {
		if got := acc["round-to-nearest"][bits]; math.Abs(got-want) > fixtureAccTol {
			t.Errorf("round-to-nearest W%dA8: got %.2f%%; want the fixture's %.2f%% within %g", bits, got, want, fixtureAccTol)
		}
	}
	for _, bits := range []int{2, 3} {
		if g, r := acc["GPTQ"][bits], acc["round-to-nearest"][bits]; g <= r {
			t.Errorf("W%dA8: GPTQ %.2f%%; want above round-to-nearest's %.2f%%", bits, g, r)
		}
	}
}

// lenetWeights returns every layer's fake-quantized weights at bits by
// the method.
func lenetWeights(ctx context.Context, net *network.Network, calib *tensor.Tensor, bits int, hook network.Hook, m lenetMethod) ([][]float64, error) {
	layers := net.Layers()
	if m.gptq {
		b := make([]int, len(layers))
		for i := range b {
			b[i] = bits
		}
		return GPTQNetwork(ctx, net, []*tensor.Tensor{calib}, b, hook, GPTQOptions{GroupSize: m.group, MSE: m.mse, ActOrder: m.act})
	}
	out := make([][]float64, len(layers))
	for li, l := range layers {
		w := net.Params()[l.Weight].Value
		mat, rows, cols := ToMatrix(w.Data, w.Shape, l.ChannelAxis)
		q, err := QuantizeMatrix(mat, rows, cols, bits, m.group, m.mse)
		if err != nil {
			return nil, err
		}
		out[li] = FromMatrix(q.Dequantize(), w.Shape, l.ChannelAxis)
	}
	return out, nil
}
