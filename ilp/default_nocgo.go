//go:build !cgo

package ilp

import (
	"errors"
	"fmt"
	"time"
)

// Default returns the solver to use: without cgo, lp_solve is not
// available and this is the pure-Go BranchAndBound.
func Default() Solver { return &BranchAndBound{} }

// Solvers lists the names NewSolver accepts, the default first.
var Solvers = []string{"go", "lp_solve"}

// ErrUnavailable is wrapped by the error NewSolver returns when lp_solve
// cannot be used (here: built without cgo).
var ErrUnavailable = errors.New("ilp: lp_solve unavailable")

// NewSolver returns the solver named "go" (BranchAndBound); "lp_solve" is
// an error wrapping ErrUnavailable in a build without cgo.
func NewSolver(name string) (Solver, error) {
	switch name {
	case "go", "":
		return &BranchAndBound{}, nil
	case "lp_solve":
		return nil, fmt.Errorf("this mpsearch was built without cgo, so without lp_solve (rebuild with CGO_ENABLED=1 and liblpsolve55-dev, or use --solver go): %w", ErrUnavailable)
	}
	return nil, fmt.Errorf("ilp: unknown solver %q (want go or lp_solve): %w", name, ErrInvalid)
}

// WithTimeLimit returns a copy of s, one of this package's solvers, that
// stops each solve after d with its best configuration and proven gap; nil
// for other solvers.
func WithTimeLimit(s Solver, d time.Duration) Solver {
	if v, ok := s.(*BranchAndBound); ok {
		c := *v
		c.TimeLimit = d
		return &c
	}
	return nil
}
