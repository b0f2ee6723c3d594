package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math"

	"mpsearch/ilp"
)

// FrontPoint is one point of the measured Pareto front: what Search
// returns when the swept resource's budget is Budget (the other budgets
// held at the search's limits).
type FrontPoint struct {
	Resource string  // the swept resource
	Budget   float64 // its limit at this point (latency: overhead included)
	// Proxy is the ILP optimum of the search input at this budget: the
	// proxy's choice, unverified (its MeasuredLoss is set when verification
	// measured it).
	Proxy *Candidate
	// Chosen is the verified and refined configuration at this budget.
	Chosen *Candidate
	// Refinement is Chosen's path from the verified configuration.
	Refinement *Refinement
}

// FrontCost says what the measured front cost: Measurements counts the
// configurations measured on the held-out data for the front (each
// distinct configuration once over the whole sweep), RefinePerPoint is each
// point's refinement budget.
type FrontCost struct {
	Points         int
	RefinePerPoint int
	Measurements   int
}

// countingVerifier measures each distinct configuration once across the
// front's points and counts the measurements.
type countingVerifier struct {
	v     Verifier
	loss  map[string]float64
	evals int
}

func (c *countingVerifier) Loss(ctx context.Context, bits []int) (float64, error) {
	key := fmt.Sprint(bits)
	if l, ok := c.loss[key]; ok {
		return l, nil
	}
	l, err := c.v.Loss(ctx, bits)
	if err != nil {
		return 0, err
	}
	c.evals++
	c.loss[key] = l
	return l, nil
}

// frontBudgets returns the budgets of the sweep on resource r: points
// equally spaced from the cheapest to the dearest cost the fixed layers
// allow (each free layer at its cheapest, resp. dearest, width).
func (res *SearchResult) frontBudgets(r string, points int) []float64 {
	lo, hi := 0.0, 0.0
	for i, costs := range res.costs[r] {
		if f := res.fixed[i]; f != 0 {
			lo, hi = lo+costs[f], hi+costs[f]
			continue
		}
		a, b := math.Inf(1), math.Inf(-1)
		for _, w := range res.Bits {
			a, b = min(a, costs[w]), max(b, costs[w])
		}
		lo, hi = lo+a, hi+b
	}
	if r == Latency {
		lo, hi = lo+res.LatencyOverheadMs, hi+res.LatencyOverheadMs
	}
	out := make([]float64, points)
	for k := range out {
		out[k] = lo + (hi-lo)*float64(k)/float64(points-1)
	}
	return out
}

// atLimits is a copy of res for other limits: the same table, input,
// costs and fixed layers, the uniform configurations re-judged against the
// limits, no choice yet.
func (res *SearchResult) atLimits(limits map[string]float64) *SearchResult {
	sub := &SearchResult{Table: res.Table, Bits: res.Bits, Limits: limits, Resources: res.Resources,
		LatencyOverheadMs: res.LatencyOverheadMs, Input: res.Input, costs: res.costs, fixed: res.fixed}
	for _, u := range res.Uniform {
		sub.Uniform = append(sub.Uniform, sub.candidate(u.Label, u.Bits))
	}
	return sub
}

// measuredFront sweeps the budget of resource r over cfg.ParetoPoints
// points and runs at each what Search runs at the user's budget: the ILP
// optimum (the proxy's point), verification of the candidates, and
// refinement with cfg.FrontRefine measurements. A point also considers
// the configuration chosen at the previous (smaller) budget, which fits
// too, so the measured loss never rises along the front. Each distinct
// configuration is measured once over the sweep. Budgets no configuration
// meets are skipped. res.Front gets the proxy optima, res.MeasuredFront
// the points, res.FrontCost what they cost.
func measuredFront(ctx context.Context, res *SearchResult, cfg SearchConfig, r string, buildAt func(map[string]float64, func(int, int) float64, float64) *ilp.Problem, solver ilp.Solver, report func(string, int, int, string)) error {
	cv := &countingVerifier{v: cfg.Verify, loss: map[string]float64{}}
	sub := cfg
	sub.Verify = cv
	quiet := func(string, int, int, string) {}
	budgets := res.frontBudgets(r, cfg.ParetoPoints)
	tableOmega := func(li, b int) float64 { v, _ := res.Input.At(li, b); return v }
	var prev *Candidate
	for k, b := range budgets {
		report("front", k, len(budgets), fmt.Sprintf("%s budget %.4g %s", r, b, Units[r]))
		limits := map[string]float64{}
		for name, v := range res.Limits {
			limits[name] = v
		}
		limits[r] = b
		at := res.atLimits(limits)
		build := func(omega func(int, int) float64, scale float64) *ilp.Problem { return buildAt(limits, omega, scale) }
		sol, err := solver.Solve(ctx, build(tableOmega, 1))
		if errors.Is(err, ilp.ErrInfeasible) {
			continue
		}
		if err != nil {
			return err
		}
		at.Plain = at.candidate(ilpLabel(sol, " ("+metricName(res.Table)+")"), choiceBits(sol))
		if err := verify(ctx, res.Table, at, build, solver, at.candidate, sub, quiet); err != nil {
			return err
		}
		if prev != nil && prev.MeasuredLoss < at.Chosen.MeasuredLoss {
			c := at.candidate(fmt.Sprintf("front point %d's configuration", len(res.MeasuredFront)), prev.Bits)
			c.MeasuredLoss = prev.MeasuredLoss
			at.Chosen = c
		}
		if err := refine(ctx, at, cv, cfg.FrontRefine, quiet); err != nil {
			return err
		}
		// Copies, relabelled: the labels name the point (the report and
		// the accuracies key on them).
		n := len(res.MeasuredFront) + 1
		proxy, chosen := *at.Plain, *at.Chosen
		proxy.Label = fmt.Sprintf("proxy optimum, unverified, at front point %d", n)
		chosen.Label = fmt.Sprintf("front point %d: %s", n, at.Chosen.Label)
		p := &FrontPoint{Resource: r, Budget: b, Proxy: &proxy, Chosen: &chosen, Refinement: at.Refinement}
		res.MeasuredFront = append(res.MeasuredFront, p)
		res.Front = append(res.Front, p.Proxy)
		prev = at.Chosen
	}
	res.FrontCost = &FrontCost{Points: len(budgets), RefinePerPoint: cfg.FrontRefine, Measurements: cv.evals}
	report("front", len(budgets), len(budgets), "")
	return ctx.Err()
}
