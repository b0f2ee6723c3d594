//go:build !cgo

package ilp

// Default returns the solver to use: without cgo, lp_solve is not
// available and this is the pure-Go BranchAndBound.
func Default() Solver { return &BranchAndBound{} }
