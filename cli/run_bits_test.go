package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mpsearch/dataset"
	"mpsearch/intengine"
	"mpsearch/network"
	"mpsearch/pipeline"
	"mpsearch/tensor"
)

// TestRunBitsIsTheIntegerEngine: `mpsearch run --bits` writes the integer
// engine's outputs, the float32 of what intengine.Compile and Model.Run
// give on the fixture LeNet with ranges from the same samples, and the
// same file at --threads 1 and 2.
func TestRunBitsIsTheIntegerEngine(t *testing.T) {
	// The commands build the float network in float32 (--precision f32).
	net, err := pipeline.LoadModel(fixtureDir+"lenet.onnx", pipeline.ModelOptions{Precision: network.F32})
	if err != nil {
		t.Fatal(err)
	}
	bits := []int{8, 4, 2, 3, 8}
	var yml strings.Builder
	yml.WriteString("method: ilp\nlayers:\n")
	for i, l := range net.Layers() {
		yml.WriteString("  - name: " + l.Node + "\n    w_bits: " + string(rune('0'+bits[i])) + "\n    a_bits: 8\n")
	}
	dir := t.TempDir()
	bitsPath := filepath.Join(dir, "bits.yaml")
	if err := os.WriteFile(bitsPath, []byte(yml.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	calib, err := dataset.Load(fixtureDir+"calib.npy", dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, err := intengine.ObserveRanges(ctx, net, []*tensor.Tensor{calib.X})
	if err != nil {
		t.Fatal(err)
	}
	m, err := intengine.Compile(net, intengine.Config{Bits: bits, Ranges: r})
	if err != nil {
		t.Fatal(err)
	}
	want, err := m.Run(ctx, calib.X)
	if err != nil {
		t.Fatal(err)
	}
	var files [][]byte
	for _, threads := range []string{"1", "2"} {
		out := filepath.Join(dir, "out"+threads+".npy")
		code, _, errs := run(t, "run", "--model", fixtureDir+"lenet.onnx", "--data", fixtureDir+"calib.npy", "--bits", bitsPath, "--out", out, "--batch", "100", "--threads", threads)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		if !strings.Contains(errs, "integer-only engine") {
			t.Errorf("stderr %q does not name the integer-only engine", errs)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, b)
		got, err := dataset.ReadNPY(out)
		if err != nil {
			t.Fatal(err)
		}
		if !tensor.SameShape(got.Shape, want.Shape) {
			t.Fatalf("output shape: got %v; want %v", got.Shape, want.Shape)
		}
		for i := range got.Data {
			if w := float64(float32(want.Data[i])); got.Data[i] != w {
				t.Fatalf("--threads %s: output %d = %v; the integer engine gives %v", threads, i, got.Data[i], w)
			}
		}
	}
	if !bytes.Equal(files[0], files[1]) {
		t.Error("--threads 1 and --threads 2 wrote different files; want byte-identical")
	}
}
