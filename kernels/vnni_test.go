package kernels

import (
	"math/rand/v2"
	"testing"
)

// TestTileVNNIAsmVsGo compares the VNNI micro-kernels (four panels and one)
// with tileDotGo on random tiles drawn from the extremes and the interior,
// for odd and even quad counts, starting from random accumulators or from
// random start rows.
func TestTileVNNIAsmVsGo(t *testing.T) {
	if !useVNNI {
		t.Skip("VNNI kernels not in use (purego build or no AVX-512 VNNI)")
	}
	rng := rand.New(rand.NewPCG(21, 22))
	for _, kq := range []int{1, 2, 3, 7, 64, 65, 129} {
		a := make([]uint8, kq*4*tileM)
		for i := range a {
			a[i] = uint8([]int{0, 255, rng.IntN(256)}[rng.IntN(3)])
		}
		for _, bits := range []int{8, 4, 1} {
			stride := kq*4*tileN + 64*rng.IntN(3) // panels need not be adjacent
			w := make([]int8, (quadGroup-1)*stride+kq*4*tileN)
			lo, hi, _, _ := weightRange(bits)
			for i := range w {
				w[i] = []int8{lo, hi, int8(int(lo) + rng.IntN(int(hi)-int(lo)+1))}[rng.IntN(3)]
			}
			for _, np := range []int{quadGroup, 1, 3} {
				for _, withInit := range []bool{false, true} {
					got := make([]tile, np)
					for j := range got {
						for i := range got[j] {
							got[j][i] = int32(rng.Uint32()) >> 2
						}
					}
					var start []int32
					if withInit {
						start = make([]int32, np*tileN)
						for i := range start {
							start[i] = int32(rng.Uint32()) >> 2
						}
					}
					want := append([]tile(nil), got...)
					// The reference: set the rows from start by hand, then
					// accumulate with tileDotGo.
					for j := range want {
						for i := range want[j] {
							if start != nil {
								want[j][i] = start[j*tileN+i%tileN]
							}
						}
						tileDotGo(a, w[j*stride:], &want[j], kq)
					}
					tilesQuad(a, w, stride, got, kq, 0, start)
					for j := range want {
						if got[j] != want[j] {
							t.Fatalf("bits=%d kq=%d panels=%d start=%v: panel %d asm %v; want %v", bits, kq, np, withInit, j, got[j], want[j])
						}
					}
				}
			}
		}
	}
}

// TestLayoutSurvivesFlags packs weights under each dispatch setting and runs
// them under every other one: the layout is recorded in Weights, so results
// stay exact whichever kernels are enabled at call time.
func TestLayoutSurvivesFlags(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	m, n, k := 37, 71, 203
	a := make([]uint8, m*k)
	for i := range a {
		a[i] = uint8(rng.IntN(256))
	}
	for _, bits := range allBits {
		w := randWeights(rng, n, k, bits)
		want := refGEMM(a, m, k, 77, w, n)
		for _, pp := range availablePaths() {
			restore := setPath(pp)
			pw, err := packAny(w, n, k, bits)
			restore()
			if err != nil {
				t.Fatal(err)
			}
			for _, ep := range availablePaths() {
				restore := setPath(ep)
				got := make([]int32, m*n)
				err := GEMM(got, a, m, k, 77, pw, Options{Threads: 2})
				restore()
				if err != nil {
					t.Fatal(err)
				}
				for i := range got {
					if int64(got[i]) != want[i] {
						t.Fatalf("bits=%s packed %s, run %s: dst[%d][%d] = %d; want %d", bitsName(bits), pp.name, ep.name, i/n, i%n, got[i], want[i])
					}
				}
			}
		}
	}
}

// TestPanelBytes checks the documented panel footprint: one byte per padded
// weight, two for 8-bit weights packed as int16 pairs (no VNNI).
func TestPanelBytes(t *testing.T) {
	for _, p := range availablePaths() {
		restore := setPath(p)
		pw, err := PackWeights(make([]int8, 17*5), 17, 5, 8)
		restore()
		if err != nil {
			t.Fatal(err)
		}
		want := 32 * 8 // N padded to 32, K to 8
		if !p.vnni {
			want *= 2
		}
		if got := pw.PanelBytes(); got != want {
			t.Errorf("%s: PanelBytes() = %d; want %d", p.name, got, want)
		}
	}
}

// TestTilesQuadOut checks the direct-to-output form of the four-panel quad
// kernel on every path: the 6 x 64 block it writes into a row-major dst
// (row stride ldd > 64) equals what tilesQuadGo leaves in the tiles (from
// random accumulators or random start rows, extreme and interior values,
// 8-bit and 4-bit weights), and nothing else in dst changes.
func TestTilesQuadOut(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	const sentinel = int32(-0x5a5a5a5b)
	withPaths(t, func(t *testing.T) {
		for _, kq := range []int{1, 2, 5, 64, 129} {
			a := make([]uint8, kq*4*tileM)
			for i := range a {
				a[i] = uint8([]int{0, 255, rng.IntN(256)}[rng.IntN(3)])
			}
			for _, bits := range []int{8, 4} {
				lo, hi, g, _ := weightRange(bits)
				stride := kq*4*tileN + 64*rng.IntN(3)
				w := make([]int8, (quadGroup-1)*stride+kq*4*tileN)
				for i := range w {
					w[i] = []int8{lo, hi, int8(int(lo) + rng.IntN(int(hi)-int(lo)+1))}[rng.IntN(3)]
				}
				for _, withInit := range []bool{false, true} {
					c := make([]tile, quadGroup)
					for j := range c {
						for i := range c[j] {
							c[j][i] = int32(rng.Uint32()) >> 2
						}
					}
					var start []int32
					if withInit {
						start = make([]int32, quadGroup*tileN)
						for i := range start {
							start[i] = int32(rng.Uint32()) >> 2
						}
					}
					want := append([]tile(nil), c...)
					tilesQuadGo(a, w, stride, want, kq, g, start)
					ldd := quadGroup*tileN + 16*(1+rng.IntN(4))
					dst := make([]int32, (tileM+1)*ldd)
					for i := range dst {
						dst[i] = sentinel
					}
					tilesQuadOut(a, w, stride, c, kq, g, start, dst[ldd/2:], ldd)
					for i, v := range dst {
						o := i - ldd/2
						r, x := o/ldd, o%ldd
						in := o >= 0 && r < tileM && x < quadGroup*tileN
						switch {
						case in && v != want[x/tileN][r*tileN+x%tileN]:
							t.Fatalf("bits=%d kq=%d start=%v: dst row %d col %d = %d; want %d", bits, kq, withInit, r, x, v, want[x/tileN][r*tileN+x%tileN])
						case !in && v != sentinel:
							t.Fatalf("bits=%d kq=%d start=%v: dst[%d] outside the block = %d; want it untouched", bits, kq, withInit, i, v)
						}
					}
				}
			}
		}
	})
}
