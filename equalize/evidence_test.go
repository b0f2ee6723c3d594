package equalize_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"mpsearch/dataset"
	"mpsearch/internal/fixture"
	"mpsearch/network"
	"mpsearch/pipeline"
	"mpsearch/quant"
)

// TestEqualizeEvidence measures cross-layer equalization (pipeline.Equalize,
// the job's --equalize) on the Fashion-MNIST CNNs: uniform W8A8, W4A8 and
// W3A8 (every layer, ends included), weights by GPTQ with bias correction
// (the command line's defaults) and rounded to nearest with bias
// correction (--quantizer rtn), per output channel; uint8 activations with
// per-tensor ranges, Hessians and means from the first 1024 training
// images (pipeline.NewWeightSource and NetVerifier, as search simulates);
// top-1 on the 10,000 test images, float32 matrix products (the default).
// It logs a Markdown table; opt-in (minutes per model):
// MPSEARCH_EQUALIZE_EVIDENCE=dwsep,lenet,vgg,resnet.
func TestEqualizeEvidence(t *testing.T) {
	which := os.Getenv("MPSEARCH_EQUALIZE_EVIDENCE")
	if which == "" {
		t.Skip("opt-in: MPSEARCH_EQUALIZE_EVIDENCE=dwsep,lenet,vgg,resnet (minutes per model)")
	}
	imgs := fixture.FashionMNIST + "train-images-idx3-ubyte.gz"
	if _, err := os.Stat(imgs); err != nil {
		t.Skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
	}
	calib, err := dataset.Load(imgs, dataset.Options{Mean: fixture.Mean, Std: fixture.Std, Limit: 1024})
	if err != nil {
		t.Fatal(err)
	}
	test := fixture.TestSet(t, 0)
	widths := []int{8, 4, 3}
	rows := []string{"| model (float) | bits | gptq + bc | gptq + bc, equalized | rtn + bc | rtn + bc, equalized |", "|---|---|---|---|---|---|"}
	for _, m := range []struct{ name, path string }{{"dwsep", "dwsep-fmnist/model.onnx"}, {"lenet", "fmnist-lenet/lenet.onnx"}, {"vgg", "vgg-fmnist/model.onnx"}, {"resnet", "resnet-fmnist/model.onnx"}} {
		if !strings.Contains(which, m.name) {
			continue
		}
		net, err := pipeline.LoadModel(fixture.Path(m.path), pipeline.ModelOptions{Precision: network.F32})
		if err != nil {
			t.Fatal(err)
		}
		eq, rep, err := pipeline.Equalize(net)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %s", m.name, rep)
		fl, err := pipeline.Evaluate(context.Background(), net, test, pipeline.EvalOptions{})
		if err != nil {
			t.Fatal(err)
		}
		acc := map[string][]float64{}
		for _, method := range []string{quant.MethodGPTQ, quant.MethodRTN} {
			for k, n := range []*network.Network{net, eq} {
				key := fmt.Sprintf("%s/%d", method, k)
				acc[key] = uniformAccuracies(t, n, calib, test, method, widths)
				t.Logf("%s %s equalized=%t: %v", m.name, method, k == 1, acc[key])
			}
		}
		for i, b := range widths {
			rows = append(rows, fmt.Sprintf("| %s (%.2f%%) | W%dA8 | %.2f | %.2f | %.2f | %.2f |", m.name, 100*fl.Accuracy, b,
				acc["gptq/0"][i], acc["gptq/1"][i], acc["rtn/0"][i], acc["rtn/1"][i]))
			t.Log(rows[len(rows)-1])
		}
	}
	t.Log("\n" + strings.Join(rows, "\n"))
}

// uniformAccuracies returns the test accuracy (%) of net quantized
// uniformly at each of widths by method with bias correction.
func uniformAccuracies(t *testing.T, net *network.Network, calib, test *dataset.Dataset, method string, widths []int) []float64 {
	t.Helper()
	ctx := context.Background()
	codes, err := pipeline.NewWeightSource(ctx, net, calib, pipeline.WeightSpec{Method: method, BiasCorrection: true}, widths, 256, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The verifier's held-out set is not used by SimulatedAccuracy; its
	// activation ranges come from calib.
	v, err := pipeline.NewNetVerifier(ctx, net, calib, calib.Subset(0, 1), 256)
	if err != nil {
		t.Fatal(err)
	}
	v.Weights = codes
	var out []float64
	for _, b := range widths {
		bits := make([]int, len(net.Layers()))
		for i := range bits {
			bits[i] = b
		}
		r, err := v.SimulatedAccuracy(ctx, test, bits)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, 100*r.Accuracy)
	}
	return out
}

// TestEqualizeSplitEvidence separates where equalization's change comes
// from on the depthwise-separable CNN: uniform W3 weights (GPTQ and round
// to nearest, bias correction) with float activations, and uint8
// activations with float weights, with and without equalization; top-1 on
// the 10,000 test images. Opt-in: MPSEARCH_EQUALIZE_SPLIT=1 (minutes).
func TestEqualizeSplitEvidence(t *testing.T) {
	if os.Getenv("MPSEARCH_EQUALIZE_SPLIT") == "" {
		t.Skip("opt-in: MPSEARCH_EQUALIZE_SPLIT=1 (minutes)")
	}
	ctx := context.Background()
	imgs := fixture.FashionMNIST + "train-images-idx3-ubyte.gz"
	if _, err := os.Stat(imgs); err != nil {
		t.Skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
	}
	calib, err := dataset.Load(imgs, dataset.Options{Mean: fixture.Mean, Std: fixture.Std, Limit: 1024})
	if err != nil {
		t.Fatal(err)
	}
	test := fixture.TestSet(t, 0)
	net, err := pipeline.LoadModel(fixture.Path("dwsep-fmnist/model.onnx"), pipeline.ModelOptions{Precision: network.F32})
	if err != nil {
		t.Fatal(err)
	}
	eq, _, err := pipeline.Equalize(net)
	if err != nil {
		t.Fatal(err)
	}
	for k, n := range []*network.Network{net, eq} {
		bits := make([]int, len(n.Layers()))
		for i := range bits {
			bits[i] = 3
		}
		for _, m := range []string{quant.MethodGPTQ, quant.MethodRTN} {
			codes, err := pipeline.NewWeightSource(ctx, n, calib, pipeline.WeightSpec{Method: m, BiasCorrection: true}, []int{3}, 256, 2, nil)
			if err != nil {
				t.Fatal(err)
			}
			ws := quant.NewWeightSetterCodes(n, codes)
			if err := ws.SetAll(bits); err != nil {
				t.Fatal(err)
			}
			r, err := pipeline.Evaluate(ctx, n, test, pipeline.EvalOptions{})
			ws.Restore()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("equalized=%t: W3 (%s + bias correction), float activations: %.2f%%", k == 1, m, 100*r.Accuracy)
		}
		v, err := pipeline.NewNetVerifier(ctx, n, calib, calib.Subset(0, 1), 256)
		if err != nil {
			t.Fatal(err)
		}
		r, err := v.SimulatedAccuracy(ctx, test, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("equalized=%t: float weights, uint8 activations: %.2f%%", k == 1, 100*r.Accuracy)
	}
}
