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
	node := ortNode(b)
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		var shapes [][3]int
		for _, s := range costmodel.ReferenceSizes {
			shapes = append(shapes, [3]int{s, s, s})
		}
		ort := runORTMatMulInteger(ctx, b, node, shapes)
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

// ortReport is the output of scripts/ort_matmulinteger.js.
type ortReport struct {
	Version string      `json:"ort_version"`
	Results []ortResult `json:"results"`
}

// ortNode returns the node binary, skipping b when ONNX Runtime for Node
// is not available.
func ortNode(b *testing.B) string {
	if os.Getenv("NODE_PATH") == "" {
		b.Skip("set NODE_PATH to a node_modules folder holding onnxruntime-node@1.30.0")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		b.Skip("node is not installed")
	}
	return node
}

// runORTMatMulInteger times ONNX Runtime's MatMulInteger on each m, k, n
// shape with scripts/ort_matmulinteger.js, in the order given.
func runORTMatMulInteger(ctx context.Context, b *testing.B, node string, shapes [][3]int) ortReport {
	dir := b.TempDir()
	args := []string{filepath.Join("..", "scripts", "ort_matmulinteger.js")}
	for _, s := range shapes {
		path := filepath.Join(dir, fmt.Sprintf("mm%dx%dx%d.onnx", s[0], s[1], s[2]))
		if err := onnx.Save(path, matMulIntegerModel(s[0], s[1], s[2], uint64(s[1]*s[2])), onnx.SaveOptions{}); err != nil {
			b.Fatal(err)
		}
		args = append(args, fmt.Sprintf("%s:%d:%d:%d", path, s[0], s[1], s[2]))
	}
	cmd := exec.CommandContext(ctx, node, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("node %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	var ort ortReport
	if err := json.Unmarshal(out, &ort); err != nil {
		b.Fatalf("parsing the script's output %q: %v", out, err)
	}
	if len(ort.Results) != len(shapes) {
		b.Fatalf("the script timed %d shapes; want %d", len(ort.Results), len(shapes))
	}
	return ort
}

// BenchmarkStreamVsORT is issue 13's one-row comparison, one thread: GOPS
// of the streaming small-M kernels (kernels.GEMMStream,
// MeasureStreamReference) per weight bit width at m = 1 and k = n = 1024,
// 4096 and 8192 (1, 16 and 64 MiB of int8 weights) next to ONNX Runtime's
// MatMulInteger on the same shapes, with the same script and setup as
// BenchmarkVsORT:
//
//	NODE_PATH=/tmp/ortnode/node_modules go test ./costmodel -run '^$' -bench '^BenchmarkStreamVsORT$' -benchtime 5x -v
//
// At 8192 both sides read 64 MiB per product from memory, so whatever else
// uses the memory bus moves both by tens of percent: each iteration is one
// round (ONNX Runtime, then ours) and the table gives the median of the
// rounds for every figure, ratios included. ONNX Runtime's figure includes
// its Node.js binding's per-call overhead (tens of microseconds), which
// matters at 1024 (a 2 MFLOP product) and little at 8192 (134 MFLOP).
// Figures are CPU time. The read column is a plain read of k*n bytes
// (readGOPS) in the same round, as the GOPS of an 8-bit product that
// read its weights at that pace: at 8192 it is what this core can stream
// from memory, so int8/read and ORT/read say how close each side comes.
func BenchmarkStreamVsORT(b *testing.B) {
	node := ortNode(b)
	ctx := context.Background()
	var shapes [][3]int
	for _, s := range costmodel.StreamSizes {
		shapes = append(shapes, [3]int{1, s, s})
	}
	cols := []string{"ORT", "int8", "int4", "int2", "binary", "read", "int8/ORT", "int4/int8", "int2/int8", "bin/int8", "int8/read", "ORT/read"}
	rounds := make([][][]float64, len(shapes)) // [shape][column][round]
	for j := range rounds {
		rounds[j] = make([][]float64, len(cols))
	}
	version := ""
	for i := 0; i < b.N; i++ {
		ort := runORTMatMulInteger(ctx, b, node, shapes)
		version = ort.Version
		pts, err := costmodel.MeasureStreamReference(ctx, costmodel.StreamSizes, costmodel.MeasureOptions{Clock: costmodel.ClockThreadCPU, Repeats: 9})
		if err != nil {
			b.Fatal(err)
		}
		ours := func(bits, size int) float64 {
			for _, p := range pts {
				if p.Bits == bits && p.K == size {
					return p.GOPS
				}
			}
			b.Fatalf("no %d-bit figure at %d", bits, size)
			return 0
		}
		for j, r := range ort.Results {
			g8, g4, g2, g1 := ours(8, r.K), ours(4, r.K), ours(2, r.K), ours(1, r.K)
			rd := readGOPS(ctx, b, r.K*r.N)
			for c, v := range []float64{r.GOPSCPU, g8, g4, g2, g1, rd, g8 / r.GOPSCPU, g4 / g8, g2 / g8, g1 / g8, g8 / rd, r.GOPSCPU / rd} {
				rounds[j][c] = append(rounds[j][c], v)
			}
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nGOPS (2 ops/MAC) at m = 1, one thread, CPU time, median of %d rounds; ONNX Runtime %s MatMulInteger u8xs8\n", b.N, version)
	fmt.Fprintf(&sb, "%8s", "k = n")
	for _, c := range cols {
		fmt.Fprintf(&sb, " %9s", c)
	}
	sb.WriteString("\n")
	for j, s := range shapes {
		fmt.Fprintf(&sb, "%8d", s[1])
		for c := range cols {
			fmt.Fprintf(&sb, " %9.2f", median(rounds[j][c]))
		}
		sb.WriteString("\n")
		b.ReportMetric(median(rounds[j][6]), fmt.Sprintf("int8/ORT@1x%d", s[1]))
		b.ReportMetric(median(rounds[j][10]), fmt.Sprintf("int8/read@1x%d", s[1]))
	}
	b.Log(sb.String())
}

// readGOPS times a plain read of size bytes (bytes.Equal of the two equal
// halves of a buffer: the runtime's vector compare, two sequential
// streams) as costmodel.Time times a layer (thread CPU time, hot) and
// returns 2*size/time in GOPS: the pace of an 8-bit product at m = 1
// that read its weights as fast.
func readGOPS(ctx context.Context, b *testing.B, size int) float64 {
	buf := bytes.Repeat([]byte{1}, size&^1)
	h := len(buf) / 2
	t, err := costmodel.Time(ctx, func() error {
		if !bytes.Equal(buf[:h], buf[h:]) {
			return fmt.Errorf("the halves of the read buffer differ")
		}
		return nil
	}, costmodel.MeasureOptions{Clock: costmodel.ClockThreadCPU, Repeats: 9})
	if err != nil {
		b.Fatal(err)
	}
	return 2 * float64(size) / float64(t[0].Median.Nanoseconds())
}
