package ilp

import (
	"context"
	"errors"
	"math"
	"sort"
)

// Pareto sweeps the budget of one resource over points values evenly spaced
// from the smallest achievable cost of that resource to the cost of the
// optimum without that budget (beyond which nothing changes), keeping the
// other budgets of p. It returns the non-dominated solutions (no other one
// is both cheaper in the resource and lower in objective), by cost
// ascending. Budgets that the other budgets make infeasible are skipped.
//
// The sweep runs from the tightest budget up, so each solution is a
// feasible start for the next; a HintedSolver gets it as its hint. If ctx
// ends, Pareto stops and returns no front and an error wrapping
// ErrInterrupted: a partial sweep is not a front. Points may carry a proven
// gap (Optimal false) when the solver has its own time limit.
func Pareto(ctx context.Context, s Solver, p *Problem, resource, points int) ([]Solution, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if resource < 0 || resource >= len(p.Resources) {
		return nil, invalid("Pareto: resource %d out of range [0,%d)", resource, len(p.Resources))
	}
	if points < 2 {
		return nil, invalid("Pareto: %d points; want at least 2", points)
	}
	r, err := reduce(p)
	if err != nil {
		return nil, err
	}
	q := *p
	q.Resources = append([]Resource(nil), p.Resources...)
	q.Resources[resource].Limit = math.Inf(1)
	top, err := s.Solve(ctx, &q)
	if err != nil {
		return nil, err
	}
	if err := interrupted(ctx); err != nil {
		return nil, err
	}
	lo, hi := r.minFull[resource], top.Costs[resource]
	hs, hinted := s.(HintedSolver)
	var all []Solution
	var prev *Solution
	for k := 0; k < points-1; k++ {
		if err := interrupted(ctx); err != nil {
			return nil, err
		}
		q.Resources[resource].Limit = lo + (hi-lo)*float64(k)/float64(points-1)
		var sol *Solution
		if hinted {
			sol, err = hs.SolveHint(ctx, &q, prev)
		} else {
			sol, err = s.Solve(ctx, &q)
		}
		if errors.Is(err, ErrInfeasible) {
			continue
		}
		if err := interrupted(ctx); err != nil {
			return nil, err
		}
		if err != nil {
			return nil, err
		}
		all = append(all, *sol)
		if len(all) > 1 {
			// Keep only the front so far: memory stays the front's size
			// whatever the number of points.
			all = front(all, resource)
		}
		prev = sol
	}
	all = append(all, *top)
	return front(all, resource), nil
}

// front returns the solutions not dominated in (cost of resource, objective),
// by cost ascending.
func front(all []Solution, resource int) []Solution {
	sort.SliceStable(all, func(a, b int) bool {
		ca, cb := all[a].Costs[resource], all[b].Costs[resource]
		if ca != cb {
			return ca < cb
		}
		return all[a].Objective < all[b].Objective
	})
	var out []Solution
	for _, s := range all {
		if len(out) == 0 || s.Objective < out[len(out)-1].Objective {
			out = append(out, s)
		}
	}
	return out
}
