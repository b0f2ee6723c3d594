package quant

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"mpsearch/dataset"
	"mpsearch/internal/fixture"
	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/tensor"
)

// TestBiasCorrectionEvidence measures bias correction (BiasShift added to
// every layer's bias, E[x] from the float network's inputs on the
// calibration images) on the Fashion-MNIST fixtures: uniform W3A8 and
// W2A8, weights rounded to nearest and by GPTQ (per channel, Hessians from
// the same float pass, as NewGPTQCodes), uint8 activations with ranges
// from the calibration images (the first 1024 training images), top-1 on
// the 10,000 test images, float32 matrix products (mpsearch's default).
// It logs a Markdown table; opt-in (minutes per model):
// MPSEARCH_BIAS_EVIDENCE=lenet,vgg,resnet.
func TestBiasCorrectionEvidence(t *testing.T) {
	which := os.Getenv("MPSEARCH_BIAS_EVIDENCE")
	if which == "" {
		t.Skip("opt-in: MPSEARCH_BIAS_EVIDENCE=lenet,vgg,resnet (minutes per model)")
	}
	calib, test := evidenceData(t)
	rows := []string{"| model (float) | bits | rtn | rtn + bias corr. | gptq | gptq + bias corr. |", "|---|---|---|---|---|---|"}
	for _, m := range []struct{ name, path string }{{"lenet", "fmnist-lenet/lenet.onnx"}, {"vgg", "vgg-fmnist/model.onnx"}, {"resnet", "resnet-fmnist/model.onnx"}} {
		if !strings.Contains(which, m.name) {
			continue
		}
		src, err := onnx.Load(fixture.Path(m.path))
		if err != nil {
			t.Fatal(err)
		}
		net, err := network.Build(src, network.Options{Precision: network.F32})
		if err != nil {
			t.Fatal(err)
		}
		fl := accuracy(t, net, test, nil)
		for _, bits := range []int{3, 2} {
			acc := biasEvidence(t, net, calib.X, test, bits)
			rows = append(rows, fmt.Sprintf("| %s (%.2f%%) | W%dA8 | %.2f | %.2f | %.2f | %.2f |", m.name, fl, bits, acc[0], acc[1], acc[2], acc[3]))
			t.Log(rows[len(rows)-1])
		}
	}
	t.Log("\n" + strings.Join(rows, "\n"))
}

// biasEvidence returns the accuracies of uniform bits: rtn, rtn with bias
// correction, gptq, gptq with bias correction.
func biasEvidence(t *testing.T, net *network.Network, calib *tensor.Tensor, test *dataset.Dataset, bits int) [4]float64 {
	ctx := context.Background()
	batches := []*tensor.Tensor{calib}
	ranges, err := ObserveRanges(ctx, net, batches)
	if err != nil {
		t.Fatal(err)
	}
	hook := ActHook(ranges.ActQuantizers())
	layers := net.Layers()
	all := make([]int, len(layers))
	for i := range all {
		all[i] = i
	}
	hs, err := AccumulateHessians(ctx, net, batches, all, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out [4]float64
	for k, method := range []string{MethodRTN, MethodGPTQ} {
		codes, err := NewCodes(ctx, method, net, batches, CodesOptions{Widths: []int{bits}})
		if err != nil {
			t.Fatal(err)
		}
		ws := NewWeightSetterCodes(net, codes)
		shifts := make([][]float64, len(layers))
		for li, l := range layers {
			w := net.Params()[l.Weight].Value
			orig := append([]float64(nil), w.Data...)
			if err := ws.Set(li, bits); err != nil {
				t.Fatal(err)
			}
			if l.Bias >= 0 {
				if shifts[li], err = BiasShift(orig, w.Data, w.Shape, l.ChannelAxis, hs[li]); err != nil {
					t.Fatal(err)
				}
			}
		}
		out[2*k] = accuracy(t, net, test, hook)
		saved := map[int][]float64{}
		for li, l := range layers {
			if shifts[li] == nil {
				continue
			}
			b := net.Params()[l.Bias].Value.Data
			saved[l.Bias] = append([]float64(nil), b...)
			for c, s := range shifts[li] {
				b[c] += s
			}
		}
		out[2*k+1] = accuracy(t, net, test, hook)
		for idx, b := range saved {
			copy(net.Params()[idx].Value.Data, b)
		}
		ws.Restore()
	}
	return out
}

// evidenceData returns the evidence tests' calibration set (the first
// 1024 Fashion-MNIST training images) and the 10,000 test images,
// normalised as the fixtures were trained; it skips without the data set.
func evidenceData(t *testing.T) (calib, test *dataset.Dataset) {
	t.Helper()
	imgs := fixture.FashionMNIST + "train-images-idx3-ubyte.gz"
	if _, err := os.Stat(imgs); err != nil {
		t.Skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
	}
	calib, err := dataset.Load(imgs, dataset.Options{Mean: fixture.Mean, Std: fixture.Std, Limit: 1024})
	if err != nil {
		t.Fatal(err)
	}
	return calib, fixture.TestSet(t, 0)
}
