package export

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"mpsearch/dataset"
	"mpsearch/internal/ortrun"
	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/quant"
	"mpsearch/tensor"

	"mpsearch/internal/citest"
)

// These tests run the exported model in ONNX Runtime (onnxruntime-node
// 1.30, through mpsearch/internal/ortrun) and compare it with the project's
// simulated quantization. Outside CI they are skipped when node or the
// module is missing; install it with ortrun.Install.

// Bounds for ONNX Runtime (float32) against the simulation (float64).
//
// Unoptimized ("disabled"), ONNX Runtime runs the graph as written: each
// layer in float32 on dequantized inputs and weights. Layer arithmetic in
// float32 moves logits by ~1e-5; beyond that only an activation code can
// differ, where x/scale computed in float32 from float32 activations lands
// within ~1e-7 relative of a .5 tie (measured: 1 image of 256).
//
// With its default optimizations ("all"), ONNX Runtime fuses
// DequantizeLinear → Conv/Gemm → Relu → MaxPool → QuantizeLinear into
// QLinearConv/QGemm: it rounds the float bias to INT32 at S_w·S_x itself
// and requantizes the accumulator straight to the next layer's codes, so
// many next-layer codes move by one step (measured: most images, max
// |logit diff| 0.18 over 10,000 images) while predictions barely change.
// ortFusedAbs is 2.5x the measured maximum.
const (
	ortLogitAbs  = 1e-3
	ortFarShare  = 0.02 // unoptimized: at most this fraction of images beyond ortLogitAbs
	ortFusedAbs  = 0.5  // optimized: bound on any logit difference
	ortAgreement = 99.5 // percent, top-1 agreement with the simulation
	// The bound: ONNX Runtime's top-1 accuracy within 0.1 points
	// of the simulated accuracy on the same 10,000 test images.
	ortAccuracyPoints = 0.1
)

// ortInput is one model input for ONNX Runtime.
type ortInput = ortrun.Input

// ortRunner returns a function running a model file in ONNX Runtime at an
// optimization level and returning its first output, or skips the test
// (see ortrun.ForTest).
func ortRunner(t *testing.T) func(t *testing.T, model, level string, xs ...ortInput) *tensor.Tensor {
	t.Helper()
	r := ortrun.ForTest(t)
	return func(t *testing.T, model, level string, xs ...ortInput) *tensor.Tensor {
		t.Helper()
		outs, err := r.Run(context.Background(), model, level, xs...)
		if err != nil {
			t.Fatal(err)
		}
		return outs[0]
	}
}

// exportTo writes the QDQ model of cfg into a temporary file.
func exportTo(t *testing.T, net *network.Network, cfg Config) (string, *onnx.Model) {
	t.Helper()
	m, err := QDQ(net, cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "model.qdq.onnx")
	if err := Save(path, m); err != nil {
		t.Fatal(err)
	}
	return path, m
}

// compareORT checks ONNX Runtime's logits against the simulation's;
// level is the ONNX Runtime graph optimization level used.
func compareORT(t *testing.T, got, want *tensor.Tensor, level string) {
	t.Helper()
	if !tensor.SameShape(got.Shape, want.Shape) {
		t.Fatalf("ONNX Runtime output shape: got %v; want %v", got.Shape, want.Shape)
	}
	n := want.Shape[0]
	far, worst, sum := 0, 0.0, 0.0
	for i := range n {
		d := maxAbsDiff(rowOf(got, i), rowOf(want, i))
		worst = math.Max(worst, d)
		if d > ortLogitAbs {
			far++
		}
	}
	for i := range got.Data {
		sum += math.Abs(got.Data[i] - want.Data[i])
	}
	agree := agreement(argmax(got), argmax(want))
	t.Logf("ONNX Runtime (%s) vs simulation on %d images: |logit diff| max %.3g mean %.2g, %d images beyond %g, top-1 agreement %.2f%%",
		level, n, worst, sum/float64(got.Size()), far, ortLogitAbs, agree)
	if level == "disabled" && float64(far) > ortFarShare*float64(n) {
		t.Errorf("images with a logit off by more than %g: got %d of %d; want <= %.0f%%", ortLogitAbs, far, n, 100*ortFarShare)
	}
	if worst > ortFusedAbs {
		t.Errorf("max |logit diff|: got %.3g; want <= %g", worst, ortFusedAbs)
	}
	if agree < ortAgreement {
		t.Errorf("top-1 agreement with the simulation: got %.2f%%; want >= %.1f%%", agree, ortAgreement)
	}
}

func TestORTMatchesSimulation(t *testing.T) {
	run := ortRunner(t)
	net := loadLeNet(t)
	ds := loadCalib(t)
	act := calibActs(t, net, ds)
	gptq := lenetGPTQ(t, net)
	for _, tc := range []struct {
		name    string
		bits    []int
		opset21 bool
		level   string
		wantLow onnx.DataType
		codes   quant.WeightCodes
	}{
		{"W8-4-3-2-8 opset13", []int{8, 4, 3, 2, 8}, false, "all", onnx.Int8, nil},
		{"W8-4-3-2-8 opset13 unoptimized", []int{8, 4, 3, 2, 8}, false, "disabled", onnx.Int8, nil},
		{"W8-4-3-2-1 opset21 INT4", mixedBits, true, "all", onnx.Int4, nil},
		{"W8-4-3-2-1 opset21 INT4 unoptimized", mixedBits, true, "disabled", onnx.Int4, nil},
		{"GPTQ W8-4-3-2-8 opset13", []int{8, 4, 3, 2, 8}, false, "all", onnx.Int8, gptq},
		{"GPTQ W8-4-3-2-8 opset13 unoptimized", []int{8, 4, 3, 2, 8}, false, "disabled", onnx.Int8, gptq},
		{"GPTQ W8-4-3-2-1 opset21 INT4 unoptimized", mixedBits, true, "disabled", onnx.Int4, gptq},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, m := exportTo(t, net, Config{Bits: tc.bits, Act: act, Opset21: tc.opset21, Weights: tc.codes})
			n4 := 0
			for _, dt := range m.Graph.InitTypes {
				if dt == onnx.Int4 {
					n4++
				}
			}
			if (n4 > 0) != (tc.wantLow == onnx.Int4) {
				t.Errorf("INT4 initializers: got %d; want them only at opset 21", n4)
			}
			got := run(t, path, tc.level, ortInput{X: ds.X})
			want := simLogitsCodes(t, net, tc.codes, tc.bits, act, ds.X)
			compareORT(t, got, want, tc.level)
		})
	}
}

// TestORTAccuracy is the check: ONNX Runtime's top-1 accuracy on
// the 10,000 Fashion-MNIST test images is within ortAccuracyPoints of the
// simulated accuracy, and within the same bound of the fixture's PyTorch
// accuracies for uniform configurations (README of the fixture).
func TestORTAccuracy(t *testing.T) {
	run := ortRunner(t)
	const fmnist = "/usr/share/datasets/fashion-mnist/"
	if _, err := os.Stat(fmnist + "t10k-images-idx3-ubyte.gz"); err != nil {
		citest.Missing(t, "Fashion-MNIST is not installed in %s (Debian package dataset-fashion-mnist, or scripts/setup.sh --test)", fmnist)
	}
	if testing.Short() {
		t.Skip("10,000 images: skipped with -short")
	}
	test, err := dataset.Load(fmnist+"t10k-images-idx3-ubyte.gz", dataset.Options{
		Labels: fmnist + "t10k-labels-idx1-ubyte.gz", Mean: []float64{0.2860}, Std: []float64{0.3530}})
	if err != nil {
		t.Fatal(err)
	}
	// The model's input is float32: give both sides the same values.
	for i, v := range test.X.Data {
		test.X.Data[i] = float64(float32(v))
	}
	net := loadLeNet(t)
	act := calibActs(t, net, loadCalib(t))
	gptq := lenetGPTQ(t, net)
	for _, tc := range []struct {
		name    string
		bits    []int
		opset21 bool
		level   string
		ref     float64 // the fixture's PyTorch accuracy with ranges from the 256 images; 0 if none
		codes   quant.WeightCodes
	}{
		{"W8-4-3-2-8", []int{8, 4, 3, 2, 8}, false, "all", 0, nil},
		{"W8-4-3-2-8 unoptimized", []int{8, 4, 3, 2, 8}, false, "disabled", 0, nil},
		{"W8A8", []int{8, 8, 8, 8, 8}, false, "all", 90.47, nil},
		{"W4A8 INT4", []int{4, 4, 4, 4, 4}, true, "all", 89.96, nil},
		{"W3A8 INT4", []int{3, 3, 3, 3, 3}, true, "all", 88.63, nil},
		{"GPTQ W8-4-3-2-8", []int{8, 4, 3, 2, 8}, false, "all", 0, gptq},
		{"GPTQ W3A8 INT4", []int{3, 3, 3, 3, 3}, true, "all", 0, gptq},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, _ := exportTo(t, net, Config{Bits: tc.bits, Act: act, Opset21: tc.opset21, Weights: tc.codes})
			got := run(t, path, tc.level, ortInput{X: test.X})
			want := simLogitsCodes(t, net, tc.codes, tc.bits, act, test.X)
			ortAcc := accuracy(argmax(got), test.Y)
			simAcc := accuracy(argmax(want), test.Y)
			t.Logf("top-1 on 10,000 test images: ONNX Runtime %.2f%%, simulated %.2f%%", ortAcc, simAcc)
			if tc.ref != 0 && math.Abs(ortAcc-tc.ref) > ortAccuracyPoints {
				t.Errorf("ONNX Runtime accuracy %.2f%%; the fixture's reference is %.2f%%", ortAcc, tc.ref)
			}
			if math.Abs(ortAcc-simAcc) > ortAccuracyPoints {
				t.Errorf("ONNX Runtime accuracy %.2f%% vs simulated %.2f%%: differ by more than %.1f points", ortAcc, simAcc, ortAccuracyPoints)
			}
			compareORT(t, got, want, tc.level)
		})
	}
}

// TestORTRaisedOpset runs the ONNX conformance cases (opset 6 and 12) after
// the export raised them to opset 13 and 21 with float weights: ONNX
// Runtime must accept the converted graphs and reproduce ONNX's reference
// outputs.
func TestORTRaisedOpset(t *testing.T) {
	run := ortRunner(t)
	if testing.Short() {
		t.Skip("80 ONNX Runtime sessions: skipped with -short")
	}
	dirs, err := filepath.Glob("../network/testdata/onnx-conformance/test_*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no conformance cases: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m, err := onnx.Load(filepath.Join(dir, "model.onnx"))
			if err != nil {
				t.Fatal(err)
			}
			net, err := network.Build(m, network.Options{})
			if err != nil {
				t.Fatal(err)
			}
			var xs []ortInput
			for i, name := range net.InputNames {
				x, dt, err := onnx.ReadTensor(filepath.Join(dir, "test_data_set_0", fmt.Sprintf("input_%d.pb", i)))
				if err != nil {
					t.Fatal(err)
				}
				if dt != onnx.Float && dt != onnx.Double {
					t.Fatalf("input %q is %v; the ONNX Runtime runner feeds FLOAT or DOUBLE", name, dt)
				}
				xs = append(xs, ortInput{X: x, Double: dt == onnx.Double})
			}
			want, _, err := onnx.ReadTensor(filepath.Join(dir, "test_data_set_0", "output_0.pb"))
			if err != nil {
				t.Fatal(err)
			}
			for _, opset21 := range []bool{false, true} {
				path, e := exportTo(t, net, Config{Bits: make([]int, len(net.Layers())), Opset21: opset21})
				got := run(t, path, "all", xs...)
				if got.Size() != want.Size() {
					t.Fatalf("opset %d: output shape %v; want %v", e.Opset, got.Shape, want.Shape)
				}
				for i := range got.Data {
					if d := math.Abs(got.Data[i] - want.Data[i]); d > conformanceAbs+conformanceRel*math.Abs(want.Data[i]) {
						t.Fatalf("opset %d (from %d): output %d: got %v; want %v", e.Opset, m.Opset, i, got.Data[i], want.Data[i])
					}
				}
			}
		})
	}
}
