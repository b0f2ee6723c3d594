package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"mpsearch/dataset"
	"mpsearch/network"
	"mpsearch/pipeline"
)

// TestEvalStreamedMatchesLoaded checks that `mpsearch eval`, which streams
// --data batch by batch (and, with --bits, holds only the first
// --calib-samples samples), reports exactly the accuracies and loss the
// pipeline computes on the data set loaded whole and cut into views.
func TestEvalStreamedMatchesLoaded(t *testing.T) {
	model, data, labels := fixtureDir+"lenet.onnx", fixtureDir+"calib.npy", fixtureDir+"calib_labels.npy"
	bitsPath := filepath.Join(t.TempDir(), "bits.yaml")
	bitsYAML := "method: ilp\nlayers:\n" +
		"  - {name: /conv1/Conv, w_bits: 8, a_bits: 8}\n  - {name: /conv2/Conv, w_bits: 3, a_bits: 8}\n" +
		"  - {name: /fc1/Gemm, w_bits: 2, a_bits: 8}\n  - {name: /fc2/Gemm, w_bits: 4, a_bits: 8}\n  - {name: /fc3/Gemm, w_bits: 8, a_bits: 8}\n"
	if err := os.WriteFile(bitsPath, []byte(bitsYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	const batch, calibN = 100, 60
	opt := dataset.Options{Labels: labels, Mean: []float64{0.2860}, Std: []float64{0.3530}}
	ds, err := dataset.Load(data, opt)
	if err != nil {
		t.Fatal(err)
	}
	net, err := pipeline.LoadModel(model, pipeline.ModelOptions{SampleShape: ds.SampleShape(), Precision: network.F32})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	fl, err := pipeline.Evaluate(ctx, net, ds, pipeline.EvalOptions{Batch: batch})
	if err != nil {
		t.Fatal(err)
	}
	bits := []int{8, 3, 2, 4, 8}
	q, err := pipeline.EvaluateQuantized(ctx, net, ds.Subset(0, calibN), ds, bits, nil, batch, nil) // the bits file records no quantizer: round to nearest
	if err != nil {
		t.Fatal(err)
	}

	args := []string{"eval", "--model", model, "--data", data, "--labels", labels, "--mean", "0.2860", "--std", "0.3530", "--batch", "100", "--json"}
	code, out, errs := run(t, args...)
	if code != 0 {
		t.Fatalf("eval: exit %d: %s", code, errs)
	}
	var plain struct{ Accuracy, Loss float64 }
	if err := json.Unmarshal([]byte(out), &plain); err != nil {
		t.Fatal(err)
	}
	if plain.Accuracy != fl.Accuracy || plain.Loss != fl.Loss {
		t.Errorf("eval: accuracy %v loss %v; want %v %v (loaded whole)", plain.Accuracy, plain.Loss, fl.Accuracy, fl.Loss)
	}
	code, out, errs = run(t, append(args, "--bits", bitsPath, "--calib-samples", "60")...)
	if code != 0 {
		t.Fatalf("eval --bits: exit %d: %s", code, errs)
	}
	var quant struct {
		Accuracy map[string]float64
		Bits     []int
	}
	if err := json.Unmarshal([]byte(out), &quant); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"float": fl.Accuracy, "simulated": q.Simulated.Accuracy, "integer": q.Integer.Accuracy}
	for k, v := range want {
		if quant.Accuracy[k] != v {
			t.Errorf("eval --bits: %s accuracy %v; want %v (loaded whole)", k, quant.Accuracy[k], v)
		}
	}
	if q.Simulated.Accuracy == fl.Accuracy && q.Integer.Accuracy == fl.Accuracy {
		t.Errorf("the 2- and 3-bit layers changed no accuracy (%v): the check cannot tell the paths apart", fl.Accuracy)
	}
}
