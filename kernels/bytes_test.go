package kernels

import (
	"math/rand/v2"
	"testing"
)

// TestMaxBytes checks MaxBytes element by element for lengths around the
// 32-byte blocks, with the assembly and without.
func TestMaxBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	saved := useAVX2
	defer func() { useAVX2 = saved }()
	for _, asm := range []bool{true, false} {
		useAVX2 = saved && asm
		for _, n := range []int{0, 1, 31, 32, 33, 64, 100, 1000} {
			dst, src := make([]uint8, n), make([]uint8, n+3)
			for i := range dst {
				dst[i] = uint8(rng.IntN(256))
			}
			for i := range src {
				src[i] = uint8(rng.IntN(256))
			}
			want := make([]uint8, n)
			for i := range want {
				want[i] = max(dst[i], src[i])
			}
			MaxBytes(dst, src)
			for i := range dst {
				if dst[i] != want[i] {
					t.Fatalf("asm %v, n %d: dst[%d] = %d; want %d", asm, n, i, dst[i], want[i])
				}
			}
		}
	}
}

// TestLookupBytes checks LookupBytes element by element for lengths around
// the 64-byte blocks, every index value, with the assembly and without.
func TestLookupBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(43, 44))
	saved := useVBMI
	defer func() { useVBMI = saved }()
	var tab [256]uint8
	for i := range tab {
		tab[i] = uint8(rng.IntN(256))
	}
	for _, asm := range []bool{true, false} {
		useVBMI = saved && asm
		for _, n := range []int{0, 1, 63, 64, 65, 256, 1000} {
			src := make([]uint8, n+5)
			for i := range src {
				src[i] = uint8(i*37 + rng.IntN(3)) // every value among the first 256
			}
			dst := make([]uint8, n)
			LookupBytes(dst, src, &tab)
			for i := range dst {
				if dst[i] != tab[src[i]] {
					t.Fatalf("asm %v, n %d: dst[%d] = %d; want tab[%d] = %d", asm, n, i, dst[i], src[i], tab[src[i]])
				}
			}
		}
	}
}
