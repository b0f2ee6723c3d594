//go:build cgo

package ilp

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestLPSolveConformance(t *testing.T) {
	testConformance(t, &LPSolve{})
}

func TestLPSolvePlainConformance(t *testing.T) {
	testConformance(t, &LPSolve{Plain: true})
}

// TestLPSolveCancel checks that lp_solve stops at its time limit (through
// its abort callback) and returns the incumbent with a true gap.
func TestLPSolveCancel(t *testing.T) {
	p := realisticProblem(7, 100, benchBits, 0.3)
	opt, err := (&BranchAndBound{}).Solve(context.Background(), p)
	if err != nil || !opt.Optimal {
		t.Fatalf("reference: got %v, %v; want a proven optimum", opt, err)
	}
	cut, err := (&LPSolve{TimeLimit: time.Nanosecond}).Solve(context.Background(), p)
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

// TestBranchAndBoundMatchesLPSolve cross-checks the Go solver's deeper
// search (restarts, node bounds, exact-LP detection) against plain lp_solve
// on realistic tables too large for brute force, at budget fractions where
// one, two or three budgets bind.
func TestBranchAndBoundMatchesLPSolve(t *testing.T) {
	ctx := context.Background()
	for seed := uint64(1); seed <= 4; seed++ {
		for _, frac := range []float64{0.15, 0.4, 0.7} {
			p := realisticProblem(seed, 120, benchBits, frac)
			want, err := (&LPSolve{Plain: true}).Solve(ctx, p)
			if err != nil || !want.Optimal {
				t.Fatalf("seed %d frac %g: lp_solve: got %v, %v; want a proven optimum", seed, frac, want, err)
			}
			got, err := (&BranchAndBound{}).Solve(ctx, p)
			if err != nil {
				t.Fatalf("seed %d frac %g: %v", seed, frac, err)
			}
			if !got.Optimal || !p.Feasible(got) {
				t.Errorf("seed %d frac %g: got Optimal=%v feasible=%v; want true, true", seed, frac, got.Optimal, p.Feasible(got))
			}
			if math.Abs(got.Objective-want.Objective) > objTol*want.Objective {
				t.Errorf("seed %d frac %g: got objective %.12g; lp_solve %.12g", seed, frac, got.Objective, want.Objective)
			}
		}
	}
}

// TestLPSolveLayoutError checks that a golp layout mismatch is an error
// wrapping ErrUnavailable that names the way out, not a panic at init.
func TestLPSolveLayoutError(t *testing.T) {
	if err := checkLayout(8, 8); err != nil {
		t.Fatalf("matching layout: got %v; want nil", err)
	}
	err := checkLayout(16, 8)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "--solver go") {
		t.Errorf("mismatched layout: got %v; want ErrUnavailable naming --solver go", err)
	}
	// With the check failed, asking for lp_solve is an error (NewSolver,
	// what --solver lp_solve calls, and a Solve on an LPSolve made
	// directly), while the Go solver still works.
	defer func(e error) { layoutErr = e }(layoutErr)
	layoutErr = err
	if s, err := NewSolver("lp_solve"); s != nil || !errors.Is(err, ErrUnavailable) {
		t.Errorf("NewSolver(lp_solve) with a failed layout check: got %v, %v; want nil and ErrUnavailable", s, err)
	}
	p := randomProblem(rand.New(rand.NewPCG(1, 2)), 6, 1, 1, false, 0.5)
	if sol, err := (&LPSolve{}).Solve(context.Background(), p); sol != nil || !errors.Is(err, ErrUnavailable) {
		t.Errorf("LPSolve.Solve with a failed layout check: got %v, %v; want nil and ErrUnavailable", sol, err)
	}
	if s, err := NewSolver("go"); err != nil {
		t.Errorf("NewSolver(go): %v", err)
	} else if sol, err := s.Solve(context.Background(), p); err != nil || !sol.Optimal {
		t.Errorf("the Go solver with lp_solve unavailable: got %v, %v; want an optimum", sol, err)
	}
}
