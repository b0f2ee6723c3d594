package cli

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mpsearch/demo"
	"mpsearch/onnx"

	"mpsearch/internal/citest"
)

const (
	fixtureDir = "../testdata/fmnist-lenet/"
	fmnistDir  = "/usr/share/datasets/fashion-mnist/"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// npyBytes builds an NPY v1 file of the given dtype descr and shape.
func npyBytes(descr string, shape []int, data []byte) []byte {
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = fmt.Sprint(d)
	}
	tuple := strings.Join(dims, ", ")
	if len(shape) == 1 {
		tuple += ","
	}
	h := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, tuple)
	pad := 64 - (10+len(h)+1)%64
	h += strings.Repeat(" ", pad%64) + "\n"
	var b bytes.Buffer
	b.WriteString("\x93NUMPY\x01\x00")
	binary.Write(&b, binary.LittleEndian, uint16(len(h)))
	b.WriteString(h)
	b.Write(data)
	return b.Bytes()
}

func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEvalFixtureAccuracy is the check: mpsearch eval over the
// Fashion-MNIST test set gives the fixture's ONNX Runtime accuracy (90.46%,
// testdata/fmnist-lenet/README.md) to 0.01 points.
func TestEvalFixtureAccuracy(t *testing.T) {
	imgs := fmnistDir + "t10k-images-idx3-ubyte.gz"
	if _, err := os.Stat(imgs); err != nil {
		citest.Missing(t, "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist, or scripts/setup.sh --test)")
	}
	code, out, errs := run(t, "eval", "--model", fixtureDir+"lenet.onnx", "--data", imgs,
		"--labels", fmnistDir+"t10k-labels-idx1-ubyte.gz", "--mean", "0.2860", "--std", "0.3530", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var res struct {
		Accuracy float64 `json:"accuracy"`
		Samples  int     `json:"samples"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("bad JSON %q: %v", out, err)
	}
	if res.Samples != 10000 || math.Abs(100*res.Accuracy-90.46) > 0.01+1e-9 {
		t.Errorf("got %.2f%% on %d images; want 90.46%% on 10000 (ONNX Runtime)", 100*res.Accuracy, res.Samples)
	}
}

func TestInspectFixture(t *testing.T) {
	code, out, errs := run(t, "inspect", "--model", fixtureDir+"lenet.onnx")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"/conv1/Conv", "/fc3/Gemm", "61706", "416520"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
}

// unsupportedModel returns ONNX bytes of a model with an operator the
// engine does not run.
func unsupportedModel(t *testing.T, op string, init float64) []byte {
	t.Helper()
	m := &onnx.Model{Opset: 13, Graph: &onnx.Graph{
		Name:         "g",
		Inputs:       []onnx.ValueInfo{{Name: "x", ElemType: onnx.Float, Shape: []onnx.Dim{{Value: -1}, {Value: 4}}}},
		Outputs:      []onnx.ValueInfo{{Name: "y", ElemType: onnx.Float}},
		Nodes:        []onnx.Node{{Name: "weird", OpType: op, Inputs: []string{"x", "w"}, Outputs: []string{"y"}}},
		Initializers: map[string]*tensorT{"w": tensorFrom([]float64{init, 1, 2, 3}, 4, 1)},
		InitTypes:    map[string]onnx.DataType{"w": onnx.Float},
		InitOrder:    []string{"w"},
	}}
	b, err := onnx.Marshal(m, onnx.SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBadInput(t *testing.T) {
	lenet, err := os.ReadFile(fixtureDir + "lenet.onnx")
	if err != nil {
		t.Fatal(err)
	}
	f32 := make([]byte, 2*3*8*8*4)
	good := writeTemp(t, "x.npy", npyBytes("<f4", []int{4, 1, 28, 28}, make([]byte, 4*28*28*4)))
	cases := []struct {
		name string
		args []string
		code int
		want string // in the one-line message
	}{
		{"truncated onnx", []string{"inspect", "--model", writeTemp(t, "t.onnx", lenet[:len(lenet)/3])}, 1, "malformed"},
		{"random bytes onnx", []string{"inspect", "--model", writeTemp(t, "r.onnx", []byte("\x07\xff\x13garbage\x00\x01 not a protobuf"))}, 1, "onnx"},
		{"unsupported op", []string{"inspect", "--model", writeTemp(t, "u.onnx", unsupportedModel(t, "FancyAttention", 0))}, 1, `"weird": operator FancyAttention`},
		{"nan weights", []string{"inspect", "--model", writeTemp(t, "n.onnx", unsupportedModel(t, "MatMul", math.NaN()))}, 1, "NaN"},
		{"missing model", []string{"inspect", "--model", "/nonexistent/m.onnx"}, 1, "no such file"},
		{"input shape mismatch", []string{"eval", "--model", fixtureDir + "lenet.onnx", "--data", writeTemp(t, "s.npy", npyBytes("<f4", []int{2, 3, 8, 8}, f32))}, 1, "[1 28 28]"},
		{"npy wrong dtype", []string{"eval", "--model", fixtureDir + "lenet.onnx", "--data", writeTemp(t, "c.npy", npyBytes("<c8", []int{2, 4}, make([]byte, 64)))}, 1, "c8"},
		{"missing data", []string{"eval", "--model", fixtureDir + "lenet.onnx", "--data", "/nonexistent/x.npy"}, 1, "no such file"},
		{"labels count mismatch", []string{"eval", "--model", fixtureDir + "lenet.onnx", "--data", good, "--labels", writeTemp(t, "y.npy", npyBytes("<i8", []int{3}, make([]byte, 24)))}, 1, "3 labels"},
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
		{"unknown flag", []string{"eval", "--colour", "red"}, 2, "colour"},
		{"bad bits", []string{"sensitivity", "--bits", "2,9"}, 2, "--bits"},
		{"bad metric", []string{"sensitivity", "--metrics", "direct,bogus"}, 2, `unknown metric "bogus"`},
		{"bad trace", []string{"sensitivity", "--trace", "guess"}, 2, "--trace"},
		{"model without data", []string{"eval", "--model", fixtureDir + "lenet.onnx"}, 2, "--data"},
		{"stray argument", []string{"inspect", "extra"}, 2, "extra"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, errs := run(t, c.args...)
			if code != c.code {
				t.Errorf("exit status: got %d; want %d (stderr %q)", code, c.code, errs)
			}
			lines := strings.Split(strings.TrimRight(errs, "\n"), "\n")
			last := lines[len(lines)-1]
			if !strings.Contains(last, c.want) {
				t.Errorf("error %q does not mention %q", last, c.want)
			}
			t.Logf("exit %d: %s", code, strings.TrimSpace(errs))
			if strings.Contains(errs, "goroutine ") || strings.Contains(errs, "panic") {
				t.Errorf("stderr shows a panic: %s", errs)
			}
			if c.code == 1 && len(lines) != 1 {
				t.Errorf("stderr has %d lines; want one: %q", len(lines), errs)
			}
		})
	}
}

// TestEvalDemo: with no --model, eval runs the built-in demo and gets the
// accuracy PyTorch measured on the same 1000 images (demo/meta.json).
func TestEvalDemo(t *testing.T) {
	code, out, errs := run(t, "eval", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var res struct {
		Accuracy float64 `json:"accuracy"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	meta, err := demo.Meta()
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(res.Accuracy-meta.FloatTestAccuracyDemo) > 1e-9 {
		t.Errorf("demo accuracy: got %.4f; want %.4f (PyTorch, demo/meta.json)", res.Accuracy, meta.FloatTestAccuracyDemo)
	}
}
