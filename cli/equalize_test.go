package cli

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"mpsearch/internal/citest"
	"mpsearch/internal/fixture"
	"mpsearch/internal/ortrun"
	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/pipeline"
	"mpsearch/tensor"
)

// scaleTol bounds the relative difference between an exported weight
// scale (FLOAT) and max|w|/qmax of the equalized float64 weight: float32
// rounding (2^-24) with room.
const scaleTol = 1e-6

// TestSearchEqualizeExport runs `mpsearch search --equalize` on the
// depthwise-separable Fashion-MNIST CNN (the first 512 training images,
// bits 4,8): bits.yaml and summary.json record the equalization,
// model.qdq.onnx's per-channel weight scales are those of the equalized
// weights (max|w|/qmax, which GPTQ keeps), not the original ones, and ONNX
// Runtime's top-1 accuracy on the 10,000 test images is within
// gptqEvidenceORTPoints of our simulation of the same configuration on
// the equalized network.
func TestSearchEqualizeExport(t *testing.T) {
	imgs := fixture.FashionMNIST + "train-images-idx3-ubyte.gz"
	if _, err := os.Stat(imgs); err != nil {
		citest.Missing(t, "Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
	}
	if testing.Short() {
		t.Skip("a search and 10,000 test images: skipped with -short")
	}
	ort := ortrun.ForTest(t)
	t.Setenv("MPSEARCH_CACHE", "off")
	const model, limit = "../testdata/dwsep-fmnist/model.onnx", 512
	out := filepath.Join(t.TempDir(), "out")
	code, _, errs := run(t, "search", "--model", model, "--data", imgs, "--labels", fixture.FashionMNIST+"train-labels-idx1-ubyte.gz",
		"--limit", strconv.Itoa(limit), "--mean", "0.2860", "--std", "0.3530", "--bits", "4,8", "--size-budget", "0.7x", "--refine", "0", "--points", "2", "--equalize", "--out", out)
	if code != 0 {
		t.Fatalf("search: exit %d: %s", code, errs)
	}
	var sum struct{ Equalize bool }
	b, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err == nil {
		err = json.Unmarshal(b, &sum)
	}
	if err != nil {
		t.Fatal(err)
	}
	f, err := pipeline.ReadBitsFile(filepath.Join(out, "bits.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Equalize || !f.Equalize {
		t.Fatalf("equalize recorded: summary.json %t, bits.yaml %t; want true in both", sum.Equalize, f.Equalize)
	}
	path := filepath.Join(out, "model.qdq.onnx")
	bits, sim := simulatedAccuracy(t, model, imgs, limit, "gptq", out, fixture.TestSet(t, 0))
	checkEqualizedScales(t, model, path, bits)
	test := fixture.TestSet(t, 0)
	x32 := tensor.FromData(append([]float64(nil), test.X.Data...), test.X.Shape...)
	for i, v := range x32.Data {
		x32.Data[i] = float64(float32(v))
	}
	outs, err := ort.Run(context.Background(), path, "all", ortrun.Input{X: x32})
	if err != nil {
		t.Fatal(err)
	}
	ortAcc := 100 * float64(countCorrectRows(outs[0], test.Y)) / float64(test.Len())
	t.Logf("bits %v: ONNX Runtime %.2f%%, simulated %.2f%%", bits, ortAcc, sim)
	if math.Abs(ortAcc-sim) > gptqEvidenceORTPoints {
		t.Errorf("ONNX Runtime %.2f%% vs simulated %.2f%%: differ by more than %.1f points", ortAcc, sim, gptqEvidenceORTPoints)
	}
}

// checkEqualizedScales checks every layer's exported per-channel scales
// against max|w|/qmax of the equalized weights, and that some channel's
// differs from the original weights' (so the file is not the unequalized
// model).
func checkEqualizedScales(t *testing.T, model, path string, bits []int) {
	t.Helper()
	net, err := pipeline.LoadModel(model, pipeline.ModelOptions{Precision: network.F32})
	if err != nil {
		t.Fatal(err)
	}
	eq, _, err := pipeline.Equalize(net)
	if err != nil {
		t.Fatal(err)
	}
	m, err := onnx.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	scaleOf := map[string]*tensor.Tensor{} // layer node -> its weight's DequantizeLinear scale
	deq := map[string]string{}             // DequantizeLinear output -> scale name
	for _, n := range m.Graph.Nodes {
		if n.OpType == "DequantizeLinear" {
			deq[n.Outputs[0]] = n.Inputs[1]
		}
	}
	for _, n := range m.Graph.Nodes {
		if len(n.Inputs) > 1 && deq[n.Inputs[1]] != "" {
			scaleOf[n.Name] = m.Graph.Initializers[deq[n.Inputs[1]]]
		}
	}
	differs := false
	for li, l := range eq.Layers() {
		s := scaleOf[l.Node]
		qmax := math.Pow(2, float64(bits[li]-1)) - 1
		we, w0 := eq.Params()[l.Weight].Value, net.Params()[net.Layers()[li].Weight].Value
		if s == nil || s.Size() != we.Shape[0] {
			t.Fatalf("%s: exported scale %v; want one per output channel (%d)", l.Node, s, we.Shape[0])
		}
		per := we.Size() / we.Shape[0]
		for c := 0; c < we.Shape[0]; c++ {
			me, m0 := 0.0, 0.0
			for _, v := range we.Data[c*per : (c+1)*per] {
				me = math.Max(me, math.Abs(v))
			}
			for _, v := range w0.Data[c*per : (c+1)*per] {
				m0 = math.Max(m0, math.Abs(v))
			}
			if got, want := s.Data[c], me/qmax; math.Abs(got-want) > scaleTol*want {
				t.Errorf("%s channel %d: exported scale %g; want the equalized weight's %g", l.Node, c, got, want)
			}
			differs = differs || math.Abs(me-m0) > 0.01*m0
		}
	}
	if !differs {
		t.Error("every exported scale is also the original weights' (within 1%); want the equalized ones to differ somewhere")
	}
}

// TestEqualizeFlags: search --table adopts the table's equalization
// unless --equalize is given and refuses a table measured the other way
// (naming the flag); bits.yaml and summary.json of a table-only search
// record the adopted value.
func TestEqualizeFlags(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name      string
		equalized bool
		args      []string
		code      int
		want      string
	}{
		{"table equalized, flag false", true, []string{"--equalize=false"}, 1, "--equalize=true"},
		{"table not equalized, flag", false, []string{"--equalize"}, 1, "--equalize=false"},
		{"table equalized adopted", true, nil, 0, ""},
		{"table not equalized adopted", false, nil, 0, ""},
	} {
		table := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".yaml")
		head := "model_sha256: abc\nquantizer: gptq\n"
		if c.equalized {
			head += "equalized: true\n"
		}
		if err := os.WriteFile(table, []byte(head+tableYAML), 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "out-"+strings.ReplaceAll(c.name, " ", "-"))
		args := append([]string{"search", "--table", table, "--size-budget", "3000", "--keep-ends=false", "--out", out}, c.args...)
		code, _, errs := run(t, args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d mentioning %q", c.name, code, errs, c.code, c.want)
		}
		if code != 0 {
			continue
		}
		f, err := pipeline.ReadBitsFile(filepath.Join(out, "bits.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var sum struct{ Equalize bool }
		b, err := os.ReadFile(filepath.Join(out, "summary.json"))
		if err == nil {
			err = json.Unmarshal(b, &sum)
		}
		if err != nil {
			t.Fatal(err)
		}
		if f.Equalize != c.equalized || sum.Equalize != c.equalized {
			t.Errorf("%s: bits.yaml equalize %t, summary.json %t; want the table's %t", c.name, f.Equalize, sum.Equalize, c.equalized)
		}
	}
}

// TestEvalBitsFollowsEqualize: eval --bits equalizes as bits.yaml records
// unless --equalize is given (the JSON says which it did), and the
// equalized model's simulated and integer-only accuracies differ from the
// plain one's at 2 bits (the weights quantized are not the same), while
// the float accuracy is the same.
func TestEvalBitsFollowsEqualize(t *testing.T) {
	dir := t.TempDir()
	layers := "layers:\n  - {name: /conv1/Conv, w_bits: 2, a_bits: 8}\n  - {name: /conv2/Conv, w_bits: 2, a_bits: 8}\n" +
		"  - {name: /fc1/Gemm, w_bits: 2, a_bits: 8}\n  - {name: /fc2/Gemm, w_bits: 2, a_bits: 8}\n  - {name: /fc3/Gemm, w_bits: 2, a_bits: 8}\n"
	type res struct {
		Equalize bool
		Accuracy struct{ Float, Simulated, Integer float64 }
	}
	got := map[string]res{}
	for _, c := range []struct {
		name, yaml string
		args       []string
		want       bool
	}{
		{"recorded", "method: ilp\nequalize: true\n", nil, true},
		{"flag off", "method: ilp\nequalize: true\n", []string{"--equalize=false"}, false},
		{"flag on", "method: ilp\n", []string{"--equalize"}, true},
	} {
		bits := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".yaml")
		if err := os.WriteFile(bits, []byte(c.yaml+layers), 0o644); err != nil {
			t.Fatal(err)
		}
		args := append([]string{"eval", "--model", fixtureDir + "lenet.onnx", "--data", fixtureDir + "calib.npy", "--labels", fixtureDir + "calib_labels.npy",
			"--bits", bits, "--calib-samples", "128", "--json"}, c.args...)
		code, out, errs := run(t, args...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", c.name, code, errs)
		}
		var r res
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%s: %v in %q", c.name, err, out)
		}
		if r.Equalize != c.want {
			t.Errorf("%s: equalize %t; want %t", c.name, r.Equalize, c.want)
		}
		got[c.name] = r
	}
	if got["recorded"] != got["flag on"] {
		t.Errorf("bits.yaml's equalize %+v and --equalize %+v differ; want the same evaluation", got["recorded"], got["flag on"])
	}
	if a, b := got["recorded"].Accuracy, got["flag off"].Accuracy; a.Float != b.Float || a.Float == 0 || a.Simulated == b.Simulated || a.Integer == b.Integer {
		t.Errorf("equalized %+v, plain %+v; want the same float accuracy and different simulated and integer-only accuracies at 2 bits", a, b)
	}
}
