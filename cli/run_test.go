package cli

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mpsearch/dataset"
)

// runFixtureAbs bounds |ours - ONNX Runtime| on the fixture LeNet's logits:
// testdata/fmnist-lenet/README.md gives ONNX Runtime 1.30's float32 logits,
// which PyTorch matches to 7.6e-6; the README of the project claims 1e-5.
const runFixtureAbs = 1e-5

// TestRunFixtureLogits runs `mpsearch run` on the fixture's 256 calibration
// images in uneven batches and compares with ONNX Runtime's logits shipped
// with the fixture; the file does not depend on the thread count.
func TestRunFixtureLogits(t *testing.T) {
	want, err := dataset.ReadNPY(fixtureDir + "calib_logits.npy")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var files [][]byte
	for _, threads := range []string{"1", "2"} {
		out := filepath.Join(dir, "out"+threads+".npy")
		code, _, errs := run(t, "run", "--model", fixtureDir+"lenet.onnx", "--data", fixtureDir+"calib.npy", "--out", out, "--batch", "100", "--threads", threads)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		if !strings.Contains(errs, `output "logits", shape [256 10]`) {
			t.Errorf("stderr %q does not name the output and its shape", errs)
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
		if len(got.Shape) != 2 || got.Shape[0] != 256 || got.Shape[1] != 10 {
			t.Fatalf("output shape: got %v; want [256 10]", got.Shape)
		}
		worst := 0.0
		for i := range got.Data {
			worst = math.Max(worst, math.Abs(got.Data[i]-want.Data[i]))
		}
		if worst > runFixtureAbs {
			t.Errorf("--threads %s: max |ours - ONNX Runtime| = %.3g; want <= %g", threads, worst, runFixtureAbs)
		}
	}
	if !bytes.Equal(files[0], files[1]) {
		t.Error("--threads 1 and --threads 2 wrote different files; want byte-identical")
	}
}

// TestRunInterrupted: an interrupt exits 1 with one line and writes nothing.
func TestRunInterrupted(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.npy")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	code := Run(ctx, []string{"run", "--model", fixtureDir + "lenet.onnx", "--data", fixtureDir + "calib.npy", "--out", out}, &stdout, &stderr)
	if code != 1 {
		t.Errorf("exit status: got %d; want 1", code)
	}
	if got := stderr.String(); got != "mpsearch run: interrupted; nothing written\n" {
		t.Errorf("stderr: got %q; want one line \"mpsearch run: interrupted; nothing written\"", got)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("an interrupted run left %d files in the output folder; want none", len(ents))
	}
}

// TestInputShapeFlag checks --input-shape's strict syntax on every command
// that takes it (exit 2) and the one-line error for an input the model does
// not have (exit 1).
func TestInputShapeFlag(t *testing.T) {
	lenet := fixtureDir + "lenet.onnx"
	data := fixtureDir + "calib.npy"
	out := filepath.Join(t.TempDir(), "o.npy")
	for _, bad := range []string{"1x1x28x28", "=1x1x28x28", "input=", "input=1x1x28x", "input=1x1xx28", "input=1x0x28x28",
		"input=1x-1x28x28", "input=1x1x28x28.0", "input=1X1X28X28", "input= 1x1x28x28", "input=1,1,28,28", "input=+1x1x28x28"} {
		for _, cmd := range [][]string{
			{"run", "--model", lenet, "--data", data, "--out", out},
			{"eval", "--model", lenet, "--data", data},
			{"sensitivity", "--model", lenet, "--data", data},
			{"search", "--model", lenet, "--data", data},
			{"pareto", "--model", lenet, "--data", data},
		} {
			code, _, errs := run(t, append(cmd, "--input-shape", bad)...)
			if code != 2 || !strings.Contains(errs, "input-shape") || !strings.Contains(errs, "NAME=DxDx...xD") || strings.Count(errs, "\n") != 1 {
				t.Errorf("%s --input-shape %q: got exit %d, %q; want exit 2 and one line naming --input-shape and its syntax", cmd[0], bad, code, errs)
			}
		}
	}
	code, _, errs := run(t, "run", "--model", lenet, "--data", data, "--out", out, "--input-shape", "input=1x1x28x28", "--input-shape", "input=2x1x28x28")
	if code != 2 || !strings.Contains(errs, "given twice") {
		t.Errorf("an input given twice: got exit %d, %q; want exit 2", code, errs)
	}
	code, _, errs = run(t, "run", "--model", lenet, "--data", data, "--out", out, "--input-shape", "image=1x1x28x28")
	if code != 1 || !strings.Contains(errs, `input "image"`) || !strings.Contains(errs, "its inputs: input") || strings.Count(errs, "\n") != 1 {
		t.Errorf("unknown input name: got exit %d, %q; want exit 1 and one line naming the model's inputs", code, errs)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("failed runs wrote the output file")
	}
	code, _, errs = run(t, "run", "--model", lenet, "--data", data, "--out", out, "--input-shape", "input=7x1x28x28")
	if code != 0 {
		t.Errorf("the model's own shape (batch value ignored): got exit %d, %q; want 0", code, errs)
	}
	code, _, errs = run(t, "run", "--model", lenet, "--data", data)
	if code != 2 || !strings.Contains(errs, "--out") {
		t.Errorf("run without --out: got exit %d, %q; want exit 2 naming --out", code, errs)
	}
}

// TestUsageListsRun checks that the command list shows run.
func TestUsageListsRun(t *testing.T) {
	code, out, _ := run(t, "help")
	if code != 0 || !strings.Contains(out, "\n  run ") {
		t.Errorf("help: exit %d, %q; want a line for run", code, out)
	}
}
