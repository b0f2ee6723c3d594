package ilp

import (
	"context"
	"fmt"
	"math"
	"time"
)

// BranchAndBound is the exact pure-Go solver. After preprocessing (ties
// merged, fixed layers made constants, dominated options removed) it builds
// an incumbent greedily, bounds the optimum with the Lagrangian dual of the
// budgets (the LP relaxation: exact for one budget, by multiplier search for
// several), discards every option whose reduced cost exceeds the gap between
// incumbent and bound, and proves optimality by depth-first search over the
// remaining ambiguous layers, most ambiguous first.
//
// The zero value is ready to use.
type BranchAndBound struct {
	// TimeLimit, if positive, bounds each Solve; the best configuration
	// found by then is returned with its proven gap. (The end of the
	// caller's context is an interruption instead: an error, no result.)
	TimeLimit time.Duration
	// RelGap, if above OptimalityTol, stops the search once no
	// configuration can be better by more than this relative amount; the
	// solution then reports Optimal false and that Gap. Zero means
	// OptimalityTol: a proof of optimality.
	RelGap float64
}

// Solve implements Solver.
func (s *BranchAndBound) Solve(ctx context.Context, p *Problem) (*Solution, error) {
	return s.SolveHint(ctx, p, nil)
}

// SolveHint implements HintedSolver: hint, if feasible, is the first incumbent.
func (s *BranchAndBound) SolveHint(ctx context.Context, p *Problem, hint *Solution) (*Solution, error) {
	r, err := reduce(p)
	if err != nil {
		return nil, err
	}
	if err := r.checkFeasible(); err != nil {
		return nil, err
	}
	caller := ctx
	if s.TimeLimit > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.TimeLimit)
		defer cancel()
	}
	q := newMCKP(r)
	st := newSearch(q, r.constObj, r.contract(hint), math.Max(s.RelGap, OptimalityTol))
	lb, aborted := st.branch(ctx)
	for st.restart {
		st.restart = false
		x := append([]int(nil), st.best...)
		q.improve(x, st.rc, exchangeCand, st.ub-st.lb)
		if obj := q.eval(x, make([]float64, q.m)); obj < st.ub {
			st.ub, st.best = obj, x
		}
		lb, aborted = st.branch(ctx)
	}
	if err := interrupted(caller); err != nil {
		return nil, err
	}
	if st.best == nil {
		if aborted {
			return nil, fmt.Errorf("ilp: no configuration meeting the budgets found in time: %w", ctx.Err())
		}
		return nil, r.infeasible(true)
	}
	return st.solution(r, lb, aborted), nil
}

// exchangeCand is how many improving and how many paying moves, by reduced
// cost, the incumbent's pair exchanges consider.
const exchangeCand = 400

// viewFactors scale each root multiplier to give the extra surrogate views:
// the node LP is the best surrogate LP over all directions, and directions
// near the root's (log-spaced up to 3x either way) catch most of it. Ten
// factors proved a hard two-budget benchmark point optimal in 4 s where two
// factors left a 0.1% gap after 30 s.
var viewFactors = []float64{1.05, 1 / 1.05, 1.15, 1 / 1.15, 1.3, 1 / 1.3, 1.6, 1 / 1.6, 3, 1.0 / 3}

// restartShrink: the search restarts, with reduced-cost fixing against the
// new incumbent, once the gap between incumbent and root bound has fallen
// below this fraction of the gap the current fixing used.
const restartShrink = 1 / 1.1

// refineSteps is how many subgradient steps refine spends on a node that
// the surrogate views do not prune.
const refineSteps = 10

// search is the state of one branch-and-bound run on q.
type search struct {
	q        *mckp
	constObj float64   // objective of the fixed layers, for relative gaps
	relTol   float64   // relative gap at which a node counts as solved
	lam      []float64 // multipliers of the root bound
	lb       float64   // root bound L(lam), without constObj
	rc       []float64 // reduced cost of every option at lam
	best     []int     // incumbent (option per group), nil if none
	ub       float64   // its objective without constObj; +Inf if none
	nodes    int
	aborted  bool
	restart  bool // the incumbent improved: redo reduced-cost fixing
}

// newSearch builds the incumbent and the root bound. hint, if not nil, is a
// choice per group (indexes into the group's options).
func newSearch(q *mckp, constObj float64, hint []int, relTol float64) *search {
	st := &search{q: q, constObj: constObj, relTol: relTol, ub: math.Inf(1), lam: make([]float64, q.m)}
	cost := make([]float64, q.m)
	offer := func(x []int) {
		if obj := q.eval(x, cost); q.fits(cost) && obj < st.ub {
			st.ub = obj
			st.best = append(make([]int, 0, len(x)), x...)
		}
	}
	if hint != nil {
		x := make([]int, q.n)
		for i, j := range hint {
			x[i] = q.off[i] + j
		}
		if q.repair(x) {
			q.improve(x, nil, 0, 0)
			offer(x)
		}
	}
	st.lb = q.dual(st.lam, st.ub)
	finite := !math.IsNaN(st.lb) && !math.IsInf(st.lb, 0)
	for _, v := range st.lam {
		finite = finite && !math.IsInf(v, 0) && !math.IsNaN(v)
	}
	if !finite {
		// The multipliers diverged, as they do when the budgets cannot
		// all be met; fall back to the bound at lam = 0.
		for k := range st.lam {
			st.lam[k] = 0
		}
		st.lb = q.lagrange(st.lam, nil, nil)
	}
	st.rc = make([]float64, len(q.omega))
	pick := make([]int, q.n)
	q.lagrange(st.lam, pick, nil)
	for i := 0; i < q.n; i++ {
		for j := q.off[i]; j < q.off[i+1]; j++ {
			v := q.omega[j]
			for k := 0; k < q.m; k++ {
				v += st.lam[k] * q.cost[j*q.m+k]
			}
			st.rc[j] = v
		}
		min := st.rc[pick[i]]
		for j := q.off[i]; j < q.off[i+1]; j++ {
			st.rc[j] -= min
		}
	}
	// The Lagrangian choice, repaired greedily: it starts from the
	// configuration the bound itself picks, so repair takes few steps.
	if q.repair(pick) {
		q.improve(pick, st.rc, exchangeCand, st.ub-st.lb)
		offer(pick)
	}
	// The greedy from the lowest-omega options, slower (a repair step per
	// downgrade), only when neither hint nor Lagrangian choice gave a
	// feasible start.
	if st.best == nil {
		if x := q.lowest(); q.repair(x) {
			q.improve(x, nil, 0, 0)
			offer(x)
		}
	}
	if st.best != nil {
		x := append(make([]int, 0, q.n), st.best...)
		q.improve(x, st.rc, exchangeCand, st.ub-st.lb)
		offer(x)
	}
	return st
}

// tol is the absolute objective difference below which a configuration does
// not count as an improvement on the incumbent.
func (st *search) tol() float64 {
	if math.IsInf(st.ub, 1) {
		return 0
	}
	return st.relTol * (st.ub + st.constObj)
}

// solution expands the incumbent and fills in the optimality information.
func (st *search) solution(r *reduced, lb float64, aborted bool) *Solution {
	choice := make([]int, st.q.n)
	for i, j := range st.best {
		choice[i] = j - st.q.off[i]
	}
	s := r.expand(choice)
	s.Nodes = st.nodes
	full := st.ub + st.constObj
	if !aborted {
		if st.relTol <= OptimalityTol {
			s.Optimal = true
			return s
		}
		// Everything left had a bound within relTol of the incumbent.
		lb = math.Max(st.lb, st.ub-st.tol())
	}
	if full > 0 {
		s.Gap = math.Max(0, (st.ub-lb)/full)
	}
	s.Optimal = s.Gap <= OptimalityTol
	if s.Optimal {
		s.Gap = 0
	}
	return s
}
