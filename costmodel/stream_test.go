package costmodel

import (
	"context"
	"math"
	"testing"
	"time"
)

// TestMeasureStreamReference: the one-row points name m = 1, the size as
// k and n, every kernel bit width in ProfileBits order, and a positive
// finite throughput.
func TestMeasureStreamReference(t *testing.T) {
	sizes := []int{64, 100}
	pts, err := MeasureStreamReference(context.Background(), sizes, MeasureOptions{Repeats: 3, MinSample: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != len(ProfileBits)*len(sizes) {
		t.Fatalf("got %d points; want %d", len(pts), len(ProfileBits)*len(sizes))
	}
	for i, p := range pts {
		bits, size := ProfileBits[i/len(sizes)], sizes[i%len(sizes)]
		if p.Bits != bits || p.M != 1 || p.K != size || p.N != size || !(p.GOPS > 0) || math.IsInf(p.GOPS, 0) {
			t.Errorf("point %d = %+v; want bits %d, m 1, k = n = %d, positive finite gops", i, p, bits, size)
		}
	}
}

// TestMeasureCold: with Cold set, Measure reports a cold timing of single
// calls next to the hot one; for a layer whose 4 MiB of weights fit in the
// last-level cache but not in L2, the fastest cold call is slower than the
// fastest hot one (the weights come from memory). Without Cold the cold
// figure is zero.
func TestMeasureCold(t *testing.T) {
	s := GemmLayer("fc", "Gemm", 1, 2048, 2048)
	opt := MeasureOptions{Repeats: 5, MinSample: time.Millisecond, Cold: true}
	lc, err := Measure(context.Background(), []LayerShape{s}, []int{8}, opt)
	if err != nil {
		t.Fatal(err)
	}
	c := lc[0].Costs[0]
	if c.Cold.Calls != 1 || c.Cold.Samples != 5 || c.Latency.Samples != 5 {
		t.Fatalf("cold %+v, hot %+v; want 5 samples each, cold of 1 call", c.Cold, c.Latency)
	}
	if c.Cold.Min <= c.Latency.Min {
		t.Errorf("cold min %v <= hot min %v; want the cold call slower", c.Cold.Min, c.Latency.Min)
	}
	t.Logf("4 MiB of weights: hot min %v median %v; cold min %v median %v", c.Latency.Min, c.Latency.Median, c.Cold.Min, c.Cold.Median)
	opt.Cold = false
	lc, err = Measure(context.Background(), []LayerShape{s}, []int{8}, opt)
	if err != nil {
		t.Fatal(err)
	}
	if got := lc[0].Costs[0].Cold; got != (Timing{}) {
		t.Errorf("Cold off: BitCost.Cold = %+v; want zero", got)
	}
}
