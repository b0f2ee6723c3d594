package intengine

import (
	"math"
	"math/rand/v2"
	"testing"

	"mpsearch/kernels"
)

func TestDivRound(t *testing.T) {
	for _, tc := range []struct{ a, b, want int }{
		{0, 4, 0}, {1, 4, 0}, {2, 4, 1}, {3, 4, 1}, {6, 4, 2}, // 1.5 -> 2
		{-1, 4, 0}, {-2, 4, -1}, {-3, 4, -1}, {-6, 4, -2}, // -1.5 -> -2
		{7, 3, 2}, {-7, 3, -2}, {9, 6, 2}, {-9, 6, -2}, {5, 1, 5}, {-5, 1, -5},
	} {
		if got := divRound(tc.a, tc.b); got != tc.want {
			t.Errorf("divRound(%d, %d): got %d; want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestRoundMean(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want int
	}{
		{0.5, 1}, {-0.5, -1}, {1.4999999999999998, 2}, {-2.5000000000000004, -3}, {9.0 / 6, 2},
		{1.49, 1}, {-1.51, -2}, {0.3333333333333333, 0}, {-0.6666666666666666, -1},
	} {
		if got := roundMean(tc.v); got != tc.want {
			t.Errorf("roundMean(%v): got %d; want %d", tc.v, got, tc.want)
		}
	}
}

// The reference's 128-bit requantization agrees with kernels.Requantize
// wherever the latter is exact (|acc·mult| + 2^(shift-1) < 2^63), on edge
// cases (ties, negatives, shifts 0 and 62, clamps) and random values.
func TestRequantRefMatchesKernels(t *testing.T) {
	type c struct {
		acc, mult int64
		shift     int
		z         int
		lo, hi    uint8
	}
	cases := []c{
		{3, 1, 1, 0, 0, 255}, {-3, 1, 1, 100, 0, 255}, // ±1.5 -> ±2
		{5, 1, 2, 10, 0, 255}, {-5, 1, 2, 10, 0, 255}, // ±1.25 -> ±1
		{6, 1, 2, 10, 0, 255}, {-6, 1, 2, 10, 0, 255}, // ±1.5 -> ±2
		{200, 1, 0, 0, 0, 255}, {-200, 1, 0, 255, 0, 255}, {300, 1, 0, 0, 0, 255}, {-1, 1, 0, 0, 0, 255},
		{1 << 31, 1 << 30, 62, 0, 0, 255}, {-(1 << 31), 1 << 30, 62, 128, 0, 255},
		{1<<31 - 1, 1<<31 - 1, 62, 0, 0, 255}, {12345, 1<<31 - 1, 31, 7, 7, 250},
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100000 {
		shift := rng.IntN(63)
		mult := rng.Int64N(1 << 31)
		acc := rng.Int64N(1<<32) - 1<<31
		if float64(acc)*float64(mult) >= math.Ldexp(1, 62) || float64(-acc)*float64(mult) >= math.Ldexp(1, 62) {
			acc >>= 2
		}
		lo := uint8(rng.IntN(256))
		cases = append(cases, c{acc, mult, shift, rng.IntN(256), lo, lo + uint8(rng.IntN(256-int(lo)))})
	}
	for _, tc := range cases {
		got := requantRef(tc.acc, tc.mult, tc.shift, tc.z, tc.lo, tc.hi)
		want := kernels.Requantize(tc.acc, int32(tc.mult), tc.shift, int32(tc.z), tc.lo, tc.hi)
		if got != want {
			t.Fatalf("requantRef(%d, %d, %d, %d, %d, %d): got %d; kernels.Requantize gives %d", tc.acc, tc.mult, tc.shift, tc.z, tc.lo, tc.hi, got, want)
		}
	}
}

// addMultipliers keeps both ratios within one part in 2^30 of the larger
// mantissa (the common shift is the larger multiplier's).
func TestAddMultipliers(t *testing.T) {
	for _, tc := range [][2]float64{{1, 1}, {0.5, 2}, {3.7, 0.0012}, {1e-6, 2e-6}, {0.999999999, 1}} {
		ma, mb, c, err := addMultipliers(tc[0], tc[1])
		if err != nil {
			t.Fatal(err)
		}
		if max(ma, mb) >= 1<<31 || max(ma, mb) < 1<<29 {
			t.Errorf("%v: mantissas %d, %d; want the larger in [2^29, 2^31)", tc, ma, mb)
		}
		for i, m := range []int64{ma, mb} {
			got := float64(m) / math.Exp2(float64(c))
			if math.Abs(got-tc[i]) > max(tc[0], tc[1])*dyadicRel {
				t.Errorf("%v: multiplier %d is %g; want %g", tc, i, got, tc[i])
			}
		}
	}
}
