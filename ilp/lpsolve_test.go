//go:build cgo

package ilp

import (
	"context"
	"testing"
)

func TestLPSolveConformance(t *testing.T) {
	testConformance(t, &LPSolve{})
}

func TestLPSolvePlainConformance(t *testing.T) {
	testConformance(t, &LPSolve{Plain: true})
}

// TestLPSolveCancel checks that lp_solve stops when ctx ends (through its
// abort callback) and returns the incumbent with a true gap.
func TestLPSolveCancel(t *testing.T) {
	p := realisticProblem(7, 100, benchBits, 0.3)
	opt, err := (&BranchAndBound{}).Solve(context.Background(), p)
	if err != nil || !opt.Optimal {
		t.Fatalf("reference: got %v, %v; want a proven optimum", opt, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cut, err := (&LPSolve{}).Solve(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if cut.Optimal || !(cut.Gap > 0) || !p.Feasible(cut) {
		t.Fatalf("cancelled lp_solve: got Optimal=%v Gap=%g feasible=%v; want false, > 0, true", cut.Optimal, cut.Gap, p.Feasible(cut))
	}
	if lb := cut.Objective * (1 - cut.Gap); lb > opt.Objective*(1+objTol) || cut.Objective < opt.Objective*(1-objTol) {
		t.Errorf("got objective %g with gap %g (bound %g); the optimum %g must lie in [bound, objective]", cut.Objective, cut.Gap, lb, opt.Objective)
	}
}
