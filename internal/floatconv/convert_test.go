package floatconv

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestConvertMatchesGo checks the conversions against Go's own float32(v)
// and float64(v), bit for bit, with and without the assembly, on every
// length 0..70 (tails and whole 16-value iterations), at offsets into a
// larger slice, with special values (±0, ±Inf, values that round to Inf
// or to subnormals, ties) mixed in.
func TestConvertMatchesGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	special := []float64{0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1), math.MaxFloat64, -math.MaxFloat64,
		1e-40, -1e-46, 1 + 1.0/(1<<24), 1 + 3.0/(1<<24), math.SmallestNonzeroFloat64, 3.4028235677973366e38}
	src := make([]float64, 90)
	for i := range src {
		if i%7 == 3 {
			src[i] = special[i%len(special)]
		} else {
			src[i] = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(20)-10))
		}
	}
	for _, asm := range []bool{false, true} {
		if asm && !useAVXConvert {
			continue // no assembly on this CPU or build
		}
		saved := useAVXConvert
		useAVXConvert = asm
		for n := 0; n <= 70; n++ {
			for _, off := range []int{0, 3} {
				s := src[off : off+n]
				d32 := make([]float32, n+2)
				To32(d32, s)
				d64 := make([]float64, n+2)
				To64(d64, d32[:n])
				for i, v := range s {
					if math.Float32bits(d32[i]) != math.Float32bits(float32(v)) {
						t.Fatalf("asm %v n %d off %d: To32 [%d] of %v = %v; want %v", asm, n, off, i, v, d32[i], float32(v))
					}
					if math.Float64bits(d64[i]) != math.Float64bits(float64(d32[i])) {
						t.Fatalf("asm %v n %d off %d: To64 [%d] of %v = %v; want %v", asm, n, off, i, d32[i], d64[i], float64(d32[i]))
					}
				}
				if d32[n] != 0 || d32[n+1] != 0 || d64[n] != 0 || d64[n+1] != 0 {
					t.Fatalf("asm %v n %d: wrote past the source length", asm, n)
				}
			}
		}
		useAVXConvert = saved
	}
}

func BenchmarkTo32(b *testing.B) {
	src := make([]float64, 1<<16)
	dst := make([]float32, len(src))
	for _, asm := range []bool{false, true} {
		b.Run(map[bool]string{false: "go", true: "avx"}[asm], func(b *testing.B) {
			if asm && !useAVXConvert {
				b.Skip("no AVX")
			}
			saved := useAVXConvert
			useAVXConvert = asm
			defer func() { useAVXConvert = saved }()
			b.SetBytes(int64(len(src) * 12))
			for i := 0; i < b.N; i++ {
				To32(dst, src)
			}
		})
	}
}
