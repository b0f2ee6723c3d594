package ilp

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// objTol is the relative tolerance when comparing a solver's objective with
// a reference optimum: solvers prove optimality within OptimalityTol (1e-9),
// and both sides sum at most 16 terms (rounding ~1e-15 relative).
const objTol = 2 * OptimalityTol

var resourceNames = []Resource{{Name: "latency", Unit: "ms"}, {Name: "size", Unit: "B"}, {Name: "bops"}}

// randomProblem draws a table like a sensitivity table: omega falls with
// bits roughly as 4^-b times a per-layer scale spanning orders of
// magnitude, costs grow with bits in proportion to a per-layer weight.
// With integer true, costs are small integers (for the DP reference).
// frac in (0,1) puts each budget that fraction of the way from the smallest
// to the largest total cost.
func randomProblem(rng *rand.Rand, layers, nres, nbud int, integer bool, frac float64) *Problem {
	allBits := []int{2, 3, 4, 5, 6, 8}
	p := &Problem{Resources: append([]Resource(nil), resourceNames[:nres]...)}
	for i := 0; i < layers; i++ {
		nb := 2 + rng.IntN(3)
		perm := rng.Perm(len(allBits))[:nb]
		sort.Ints(perm)
		scale := math.Pow(10, -3+4*rng.Float64())
		w := make([]float64, nres)
		for k := range w {
			if integer {
				w[k] = float64(1 + rng.IntN(6))
			} else {
				w[k] = math.Pow(10, 3*rng.Float64())
			}
		}
		l := Layer{Name: fmt.Sprintf("l%d", i)}
		for _, pi := range perm {
			b := allBits[pi]
			o := Option{Bits: b, Omega: scale * math.Pow(4, -float64(b)) * (0.7 + 0.6*rng.Float64())}
			for k := range w {
				c := w[k] * float64(b)
				if integer {
					c += float64(rng.IntN(3))
				} else {
					c *= 0.9 + 0.2*rng.Float64()
				}
				o.Costs = append(o.Costs, c)
			}
			l.Options = append(l.Options, o)
		}
		p.Layers = append(p.Layers, l)
	}
	for k := range p.Resources {
		p.Resources[k].Limit = math.Inf(1)
	}
	for _, k := range rng.Perm(nres)[:nbud] {
		lo, hi := 0.0, 0.0
		for _, l := range p.Layers {
			mn, mx := math.Inf(1), 0.0
			for _, o := range l.Options {
				mn, mx = math.Min(mn, o.Costs[k]), math.Max(mx, o.Costs[k])
			}
			lo += mn
			hi += mx
		}
		p.Resources[k].Limit = lo + frac*(hi-lo)
		if integer {
			p.Resources[k].Limit = math.Floor(p.Resources[k].Limit)
		}
	}
	return p
}

// addTiesAndFixed ties random pairs/triples of layers (giving them a common
// bit width) and fixes one or two layers.
func addTiesAndFixed(rng *rand.Rand, p *Problem) {
	n := len(p.Layers)
	if n >= 4 {
		perm := rng.Perm(n)
		p.Ties = [][]string{{p.Layers[perm[0]].Name, p.Layers[perm[1]].Name}}
		if n >= 8 {
			p.Ties = append(p.Ties, []string{p.Layers[perm[2]].Name, p.Layers[perm[3]].Name, p.Layers[perm[4]].Name})
		}
		// Make sure each tie group shares the bits of its first layer's
		// first option, at a cost in line with the rest of the layer.
		for _, tie := range p.Ties {
			b := firstBits(p, tie[0])
			for _, name := range tie[1:] {
				l := layerByName(p, name)
				if optionIndex(l, b) < 0 {
					o := l.Options[0]
					o.Bits = b
					o.Costs = append([]float64(nil), o.Costs...)
					l.Options[0] = o
					sort.Slice(l.Options, func(a, c int) bool { return l.Options[a].Bits < l.Options[c].Bits })
				}
			}
		}
	}
	for f := 0; f < 1+rng.IntN(2); f++ {
		l := &p.Layers[rng.IntN(n)]
		if inTie(p, l.Name) {
			continue
		}
		l.Fixed = l.Options[rng.IntN(len(l.Options))].Bits
	}
}

func firstBits(p *Problem, name string) int { return layerByName(p, name).Options[0].Bits }

func layerByName(p *Problem, name string) *Layer {
	for i := range p.Layers {
		if p.Layers[i].Name == name {
			return &p.Layers[i]
		}
	}
	panic("no layer " + name)
}

func inTie(p *Problem, name string) bool {
	for _, t := range p.Ties {
		for _, n := range t {
			if n == name {
				return true
			}
		}
	}
	return false
}

// bruteForce enumerates every configuration and returns the best objective
// meeting all budgets, ties and fixed layers (or +Inf).
func bruteForce(p *Problem) float64 {
	n, nr := len(p.Layers), len(p.Resources)
	bits := make([]int, n)
	best := math.Inf(1)
	cost := make([]float64, (n+1)*nr)
	tieOK := func() bool {
		for _, t := range p.Ties {
			b := bits[indexOf(p, t[0])]
			for _, name := range t[1:] {
				if bits[indexOf(p, name)] != b {
					return false
				}
			}
		}
		return true
	}
	var rec func(i int, obj float64)
	rec = func(i int, obj float64) {
		if i == n {
			for k, r := range p.Resources {
				if !meets(cost[n*nr+k], r.Limit) {
					return
				}
			}
			if obj < best && tieOK() {
				best = obj
			}
			return
		}
		l := p.Layers[i]
		for _, o := range l.Options {
			if l.Fixed != 0 && o.Bits != l.Fixed {
				continue
			}
			bits[i] = o.Bits
			for k := 0; k < nr; k++ {
				cost[(i+1)*nr+k] = cost[i*nr+k] + o.Costs[k]
			}
			rec(i+1, obj+o.Omega)
		}
	}
	rec(0, 0)
	return best
}

func indexOf(p *Problem, name string) int {
	for i, l := range p.Layers {
		if l.Name == name {
			return i
		}
	}
	return -1
}

// dpOptimum solves a problem with one budget and integer costs by dynamic
// programming over the total cost, treating each tie group as one item
// whose options are the common bit widths (independently of reduce).
func dpOptimum(p *Problem, k int) float64 {
	type item struct{ omega, cost []float64 }
	var items []item
	done := make([]bool, len(p.Layers))
	for i := range p.Layers {
		if done[i] {
			continue
		}
		members := []int{i}
		for _, t := range p.Ties {
			has := false
			for _, name := range t {
				if indexOf(p, name) == i {
					has = true
				}
			}
			if has {
				for _, name := range t {
					if j := indexOf(p, name); j != i {
						members = append(members, j)
					}
				}
			}
		}
		var it item
		for _, o := range p.Layers[i].Options {
			om, c, ok := 0.0, 0.0, true
			for _, j := range members {
				l := p.Layers[j]
				oj := optionIndex(&l, o.Bits)
				if oj < 0 || (l.Fixed != 0 && l.Fixed != o.Bits) {
					ok = false
					break
				}
				om += l.Options[oj].Omega
				c += l.Options[oj].Costs[k]
			}
			if ok {
				it.omega = append(it.omega, om)
				it.cost = append(it.cost, c)
			}
		}
		for _, j := range members {
			done[j] = true
		}
		items = append(items, it)
	}
	limit := int(math.Floor(p.Resources[k].Limit + 1e-9))
	if limit < 0 {
		return math.Inf(1)
	}
	dp := make([]float64, limit+1) // dp[c]: best objective with total cost <= c
	for _, it := range items {
		next := make([]float64, limit+1)
		for c := range next {
			next[c] = math.Inf(1)
			for j := range it.omega {
				if cj := int(it.cost[j]); cj <= c {
					next[c] = math.Min(next[c], dp[c-cj]+it.omega[j])
				}
			}
		}
		dp = next
	}
	return dp[limit]
}

type conformanceCase struct {
	name string
	p    *Problem
	want float64 // optimum; +Inf for infeasible
}

// conformanceCases draws the fixed-seed instances every solver must solve
// exactly: full enumeration up to 10 layers with 1-3 budgets, and a DP
// reference for one budget up to 16 layers.
func conformanceCases() []conformanceCase {
	rng := rand.New(rand.NewPCG(5, 2026))
	var cases []conformanceCase
	for c := 0; c < 200; c++ {
		layers := 1 + rng.IntN(10)
		nres := 1 + rng.IntN(3)
		nbud := 1 + rng.IntN(nres)
		p := randomProblem(rng, layers, nres, nbud, false, 0.1+0.8*rng.Float64())
		if c%2 == 1 {
			addTiesAndFixed(rng, p)
		}
		cases = append(cases, conformanceCase{fmt.Sprintf("brute/%d/L%dR%dB%d", c, layers, nres, nbud), p, bruteForce(p)})
	}
	for c := 0; c < 60; c++ {
		layers := 11 + rng.IntN(6)
		p := randomProblem(rng, layers, 2, 1, true, 0.1+0.8*rng.Float64())
		if c%2 == 1 {
			addTiesAndFixed(rng, p)
		}
		k := 0
		for !isBudgeted(p.Resources[k]) {
			k++
		}
		cases = append(cases, conformanceCase{fmt.Sprintf("dp/%d/L%d", c, layers), p, dpOptimum(p, k)})
	}
	return cases
}

func isBudgeted(r Resource) bool { return !math.IsInf(r.Limit, 1) }

// testConformance checks a solver against the references: the objective is
// optimal, the configuration meets every budget, tie and fixed layer, the
// reported objective and costs are those of the configuration, and
// infeasible instances give ErrInfeasible.
func testConformance(t *testing.T, s Solver) {
	ctx := context.Background()
	feasible, infeasible := 0, 0
	for _, c := range conformanceCases() {
		sol, err := s.Solve(ctx, c.p)
		if math.IsInf(c.want, 1) {
			infeasible++
			if !errors.Is(err, ErrInfeasible) {
				t.Errorf("%s: got error %v; want ErrInfeasible", c.name, err)
			}
			continue
		}
		feasible++
		if err != nil {
			t.Errorf("%s: got error %v; want objective %g", c.name, err, c.want)
			continue
		}
		if math.Abs(sol.Objective-c.want) > objTol*c.want {
			t.Errorf("%s: got objective %.12g; want %.12g", c.name, sol.Objective, c.want)
		}
		if !sol.Optimal || sol.Gap != 0 {
			t.Errorf("%s: got Optimal=%v Gap=%g; want true, 0", c.name, sol.Optimal, sol.Gap)
		}
		if !c.p.Feasible(sol) {
			t.Errorf("%s: solution %v violates a budget, tie or fixed layer (costs %v)", c.name, sol.Choices, sol.Costs)
		}
		choice := make([]int, len(sol.Choices))
		for i, ch := range sol.Choices {
			choice[i] = ch.Option
			if c.p.Layers[i].Options[ch.Option].Bits != ch.Bits {
				t.Errorf("%s: layer %d: option %d has %d bits; solution says %d", c.name, i, ch.Option, c.p.Layers[i].Options[ch.Option].Bits, ch.Bits)
			}
		}
		if ev := c.p.Evaluate(choice); ev.Objective != sol.Objective {
			t.Errorf("%s: reported objective %g; configuration has %g", c.name, sol.Objective, ev.Objective)
		}
	}
	// The generator must exercise both outcomes, or the suite proves little.
	if feasible < 150 || infeasible < 5 {
		t.Errorf("got %d feasible and %d infeasible cases; want at least 150 and 5", feasible, infeasible)
	}
}

func TestBranchAndBoundConformance(t *testing.T) {
	testConformance(t, &BranchAndBound{})
}
