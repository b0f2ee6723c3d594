//go:build cgo

package ilp

import (
	"testing"
	"time"
)

// BenchmarkLPSolve: the benchmark table with lp_solve given the
// preprocessing, reduced-cost fixing and incumbent bound (goal: <= 1 s).
func BenchmarkLPSolve(b *testing.B) { benchSolve(b, &LPSolve{}) }

// BenchmarkLPSolvePlain: the same without help, cut at 120 s; it reports
// the gap left at the limit instead of failing.
func BenchmarkLPSolvePlain(b *testing.B) {
	p := realisticProblem(1, 1000, benchBits, 0.5)
	s := &LPSolve{Plain: true, TimeLimit: 120 * time.Second}
	var sol *Solution
	for b.Loop() {
		var err error
		if sol, err = s.Solve(b.Context(), p); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(sol.Gap, "gap")
	b.ReportMetric(float64(sol.Nodes), "nodes")
}

// BenchmarkParetoLPSolve: the 50-point sweep with lp_solve, 1 s per point
// at most.
func BenchmarkParetoLPSolve(b *testing.B) { benchPareto(b, &LPSolve{TimeLimit: time.Second}) }
