package costmodel

import (
	"context"
	"os"
	"testing"
)

// BenchmarkRefitLayoutModels re-measures the layout kernels' models of the
// profile file MPSEARCH_REFIT_PROFILE (RefitLayoutModels) and writes it
// back; without the variable it is skipped. It logs the fits before and
// after.
//
//	MPSEARCH_REFIT_PROFILE=$PWD/profiles/amd-epyc-zen5.yaml go test ./costmodel -run '^$' -bench RefitLayoutModels -benchtime 1x -v
func BenchmarkRefitLayoutModels(b *testing.B) {
	path := os.Getenv("MPSEARCH_REFIT_PROFILE")
	if path == "" {
		b.Skip("set MPSEARCH_REFIT_PROFILE to the profile file to re-measure")
	}
	p, err := ReadProfileFile(path)
	if err != nil {
		b.Fatal(err)
	}
	before := []*Fit{p.Im2Col.Fit, p.Im2ColNHWC.Fit, p.Depthwise.Fit, p.Transpose.Fit}
	for i := 0; i < b.N; i++ {
		if err := RefitLayoutModels(context.Background(), p, ProfileOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	after := []*Fit{p.Im2Col.Fit, p.Im2ColNHWC.Fit, p.Depthwise.Fit, p.Transpose.Fit}
	for i, name := range []string{"im2col", "im2col_nhwc", "depthwise", "transpose"} {
		b.Logf("%s: fit median error %.3f (max %.3f) before, %.3f (max %.3f) after", name, before[i].MedianErr, before[i].MaxErr, after[i].MedianErr, after[i].MaxErr)
	}
	if err := p.WriteFile(path); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRefitCold measures the cold model of the profile file
// MPSEARCH_REFIT_PROFILE (RefitCold) and writes it back; without the
// variable it is skipped. It logs the figures.
//
//	MPSEARCH_REFIT_PROFILE=$PWD/profiles/amd-epyc-zen5.yaml go test ./costmodel -run '^$' -bench RefitCold -benchtime 1x -v
func BenchmarkRefitCold(b *testing.B) {
	path := os.Getenv("MPSEARCH_REFIT_PROFILE")
	if path == "" {
		b.Skip("set MPSEARCH_REFIT_PROFILE to the profile file to re-measure")
	}
	p, err := ReadProfileFile(path)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		if err := RefitCold(context.Background(), p, ProfileOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("cold: %.4g ns per weight byte, %.4g ns per Add table (%d points)", p.Cold.NsPerWeightByte, p.Cold.AddTableNs, p.Cold.Points)
	if err := p.WriteFile(path); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRefitPass measures the pass curve of the profile file
// MPSEARCH_REFIT_PROFILE's cold model (RefitPass) and writes it back;
// without the variable it is skipped. It logs the curve.
//
//	MPSEARCH_REFIT_PROFILE=$PWD/profiles/amd-epyc-zen5.yaml go test ./costmodel -run '^$' -bench RefitPass -benchtime 1x -v
func BenchmarkRefitPass(b *testing.B) {
	path := os.Getenv("MPSEARCH_REFIT_PROFILE")
	if path == "" {
		b.Skip("set MPSEARCH_REFIT_PROFILE to the profile file to re-measure")
	}
	p, err := ReadProfileFile(path)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		if err := RefitPass(context.Background(), p, ProfileOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("pass curve: %+v (hot up to %.0f bytes)", p.Cold.Pass, p.Cold.cacheBytes())
	if err := p.WriteFile(path); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRefitStream re-measures the stream models of the profile file
// MPSEARCH_REFIT_PROFILE (RefitStream) and writes it back; without the
// variable it is skipped. It logs the fits before and after.
//
//	MPSEARCH_REFIT_PROFILE=$PWD/profiles/amd-epyc-zen5.yaml go test ./costmodel -run '^$' -bench RefitStream -benchtime 1x -v
func BenchmarkRefitStream(b *testing.B) {
	path := os.Getenv("MPSEARCH_REFIT_PROFILE")
	if path == "" {
		b.Skip("set MPSEARCH_REFIT_PROFILE to the profile file to re-measure")
	}
	p, err := ReadProfileFile(path)
	if err != nil {
		b.Fatal(err)
	}
	before := p.Stream
	for i := 0; i < b.N; i++ {
		if err := RefitStream(context.Background(), p, ProfileOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	for i, s := range p.Stream {
		b.Logf("%d-bit stream: %+v; fit median error %.3f (max %.3f), before %+v", s.Bits, s, s.Fit.MedianErr, s.Fit.MaxErr, before[i])
	}
	if err := p.WriteFile(path); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRefitPools re-measures the pool terms of the profile file
// MPSEARCH_REFIT_PROFILE (RefitPools) and writes it back; without the
// variable it is skipped. It logs the model before and after.
//
//	MPSEARCH_REFIT_PROFILE=$PWD/profiles/amd-epyc-zen5.yaml go test ./costmodel -run '^$' -bench RefitPools -benchtime 1x -v
func BenchmarkRefitPools(b *testing.B) {
	path := os.Getenv("MPSEARCH_REFIT_PROFILE")
	if path == "" {
		b.Skip("set MPSEARCH_REFIT_PROFILE to the profile file to re-measure")
	}
	p, err := ReadProfileFile(path)
	if err != nil {
		b.Fatal(err)
	}
	before := p.Ops
	for i := 0; i < b.N; i++ {
		if err := RefitPools(context.Background(), p, ProfileOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("ops before: %+v", before)
	b.Logf("ops after:  %+v", p.Ops)
	if err := p.WriteFile(path); err != nil {
		b.Fatal(err)
	}
}
