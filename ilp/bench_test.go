package ilp

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// realisticProblem draws a table shaped like a real network's: per layer,
// parameters over four orders of magnitude and MACs 10-1000 per parameter;
// omega = s_i * 4^-b with s_i over six orders of magnitude (the HAWQ term
// Tr(H)/n * ||Q_b(W)-W||^2 shrinks about 4x per extra bit); size =
// params*b/8 bytes, BOPs = MACs*b*8, latency affine in b per MAC with 10%
// noise. Each budget sits at frac between the smallest and largest total.
func realisticProblem(seed uint64, layers int, bits []int, frac float64) *Problem {
	rng := rand.New(rand.NewPCG(seed, 1))
	p := &Problem{Resources: []Resource{
		{Name: "latency", Unit: "ms"}, {Name: "size", Unit: "B"}, {Name: "bops"},
	}}
	for i := 0; i < layers; i++ {
		params := math.Pow(10, 2+4*rng.Float64())
		macs := params * math.Pow(10, 1+2*rng.Float64())
		scale := math.Pow(10, -4+6*rng.Float64())
		l := Layer{Name: fmt.Sprintf("layer%d", i)}
		for _, b := range bits {
			fb := float64(b)
			l.Options = append(l.Options, Option{
				Bits:  b,
				Omega: scale * math.Pow(4, -fb) * (0.8 + 0.4*rng.Float64()),
				Costs: []float64{
					macs * 1e-9 * (1 + 0.25*fb) * (0.9 + 0.2*rng.Float64()),
					params * fb / 8,
					macs * fb * 8,
				},
			})
		}
		p.Layers = append(p.Layers, l)
	}
	for k := range p.Resources {
		lo, hi := 0.0, 0.0
		for _, l := range p.Layers {
			mn, mx := math.Inf(1), 0.0
			for _, o := range l.Options {
				mn, mx = math.Min(mn, o.Costs[k]), math.Max(mx, o.Costs[k])
			}
			lo += mn
			hi += mx
		}
		p.Resources[k].Limit = lo + frac*(hi-lo)
	}
	return p
}

var benchBits = []int{2, 3, 4, 6, 8}

func benchSolve(b *testing.B, s Solver) {
	p := realisticProblem(1, 1000, benchBits, 0.5)
	ctx := context.Background()
	var sol *Solution
	for b.Loop() {
		var err error
		if sol, err = s.Solve(ctx, p); err != nil {
			b.Fatal(err)
		}
	}
	if !sol.Optimal {
		b.Fatalf("not proven optimal: gap %g", sol.Gap)
	}
	b.ReportMetric(float64(sol.Nodes), "nodes")
}

// benchPareto sweeps the latency budget over 50 points with the size and
// BOPs budgets kept at 50%. Points where two budgets bind can take the
// solvers far longer than the rest, so s should carry a per-point
// TimeLimit; the benchmark reports how many points were proven optimal and
// the largest proven gap among the others.
func benchPareto(b *testing.B, s Solver) {
	p := realisticProblem(1, 1000, benchBits, 0.5)
	ctx := context.Background()
	var front []Solution
	for b.Loop() {
		var err error
		if front, err = Pareto(ctx, s, p, 0, 50); err != nil {
			b.Fatal(err)
		}
	}
	optimal, maxGap := 0, 0.0
	for _, sol := range front {
		if !p.Feasible(&Solution{Choices: sol.Choices, Costs: []float64{0, sol.Costs[1], sol.Costs[2]}}) {
			b.Fatalf("point at latency %g violates a budget", sol.Costs[0])
		}
		if sol.Optimal {
			optimal++
		}
		maxGap = math.Max(maxGap, sol.Gap)
	}
	b.ReportMetric(float64(len(front)), "points")
	b.ReportMetric(float64(optimal), "optimal")
	b.ReportMetric(maxGap, "maxgap")
}

// BenchmarkBranchAndBound: 1,000 layers x 5 bit widths x 3 budgets at 50%,
// time to a proven optimum (goal: <= 1 s).
func BenchmarkBranchAndBound(b *testing.B) { benchSolve(b, &BranchAndBound{}) }

// BenchmarkParetoBranchAndBound: a 50-point latency sweep of the same table
// with the size and BOPs budgets kept, 150 ms per point at most (goal: the
// sweep in <= 10 s).
func BenchmarkParetoBranchAndBound(b *testing.B) {
	benchPareto(b, &BranchAndBound{TimeLimit: 150 * time.Millisecond})
}
