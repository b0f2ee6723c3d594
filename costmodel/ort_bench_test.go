package costmodel_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"mpsearch/costmodel"
	"mpsearch/onnx"
	"mpsearch/tensor"
)

// matMulIntegerModel returns an ONNX model computing Y = MatMulInteger(A,
// B, a_zero_point) for A uint8 [m,k] (the input), B int8 [k,n] (random
// weights from seed) and a_zero_point = 128.
func matMulIntegerModel(m, k, n int, seed uint64) *onnx.Model {
	rng := rand.New(rand.NewPCG(seed, 7))
	b := tensor.New(k, n)
	for i := range b.Data {
		b.Data[i] = float64(rng.IntN(255) - 127)
	}
	zp := &tensor.Tensor{Shape: []int{}, Data: []float64{128}}
	return &onnx.Model{
		Opset: 13, ProducerName: "mpsearch costmodel benchmark",
		Graph: &onnx.Graph{
			Name:    "matmulinteger",
			Inputs:  []onnx.ValueInfo{{Name: "A", ElemType: onnx.Uint8, Shape: []onnx.Dim{{Value: int64(m)}, {Value: int64(k)}}}},
			Outputs: []onnx.ValueInfo{{Name: "Y", ElemType: onnx.Int32, Shape: []onnx.Dim{{Value: int64(m)}, {Value: int64(n)}}}},
			Nodes: []onnx.Node{{Name: "mm", OpType: "MatMulInteger",
				Inputs: []string{"A", "B", "a_zero_point"}, Outputs: []string{"Y"}}},
			Initializers: map[string]*tensor.Tensor{"B": b, "a_zero_point": zp},
			InitTypes:    map[string]onnx.DataType{"B": onnx.Int8, "a_zero_point": onnx.Uint8},
			InitOrder:    []string{"B", "a_zero_point"},
		},
	}
}

type ortResult struct {
	M, K, N  int
	GOPSWall float64 `json:"gops_wall"`
	GOPSCPU  float64 `json:"gops_cpu"`
}

// BenchmarkVsORT is issue 4's throughput comparison, one thread, in one
// run: GOPS of kernels.GEMM per weight bit width at 256^3, 512^3 and
// 1024^3 next to ONNX Runtime's MatMulInteger (u8 x s8, one intra-op
// thread) on the same shapes, timed by scripts/ort_matmulinteger.js.
// It needs node and onnxruntime-node on NODE_PATH:
//
//	mkdir -p /tmp/ortnode && (cd /tmp/ortnode && npm install --ignore-scripts onnxruntime-node@1.30.0)
//	NODE_PATH=/tmp/ortnode/node_modules go test ./costmodel -run '^$' -bench VsORT -benchtime 1x -v
//
// Both sides are reported on CPU time (this thread's for Go, the
// process's for Node) and on the wall clock; the ratios use CPU time,
// which other processes on a shared machine do not inflate.
func BenchmarkVsORT(b *testing.B) {
	if os.Getenv("NODE_PATH") == "" {
		b.Skip("set NODE_PATH to a node_modules folder holding onnxruntime-node@1.30.0")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		b.Skip("node is not installed")
	}
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		args := []string{filepath.Join("..", "scripts", "ort_matmulinteger.js")}
		for _, s := range costmodel.ReferenceSizes {
			path := filepath.Join(dir, fmt.Sprintf("mm%d.onnx", s))
			if err := onnx.Save(path, matMulIntegerModel(s, s, s, uint64(s)), onnx.SaveOptions{}); err != nil {
				b.Fatal(err)
			}
			args = append(args, fmt.Sprintf("%s:%d:%d:%d", path, s, s, s))
		}
		cmd := exec.CommandContext(ctx, node, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("node %s: %v: %s", strings.Join(args, " "), err, stderr.String())
		}
		var ort struct {
			Version string      `json:"ort_version"`
			Results []ortResult `json:"results"`
		}
		if err := json.Unmarshal(out, &ort); err != nil {
			b.Fatalf("parsing the script's output %q: %v", out, err)
		}
		cpu, err := costmodel.MeasureReference(ctx, costmodel.ReferenceSizes, costmodel.MeasureOptions{Clock: costmodel.ClockThreadCPU, Repeats: 9})
		if err != nil {
			b.Fatal(err)
		}
		wall, err := costmodel.MeasureReference(ctx, costmodel.ReferenceSizes, costmodel.MeasureOptions{Clock: costmodel.ClockWall, Repeats: 9})
		if err != nil {
			b.Fatal(err)
		}
		ours := func(pts []costmodel.GEMMPoint, bits, size int) float64 {
			for _, p := range pts {
				if p.Bits == bits && p.M == size {
					return p.GOPS
				}
			}
			b.Fatalf("no %d-bit figure at %d", bits, size)
			return 0
		}
		var sb strings.Builder
		fmt.Fprintf(&sb, "\nGOPS (2 ops/MAC), one thread; CPU time [wall clock]; ONNX Runtime %s MatMulInteger u8xs8\n", ort.Version)
		fmt.Fprintf(&sb, "%6s %16s %16s %16s %16s %16s | %8s %8s %8s %8s\n", "size", "ORT", "int8", "int4", "int2", "binary", "int8/ORT", "int4/int8", "int2/int8", "bin/int8")
		for _, r := range ort.Results {
			s := r.M
			g8, g4, g2, g1 := ours(cpu, 8, s), ours(cpu, 4, s), ours(cpu, 2, s), ours(cpu, 1, s)
			fmt.Fprintf(&sb, "%5d³ %7.1f [%6.1f] %7.1f [%6.1f] %7.1f [%6.1f] %7.1f [%6.1f] %7.1f [%6.1f] | %8.2f %8.2f %8.2f %8.2f\n",
				s, r.GOPSCPU, r.GOPSWall, g8, ours(wall, 8, s), g4, ours(wall, 4, s), g2, ours(wall, 2, s), g1, ours(wall, 1, s),
				g8/r.GOPSCPU, g4/g8, g2/g8, g1/g8)
			b.ReportMetric(g8/r.GOPSCPU, fmt.Sprintf("int8/ORT@%d", s))
		}
		b.Log(sb.String())
	}
}
