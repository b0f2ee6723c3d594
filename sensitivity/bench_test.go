package sensitivity

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"mpsearch/hessian"
)

// BenchmarkTraceToTolerance compares the wall time to reach 2% relative
// standard error on every layer of the fixture LeNet (256 images):
//   - plain: a one-probe-per-product Hutchinson loop, every product
//     recomputing the forward pass (the usual PyHessian-style loop); its
//     time is the probes plain Hutchinson needs times the measured time of
//     one such product;
//   - batched: our Hutchinson, 8 probes per pass on cached forward passes;
//   - hutch++: our variance-reduced estimator, batched;
//   - exact: the exact Gauss-Newton traces (valid for this network).
//
// Reported as seconds, and as ratios to plain measured in the same run.
func BenchmarkTraceToTolerance(b *testing.B) {
	net, ds := loadFixture(b)
	ctx := context.Background()
	const tol = 0.02
	for i := 0; i < b.N; i++ {
		// One product without any cache (MaxCacheBytes tiny), one probe.
		single, err := NewOracle(ctx, net, ds, OracleOptions{MaxCacheBytes: 1})
		if err != nil {
			b.Fatal(err)
		}
		v := make([]float64, single.Dim())
		hv := make([]float64, single.Dim())
		rng := rand.New(rand.NewPCG(1, 1))
		for j := range v {
			v[j] = float64(2*rng.IntN(2) - 1)
		}
		const reps = 5
		t0 := time.Now()
		for r := 0; r < reps; r++ {
			if err := single.HVP(ctx, v, hv, 1); err != nil {
				b.Fatal(err)
			}
		}
		perProduct := time.Since(t0).Seconds() / reps

		o, err := NewOracle(ctx, net, ds, OracleOptions{})
		if err != nil {
			b.Fatal(err)
		}
		opts := hessian.Options{Tol: tol, MaxProbes: 20000, Seed: 1}
		t0 = time.Now()
		hres, err := hessian.Hutchinson(ctx, o, opts)
		if err != nil {
			b.Fatal(err)
		}
		batched := time.Since(t0).Seconds()
		plain := float64(hres.Products) * perProduct

		t0 = time.Now()
		pres, err := hessian.HutchPlusPlus(ctx, o, hessian.PPOptions{Options: opts})
		if err != nil {
			b.Fatal(err)
		}
		pp := time.Since(t0).Seconds()

		t0 = time.Now()
		if _, err := o.GGNTraces(ctx, ds.Len(), nil); err != nil {
			b.Fatal(err)
		}
		exact := time.Since(t0).Seconds()

		b.ReportMetric(perProduct, "s/plain-product")
		b.ReportMetric(float64(hres.Products), "probes-hutchinson")
		b.ReportMetric(float64(pres.Products), "products-hutch++")
		b.ReportMetric(plain, "s-plain")
		b.ReportMetric(batched/plain, "batched/plain")
		b.ReportMetric(pp/plain, "hutch++/plain")
		b.ReportMetric(exact/plain, "exact/plain")
		b.ReportMetric(exact/pp, "exact/hutch++")
	}
}
