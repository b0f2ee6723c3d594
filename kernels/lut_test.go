package kernels

import (
	"math/rand/v2"
	"testing"
)

// TestLUTAsmVsGo compares the table builder and the table kernels (single
// call, chunked over lutMaxQuads, and the panel loop) with their Go twins on
// activations drawn from the extremes and the interior, and checks the
// kernel result against the direct sum 2*sum a*b - rowSum + start.
func TestLUTAsmVsGo(t *testing.T) {
	if !useAVX2 {
		t.Skip("assembly kernels not in use (purego build or no AVX2)")
	}
	rng := rand.New(rand.NewPCG(21, 22))
	for _, k := range []int{1, 3, 4, 15, 16, 17, 255, 2048, 2049, 4100} {
		for _, np := range []int{1, 3, lutPanelGroup} {
			kpad := (k + 15) &^ 15
			kq := kpad / 4
			a := make([]uint8, tileM*k)
			for i := range a {
				a[i] = uint8([]int{0, 255, rng.IntN(256)}[rng.IntN(3)])
			}
			w := randWeights(rng, np*tileN, k, 1)
			pw := &Weights{N: np * tileN, K: k, Bits: 1}
			packLUT(pw, w)

			// Tables and row sums, assembly against Go.
			tb := make([]uint8, 2*kq*3*lutTableBytes)
			tg := make([]uint8, len(tb))
			var sb, sg [tileM]int32
			packLUTTile(tb, sb[:], a, tileM, k, 0, kq)
			for r := 0; r < tileM; r++ {
				d := tg[(r/3)*kq*3*lutTableBytes+(r%3)*lutTableBytes:]
				sg[r] = lutRowGo(d, a[r*k:(r+1)*k], 0, kq)
			}
			if sb != sg {
				t.Fatalf("k=%d: row sums asm %v; want %v", k, sb, sg)
			}
			for i := range tb {
				if tb[i] != tg[i] {
					t.Fatalf("k=%d: table byte %d = %d; want %d", k, i, tb[i], tg[i])
				}
			}

			start := make([]int32, np*tileN)
			for i := range start {
				start[i] = int32(rng.IntN(1<<20)) - 1<<19
			}
			got := make([]tile, np)
			lutPanels(tb, pw.pb, got, start, sb[:], kq)
			want := make([]tile, np)
			lutPanelsGo(tg, pw.pb, want, start, sg[:], kq)
			for p := range got {
				for r := 0; r < tileM; r++ {
					for n := 0; n < tileN; n++ {
						c := p*tileN + n
						var s int32
						for j := 0; j < k; j++ {
							if w[c*k+j] > 0 {
								s += int32(a[r*k+j])
							}
						}
						ref := start[c] - sg[r] + 2*s
						if g, wv := got[p][r*tileN+n], want[p][r*tileN+n]; g != ref || wv != ref {
							t.Fatalf("k=%d np=%d panel %d [%d][%d]: asm %d, Go %d; want %d", k, np, p, r, n, g, wv, ref)
						}
					}
				}
			}
		}
	}
}
