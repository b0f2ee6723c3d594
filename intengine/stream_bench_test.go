package intengine

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"mpsearch/internal/cputime"
	"mpsearch/tensor"
)

// BenchmarkMLPBits measures the whole-model latency at batch 1 of a
// fully connected network with large layers (MLP_WIDTH inputs, default
// 4096, two Gemms of MLP_WIDTH x MLP_WIDTH with ReLU, a Gemm to 10
// logits) on the integer engine, uniform 8, 4, 2 and 1 bits on the stream
// kernels and 8 bits on the tile GEMM (the engine before the stream path),
// MLP_THREADS threads (default 1). The configurations run interleaved,
// MLP_REPS times (default 7) three runs each, so that each one's weights
// are evicted by the others' in between (32 MiB at 8 bits for 4096); it
// reports the minimum per run of the calling thread's CPU time (one
// thread) or of the wall time (several) and the ratio of each to the
// 8-bit stream figure. Run with -benchtime=1x.
func BenchmarkMLPBits(b *testing.B) {
	width, threads, reps := envInt("MLP_WIDTH", 4096), envInt("MLP_THREADS", 1), envInt("MLP_REPS", 7)
	bld := newGraphBuilder(31, []int64{int64(width)})
	fc := func(name, in string, n int) string {
		return bld.node(name, "Gemm", []string{in, bld.init(name+"_w", 1/math.Sqrt(float64(width)), []int{n, width}), bld.init(name+"_b", 0.1, []int{n})}, aInt("transB", 1))
	}
	h1 := bld.node("r1", "Relu", []string{fc("fc1", "x", width)})
	h2 := bld.node("r2", "Relu", []string{fc("fc2", h1, width)})
	net := bld.build(b, fc("fc3", h2, 10))
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(32, 33))
	r, err := ObserveRanges(ctx, net, []*tensor.Tensor{randBatch(rng, 16, net.SampleShape)})
	if err != nil {
		b.Fatal(err)
	}
	type cfg struct {
		name string
		m    *Model
	}
	var cfgs []cfg
	for _, bits := range []int{8, 4, 2, 1} {
		m, err := Compile(net, Config{Bits: []int{bits, bits, bits}, Ranges: r, Threads: threads})
		if err != nil {
			b.Fatal(err)
		}
		cfgs = append(cfgs, cfg{fmt.Sprintf("int%d-stream", bits), m})
	}
	tile, err := Compile(net, Config{Bits: []int{8, 8, 8}, Ranges: r, Threads: threads})
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range tile.plan.steps {
		if ls, ok := s.(*layerStep); ok {
			ls.st = nil // the tile GEMM only
		}
	}
	cfgs = append(cfgs, cfg{"int8-tile", tile})
	x := randBatch(rng, 1, net.SampleShape)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	best := make([]time.Duration, len(cfgs))
	for i := range best {
		best[i] = time.Hour
	}
	out := tensor.New(cfgs[0].m.OutputShape(1)...)
	b.ResetTimer()
	for rep := 0; rep < reps; rep++ {
		for j := range cfgs {
			i := (j + rep) % len(cfgs)
			for range 3 {
				c0, _ := cputime.Thread()
				t0 := time.Now()
				if err := cfgs[i].m.RunInto(ctx, out, x); err != nil {
					b.Fatal(err)
				}
				d := time.Since(t0)
				if c1, ok := cputime.Thread(); ok && threads == 1 {
					d = c1 - c0
				}
				best[i] = min(best[i], d)
			}
		}
	}
	b.StopTimer()
	for i, c := range cfgs {
		b.ReportMetric(float64(best[i].Microseconds()), c.name+"-us")
		b.ReportMetric(float64(best[i])/float64(best[0]), c.name+"-vs-int8-stream")
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
