package quant

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// halfValue decodes the bits of a positive finite IEEE 754 half (the
// reference: sign 0, 5 exponent bits, 10 mantissa bits).
func halfValue(h uint16) float64 {
	e, m := int(h>>10)&0x1f, float64(h&0x3ff)
	if e == 0 {
		return math.Ldexp(m, -24)
	}
	return math.Ldexp(1024+m, e-25)
}

// TestRoundFP16 checks RoundFP16 against every positive finite half:
// the result is the nearest one (ties to the even mantissa), 2^-24 for
// values below half of it, and 65504 above.
func TestRoundFP16(t *testing.T) {
	var halves []float64 // positive finite halves, ascending; even mantissa by index parity
	for h := uint16(1); h < 0x7c00; h++ {
		halves = append(halves, halfValue(h))
	}
	rng := rand.New(rand.NewPCG(5, 6))
	xs := []float64{1, 0.333251953125, 65504, 70000, math.Ldexp(1, -14), math.Ldexp(1, -24), math.Ldexp(1, -26), 1 + 1.0/2048, 1 + 3.0/2048}
	for i := 0; i < 200000; i++ {
		xs = append(xs, math.Exp(rng.Float64()*math.Log(1e13))*1e-9) // 1e-9 .. 1e4, log-uniform
	}
	for i, h := range halves[:len(halves)-1] {
		xs = append(xs, (h+halves[i+1])/2) // every tie
	}
	for _, x := range xs {
		got := RoundFP16(x)
		k := sort.SearchFloat64s(halves, x) // halves[k-1] < x <= halves[k]
		var want float64
		switch {
		case k == 0:
			want = halves[0]
		case k == len(halves):
			want = halves[len(halves)-1]
		default:
			lo, hi := halves[k-1], halves[k]
			switch d := (x - lo) - (hi - x); {
			case hi == x:
				want = hi
			case d < 0:
				want = lo
			case d > 0:
				want = hi
			case k%2 == 0: // halves[k] is bit pattern k+1: odd mantissa
				want = lo
			default:
				want = hi
			}
		}
		if got != want {
			t.Fatalf("RoundFP16(%g) = %g; want %g", x, got, want)
		}
	}
}
