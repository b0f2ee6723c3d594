package intengine

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"mpsearch/tensor"
)

// BenchmarkLeNet measures Run (input quantization to dequantized logits)
// on the fixture LeNet, one GEMM thread, for uniform 8-bit and mixed
// weights at batch 1 and 256; images/s is batch / wall time per op, and
// images/cpu-s the same per CPU-second of the benchmark's thread (robust to
// other processes sharing the cores; Threads=1 keeps all work on it).
func BenchmarkLeNet(b *testing.B) {
	net := loadLeNet(b)
	calib := loadCalib(b)
	r, err := ObserveRanges(context.Background(), net, []*tensor.Tensor{calib.X})
	if err != nil {
		b.Fatal(err)
	}
	for _, cfg := range []struct {
		name string
		bits []int
	}{{"W8", []int{8, 8, 8, 8, 8}}, {"W84248", []int{8, 4, 2, 4, 8}}, {"W4", []int{4, 4, 4, 4, 4}}} {
		m, err := Compile(net, Config{Bits: cfg.bits, Ranges: r, Threads: 1})
		if err != nil {
			b.Fatal(err)
		}
		for _, batch := range []int{1, 256} {
			x, _ := calib.Batch(0, batch)
			b.Run(fmt.Sprintf("%s/batch%d", cfg.name, batch), func(b *testing.B) {
				ctx := context.Background()
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				cpu0, okCPU := threadCPU()
				for b.Loop() {
					if _, err := m.Run(ctx, x); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(batch)*float64(b.N)/b.Elapsed().Seconds(), "images/s")
				if cpu1, ok := threadCPU(); ok && okCPU && cpu1 > cpu0 {
					b.ReportMetric(float64(batch)*float64(b.N)/(cpu1-cpu0).Seconds(), "images/cpu-s")
				}
			})
		}
	}
}
