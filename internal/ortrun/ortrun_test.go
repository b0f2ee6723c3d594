package ortrun

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"mpsearch/onnx"
)

// conformanceTol is the tolerance of the ONNX backend node tests
// (onnx/backend/test/runner: rtol 1e-3, atol 1e-7), for ONNX Runtime's
// float32 against ONNX's reference outputs.
const (
	conformanceRel = 1e-3
	conformanceAbs = 1e-7
)

// TestRunConformanceCases runs ONNX conformance cases through run_ort.js,
// with float32 and float64 inputs, and compares the outputs with the cases'
// reference outputs.
func TestRunConformanceCases(t *testing.T) {
	r := ForTest(t)
	for _, name := range []string{"test_Conv2d_groups", "test_MaxPool2d", "test_Sigmoid", "test_Softmax"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("..", "..", "network", "testdata", "onnx-conformance", name)
			var ins []Input
			for i := 0; ; i++ {
				x, dt, err := onnx.ReadTensor(filepath.Join(dir, "test_data_set_0", "input_"+string(rune('0'+i))+".pb"))
				if err != nil {
					break
				}
				ins = append(ins, Input{X: x, Double: dt == onnx.Double})
			}
			if len(ins) == 0 {
				t.Fatalf("%s: no inputs", dir)
			}
			want, _, err := onnx.ReadTensor(filepath.Join(dir, "test_data_set_0", "output_0.pb"))
			if err != nil {
				t.Fatal(err)
			}
			outs, err := r.Run(context.Background(), filepath.Join(dir, "model.onnx"), "all", ins...)
			if err != nil {
				t.Fatal(err)
			}
			if len(outs) != 1 || outs[0].Size() != want.Size() {
				t.Fatalf("got %d outputs, the first of shape %v; want 1 of shape %v", len(outs), outs[0].Shape, want.Shape)
			}
			for i, w := range want.Data {
				if d := math.Abs(outs[0].Data[i] - w); d > conformanceAbs+conformanceRel*math.Abs(w) {
					t.Fatalf("output[%d]: got %v; want %v", i, outs[0].Data[i], w)
				}
			}
		})
	}
}

// TestRunReportsErrors checks that a failed run is an error naming the
// model, not a panic or empty outputs.
func TestRunReportsErrors(t *testing.T) {
	r := ForTest(t)
	_, err := r.Run(context.Background(), filepath.Join(t.TempDir(), "missing.onnx"), "all")
	if err == nil {
		t.Fatal("missing model: got no error")
	}
	t.Log(err)
}
