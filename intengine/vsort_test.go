package intengine_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"mpsearch/export"
	"mpsearch/intengine"
	"mpsearch/internal/cputime"
	"mpsearch/internal/fixture"
	"mpsearch/network"
	"mpsearch/pipeline"
	"mpsearch/quant"
	"mpsearch/tensor"
)

// vsORTModel is one model of the same-run comparison with ONNX Runtime.
type vsORTModel struct {
	name, path string
	bits       func(n int) []int // per layer, from the layer count
	calib      func(t *testing.T) *tensor.Tensor
}

// mixedBits returns n widths cycling through mid, with 8 bits at both ends.
func mixedBits(mid ...int) func(n int) []int {
	return func(n int) []int {
		b := make([]int, n)
		for i := range b {
			b[i] = mid[i%len(mid)]
		}
		b[0], b[n-1] = 8, 8
		return b
	}
}

func fmnistCalib(t *testing.T) *tensor.Tensor { return fixture.TestSet(t, 256).X }

func imagenetCalib(t *testing.T) *tensor.Tensor { return normalImages(3, 4, 3, 224, 224) }

// normalImages returns n standard-normal images (float32 values).
func normalImages(seed uint64, n, c, h, w int) *tensor.Tensor {
	r := rand.New(rand.NewPCG(seed, 11))
	x := tensor.New(n, c, h, w)
	for i := range x.Data {
		x.Data[i] = float64(float32(r.NormFloat64()))
	}
	return x
}

var vsORTModels = []vsORTModel{
	{"vgg", "../testdata/vgg-fmnist/model.onnx", func(int) []int { return []int{8, 4, 3, 3, 3, 3, 8} }, fmnistCalib},
	{"resnet", "../testdata/resnet-fmnist/model.onnx", mixedBits(4, 2, 8, 3), fmnistCalib},
	// In $MPSEARCH_TORCHVISION_DIR, as scripts/export_torchvision.py --out
	// writes them.
	{"resnet18", "resnet18-opset13.onnx", mixedBits(4, 8), imagenetCalib},
	{"mobilenet_v2", "mobilenet_v2-opset13.onnx", mixedBits(4, 8), imagenetCalib},
	{"efficientnet_b0", "efficientnet_b0-opset13.onnx", mixedBits(4, 8), imagenetCalib},
}

// modelPath returns where mc's model is: the repository's testdata, or
// the torchvision export folder MPSEARCH_TORCHVISION_DIR.
func (mc vsORTModel) modelPath() string {
	if strings.HasPrefix(mc.path, "../") {
		return mc.path
	}
	return filepath.Join(os.Getenv("MPSEARCH_TORCHVISION_DIR"), mc.path)
}

// ortServer is a running ort_latency.js.
type ortServer struct {
	cmd *exec.Cmd
	in  *bufio.Writer
	out *bufio.Scanner
}

type ortTiming struct {
	Runs     int     `json:"runs"`
	MinMS    float64 `json:"min_ms"`
	MedianMS float64 `json:"median_ms"`
	CPUMS    float64 `json:"cpu_ms"`
}

func startORT(t *testing.T, model string, sample []int) *ortServer {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	args := []string{"testdata/ort_latency.js", model}
	for _, d := range sample {
		args = append(args, fmt.Sprint(d))
	}
	cmd := exec.Command(node, args...)
	// onnxruntime-node from NODE_PATH, else where scripts/setup.sh --test
	// installs it.
	cmd.Env = append(os.Environ(), "NODE_PATH="+strings.Join(append(filepath.SplitList(os.Getenv("NODE_PATH")), filepath.Join("..", "internal", "ortrun", "node_modules")), string(filepath.ListSeparator)))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &ortServer{cmd: cmd, in: bufio.NewWriter(stdin), out: bufio.NewScanner(stdout)}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	if !s.out.Scan() {
		t.Fatalf("ort_latency.js did not start (is onnxruntime-node on NODE_PATH?)")
	}
	return s
}

func (s *ortServer) time(t *testing.T, batch int, ms float64) ortTiming {
	t.Helper()
	fmt.Fprintf(s.in, "{\"batch\": %d, \"ms\": %g}\n", batch, ms)
	s.in.Flush()
	if !s.out.Scan() {
		t.Fatal("ort_latency.js stopped")
	}
	var r ortTiming
	if err := json.Unmarshal(s.out.Bytes(), &r); err != nil {
		t.Fatalf("ort_latency.js printed %q: %v", s.out.Text(), err)
	}
	return r
}

// timeEngine runs m on x for at least ms milliseconds (and 3 runs) after 3
// warm-up runs and returns the minimum and median wall time of a RunInto
// and the CPU time of the calling thread (locked by the caller) per run.
func timeEngine(t *testing.T, m *intengine.Model, x *tensor.Tensor, ms float64) (minMS, medMS, cpuMS float64) {
	t.Helper()
	ctx := context.Background()
	out := tensor.New(m.OutputShape(x.Shape[0])...)
	for range 3 {
		if err := m.RunInto(ctx, out, x); err != nil {
			t.Fatal(err)
		}
	}
	var d []float64
	c0, ok := cputime.Thread()
	if !ok {
		t.Fatal("no thread CPU clock")
	}
	t0 := time.Now()
	for len(d) < 3 || time.Since(t0).Seconds()*1e3 < ms {
		a := time.Now()
		if err := m.RunInto(ctx, out, x); err != nil {
			t.Fatal(err)
		}
		d = append(d, time.Since(a).Seconds()*1e3)
	}
	c1, _ := cputime.Thread()
	slices.Sort(d)
	return d[0], d[len(d)/2], (c1 - c0).Seconds() * 1e3 / float64(len(d))
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// TestVsORT is the same-run latency comparison of the integer engine with
// ONNX Runtime running the QDQ model mpsearch exports for the same bits
// and activation quantizers, one thread each, at batch 1 and 32. It runs
// only when MPSEARCH_VS_ORT is set (to "all" or a comma-separated list of
// vgg, resnet, resnet18, mobilenet_v2, efficientnet_b0), with onnxruntime-node where
// scripts/setup.sh --test installs it (or on NODE_PATH) and the torchvision
// models in MPSEARCH_TORCHVISION_DIR (scripts/export_torchvision.py --out):
//
//	MPSEARCH_VS_ORT=all MPSEARCH_TORCHVISION_DIR=$PWD/models go test ./intengine/ -run TestVsORT -v -timeout 30m
//
// MPSEARCH_VS_ORT_REPS (default 5) sets the repetitions: each repetition
// times ONNX Runtime then the engine for about 300 ms each, interleaved;
// the table reports the minimum over repetitions of each side's fastest
// run (wall clock) and of its CPU time per run (the engine's thread, ORT's
// process: robust to other processes holding the cores), and the ratios
// engine/ORT of those minima.
func TestVsORT(t *testing.T) {
	which := os.Getenv("MPSEARCH_VS_ORT")
	if which == "" {
		t.Skip("set MPSEARCH_VS_ORT=all to compare with ONNX Runtime (after scripts/setup.sh --test)")
	}
	reps := 5
	if r := os.Getenv("MPSEARCH_VS_ORT_REPS"); r != "" {
		fmt.Sscan(r, &reps)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t.Logf("load average at start: %s; GOMAXPROCS %d", loadAvg(), runtime.GOMAXPROCS(0))
	var rows []string
	for _, mc := range vsORTModels {
		if which != "all" && !slices.Contains(strings.Split(which, ","), mc.name) {
			continue
		}
		rows = append(rows, vsORT(t, mc, reps)...)
	}
	t.Logf("load average at end: %s", loadAvg())
	t.Log("\n| model | bits | batch | engine ms (min wall) | ORT QDQ ms (min wall) | engine / ORT | engine CPU ms/run | ORT CPU ms/run | engine / ORT (CPU) | engine allocs/run |\n|---|---|---|---|---|---|---|---|---|---|\n" + strings.Join(rows, "\n"))
}

func vsORT(t *testing.T, mc vsORTModel, reps int) []string {
	mc.path = mc.modelPath()
	if _, err := os.Stat(mc.path); err != nil {
		t.Logf("%s: %v: skipped (export the torchvision models with scripts/export_torchvision.py and set MPSEARCH_TORCHVISION_DIR)", mc.name, err)
		return nil
	}
	ctx := context.Background()
	net, err := pipeline.LoadModel(mc.path, pipeline.ModelOptions{Precision: network.F32})
	if err != nil {
		t.Fatal(err)
	}
	calib := mc.calib(t)
	r, err := intengine.ObserveRanges(ctx, net, []*tensor.Tensor{calib})
	if err != nil {
		t.Fatal(err)
	}
	bits := mc.bits(len(net.Layers()))
	m, err := intengine.Compile(net, intengine.Config{Bits: bits, Ranges: r, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	act := map[string]quant.ActQuant{}
	for _, l := range m.Layers() {
		act[l.Node] = l.In
	}
	q, err := export.QDQ(net, export.Config{Bits: bits, Act: act})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), mc.name+".qdq.onnx")
	if err := export.Save(path, q); err != nil {
		t.Fatal(err)
	}
	ort := startORT(t, path, net.SampleShape)
	var rows []string
	for _, batch := range []int{1, 32} {
		x := normalImages(uint64(batch), batch, net.SampleShape[0], net.SampleShape[1], net.SampleShape[2])
		const ms = 300
		eMin, oMin, eCPU, oCPU := math.Inf(1), math.Inf(1), math.Inf(1), math.Inf(1)
		var eMeds, oMeds []float64
		for range reps {
			o := ort.time(t, batch, ms)
			e, em, ec := timeEngine(t, m, x, ms)
			oMin, eMin = min(oMin, o.MinMS), min(eMin, e)
			oCPU, eCPU = min(oCPU, o.CPUMS), min(eCPU, ec)
			oMeds, eMeds = append(oMeds, o.MedianMS), append(eMeds, em)
		}
		out := tensor.New(m.OutputShape(batch)...)
		allocs := testing.AllocsPerRun(5, func() {
			if err := m.RunInto(ctx, out, x); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("%s batch %d: engine min %.3f ms, cpu %.3f ms (medians %.3v), ORT min %.3f ms, cpu %.3f ms (medians %.3v)", mc.name, batch, eMin, eCPU, eMeds, oMin, oCPU, oMeds)
		rows = append(rows, fmt.Sprintf("| %s | %s | %d | %.3f | %.3f | %.2f× | %.3f | %.3f | %.2f× | %g |", mc.name, bitsLabel(bits), batch, eMin, oMin, eMin/oMin, eCPU, oCPU, eCPU/oCPU, allocs))
	}
	return rows
}

func bitsLabel(b []int) string {
	if len(b) <= 8 {
		return strings.Trim(fmt.Sprint(b), "[]")
	}
	return fmt.Sprintf("%d layers, mixed %v", len(b), uniq(b))
}

func uniq(b []int) []int {
	u := slices.Clone(b)
	slices.Sort(u)
	return slices.Compact(u)
}

// BenchmarkEngine runs the models of TestVsORT (those named in
// MPSEARCH_BENCH_MODELS, default vgg,resnet; torchvision models in
// MPSEARCH_TORCHVISION_DIR) on the integer engine, one
// thread, at batch 1 and 32: the benchmark to profile
// (go test -bench Engine -cpuprofile).
func BenchmarkEngine(b *testing.B) {
	which := os.Getenv("MPSEARCH_BENCH_MODELS")
	if which == "" {
		which = "vgg,resnet"
	}
	ctx := context.Background()
	for _, mc := range vsORTModels {
		if !slices.Contains(strings.Split(which, ","), mc.name) {
			continue
		}
		net, err := pipeline.LoadModel(mc.modelPath(), pipeline.ModelOptions{Precision: network.F32})
		if err != nil {
			b.Fatal(err)
		}
		var calib *tensor.Tensor
		if mc.name == "vgg" || mc.name == "resnet" {
			calib = fixture.TestSet(b, 256).X
		} else {
			calib = normalImages(3, 4, 3, 224, 224)
		}
		r, err := intengine.ObserveRanges(ctx, net, []*tensor.Tensor{calib})
		if err != nil {
			b.Fatal(err)
		}
		m, err := intengine.Compile(net, intengine.Config{Bits: mc.bits(len(net.Layers())), Ranges: r, Threads: 1})
		if err != nil {
			b.Fatal(err)
		}
		for _, batch := range []int{1, 32} {
			x := normalImages(uint64(batch), batch, net.SampleShape[0], net.SampleShape[1], net.SampleShape[2])
			out := tensor.New(m.OutputShape(batch)...)
			b.Run(fmt.Sprintf("%s/batch%d", mc.name, batch), func(b *testing.B) {
				b.ReportAllocs()
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				c0, _ := cputime.Thread()
				for b.Loop() {
					if err := m.RunInto(ctx, out, x); err != nil {
						b.Fatal(err)
					}
				}
				c1, _ := cputime.Thread()
				b.ReportMetric(float64((c1-c0).Microseconds())/float64(b.N), "cpu-µs/op")
			})
		}
	}
}

// TestTorchvisionMatchesSimulation compiles torchvision models with mixed
// 4/8-bit weights (those in MPSEARCH_TORCHVISION_DIR: squeeze-excitation
// and SiLU on channel Muls and composed tables, depthwise convolutions,
// residual Adds) and checks every code of one random image against the
// simulated quantization. It runs only when MPSEARCH_TORCHVISION_DIR is
// set.
func TestTorchvisionMatchesSimulation(t *testing.T) {
	dir := os.Getenv("MPSEARCH_TORCHVISION_DIR")
	if dir == "" {
		t.Skip("set MPSEARCH_TORCHVISION_DIR to the folder of scripts/export_torchvision.py --out")
	}
	ctx := context.Background()
	for _, name := range []string{"efficientnet_b0", "mobilenet_v2", "mobilenet_v3_small", "regnet_y_400mf", "mnasnet0_5"} {
		path := filepath.Join(dir, name+"-opset13.onnx")
		if _, err := os.Stat(path); err != nil {
			t.Logf("%s: %v: skipped", name, err)
			continue
		}
		net, err := pipeline.LoadModel(path, pipeline.ModelOptions{Precision: network.F32})
		if err != nil {
			t.Fatal(err)
		}
		r, err := intengine.ObserveRanges(ctx, net, []*tensor.Tensor{normalImages(3, 4, 3, 224, 224)})
		if err != nil {
			t.Fatal(err)
		}
		m, err := intengine.Compile(net, intengine.Config{Bits: mixedBits(4, 8)(len(net.Layers())), Ranges: r})
		if err != nil {
			t.Fatal(err)
		}
		ref, err := intengine.NewReference(m)
		if err != nil {
			t.Fatal(err)
		}
		x := normalImages(5, 1, 3, 224, 224)
		got, err := m.RunInt(ctx, x)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ref.RunInt(ctx, x)
		if err != nil {
			t.Fatal(err)
		}
		diff, total := 0, 0
		for i, tn := range got.Tensors {
			for j, c := range tn.Codes {
				total++
				if c != want.Tensors[i].Codes[j] {
					if diff == 0 {
						t.Errorf("%s: %s[%d] = %d; the simulation gives %d", name, tn.Name, j, c, want.Tensors[i].Codes[j])
					}
					diff++
				}
			}
		}
		for j := range got.Acc {
			total++
			if got.Acc[j] != want.Acc[j] {
				diff++
			}
		}
		if diff > 0 {
			t.Errorf("%s: %d of %d integers differ from the simulation", name, diff, total)
		}
		t.Logf("%s: %d integers, %d differ; float steps %d", name, total, diff, len(m.FloatNodes()))
	}
}
