// Package ortrun runs ONNX models in ONNX Runtime (onnxruntime-node 1.30)
// for the tests that compare mpsearch with it: the exported QDQ models
// (export), the torchvision classifiers (cli). It is the one runner: the
// node script run_ort.js next to this file reads NPY inputs and writes
// every output as NPY.
//
// Invariants: inputs go to ONNX Runtime exactly (float32 or float64 as
// asked); outputs come back in the model's output order, converted to
// float64 exactly; ONNX Runtime runs on one thread, so its results do not
// depend on the machine's CPU count.
package ortrun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"mpsearch/dataset"
	"mpsearch/tensor"
)

// ErrUnavailable is wrapped by New's error when node or onnxruntime-node is
// missing; the message says how to install them.
var ErrUnavailable = errors.New("ONNX Runtime for Node is not available")

// Install is the command, run from the repository root, that installs
// onnxruntime-node where run_ort.js finds it (scripts/setup.sh --test runs
// it).
const Install = "npm install --prefix internal/ortrun --ignore-scripts --no-save --no-package-lock onnxruntime-node@1.30.0"

// Runner runs models through run_ort.js.
type Runner struct {
	node   string
	script string
}

// New finds node, run_ort.js and onnxruntime-node: in node_modules next to
// the script, or in a folder listed in NODE_PATH.
func New() (*Runner, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("node is not installed (apt-get install nodejs npm, then %s): %w", Install, ErrUnavailable)
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return nil, fmt.Errorf("cannot locate run_ort.js: %w", ErrUnavailable)
	}
	dir := filepath.Dir(file)
	script := filepath.Join(dir, "run_ort.js")
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrUnavailable)
	}
	dirs := append([]string{filepath.Join(dir, "node_modules")}, filepath.SplitList(os.Getenv("NODE_PATH"))...)
	for _, d := range dirs {
		if d == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "onnxruntime-node", "package.json")); err == nil {
			return &Runner{node: node, script: script}, nil
		}
	}
	return nil, fmt.Errorf("onnxruntime-node is not installed in %s nor on NODE_PATH; from the repository root run: %s: %w", dirs[0], Install, ErrUnavailable)
}

// Input is one model input.
type Input struct {
	X      *tensor.Tensor
	Double bool // fed as float64 (DOUBLE) instead of float32 (FLOAT)
}

// Run runs the model file at the ONNX Runtime graph optimization level
// ("disabled", "basic", "extended" or "all", the default of ONNX Runtime)
// with one input per graph input, in the model's order, and returns every
// graph output in order.
func (r *Runner) Run(ctx context.Context, model, level string, inputs ...Input) ([]*tensor.Tensor, error) {
	dir, err := os.MkdirTemp("", "ortrun")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	args := []string{r.script, model, dir, level}
	for k, in := range inputs {
		p := filepath.Join(dir, fmt.Sprintf("input_%d.npy", k))
		var b []byte
		if in.Double {
			b = dataset.NPYFloat64(in.X)
		} else {
			f := make([]float32, len(in.X.Data))
			for i, v := range in.X.Data {
				f[i] = float32(v)
			}
			if b, err = dataset.NPYFloat32(in.X.Shape, f); err != nil {
				return nil, err
			}
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return nil, err
		}
		args = append(args, p)
	}
	cmd := exec.CommandContext(ctx, r.node, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("ONNX Runtime on %s: %v: %s", filepath.Base(model), err, strings.TrimSpace(stderr.String()))
	}
	var res struct {
		Outputs []struct {
			Name string
			Dims []int
			File string
		}
	}
	if err := json.Unmarshal(stdout, &res); err != nil {
		return nil, fmt.Errorf("run_ort.js printed %q: %v", stdout, err)
	}
	outs := make([]*tensor.Tensor, len(res.Outputs))
	for k, o := range res.Outputs {
		y, err := dataset.ReadNPY(o.File)
		if err != nil {
			return nil, fmt.Errorf("ONNX Runtime output %q: %w", o.Name, err)
		}
		if !tensor.SameShape(y.Shape, o.Dims) {
			return nil, fmt.Errorf("ONNX Runtime output %q: NPY of shape %v; the runtime reported %v", o.Name, y.Shape, o.Dims)
		}
		outs[k] = y
	}
	return outs, nil
}
