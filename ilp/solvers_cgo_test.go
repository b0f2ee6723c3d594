//go:build cgo

package ilp

// solvers returns every solver the conformance-style tests run against.
func solvers() []Solver { return []Solver{&BranchAndBound{}, &LPSolve{}, &LPSolve{Plain: true}} }
