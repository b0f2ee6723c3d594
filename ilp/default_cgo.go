//go:build cgo

package ilp

import (
	"fmt"
	"time"
)

// Default returns the solver to use: the pure-Go BranchAndBound, which on
// the benchmark tables proves optimality faster than lp_solve even with the
// help LPSolve gives it. LPSolve stays available as an independent check.
func Default() Solver { return &BranchAndBound{} }

// Solvers lists the names NewSolver accepts, the default first.
var Solvers = []string{"go", "lp_solve"}

// NewSolver returns the solver named "go" (BranchAndBound) or "lp_solve"
// (LPSolve); an unusable lp_solve binding is reported here, as an error
// wrapping ErrUnavailable, rather than at the first solve.
func NewSolver(name string) (Solver, error) {
	switch name {
	case "go", "":
		return &BranchAndBound{}, nil
	case "lp_solve":
		if layoutErr != nil {
			return nil, layoutErr
		}
		return &LPSolve{}, nil
	}
	return nil, fmt.Errorf("ilp: unknown solver %q (want go or lp_solve): %w", name, ErrInvalid)
}

// WithTimeLimit returns a copy of s, one of this package's solvers, that
// stops each solve after d with its best configuration and proven gap; nil
// for other solvers.
func WithTimeLimit(s Solver, d time.Duration) Solver {
	switch v := s.(type) {
	case *BranchAndBound:
		c := *v
		c.TimeLimit = d
		return &c
	case *LPSolve:
		c := *v
		c.TimeLimit = d
		return &c
	}
	return nil
}
