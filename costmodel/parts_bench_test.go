package costmodel

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"mpsearch/kernels"
)

// BenchmarkConvParts times, in interleaved rounds, the parts of channels-last
// convolutions as the engine runs them at batch 1 (kernels.Im2ColNHWC of one
// image, then one kernels.GEMMRequant) and the whole layer on the engine
// (Measure), next to the prediction of each part by the profile
// MPSEARCH_PROFILE (default: the shipped Zen 5 one), at 8 bits: it locates
// a layer's prediction error in the patch matrix or the product.
//
//	go test ./costmodel -run '^$' -bench ConvParts -benchtime 1x -v
func BenchmarkConvParts(b *testing.B) {
	path := os.Getenv("MPSEARCH_PROFILE")
	if path == "" {
		path = "../profiles/amd-epyc-zen5.yaml"
	}
	prof, err := ReadProfileFile(path)
	if err != nil {
		b.Fatal(err)
	}
	type cs struct {
		c, h, k, s, n int
	}
	cases := []cs{{1, 28, 3, 1, 32}, {32, 28, 3, 1, 32}, {32, 14, 3, 1, 64}, {64, 14, 3, 1, 64}, {64, 7, 3, 1, 128},
		{16, 14, 3, 1, 16}, {16, 14, 3, 2, 32}, {32, 7, 3, 1, 32}, {64, 4, 3, 1, 64}, {6, 14, 5, 1, 16},
		{64, 56, 3, 1, 64}, {128, 28, 3, 1, 128}} // the last two: ResNet50's layer1 and layer2 3x3
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	mo := MeasureOptions{Repeats: 5, MinSample: 2 * time.Millisecond}
	var lines []string
	for _, c := range cases {
		g := kernels.ConvShape{C: c.c, H: c.h, W: c.h, KH: c.k, KW: c.k, StrideH: c.s, StrideW: c.s, PadTop: c.k / 2, PadLeft: c.k / 2, PadBottom: c.k / 2, PadRight: c.k / 2}
		if c.c == 6 {
			g.PadTop, g.PadLeft, g.PadBottom, g.PadRight = 0, 0, 0, 0
		}
		oh, ow, _ := g.Out()
		rows, k := oh*ow, c.c*c.k*c.k
		s, err := ConvLayer("conv", g, c.n, 1)
		if err != nil {
			b.Fatal(err)
		}
		s.InNHWC, s.OutNHWC = true, true
		src := randBytes(rng, g.C*g.H*g.W)
		dst := make([]uint8, rows*k)
		r, err := newRunner(rows, k, c.n, 8, 1, rng)
		if err != nil {
			b.Fatal(err)
		}
		var ti, tg, tl []float64
		for round := 0; round < 3; round++ {
			t, err := timeCall(ctx, func() error { return kernels.Im2ColNHWC(dst, src, g, g.C, 0, 3) }, mustNorm(b, mo))
			if err != nil {
				b.Fatal(err)
			}
			ti = append(ti, float64(t.Median))
			t, err = timeCall(ctx, r.run, mustNorm(b, mo))
			if err != nil {
				b.Fatal(err)
			}
			tg = append(tg, float64(t.Median))
			lc, err := Measure(ctx, []LayerShape{s}, []int{8}, mo)
			if err != nil {
				b.Fatal(err)
			}
			tl = append(tl, float64(lc[0].Costs[0].Latency.Median))
		}
		pi := dotS(prof.Im2ColNHWC.coef(), im2colNHWCFeatures(g, g.C))
		pg, _ := prof.gemmNs(8, rows, k, c.n)
		pl, _ := predictNs(prof, s, 8, 1)
		mi, mg, ml := med(ti), med(tg), med(tl)
		lines = append(lines, fmt.Sprintf("C%-3d H%-3d k%d s%d N%-4d M%-4d K%-4d im2col %7.0f/%7.0f (%.2f)  gemm %7.0f/%7.0f (%.2f)  layer %7.0f/%7.0f (%.2f) parts/layer %.2f",
			c.c, c.h, c.k, c.s, c.n, rows, k, pi, mi, pi/mi, pg, mg, pg/mg, pl, ml, pl/ml, (mi+mg)/ml))
	}
	b.Log("pred/meas ns\n" + strings.Join(lines, "\n"))
}

func mustNorm(b *testing.B, mo MeasureOptions) MeasureOptions {
	mo, err := mo.norm()
	if err != nil {
		b.Fatal(err)
	}
	return mo
}

func med(x []float64) float64 {
	y := slices.Clone(x)
	slices.Sort(y)
	return y[len(y)/2]
}
