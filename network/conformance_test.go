package network

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

// Tolerance of the ONNX backend tests for float32 outputs (onnx/backend/test
// runner: rtol 1e-3 by default; the issue asks for the tighter 1e-5/1e-6).
const (
	conformanceRel = 1e-5
	conformanceAbs = 1e-6
)

// f32Rel bounds the float32 engine's difference from the float64 engine,
// relative to the largest magnitude of the output (issue 9, must-show 1).
const f32Rel = 1e-4

// conformanceSkips lists the cases the engine does not run, with the reason.
// The test fails if a listed case starts passing or an unlisted one is
// unsupported, so this list is always exact.
var conformanceSkips = map[string]string{
	"test_scatternd_add": "ScatterND reductions other than none (opset 16) are not implemented; no supported exporter emits them for classifiers",
}

// TestConformance runs every ONNX conformance case in testdata (copied from
// the ONNX project's backend test data, Apache-2.0, see LICENSE-onnx there).
func TestConformance(t *testing.T) {
	dirs, err := filepath.Glob("testdata/onnx-conformance/test_*")
	// Node test cases of the operators added since, from Debian's
	// libonnx-testdata (ONNX 1.12 backend tests, Apache-2.0, see
	// testdata/onnx-node/LICENSE-onnx).
	more, err2 := filepath.Glob("testdata/onnx-node/test_*")
	dirs = append(dirs, more...)
	if err == nil {
		err = err2
	}
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no conformance cases found: %v", err)
	}
	ran := 0
	for _, dir := range dirs {
		name := filepath.Base(dir)
		t.Run(name, func(t *testing.T) {
			err := runConformanceCase(dir)
			if err == nil {
				err = compareF32Case(dir)
			}
			reason, skipped := conformanceSkips[name]
			switch {
			case skipped && err == nil:
				t.Fatalf("listed as skipped (%s) but passes: remove it from conformanceSkips", reason)
			case skipped && errors.Is(err, ErrUnsupported):
				t.Skipf("skipped: %s (%v)", reason, err)
			case err != nil:
				t.Fatal(err)
			}
			ran++
		})
	}
	t.Logf("%d of %d conformance cases pass; skipped: %v", ran, len(dirs), conformanceSkips)
}

func runConformanceCase(dir string) error {
	m, pass, err := conformanceRun(dir, F64)
	if err != nil {
		return err
	}
	data := filepath.Join(dir, "test_data_set_0")
	// Every graph output is checked (Split has several).
	for k, o := range m.Graph.Outputs {
		want, _, err := onnx.ReadTensor(filepath.Join(data, fmt.Sprintf("output_%d.pb", k)))
		if err != nil {
			return err
		}
		got := pass.Value(o.Name)
		if got == nil {
			return fmt.Errorf("output %q: not computed", o.Name)
		}
		if got.Size() != want.Size() {
			return fmt.Errorf("output %q shape: got %v; want %v", o.Name, got.Shape, want.Shape)
		}
		for i := range want.Data {
			if d := math.Abs(got.Data[i] - want.Data[i]); d > conformanceAbs+conformanceRel*math.Abs(want.Data[i]) || math.IsNaN(d) != math.IsNaN(want.Data[i]) {
				return fmt.Errorf("output %q[%d]: got %.9g; want %.9g (|diff| %.3g)", o.Name, i, got.Data[i], want.Data[i], d)
			}
		}
	}
	return nil
}

// compareF32Case runs a case at F32 and checks every output against F64's
// within f32Rel of the output's largest magnitude.
func compareF32Case(dir string) error {
	m, p64, err := conformanceRun(dir, F64)
	if err != nil {
		return err
	}
	_, p32, err := conformanceRun(dir, F32)
	if err != nil {
		return fmt.Errorf("f32: %w", err)
	}
	for _, o := range m.Graph.Outputs {
		want, got := p64.Value(o.Name), p32.Value(o.Name)
		if err := closeRelMax(got.Data, want.Data, f32Rel); err != nil {
			return fmt.Errorf("f32 output %q: %w", o.Name, err)
		}
	}
	return nil
}

// closeRelMax checks |got[i]-want[i]| <= rel·max|want| for every i (NaNs
// must match).
func closeRelMax(got, want []float64, rel float64) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d values; want %d", len(got), len(want))
	}
	scale := 0.0
	for _, v := range want {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			scale = math.Max(scale, math.Abs(v))
		}
	}
	for i := range want {
		if got[i] == want[i] || (math.IsNaN(got[i]) && math.IsNaN(want[i])) {
			continue
		}
		if d := math.Abs(got[i] - want[i]); !(d <= rel*scale) {
			return fmt.Errorf("[%d]: got %.9g; want %.9g (|diff| %.3g > %.1g·%.3g)", i, got[i], want[i], d, rel, scale)
		}
	}
	return nil
}

// conformanceRun runs a case's model on its inputs at precision prec.
func conformanceRun(dir string, prec Precision) (*onnx.Model, *Pass, error) {
	m, err := onnx.Load(filepath.Join(dir, "model.onnx"))
	if err != nil {
		return nil, nil, err
	}
	net, err := Build(m, Options{NoFold: true, Precision: prec})
	if err != nil {
		return nil, nil, err
	}
	data := filepath.Join(dir, "test_data_set_0")
	var ins []*tensor.Tensor
	for i := 0; ; i++ {
		p := filepath.Join(data, fmt.Sprintf("input_%d.pb", i))
		if _, err := os.Stat(p); err != nil {
			break
		}
		x, _, err := onnx.ReadTensor(p)
		if err != nil {
			return nil, nil, err
		}
		ins = append(ins, x)
	}
	pass, err := net.ForwardAll(context.Background(), ins, nil)
	return m, pass, err
}
