package costmodel

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"mpsearch/kernels"
)

type nhwcPt struct {
	g    kernels.ConvShape
	imgs int
	ns   float64 // per call of imgs images
}

func measureNHWCPts(b *testing.B, shapes []kernels.ConvShape, one bool) []nhwcPt {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	mo := mustNorm(b, MeasureOptions{Repeats: 5, MinSample: time.Millisecond})
	var pts []nhwcPt
	for _, g := range shapes {
		oh, ow, _ := g.Out()
		out := oh * ow * g.C * g.KH * g.KW
		imgs := max(1, min(16, (256<<10)/out))
		if one {
			imgs = 1
		}
		in := g.C * g.H * g.W
		src := randBytes(rng, imgs*in)
		dst := make([]uint8, imgs*out)
		t, err := timeCall(ctx, func() error {
			for i := 0; i < imgs; i++ {
				if err := kernels.Im2ColNHWC(dst[i*out:(i+1)*out], src[i*in:(i+1)*in], g, g.C, 0, 3); err != nil {
					return err
				}
			}
			return nil
		}, mo)
		if err != nil {
			b.Fatal(err)
		}
		pts = append(pts, nhwcPt{g, imgs, float64(t.Median)})
	}
	return pts
}

func BenchmarkNHWCFit(b *testing.B) {
	prof, err := ReadProfileFile("../profiles/amd-epyc-zen5.yaml")
	if err != nil {
		b.Fatal(err)
	}
	sw := newSweep(false)
	sw.convC = []int{1, 3, 6, 8, 16, 24, 32, 48, 64, 96, 128}
	pts := measureNHWCPts(b, sw.convShapes(), false)
	var lines []string
	for _, p := range pts {
		f := im2colNHWCFeatures(p.g, p.g.C)
		pred := dotS(prof.Im2ColNHWC.coef(), f) * float64(p.imgs)
		lines = append(lines, fmt.Sprintf("C%-3d H%-2d k%d s%d imgs %2d meas/img %8.0f pred/img %8.0f ratio %.2f  f=%v", p.g.C, p.g.H, p.g.KH, p.g.StrideH, p.imgs, p.ns/float64(p.imgs), pred/float64(p.imgs), pred/p.ns, f))
	}
	b.Log("\n" + strings.Join(lines, "\n"))
}

func BenchmarkNHWCRefit(b *testing.B) {
	prof, err := ReadProfileFile("../profiles/amd-epyc-zen5.yaml")
	if err != nil {
		b.Fatal(err)
	}
	sw := newSweep(false)
	pts := measureNHWCPts(b, sw.convShapes(), false)
	var xs [][]float64
	var ys []float64
	for _, p := range pts {
		f := im2colNHWCFeatures(p.g, p.g.C)
		for j := range f {
			f[j] *= float64(p.imgs)
		}
		xs = append(xs, f)
		ys = append(ys, p.ns)
	}
	c, fit, err := fitNonNeg(xs, ys)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("single shapes: coef %v fit %+v; profile %v %+v", c, *fit, prof.Im2ColNHWC.coef(), *prof.Im2ColNHWC.Fit)
	// grouped as BuildProfile does
	rng := rand.New(rand.NewPCG(5, 6))
	est, _ := AnalyticAVX2(AnalyticParams{Name: "estimate", CPU: "estimate", GHz: 3, MemoryGBps: 20})
	var gp []point
	for _, g := range sw.convShapes() {
		oh, ow, _ := g.Out()
		out := oh * ow * g.C * g.KH * g.KW
		imgs := max(1, min(16, (256<<10)/out))
		f := im2colNHWCFeatures(g, g.C)
		for j := range f {
			f[j] *= float64(imgs)
		}
		gp = append(gp, point{f: f, est: dotS(est.Im2ColNHWC.coef(), f), make: func() (func() error, error) {
			in := g.C * g.H * g.W
			src := randBytes(rng, imgs*in)
			dst := make([]uint8, imgs*out)
			return func() error {
				for i := 0; i < imgs; i++ {
					if err := kernels.Im2ColNHWC(dst[i*out:(i+1)*out], src[i*in:(i+1)*in], g, g.C, 0, 3); err != nil {
						return err
					}
				}
				return nil
			}, nil
		}})
	}
	mo := mustNorm(b, MeasureOptions{Repeats: 7, MinSample: 2 * time.Millisecond})
	gx, gy, err := measureGrouped(context.Background(), gp, mo, func() {})
	if err != nil {
		b.Fatal(err)
	}
	c2, fit2, err := fitNonNeg(gx, gy)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("grouped: coef %v fit %+v", c2, *fit2)
	for i := range gx {
		b.Logf("group %d: meas %.0f pred(single-fit) %.0f pred(group-fit) %.0f pred(profile) %.0f", i, gy[i], dotSlice(c, gx[i]), dotSlice(c2, gx[i]), dotSlice(prof.Im2ColNHWC.coef(), gx[i]))
	}
}
