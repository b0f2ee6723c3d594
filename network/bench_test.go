package network

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

// benchModel loads a model for the engine benchmarks: the fixture LeNet,
// or the VGG-style CNN written by scripts/make_vgg.py at $MPSEARCH_VGG
// (default /tmp/vgg.onnx; the benchmark is skipped when it is absent).
func benchModel(b *testing.B, name string) *Network {
	path := fixtureDir + "lenet.onnx"
	if name == "vgg" {
		path = os.Getenv("MPSEARCH_VGG")
		if path == "" {
			path = "/tmp/vgg.onnx"
		}
		if _, err := os.Stat(path); err != nil {
			b.Skipf("%s absent: run /usr/bin/python3 scripts/make_vgg.py first", path)
		}
	}
	m, err := onnx.Load(path)
	if err != nil {
		b.Fatal(err)
	}
	net, err := Build(m, Options{})
	if err != nil {
		b.Fatal(err)
	}
	return net
}

// BenchmarkForwardBackward measures forward + backward (all parameter
// gradients) images/s at batch 256, one BLAS thread; compare BLAS
// implementations by running with and without -tags noopenblas.
func BenchmarkForwardBackward(b *testing.B) {
	for _, name := range []string{"lenet", "vgg"} {
		b.Run(name+"/"+BLASName(), func(b *testing.B) {
			net := benchModel(b, name)
			SetBLASThreads(1)
			const batch = 256
			rng := rand.New(rand.NewPCG(1, 2))
			x := randTensor(rng, append([]int{batch}, net.SampleShape...)...)
			labels := make([]int, batch)
			for i := range labels {
				labels[i] = i % 10
			}
			loss := CrossEntropy{Labels: labels}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p, err := net.Forward(context.Background(), x)
				if err != nil {
					b.Fatal(err)
				}
				_, g, _ := loss.Eval(p.Output())
				p.Backward(g, false)
			}
			b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "images/s")
		})
	}
}

// BenchmarkHVP measures one exact Hessian-vector product (forward pass
// included, as in PyTorch's double backprop) at batch 256.
func BenchmarkHVP(b *testing.B) {
	for _, name := range []string{"lenet", "vgg"} {
		b.Run(name+"/"+BLASName(), func(b *testing.B) {
			net := benchModel(b, name)
			SetBLASThreads(1)
			const batch = 256
			rng := rand.New(rand.NewPCG(3, 4))
			x := randTensor(rng, append([]int{batch}, net.SampleShape...)...)
			labels := make([]int, batch)
			for i := range labels {
				labels[i] = i % 10
			}
			dirs := make([]*tensor.Tensor, len(net.Params()))
			for i, p := range net.Params() {
				dirs[i] = randTensor(rng, append([]int{1}, p.Value.Shape...)...)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p, err := net.Forward(context.Background(), x)
				if err != nil {
					b.Fatal(err)
				}
				if _, _, err := p.HVP(CrossEntropy{Labels: labels}, dirs, 1); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/HVP")
		})
	}
}

// BenchmarkInferTorchvision times Infer on 16 random 224x224 images, one
// BLAS thread, for the torchvision exports in $MPSEARCH_TORCHVISION_DIR
// (scripts/export_torchvision.py --out; skipped when unset or absent),
// with each pass's arena dropped at its end and Conv outputs cleared whole
// before the products add to them (fresh: Infer before the arenas were
// kept) and with the arenas kept across passes and Conv clearing each
// sample or plane just before adding to it (kept), and with the SiLUs
// run as one loop besides (kept+silu), in the same run;
// cpu-s/batch is the process's CPU time (GC
// included), steadier than the wall time on a shared machine. Select a
// model with
// MPSEARCH_BENCH_MODELS=efficientnet_b0 (default: efficientnet_b0).
func BenchmarkInferTorchvision(b *testing.B) {
	dir := os.Getenv("MPSEARCH_TORCHVISION_DIR")
	if dir == "" {
		b.Skip("MPSEARCH_TORCHVISION_DIR unset")
	}
	models := os.Getenv("MPSEARCH_BENCH_MODELS")
	if models == "" {
		models = "efficientnet_b0"
	}
	for _, name := range strings.Split(models, ",") {
		path := filepath.Join(dir, name+"-opset17.onnx")
		if _, err := os.Stat(path); err != nil {
			b.Logf("%s absent: skipped", path)
			continue
		}
		m, err := onnx.Load(path)
		if err != nil {
			b.Fatal(err)
		}
		net, err := Build(m, Options{})
		if err != nil {
			b.Fatal(err)
		}
		SetBLASThreads(1)
		const batch = 16
		x := randTensor(rand.New(rand.NewPCG(5, 6)), append([]int{batch}, net.SampleShape...)...)
		if _, err := net.Infer(context.Background(), x); err != nil { // warm-up: the heap grows here
			b.Fatal(err)
		}
		for step, label := range []string{"fresh", "kept", "kept+silu"} {
			b.Run(name+"/"+label, func(b *testing.B) {
				defer func(k, c, f bool) { keepArenas, convClearsPieces, fuseSiLU = k, c, f }(keepArenas, convClearsPieces, fuseSiLU)
				keepArenas, convClearsPieces, fuseSiLU = step >= 1, step >= 1, step >= 2
				cpu0 := cpuTime()
				for b.Loop() {
					if _, err := net.Infer(context.Background(), x); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/batch")
				b.ReportMetric((cpuTime()-cpu0)/float64(b.N), "cpu-s/batch")
			})
		}
	}
}

// BenchmarkSigmoid times Sigmoid's eval and deriv (d1 and d2) per value on
// 4096 values (in L1/L2), with kernels.Sigmoid and SigmoidPair (vecexp)
// and with the math.Exp loops they replaced (mathexp), in the same run.
func BenchmarkSigmoid(b *testing.B) {
	const n = 4096
	x, d1, d2 := make([]float64, n), make([]float64, n), make([]float64, n)
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range x {
		x[i] = rng.NormFloat64() * 3
	}
	for _, vec := range []bool{false, true} {
		label := map[bool]string{false: "mathexp", true: "vecexp"}[vec]
		for _, step := range []string{"eval", "deriv"} {
			b.Run(step+"/"+label, func(b *testing.B) {
				defer func(v bool) { vecExp = v }(vecExp)
				vecExp = vec
				for b.Loop() {
					if step == "eval" {
						sigmoidFunc{}.eval(d1, x)
					} else {
						sigmoidFunc{}.deriv(d1, d2, x, nil)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/value")
			})
		}
	}
}
