package network

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestGemmHelper checks gemm on sub-matrices of wider storage (leading
// dimensions larger than the column count), all transpose combinations
// and alpha/beta, against direct loops.
func TestGemmHelper(t *testing.T) {
	if name := BLASName(); name != "openblas" && name != "gonum" {
		t.Errorf("BLASName() = %q; want openblas or gonum", name)
	}
	rng := rand.New(rand.NewPCG(61, 62))
	fill := func(n int) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = rng.NormFloat64()
		}
		return v
	}
	const m, n, k, pad = 3, 4, 5, 2
	for _, tc := range []struct {
		ta, tb      bool
		alpha, beta float64
	}{{false, false, 1, 0}, {true, false, 0.5, 1}, {false, true, -2, 0.25}, {true, true, 1.5, -1}} {
		ar, ac := m, k
		if tc.ta {
			ar, ac = k, m
		}
		br, bc := k, n
		if tc.tb {
			br, bc = n, k
		}
		lda, ldb, ldc := ac+pad, bc+pad, n+pad
		a, b, c := fill(ar*lda), fill(br*ldb), fill(m*ldc)
		want := append([]float64(nil), c...)
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				s := 0.0
				for l := 0; l < k; l++ {
					var av, bv float64
					if tc.ta {
						av = a[l*lda+i]
					} else {
						av = a[i*lda+l]
					}
					if tc.tb {
						bv = b[j*ldb+l]
					} else {
						bv = b[l*ldb+j]
					}
					s += av * bv
				}
				want[i*ldc+j] = tc.alpha*s + tc.beta*c[i*ldc+j]
			}
		}
		gemm(tc.ta, tc.tb, m, n, k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)
		for i := range c {
			if math.Abs(c[i]-want[i]) > refTol*math.Max(1, math.Abs(want[i])) {
				t.Errorf("transA=%v transB=%v: c[%d] = %g; want %g (padding columns must stay unchanged)", tc.ta, tc.tb, i, c[i], want[i])
				break
			}
		}
	}
}
