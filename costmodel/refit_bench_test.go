package costmodel

import (
	"context"
	"os"
	"testing"
)

// refitBench re-measures part of the profile file MPSEARCH_REFIT_PROFILE
// with refit (b.N times), logs what log makes of the profile before and
// after, and writes the file back; without the variable it skips b.
func refitBench(b *testing.B, refit func(context.Context, *Profile, ProfileOptions) error, log func(before, after *Profile)) {
	path := os.Getenv("MPSEARCH_REFIT_PROFILE")
	if path == "" {
		b.Skip("set MPSEARCH_REFIT_PROFILE to the profile file to re-measure")
	}
	p, err := ReadProfileFile(path)
	if err != nil {
		b.Fatal(err)
	}
	before := *p // the Refit functions replace what they change
	for i := 0; i < b.N; i++ {
		if err := refit(context.Background(), p, ProfileOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	log(&before, p)
	if err := p.WriteFile(path); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRefitLayoutModels re-measures the layout kernels' models of the
// profile file MPSEARCH_REFIT_PROFILE (RefitLayoutModels) and writes it
// back; without the variable it is skipped. It logs the fits before and
// after.
//
//	MPSEARCH_REFIT_PROFILE=$PWD/profiles/amd-epyc-zen5.yaml go test ./costmodel -run '^$' -bench RefitLayoutModels -benchtime 1x -v
func BenchmarkRefitLayoutModels(b *testing.B) {
	refitBench(b, RefitLayoutModels, func(before, p *Profile) {
		fits := func(p *Profile) []*Fit {
			return []*Fit{p.Im2Col.Fit, p.Im2ColNHWC.Fit, p.Depthwise.Fit, p.Transpose.Fit}
		}
		old, now := fits(before), fits(p)
		for i, name := range []string{"im2col", "im2col_nhwc", "depthwise", "transpose"} {
			b.Logf("%s: fit median error %.3f (max %.3f) before, %.3f (max %.3f) after", name, old[i].MedianErr, old[i].MaxErr, now[i].MedianErr, now[i].MaxErr)
		}
	})
}

// BenchmarkRefitCold measures the cold model of the profile file
// MPSEARCH_REFIT_PROFILE (RefitCold) and writes it back; without the
// variable it is skipped. It logs the figures.
//
//	MPSEARCH_REFIT_PROFILE=$PWD/profiles/amd-epyc-zen5.yaml go test ./costmodel -run '^$' -bench RefitCold -benchtime 1x -v
func BenchmarkRefitCold(b *testing.B) {
	refitBench(b, RefitCold, func(_, p *Profile) {
		b.Logf("cold: %.4g ns per weight byte, %.4g ns per Add table (%d points), pass curve %+v", p.Cold.NsPerWeightByte, p.Cold.AddTableNs, p.Cold.Points, p.Cold.Pass)
	})
}

// BenchmarkRefitPass measures the pass curve of the profile file
// MPSEARCH_REFIT_PROFILE's cold model (RefitPass) and writes it back;
// without the variable it is skipped. It logs the curve.
//
//	MPSEARCH_REFIT_PROFILE=$PWD/profiles/amd-epyc-zen5.yaml go test ./costmodel -run '^$' -bench RefitPass -benchtime 1x -v
func BenchmarkRefitPass(b *testing.B) {
	refitBench(b, RefitPass, func(_, p *Profile) {
		b.Logf("pass curve: %+v (hot up to %.0f bytes)", p.Cold.Pass, p.Cold.cacheBytes())
	})
}

// BenchmarkRefitStream re-measures the stream models of the profile file
// MPSEARCH_REFIT_PROFILE (RefitStream) and writes it back; without the
// variable it is skipped. It logs the models before and after.
//
//	MPSEARCH_REFIT_PROFILE=$PWD/profiles/amd-epyc-zen5.yaml go test ./costmodel -run '^$' -bench RefitStream -benchtime 1x -v
func BenchmarkRefitStream(b *testing.B) {
	refitBench(b, RefitStream, func(before, p *Profile) {
		for i, s := range p.Stream {
			b.Logf("%d-bit stream: %+v; fit median error %.3f (max %.3f), before %+v", s.Bits, s, s.Fit.MedianErr, s.Fit.MaxErr, before.Stream[i])
		}
	})
}

// BenchmarkRefitPools re-measures the pool terms of the profile file
// MPSEARCH_REFIT_PROFILE (RefitPools) and writes it back; without the
// variable it is skipped. It logs the model before and after.
//
//	MPSEARCH_REFIT_PROFILE=$PWD/profiles/amd-epyc-zen5.yaml go test ./costmodel -run '^$' -bench RefitPools -benchtime 1x -v
func BenchmarkRefitPools(b *testing.B) {
	refitBench(b, RefitPools, func(before, p *Profile) {
		b.Logf("ops before: %+v", before.Ops)
		b.Logf("ops after:  %+v", p.Ops)
	})
}
