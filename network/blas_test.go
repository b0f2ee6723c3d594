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

// TestGemmerF32 checks the float32 products against float64 loops (within
// f32Rel of the largest magnitude), through registered twins and
// per-product copies of sub-matrices, every transpose combination.
func TestGemmerF32(t *testing.T) {
	rng := rand.New(rand.NewPCG(63, 64))
	fill := func(n int) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = rng.NormFloat64()
		}
		return v
	}
	const m, n, k, pad = 7, 9, 33, 3
	for _, tc := range []struct {
		ta, tb      bool
		alpha, beta float64
		keepA       bool
	}{{false, false, 1, 0, true}, {true, false, 0.5, 1, false}, {false, true, -2, 0.25, true}, {true, true, 1.5, -1, false}} {
		ar, ac := m, k
		if tc.ta {
			ar, ac = k, m
		}
		br, bc := k, n
		if tc.tb {
			br, bc = n, k
		}
		lda, ldb, ldc := ac+pad, bc+pad, n+pad
		a, b, c := fill(ar*lda+lda), fill(br*ldb), fill(m*ldc)
		want := append([]float64(nil), c...)
		gemm(tc.ta, tc.tb, m, n, k, tc.alpha, a[lda:], lda, b, ldb, tc.beta, want, ldc)
		g := newGemmer(F32)
		if tc.keepA {
			g.keep(a) // the operand starts one row into the registered array
		}
		got := append([]float64(nil), c...)
		g.gemm(tc.ta, tc.tb, m, n, k, tc.alpha, a[lda:], lda, b, ldb, tc.beta, got, ldc)
		if err := closeRelMax(got, want, f32Rel); err != nil {
			t.Errorf("transA=%v transB=%v keep=%v: %v", tc.ta, tc.tb, tc.keepA, err)
		}
		for i := 0; i < m; i++ {
			for j := n; j < ldc; j++ {
				if got[i*ldc+j] != c[i*ldc+j] {
					t.Errorf("transA=%v transB=%v: padding c[%d] changed", tc.ta, tc.tb, i*ldc+j)
				}
			}
		}
	}
}

// TestGemmerF32ThreadCount checks that float32 products are bit-identical
// whatever SetBLASThreads says. OpenBLAS's sgemm is not (its kernels round
// differently by how it partitions a product among its threads, and it
// picks a "direct" kernel by the threads available), so the engine keeps
// it single-threaded and tiles products itself; this fails if OpenBLAS is
// allowed to thread. The shapes include untiled and tiled products.
func TestGemmerF32ThreadCount(t *testing.T) {
	defer SetBLASThreads(1)
	rng := rand.New(rand.NewPCG(65, 66))
	for _, s := range [][3]int{{64, 196, 576}, {32, 784, 288}, {128, 49, 1152}, {16, 3136, 144}, {64, 3136, 576}, {512, 49, 4608}} {
		m, n, k := s[0], s[1], s[2]
		a, b := make([]float64, m*k), make([]float64, k*n)
		for i := range a {
			a[i] = rng.NormFloat64()
		}
		for i := range b {
			b[i] = rng.NormFloat64()
		}
		var out [2][]float64
		for i, th := range []int{1, 2} {
			SetBLASThreads(th)
			out[i] = make([]float64, m*n)
			newGemmer(F32).gemm(false, false, m, n, k, 1, a, k, b, n, 0, out[i], n)
		}
		for i := range out[0] {
			if out[0][i] != out[1][i] {
				t.Errorf("%dx%dx%d: c[%d] = %g with 1 thread, %g with 2; want identical", m, n, k, i, out[0][i], out[1][i])
				break
			}
		}
	}
}
