package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// refQuantize is quant.ActQuant.Quantize's formula as written there (the
// branches, and Go's conversion of the clamped value).
func refQuantize(x, s float64, zp int) uint8 {
	q := math.RoundToEven(x/s) + float64(zp)
	if q < 0 {
		q = 0
	} else if q > 255 {
		q = 255
	}
	if q != q {
		return 0 // uint8(NaN) on amd64; spelled out for other architectures
	}
	return uint8(q)
}

// quantizeInputs returns seeded values of every kind QuantizeBytes meets:
// ordinary ones around the grid, exact ties (k+1/2)·s, the clamp edges,
// zeros of both signs, infinities, NaN and huge magnitudes.
func quantizeInputs(rng *rand.Rand, n int, s float64) []float64 {
	special := []float64{0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1), math.NaN(), 1e308, -1e308,
		0.5 * s, -0.5 * s, 1.5 * s, 2.5 * s, -2.5 * s, 127.5 * s, -127.5 * s, 255.5 * s, -0.49999999999999994 * s,
		math.SmallestNonzeroFloat64, 300 * s, -300 * s}
	x := make([]float64, n)
	for i := range x {
		switch rng.IntN(4) {
		case 0:
			x[i] = special[rng.IntN(len(special))]
		case 1:
			x[i] = (float64(rng.IntN(700)-350) + 0.5) * s // ties
		default:
			x[i] = rng.NormFloat64() * 100 * s
		}
	}
	return x
}

// TestQuantizeBits checks QuantizeBytes and FakeQuantize against the
// reference formula bit for bit, on every length 0..40 (the blocks of 8
// and their tails), zero points 0, 128 and 255, with the AVX-512 kernels
// on (where the CPU has them) and off.
func TestQuantizeBits(t *testing.T) {
	saved := useQuantAVX512
	defer func() { useQuantAVX512 = saved }()
	rng := rand.New(rand.NewPCG(9, 10))
	for _, vec := range []bool{saved, false} {
		useQuantAVX512 = vec
		for n := 0; n <= 40; n++ {
			for _, zp := range []int{0, 128, 255} {
				s := math.Exp(rng.NormFloat64() * 3)
				x := quantizeInputs(rng, n, s)
				codes := make([]uint8, n)
				QuantizeBytes(codes, x, s, zp)
				fake := make([]float64, n)
				FakeQuantize(fake, x, s, zp)
				inPlace := append([]float64(nil), x...)
				FakeQuantize(inPlace, inPlace, s, zp)
				for i, v := range x {
					want := refQuantize(v, s, zp)
					wantFake := float64(int(want)-zp) * s
					if codes[i] != want {
						t.Errorf("vector %t, n %d, zp %d: code of %v (scale %v): got %d; want %d", vec, n, zp, v, s, codes[i], want)
					}
					if math.Float64bits(fake[i]) != math.Float64bits(wantFake) || math.Float64bits(inPlace[i]) != math.Float64bits(wantFake) {
						t.Errorf("vector %t, n %d, zp %d: fake of %v (scale %v): got %v (in place %v); want %v", vec, n, zp, v, s, fake[i], inPlace[i], wantFake)
					}
				}
			}
		}
	}
}

func BenchmarkQuantize(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	x := make([]float64, 4096)
	for i := range x {
		x[i] = rng.NormFloat64()
	}
	codes := make([]uint8, len(x))
	fake := make([]float64, len(x))
	saved := useQuantAVX512
	defer func() { useQuantAVX512 = saved }()
	for _, vec := range []bool{false, saved} {
		useQuantAVX512 = vec
		name := "go"
		if vec {
			name = "avx512"
		}
		b.Run("bytes/"+name, func(b *testing.B) {
			for b.Loop() {
				QuantizeBytes(codes, x, 0.02, 128)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(x)), "ns/value")
		})
		b.Run("fake/"+name, func(b *testing.B) {
			for b.Loop() {
				FakeQuantize(fake, x, 0.02, 128)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(x)), "ns/value")
		})
	}
}
