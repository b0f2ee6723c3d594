package cli

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"mpsearch/internal/citest"
	"mpsearch/internal/fixture"
	"mpsearch/internal/ortrun"
	"mpsearch/onnx"
	"mpsearch/tensor"
)

// TestSearchExportsINT4 runs `mpsearch search` on the fixture LeNet at the
// uniform-3-bit size (the first 512 Fashion-MNIST training images, bits
// 2,3,4,8, --refine 0): model.qdq.onnx stores the weights of 4 bits or
// fewer as INT4 at opset 21 and the others as INT8, stdout gives its size
// (the file's) next to the predicted weight size, and ONNX Runtime's top-1
// accuracy on the 10,000 test images is within gptqEvidenceORTPoints of
// our simulation of the returned configuration.
func TestSearchExportsINT4(t *testing.T) {
	imgs := fixture.FashionMNIST + "train-images-idx3-ubyte.gz"
	if _, err := os.Stat(imgs); err != nil {
		citest.Missing(t, "Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
	}
	if testing.Short() {
		t.Skip("a search and 10,000 test images: skipped with -short")
	}
	ort := ortrun.ForTest(t)
	t.Setenv("MPSEARCH_CACHE", "off")
	const model, limit = "../testdata/fmnist-lenet/lenet.onnx", 512
	out := filepath.Join(t.TempDir(), "out")
	code, stdout, errs := run(t, "search", "--model", model, "--data", imgs, "--labels", fixture.FashionMNIST+"train-labels-idx1-ubyte.gz",
		"--limit", strconv.Itoa(limit), "--mean", "0.2860", "--std", "0.3530", "--size-budget", "23052", "--refine", "0", "--out", out)
	if code != 0 {
		t.Fatalf("search: exit %d: %s", code, errs)
	}
	path := filepath.Join(out, "model.qdq.onnx")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`model\.qdq\.onnx: (\d+) B at opset 21; predicted weight size (\d+) B`).FindStringSubmatch(stdout)
	if line == nil {
		line = []string{"", ""}
	}
	if line[1] != strconv.FormatInt(fi.Size(), 10) {
		t.Errorf("stdout %q; want a line giving model.qdq.onnx's %d B at opset 21 and the predicted size", stdout, fi.Size())
	}
	m, err := onnx.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	bits, sim := simulatedAccuracy(t, model, imgs, limit, "gptq", out, fixture.TestSet(t, 0))
	types := map[onnx.DataType]int{}
	for name, dt := range m.Graph.InitTypes {
		if regexp.MustCompile(`_quantized$`).MatchString(name) {
			types[dt]++
		}
	}
	n4 := 0
	for _, b := range bits {
		if b <= 4 {
			n4++
		}
	}
	if m.Opset != 21 || n4 == 0 || types[onnx.Int4] != n4 || types[onnx.Int8] != len(bits)-n4 {
		t.Errorf("bits %v: opset %d, INT4 weights %d, INT8 %d; want opset 21, %d INT4 and %d INT8", bits, m.Opset, types[onnx.Int4], types[onnx.Int8], n4, len(bits)-n4)
	}
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
	t.Logf("bits %v, %q: ONNX Runtime %.2f%%, simulated %.2f%%", bits, line[0], ortAcc, sim)
	if math.Abs(ortAcc-sim) > gptqEvidenceORTPoints {
		t.Errorf("ONNX Runtime %.2f%% vs simulated %.2f%%: differ by more than %.1f points", ortAcc, sim, gptqEvidenceORTPoints)
	}
}
