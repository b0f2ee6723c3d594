package quant

import (
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"

	"mpsearch/dataset"
	"mpsearch/internal/fixture"
	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/tensor"
)

// fixtureAccTol: our simulation of the fixture's round-to-nearest W4A8,
// W3A8 and W2A8 (float64, activation ranges from the 256 shipped images)
// against the fixture's PyTorch float32 figures: a few of the 10,000 test
// images may flip between float32 and float64 logits.
const fixtureAccTol = 0.1

// accuracy is the top-1 accuracy (percent) of net on ds with the hook.
func accuracy(t testing.TB, net *network.Network, ds *dataset.Dataset, hook network.Hook) float64 {
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

// weightMethod is one weight quantizer of the comparison.
type weightMethod struct {
	name             string
	gptq             bool
	group            int
	mse, act, static bool
}

// gptqMethods are the weight quantizers the accuracy tables compare.
var gptqMethods = []weightMethod{
	{name: "round-to-nearest"},
	{name: "round-to-nearest, g32", group: 32},
	{name: "GPTQ", gptq: true},
	{name: "GPTQ, act-order", gptq: true, act: true},
	{name: "GPTQ, MSE", gptq: true, mse: true},
	{name: "GPTQ, g32", gptq: true, group: 32},
	{name: "GPTQ, g32, MSE", gptq: true, group: 32, mse: true},
}

// gptqAccuracies measures net's top-1 accuracy on test with uniform
// weights at 2, 3 and 4 bits by each method and uint8 activations, ranges
// and Hessians from calib, and returns accuracy[method][bits] and a
// Markdown table (with the float accuracy and each method's size at 3 bits).
func gptqAccuracies(t testing.TB, net *network.Network, calib *tensor.Tensor, test *dataset.Dataset, methods []weightMethod) (map[string]map[int]float64, string) {
	ctx := context.Background()
	ranges, err := ObserveRanges(ctx, net, []*tensor.Tensor{calib})
	if err != nil {
		t.Fatal(err)
	}
	hook := ActHook(ranges.ActQuantizers())
	acc := map[string]map[int]float64{}
	ws := NewWeightSetter(net)
	defer ws.Restore()
	for _, m := range methods {
		acc[m.name] = map[int]float64{}
		for _, bits := range []int{2, 3, 4} {
			ws.Restore()
			vals, err := methodWeights(ctx, net, calib, bits, hook, m)
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
	var sb strings.Builder
	fmt.Fprintf(&sb, "float %.2f%%; %d test images; weights uniform, A8:\n| method | W2A8 | W3A8 | W4A8 | size at W3 (bits, scales fp16) |\n|---|---|---|---|---|\n", accuracy(t, net, test, nil), test.Len())
	for _, m := range methods {
		size := int64(0)
		for _, l := range net.Layers() {
			w := net.Params()[l.Weight].Value
			rows := w.Shape[l.ChannelAxis]
			size += SizeBits(rows, w.Size()/rows, 3, m.group)
		}
		fmt.Fprintf(&sb, "| %s | %.2f | %.2f | %.2f | %d |\n", m.name, acc[m.name][2], acc[m.name][3], acc[m.name][4], size)
	}
	return acc, sb.String()
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
		t.Skip("evaluates 21 configurations on 10,000 images")
	}
	test := fixture.TestSet(t, 0)
	acc, table := gptqAccuracies(t, fixture.LeNet(t), fixture.LeNetCalib(t).X, test, gptqMethods)
	t.Log("fixture LeNet, calibration: the fixture's 256 images; " + table)
	fixtureRTN := map[int]float64{4: 89.96, 3: 88.63, 2: 30.03} // reference.json, quantized_accuracy_ranges_first256
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

// BenchmarkGPTQAccuracyVGG is the same comparison on the VGG-style CNN
// (testdata/vgg-fmnist) with the first 1024 Fashion-MNIST training images
// for calibration, as the README's search table uses: a measurement run
// on request (go test -run '^$' -bench GPTQAccuracyVGG -benchtime 1x
// ./quant; about half an hour on one core), not a timing. It compares
// round-to-nearest, GPTQ, GPTQ with groups of 32 and with the clipping
// search.
func BenchmarkGPTQAccuracyVGG(b *testing.B) {
	imgs := fixture.FashionMNIST + "train-images-idx3-ubyte.gz"
	if _, err := os.Stat(imgs); err != nil {
		b.Skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
	}
	calib, err := dataset.Load(imgs, dataset.Options{Mean: fixture.Mean, Std: fixture.Std, Limit: 1024})
	if err != nil {
		b.Fatal(err)
	}
	m, err := onnx.Load(fixture.Path("vgg-fmnist/model.onnx"))
	if err != nil {
		b.Fatal(err)
	}
	net, err := network.Build(m, network.Options{})
	if err != nil {
		b.Fatal(err)
	}
	test := fixture.TestSet(b, 0)
	for b.Loop() {
		acc, table := gptqAccuracies(b, net, calib.X, test, []weightMethod{gptqMethods[0], gptqMethods[2], gptqMethods[5], gptqMethods[6]})
		b.Log("VGG-style CNN, calibration: the first 1024 training images; " + table)
		for _, bits := range []int{2, 3, 4} {
			b.ReportMetric(acc["round-to-nearest"][bits], fmt.Sprintf("W%d-RTN-%%", bits))
			b.ReportMetric(acc["GPTQ"][bits], fmt.Sprintf("W%d-GPTQ-%%", bits))
		}
	}
}

// methodWeights returns every layer's fake-quantized weights at bits by
// the method.
func methodWeights(ctx context.Context, net *network.Network, calib *tensor.Tensor, bits int, hook network.Hook, m weightMethod) ([][]float64, error) {
	layers := net.Layers()
	if m.gptq {
		b := make([]int, len(layers))
		for i := range b {
			b[i] = bits
		}
		return GPTQNetwork(ctx, net, []*tensor.Tensor{calib}, b, hook, GPTQOptions{GroupSize: m.group, MSE: m.mse, ActOrder: m.act, StaticGroups: m.static}, false)
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
