package rlsearch

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Repair returns bits lowered until every budget of p holds: while some
// budget is exceeded, it lowers the layer (a tie group moving together)
// whose downgrade costs the least Omega increase per unit of cost saved,
// the saving being summed over the exceeded budgets, each normalised by how
// far it is exceeded (and capped at closing it). bits must give every layer
// an allowed width respecting ties and fixed layers. When bits already meet
// every budget, Repair returns a copy of them unchanged. When no downgrade
// saves cost on an exceeded budget any more, it returns an error wrapping
// ErrInfeasible.
func Repair(p *Problem, bits []int) ([]int, error) {
	e, err := compile(p)
	if err != nil {
		return nil, err
	}
	x, err := e.levels(bits)
	if err != nil {
		return nil, err
	}
	if err := e.repair(x, make([]float64, e.nr)); err != nil {
		return nil, err
	}
	return e.bits(x, nil), nil
}

// Improve returns a configuration at least as good as bits (repaired first
// if it exceeds a budget) on which no change of one layer's width, and no
// simultaneous change of two layers' widths (tie groups moving together),
// lowers the objective while keeping every budget: a steepest-descent local
// search over those moves. It is the polish Search applies to the agent's
// best configuration.
func Improve(p *Problem, bits []int) ([]int, error) {
	e, err := compile(p)
	if err != nil {
		return nil, err
	}
	x, err := e.levels(bits)
	if err != nil {
		return nil, err
	}
	cost := make([]float64, e.nr)
	if err := e.repair(x, cost); err != nil {
		return nil, err
	}
	e.improve(x, cost)
	return e.bits(x, nil), nil
}

// repair lowers levels of x in place until every budget holds; cost is
// workspace of length nr and holds x's costs on return.
func (e *env) repair(x []int, cost []float64) error {
	return e.repairSkip(x, cost, -1)
}

// repairSkip is repair leaving group skip (if >= 0) untouched.
func (e *env) repairSkip(x []int, cost []float64, skip int) error {
	nr := e.nr
	for {
		e.eval(x, cost) // recomputed each round: no drift from incremental sums
		if e.fits(cost) {
			return nil
		}
		bestG, bestJ := -1, -1
		bestRatio := math.Inf(1)
		for gi := range e.groups {
			if gi == skip {
				continue
			}
			g := &e.groups[gi]
			cur := x[gi]
			for j := cur - 1; j >= 0; j-- {
				score := 0.0
				for _, k := range e.budget {
					ex := cost[k] - e.limit[k]
					if meets(cost[k], e.limit[k]) {
						continue
					}
					saved := g.cost[cur*nr+k] - g.cost[j*nr+k]
					score += math.Min(saved, ex) / ex
				}
				if score <= 0 {
					continue
				}
				ratio := (g.omega[j] - g.omega[cur]) / score
				if ratio < bestRatio {
					bestRatio, bestG, bestJ = ratio, gi, j
				}
			}
		}
		if bestG < 0 {
			return e.infeasible(x, cost)
		}
		x[bestG] = bestJ
	}
}

// infeasible builds the error for a configuration that cannot be lowered
// further usefully.
func (e *env) infeasible(x []int, cost []float64) error {
	var b strings.Builder
	first := true
	for _, k := range e.budget {
		if meets(cost[k], e.limit[k]) {
			continue
		}
		lo := 0.0
		for gi := range e.groups {
			g := &e.groups[gi]
			m := math.Inf(1)
			for j := range g.bits {
				m = math.Min(m, g.cost[j*e.nr+k])
			}
			lo += m
		}
		if !first {
			b.WriteString("; ")
		}
		first = false
		fmt.Fprintf(&b, "%s budget %s not met: %s after lowering every layer as far as it saves cost (smallest %s achievable for %s alone)",
			e.p.Resources[k].Name, fmtNum(e.limit[k]), fmtNum(cost[k]), fmtNum(lo), e.p.Resources[k].Name)
	}
	return fmt.Errorf("%w: %s; relax the budget or allow lower bit widths", ErrInfeasible, b.String())
}

func fmtNum(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

// improve runs the steepest-descent local search of Improve on the feasible
// levels x in place; cost is workspace of length nr.
func (e *env) improve(x []int, cost []float64) {
	nr := e.nr
	y := make([]int, len(x))
	fitsWith := func(ga *group, ja, ca int, gb *group, jb, cb int) bool {
		for _, k := range e.budget {
			c := cost[k] + ga.cost[ja*nr+k] - ga.cost[ca*nr+k]
			if gb != nil {
				c += gb.cost[jb*nr+k] - gb.cost[cb*nr+k]
			}
			if !meets(c, e.limit[k]) {
				return false
			}
		}
		return true
	}
	for {
		obj := e.eval(x, cost)
		// A move must gain more than rounding can fake, so the search ends.
		best := -1e-12 * math.Max(1, math.Abs(obj))
		ba, bja, bb, bjb := -1, -1, -1, -1
		for a := range e.groups {
			ga := &e.groups[a]
			if ga.fixed {
				continue
			}
			ca := x[a]
			for ja := range ga.bits {
				if ja == ca {
					continue
				}
				da := ga.omega[ja] - ga.omega[ca]
				if da < best && fitsWith(ga, ja, ca, nil, 0, 0) {
					best, ba, bja, bb, bjb = da, a, ja, -1, -1
				}
				for b := a + 1; b < len(e.groups); b++ {
					gb := &e.groups[b]
					if gb.fixed {
						continue
					}
					cb := x[b]
					for jb := range gb.bits {
						if jb == cb {
							continue
						}
						d := da + gb.omega[jb] - gb.omega[cb]
						if d < best && fitsWith(ga, ja, ca, gb, jb, cb) {
							best, ba, bja, bb, bjb = d, a, ja, b, jb
						}
					}
				}
			}
		}
		if ba < 0 {
			// No single or pair move helps: try moving one group and
			// repairing and refilling the others around it.
			if !e.ejection(x, y, cost, obj) {
				e.eval(x, cost)
				return
			}
			continue
		}
		x[ba] = bja
		if bb >= 0 {
			x[bb] = bjb
		}
	}
}

// ejection tries, for every group and every other level, moving it there,
// repairing the other groups into the budgets and then filling the slack
// greedily (fill); it applies the best result that lowers the objective
// below obj and reports whether there was one. y is workspace of len(x).
func (e *env) ejection(x, y []int, cost []float64, obj float64) bool {
	best := obj - 1e-12*math.Max(1, math.Abs(obj))
	var bestY []int
	for a := range e.groups {
		g := &e.groups[a]
		if g.fixed {
			continue
		}
		for j := range g.bits {
			if j == x[a] {
				continue
			}
			copy(y, x)
			y[a] = j
			if e.repairSkip(y, cost, a) != nil {
				continue
			}
			e.fill(y, cost, a)
			if o := e.eval(y, cost); o < best {
				best = o
				bestY = append(bestY[:0], y...)
			}
		}
	}
	if bestY == nil {
		return false
	}
	copy(x, bestY)
	return true
}

// fill raises groups of the feasible levels x (all but skip) while some
// raise fits the budgets and lowers the objective, taking each time the one
// with the largest Omega decrease per unit of added cost (each budget's cost
// normalised by its limit). cost holds x's costs on entry and on return.
func (e *env) fill(x []int, cost []float64, skip int) {
	nr := e.nr
	for {
		bg, bj := -1, -1
		bestRatio := 0.0
		for gi := range e.groups {
			g := &e.groups[gi]
			if gi == skip || g.fixed {
				continue
			}
			cur := x[gi]
			for j := cur + 1; j < len(g.bits); j++ {
				gain := g.omega[cur] - g.omega[j]
				if !(gain > 0) {
					continue
				}
				add, ok := 0.0, true
				for _, k := range e.budget {
					c := cost[k] + g.cost[j*nr+k] - g.cost[cur*nr+k]
					if !meets(c, e.limit[k]) {
						ok = false
						break
					}
					add += (g.cost[j*nr+k] - g.cost[cur*nr+k]) / math.Max(math.Abs(e.limit[k]), 1e-300)
				}
				if !ok {
					continue
				}
				ratio := math.Inf(1)
				if add > 0 {
					ratio = gain / add
				}
				if ratio > bestRatio {
					bestRatio, bg, bj = ratio, gi, j
				}
			}
		}
		if bg < 0 {
			return
		}
		x[bg] = bj
		e.eval(x, cost)
	}
}
