package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"mpsearch/dataset"
	"mpsearch/internal/fixture"
	"mpsearch/internal/ortrun"
	"mpsearch/network"
	"mpsearch/pipeline"
	"mpsearch/tensor"
)

// gptqEvidenceORTPoints is the bound on the exported model: its
// top-1 accuracy in ONNX Runtime within 0.1 point of our simulation of the
// same configuration on the same 10,000 test images.
const gptqEvidenceORTPoints = 0.1

// TestQuantizerEvidence runs `mpsearch search` with --quantizer rtn and
// gptq on the Fashion-MNIST models of the README's results table, with the
// README's settings (the first 2048 (LeNet) or 1024 (VGG) training images,
// the last quarter held out for verification, bits 2,3,4,8, ends at 8,
// size budgets at the uniform-3 and uniform-4 sizes, default --refine), and
// measures the returned configuration on the 10,000 test images twice: by
// our simulation (the pipeline's verifier with the same calibration
// images, activation ranges and weight codes as the search) and by ONNX
// Runtime on the exported model.qdq.onnx. It logs a Markdown table and
// checks ONNX Runtime against the simulation. Opt-in (minutes per search):
// MPSEARCH_QUANTIZER_EVIDENCE=lenet, vgg or lenet,vgg.
func TestQuantizerEvidence(t *testing.T) {
	which, imgs, ort, test, x32 := fmnistEvidence(t, "MPSEARCH_QUANTIZER_EVIDENCE", "minutes per search")
	var rows []string
	for _, m := range []struct {
		name, path string
		limit      int
		budgets    []string
	}{
		{"lenet", "../testdata/fmnist-lenet/lenet.onnx", 2048, []string{"23052", "30735"}},
		{"vgg", "../testdata/vgg-fmnist/model.onnx", 1024, []string{"0.375x", "0.5x"}},
	} {
		if !strings.Contains(which, m.name) {
			continue
		}
		for _, budget := range m.budgets {
			for _, q := range []string{"rtn", "gptq"} {
				out := filepath.Join(t.TempDir(), m.name+"-"+q)
				args := []string{"search", "--model", m.path, "--data", imgs, "--labels", fixture.FashionMNIST + "train-labels-idx1-ubyte.gz",
					"--limit", fmt.Sprint(m.limit), "--mean", "0.2860", "--std", "0.3530", "--size-budget", budget, "--quantizer", q, "--out", out}
				code, stdout, stderr := run(t, args...)
				if code != 0 {
					t.Fatalf("mpsearch %s: exit %d\n%s\n%s", strings.Join(args, " "), code, stdout, stderr)
				}
				bits, sim := simulatedAccuracy(t, m.path, imgs, m.limit, q, out, test)
				outs, err := ort.Run(context.Background(), filepath.Join(out, "model.qdq.onnx"), "all", ortrun.Input{X: x32})
				if err != nil {
					t.Fatal(err)
				}
				ortAcc := 100 * float64(countCorrectRows(outs[0], test.Y)) / float64(test.Len())
				rows = append(rows, fmt.Sprintf("| %s, %s | %s | %v | %.2f%% | %.2f%% |", m.name, budget, q, bits, sim, ortAcc))
				t.Log(rows[len(rows)-1])
				if math.Abs(ortAcc-sim) > gptqEvidenceORTPoints {
					t.Errorf("%s at %s with %s: ONNX Runtime %.2f%% vs simulated %.2f%%: differ by more than %.1f points", m.name, budget, q, ortAcc, sim, gptqEvidenceORTPoints)
				}
			}
		}
	}
	t.Log("\n| model, size budget | --quantizer | returned bits | simulated | ONNX Runtime |\n|---|---|---|---|---|\n" + strings.Join(rows, "\n"))
}

// simulatedAccuracy reads the search's bits.yaml and summary.json in out
// and measures the returned configuration on test as the search simulates
// it: the first limit·3/4 images of imgs for the activation ranges and the
// weight codes of quantizer with the bias correction bits.yaml records, at
// the configuration's options (codes at an option do not depend on which
// other options are prepared).
func simulatedAccuracy(t *testing.T, model, imgs string, limit int, quantizer, out string, test *dataset.Dataset) ([]int, float64) {
	t.Helper()
	ctx := context.Background()
	f, err := pipeline.ReadBitsFile(filepath.Join(out, "bits.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var sum struct{ Quantizer string }
	b, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err == nil {
		err = json.Unmarshal(b, &sum)
	}
	if err != nil {
		t.Fatal(err)
	}
	if f.Quantizer != quantizer || sum.Quantizer != quantizer {
		t.Errorf("quantizer recorded: bits.yaml %q, summary.json %q; want %q", f.Quantizer, sum.Quantizer, quantizer)
	}
	net, err := pipeline.LoadModel(model, pipeline.ModelOptions{Precision: network.F32}) // mpsearch's default --precision
	if err != nil {
		t.Fatal(err)
	}
	if f.Equalize {
		if net, _, err = pipeline.Equalize(net); err != nil {
			t.Fatal(err)
		}
	}
	bits, err := pipeline.BitsFor(net, f)
	if err != nil {
		t.Fatal(err)
	}
	all, err := dataset.Load(imgs, dataset.Options{Mean: fixture.Mean, Std: fixture.Std, Limit: limit})
	if err != nil {
		t.Fatal(err)
	}
	nh := int(math.Round(float64(limit) * 0.25))
	calib, held := all.Subset(0, limit-nh), all.Subset(limit-nh, nh)
	codes, err := pipeline.NewWeightSource(ctx, net, calib, pipeline.WeightSpec{Method: quantizer, BiasCorrection: f.BiasCorrection}, slices.Compact(slices.Sorted(slices.Values(bits))), 256, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := pipeline.NewNetVerifier(ctx, net, calib, held, 256)
	if err != nil {
		t.Fatal(err)
	}
	v.Weights = codes
	r, err := v.SimulatedAccuracy(ctx, test, bits)
	if err != nil {
		t.Fatal(err)
	}
	return bits, 100 * r.Accuracy
}

// countCorrectRows counts the rows of z whose largest value is at the label.
func countCorrectRows(z *tensor.Tensor, y []int) int {
	k := z.Size() / z.Shape[0]
	n := 0
	for i, label := range y {
		row := z.Data[i*k : (i+1)*k]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		if best == label {
			n++
		}
	}
	return n
}

// fmnistEvidence is the setup of the opt-in Fashion-MNIST evidence tests:
// the models named by the environment variable env (skipping when it is
// unset or the data set is not installed), the training images file, ONNX
// Runtime, the 10,000 test images and those images rounded to float32
// (the exported model's input).
func fmnistEvidence(t *testing.T, env, cost string) (which, imgs string, ort *ortrun.Runner, test *dataset.Dataset, x32 *tensor.Tensor) {
	t.Helper()
	which = os.Getenv(env)
	if which == "" {
		t.Skipf("opt-in: %s=lenet,vgg (%s)", env, cost)
	}
	imgs = fixture.FashionMNIST + "train-images-idx3-ubyte.gz"
	if _, err := os.Stat(imgs); err != nil {
		t.Skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
	}
	ort = ortrun.ForTest(t)
	test = fixture.TestSet(t, 0)
	x32 = tensor.FromData(append([]float64(nil), test.X.Data...), test.X.Shape...)
	for i, v := range x32.Data {
		x32.Data[i] = float64(float32(v))
	}
	return which, imgs, ort, test, x32
}
