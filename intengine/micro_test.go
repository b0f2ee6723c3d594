package intengine

import (
	"context"
	"runtime"
	"testing"
	"time"

	"mpsearch/internal/cputime"
	"mpsearch/internal/fixture"
	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/tensor"
)

// loadONNX builds the float network of an ONNX file of the repository.
func loadONNX(t testing.TB, path string) *network.Network {
	t.Helper()
	om, err := onnx.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	net, err := network.Build(om, network.Options{Precision: network.F32})
	if err != nil {
		t.Fatal(err)
	}
	return net
}

// TestMicroBatchIdentical runs the VGG-style and residual Fashion-MNIST
// CNNs at batch 40, which their plans cut into passes of plan.micro
// samples (execMicro), against the same Models run on the whole batch at
// once and against the simulation: every code is the same.
func TestMicroBatchIdentical(t *testing.T) {
	ctx := context.Background()
	x := fixture.TestSet(t, 40).X
	for _, tc := range []struct {
		name string
		bits []int
	}{{"vgg-fmnist", []int{8, 4, 3, 3, 3, 3, 8}}, {"resnet-fmnist", nil}} {
		net := loadONNX(t, "../testdata/"+tc.name+"/model.onnx")
		r, err := ObserveRanges(ctx, net, []*tensor.Tensor{fixture.TestSet(t, 256).X})
		if err != nil {
			t.Fatal(err)
		}
		bits := tc.bits
		if bits == nil {
			bits = make([]int, len(net.Layers()))
			for i := range bits {
				bits[i] = []int{8, 4, 2, 3}[i%4]
			}
		}
		m, err := Compile(net, Config{Bits: bits, Ranges: r})
		if err != nil {
			t.Fatal(err)
		}
		k := m.plan.micro
		if k < 2 || k >= x.Shape[0] {
			t.Fatalf("%s: %d samples per pass; want 2 to %d", tc.name, k, x.Shape[0]-1)
		}
		got, _ := runBoth(t, m, x, tc.name)
		m.plan.micro = 0
		whole, err := m.RunInt(ctx, x)
		m.plan.micro = k
		if err != nil {
			t.Fatal(err)
		}
		if d, first := diffInt(got, whole); d > 0 {
			t.Errorf("%s: passes of %d vs the whole batch: %d integers differ; first: %s", tc.name, k, d, first)
		}
	}
}

// BenchmarkMicroBatch times the VGG-style and residual CNNs at batch 32,
// one thread, in passes of plan.micro samples and on the whole batch,
// interleaved (MLP_REPS rounds of 3 runs each; minimum thread CPU time).
func BenchmarkMicroBatch(b *testing.B) {
	ctx := context.Background()
	reps := envInt("MLP_REPS", 7)
	x := fixture.TestSet(b, 32).X
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, name := range []string{"vgg-fmnist", "resnet-fmnist"} {
		net := loadONNX(b, "../testdata/"+name+"/model.onnx")
		r, err := ObserveRanges(ctx, net, []*tensor.Tensor{fixture.TestSet(b, 256).X})
		if err != nil {
			b.Fatal(err)
		}
		bits := make([]int, len(net.Layers()))
		for i := range bits {
			bits[i] = []int{8, 4, 3}[i%3]
		}
		m, err := Compile(net, Config{Bits: bits, Ranges: r, Threads: 1})
		if err != nil {
			b.Fatal(err)
		}
		out := tensor.New(m.OutputShape(32)...)
		k := m.plan.micro
		best := [2]time.Duration{time.Hour, time.Hour}
		for rep := 0; rep < reps; rep++ {
			for v, micro := range []int{k, 0} {
				m.plan.micro = micro
				for range 3 {
					c0, _ := cputime.Thread()
					if err := m.RunInto(ctx, out, x); err != nil {
						b.Fatal(err)
					}
					c1, _ := cputime.Thread()
					best[v] = min(best[v], c1-c0)
				}
			}
		}
		m.plan.micro = k
		b.ReportMetric(float64(k), name+"-micro")
		b.ReportMetric(float64(best[0].Microseconds()), name+"-micro-us")
		b.ReportMetric(float64(best[1].Microseconds()), name+"-whole-us")
		b.ReportMetric(float64(best[1])/float64(best[0]), name+"-whole-vs-micro-x")
	}
}
