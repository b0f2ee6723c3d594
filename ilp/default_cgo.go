//go:build cgo

package ilp

// Default returns the solver to use: the pure-Go BranchAndBound, which on
// the benchmark tables proves optimality faster than lp_solve even with the
// help LPSolve gives it. LPSolve stays available as an independent check.
func Default() Solver { return &BranchAndBound{} }
