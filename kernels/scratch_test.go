package kernels

import (
	"math/rand/v2"
	"testing"
)

// TestScratchReuse runs GEMMRequant and GEMM through one Scratch on a
// sequence of shapes and bit widths (growing, shrinking, partial panels)
// and checks every output against the int64 reference and Requantize;
// then that a call with a grown Scratch allocates nothing.
func TestScratchReuse(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	var sc Scratch
	opt := Options{Threads: 1, Scratch: &sc}
	shapes := [][4]int{{1, 72, 16, 8}, {37, 300, 70, 4}, {6, 9, 5, 8}, {130, 64, 33, Ternary}, {2, 512, 1000, 8}, {13, 27, 16, 1}}
	for _, sh := range shapes {
		m, k, n, bits := sh[0], sh[1], sh[2], sh[3]
		lo, hi := -127, 127
		switch bits {
		case 4:
			lo, hi = -8, 7
		case Ternary:
			lo, hi = -1, 1
		case 1:
			lo, hi = -1, 1
		}
		w := make([]int8, n*k)
		for i := range w {
			v := lo + rng.IntN(hi-lo+1)
			if bits == 1 && v == 0 {
				v = 1
			}
			w[i] = int8(v)
		}
		var pw *Weights
		var err error
		if bits == Ternary {
			pw, err = PackTernary(w, n, k)
		} else {
			pw, err = PackWeights(w, n, k, bits)
		}
		if err != nil {
			t.Fatal(err)
		}
		a := make([]uint8, m*k)
		for i := range a {
			a[i] = uint8(rng.IntN(256))
		}
		z := uint8(rng.IntN(256))
		rq := Requant{Bias: make([]int32, n), Mult: make([]int32, n), Shift: make([]int, n), Zero: 7, Lo: 3, Hi: 250}
		for c := 0; c < n; c++ {
			rq.Bias[c] = int32(rng.IntN(20001) - 10000)
			rq.Mult[c] = int32(1<<30 + rng.IntN(1<<30))
			rq.Shift[c] = 38 + rng.IntN(6)
		}
		got := make([]uint8, m*n)
		acc := make([]int32, m*n)
		if err := GEMMRequant(got, a, m, k, z, pw, &rq, opt); err != nil {
			t.Fatal(err)
		}
		if err := GEMM(acc, a, m, k, z, pw, opt); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < m; i++ {
			for c := 0; c < n; c++ {
				var ref int64
				for j := 0; j < k; j++ {
					ref += (int64(a[i*k+j]) - int64(z)) * int64(w[c*k+j])
				}
				if int64(acc[i*n+c]) != ref {
					t.Fatalf("shape %v: GEMM[%d][%d] = %d; want %d", sh, i, c, acc[i*n+c], ref)
				}
				want := Requantize(ref+int64(rq.Bias[c]), rq.Mult[c], rq.Shift[c], rq.Zero, rq.Lo, rq.Hi)
				if got[i*n+c] != want {
					t.Fatalf("shape %v: GEMMRequant[%d][%d] = %d; want %d", sh, i, c, got[i*n+c], want)
				}
			}
		}
		if bits == 1 && !useVNNI {
			continue // the table kernel builds its tables per call
		}
		allocs := testing.AllocsPerRun(10, func() {
			if err := GEMMRequant(got, a, m, k, z, pw, &rq, opt); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("shape %v: GEMMRequant with a Scratch: got %g allocations per call; want 0", sh, allocs)
		}
	}
}
