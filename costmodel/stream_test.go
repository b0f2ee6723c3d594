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
