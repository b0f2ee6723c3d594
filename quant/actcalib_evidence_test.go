package quant

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"mpsearch/internal/fixture"
	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/tensor"
)

// actCalibNoise is how far, in points of top-1 accuracy averaged over the
// measured cases, the default calibration may trail the best method and
// still count as within noise: 0.1 point is 10 of the 10,000 test images
// per case, the size of the differences between the methods that flip
// near-ties only (the same model, weights and images; a paired
// difference's noise is far below the 0.27-point binomial error of one
// accuracy).
const actCalibNoise = 0.1

// TestActCalibEvidence measures the activation calibration methods on the
// Fashion-MNIST fixtures: uniform W8A8 and W4A8, weights by GPTQ with bias
// correction (the command line's defaults; Hessians, means and ranges from
// the first 1024 training images), uint8 activations at every layer input
// with ranges from each method, top-1 on the 10,000 test images, float32
// matrix products. It logs a Markdown table and fails when DefaultCalib's
// mean accuracy over the measured cases trails the best method's by more
// than actCalibNoise. Opt-in (minutes per model):
// MPSEARCH_ACTCALIB_EVIDENCE=lenet,vgg,resnet.
func TestActCalibEvidence(t *testing.T) {
	which := os.Getenv("MPSEARCH_ACTCALIB_EVIDENCE")
	if which == "" {
		t.Skip("opt-in: MPSEARCH_ACTCALIB_EVIDENCE=lenet,vgg,resnet (minutes per model)")
	}
	ctx := context.Background()
	calib, test := evidenceData(t)
	batches := []*tensor.Tensor{calib.X}
	methods := []ActCalib{{}, {Method: CalibPercentile, Percentile: DefaultPercentile}, {Method: CalibMSE}, {Method: CalibKL}}
	head := "| model (float) | weights |"
	for _, c := range methods {
		head += " " + c.String() + " |"
	}
	rows := []string{head, "|---|---|" + strings.Repeat("---|", len(methods))}
	sums := make([]float64, len(methods))
	cases := 0
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
		g, err := NewGPTQCodes(ctx, net, batches, CodesOptions{Widths: []int{4, 8}})
		if err != nil {
			t.Fatal(err)
		}
		codes, err := WithBiasCorrection(ctx, g, net, batches)
		if err != nil {
			t.Fatal(err)
		}
		hooks := make([]network.Hook, len(methods))
		for k, c := range methods {
			r, err := ObserveRangesCalib(ctx, net, batches, c)
			if err != nil {
				t.Fatal(err)
			}
			hooks[k] = ActHook(r.ActQuantizers())
		}
		for _, bits := range []int{8, 4} {
			ws := NewWeightSetterCodes(net, codes)
			all := make([]int, len(net.Layers()))
			for i := range all {
				all[i] = bits
			}
			if err := ws.SetAll(all); err != nil {
				t.Fatal(err)
			}
			row := fmt.Sprintf("| %s (%.2f%%) | W%d, gptq + bias corr. |", m.name, fl, bits)
			for k := range methods {
				a := accuracy(t, net, test, hooks[k])
				sums[k] += a
				row += fmt.Sprintf(" %.2f |", a)
			}
			ws.Restore()
			cases++
			rows = append(rows, row)
			t.Log(row)
		}
	}
	mean := "| mean | |"
	best, def := 0, -1
	for k, c := range methods {
		mean += fmt.Sprintf(" %.3f |", sums[k]/float64(cases))
		if sums[k] > sums[best] {
			best = k
		}
		if c.String() == DefaultCalib {
			def = k
		}
	}
	rows = append(rows, mean)
	t.Log("\n" + strings.Join(rows, "\n"))
	if def < 0 {
		t.Fatalf("DefaultCalib %q is not among the methods measured", DefaultCalib)
	}
	if gap := (sums[best] - sums[def]) / float64(cases); gap > actCalibNoise {
		t.Errorf("default %s trails %s by %.3f points of mean accuracy; want within %.1f (change DefaultCalib)", DefaultCalib, methods[best], gap, actCalibNoise)
	}
}
