package quant

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/tensor"
)

// processCPU is the CPU time (user + system) of the whole process.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkGPTQCodesModel measures NewGPTQCodes on an ONNX model given by
// MPSEARCH_GPTQ_BENCH_MODEL (for instance models/resnet18-opset17.onnx, absolute, from scripts/export_torchvision.py --out models)
// with MPSEARCH_GPTQ_BENCH_IMAGES random images (default 24: the
// calibration part of 32 images after search's held-out quarter) of the
// model's declared input shape, widths 2, 3, 4 and 8, two threads, float32
// products as mpsearch runs by default: wall and process CPU seconds of
// the Hessian pass and the per-layer GPTQ, next to one forward pass over
// the same images. A measurement run on request (go test -run '^$' -bench
// GPTQCodesModel -benchtime 1x ./quant), not a timing loop.
func BenchmarkGPTQCodesModel(b *testing.B) {
	path := os.Getenv("MPSEARCH_GPTQ_BENCH_MODEL")
	if path == "" {
		b.Skip("opt-in: MPSEARCH_GPTQ_BENCH_MODEL=model.onnx")
	}
	n := 24
	if s := os.Getenv("MPSEARCH_GPTQ_BENCH_IMAGES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	m, err := onnx.Load(path)
	if err != nil {
		b.Fatal(err)
	}
	net, err := network.Build(m, network.Options{Precision: network.F32})
	if err != nil {
		b.Fatal(err)
	}
	shape := []int{n}
	for _, d := range m.Graph.Inputs[0].Shape[1:] {
		shape = append(shape, int(d.Value))
	}
	x := tensor.New(shape...)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range x.Data {
		x.Data[i] = rng.NormFloat64()
	}
	ctx := context.Background()
	for b.Loop() {
		t0, c0 := time.Now(), processCPU()
		if _, err := net.Infer(ctx, x); err != nil {
			b.Fatal(err)
		}
		t1, c1 := time.Now(), processCPU()
		if _, err := NewGPTQCodes(ctx, net, []*tensor.Tensor{x}, CodesOptions{Widths: []int{2, 3, 4, 8}, Threads: 2}); err != nil {
			b.Fatal(err)
		}
		t2, c2 := time.Now(), processCPU()
		b.ReportMetric(t1.Sub(t0).Seconds(), "forward-wall-s")
		b.ReportMetric((c1 - c0).Seconds(), "forward-cpu-s")
		b.ReportMetric(t2.Sub(t1).Seconds(), "gptq-wall-s")
		b.ReportMetric((c2 - c1).Seconds(), "gptq-cpu-s")
	}
}
