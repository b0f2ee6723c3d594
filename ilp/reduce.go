package ilp

import (
	"math"
	"sort"
	"strings"
)

// reduced is a Problem after preprocessing: tie groups merged into single
// decisions, fixed decisions turned into constants and dominated options
// removed. Every solver works on it and maps its answer back with expand.
type reduced struct {
	p      *Problem
	bud    []int     // indexes of the budgeted resources (finite limit)
	limit  []float64 // their limits minus the cost of the fixed decisions
	groups []group   // the free decisions
	// fixed[i] is the option index of layer i if its decision is fixed, else -1.
	fixed []int
	// minFull and maxFull are, per resource, the smallest and largest total
	// cost of any configuration respecting ties and fixed layers.
	minFull, maxFull []float64
	constObj         float64
}

// group is one free decision: a layer, or a tie group merged into one.
type group struct {
	layers []int  // original layer indexes, ascending
	opts   []gopt // undominated options, by omega ascending
}

// gopt is a bit width of a group with the summed omega and costs of its layers.
type gopt struct {
	bits  int
	omega float64
	c     []float64 // budgeted costs, indexed like reduced.bud
	full  []float64 // all costs, indexed like Problem.Resources
}

// reduce validates p and preprocesses it.
func reduce(p *Problem) (*reduced, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	nl, nr := len(p.Layers), len(p.Resources)
	names := make([]string, nl)
	for i, l := range p.Layers {
		names[i] = l.Name
	}
	groups, err := TieGroups(names, p.Ties)
	if err != nil {
		return nil, invalid("%v", err)
	}

	r := &reduced{
		p:       p,
		fixed:   make([]int, nl),
		minFull: make([]float64, nr),
		maxFull: make([]float64, nr),
	}
	for k, res := range p.Resources {
		if !math.IsInf(res.Limit, 1) {
			r.bud = append(r.bud, k)
		}
	}
	constFull := make([]float64, nr)
	for i := range r.fixed {
		r.fixed[i] = -1
	}
	for _, ms := range groups {
		bits, fixed, err := commonBits(p, ms)
		if err != nil {
			return nil, err
		}
		opts := make([]gopt, len(bits))
		for j, b := range bits {
			o := gopt{bits: b, full: make([]float64, nr)}
			for _, i := range ms {
				lo := &p.Layers[i].Options[optionIndex(&p.Layers[i], b)]
				o.omega += lo.Omega
				for k, c := range lo.Costs {
					o.full[k] += c
				}
			}
			o.c = make([]float64, len(r.bud))
			for k, rk := range r.bud {
				o.c[k] = o.full[rk]
			}
			opts[j] = o
		}
		for k := 0; k < nr; k++ {
			lo, hi := math.Inf(1), math.Inf(-1)
			for _, o := range opts {
				if fixed != 0 && o.bits != fixed {
					continue
				}
				lo = math.Min(lo, o.full[k])
				hi = math.Max(hi, o.full[k])
			}
			r.minFull[k] += lo
			r.maxFull[k] += hi
		}
		if fixed != 0 {
			for _, o := range opts {
				if o.bits != fixed {
					continue
				}
				r.constObj += o.omega
				for k := range constFull {
					constFull[k] += o.full[k]
				}
			}
			for _, i := range ms {
				r.fixed[i] = optionIndex(&p.Layers[i], fixed)
			}
			continue
		}
		r.groups = append(r.groups, group{layers: ms, opts: undominated(opts)})
	}
	r.limit = make([]float64, len(r.bud))
	for k, rk := range r.bud {
		r.limit[k] = p.Resources[rk].Limit - constFull[rk]
	}
	return r, nil
}

// commonBits returns the bit widths offered by every layer of a tie group,
// ascending, and the bit width the group is fixed to (0 if free).
func commonBits(p *Problem, ms []int) ([]int, int, error) {
	count := make(map[int]int)
	for _, i := range ms {
		for _, o := range p.Layers[i].Options {
			count[o.Bits]++
		}
	}
	var bits []int
	for b, c := range count {
		if c == len(ms) {
			bits = append(bits, b)
		}
	}
	sort.Ints(bits)
	names := func() string {
		s := make([]string, len(ms))
		for k, i := range ms {
			s[k] = p.Layers[i].Name
		}
		return strings.Join(s, ", ")
	}
	if len(bits) == 0 {
		return nil, 0, invalid("tie group [%s]: no bit width is offered by all its layers", names())
	}
	fixed, by := 0, -1
	for _, i := range ms {
		f := p.Layers[i].Fixed
		if f == 0 {
			continue
		}
		if fixed != 0 && f != fixed {
			return nil, 0, invalid("tie group [%s]: layer %q is fixed to %d bits but layer %q to %d", names(), p.Layers[by].Name, fixed, p.Layers[i].Name, f)
		}
		fixed, by = f, i
	}
	if fixed != 0 && count[fixed] != len(ms) {
		for _, i := range ms {
			if optionIndex(&p.Layers[i], fixed) < 0 {
				return nil, 0, invalid("tie group [%s]: layer %q is fixed to %d bits, which tied layer %q does not offer", names(), p.Layers[by].Name, fixed, p.Layers[i].Name)
			}
		}
	}
	return bits, fixed, nil
}

// undominated removes options that another option beats or equals in omega
// and in every budgeted cost, and returns the rest by omega ascending.
// Among identical options the one with fewer bits is kept.
func undominated(opts []gopt) []gopt {
	sort.SliceStable(opts, func(a, b int) bool {
		oa, ob := &opts[a], &opts[b]
		if oa.omega != ob.omega {
			return oa.omega < ob.omega
		}
		for k := range oa.c {
			if oa.c[k] != ob.c[k] {
				return oa.c[k] < ob.c[k]
			}
		}
		return oa.bits < ob.bits
	})
	var keep []gopt
	for _, o := range opts {
		dominated := false
		for _, q := range keep {
			le := true
			for k := range o.c {
				if q.c[k] > o.c[k] {
					le = false
					break
				}
			}
			if le {
				dominated = true
				break
			}
		}
		if !dominated {
			keep = append(keep, o)
		}
	}
	return keep
}

// expand maps a choice per group (index into group.opts) back to a Solution
// of the original problem.
func (r *reduced) expand(choice []int) *Solution {
	p := r.p
	opt := make([]int, len(p.Layers))
	copy(opt, r.fixed)
	for g, grp := range r.groups {
		b := grp.opts[choice[g]].bits
		for _, i := range grp.layers {
			opt[i] = optionIndex(&p.Layers[i], b)
		}
	}
	return p.Evaluate(opt)
}

// contract maps a solution of the original problem to a choice per group,
// or returns nil when s does not respect the ties and fixed layers or picks
// a dominated option.
func (r *reduced) contract(s *Solution) []int {
	if s == nil || len(s.Choices) != len(r.p.Layers) {
		return nil
	}
	choice := make([]int, len(r.groups))
	for g, grp := range r.groups {
		b := s.Choices[grp.layers[0]].Bits
		choice[g] = -1
		for j, o := range grp.opts {
			if o.bits == b {
				choice[g] = j
			}
		}
		if choice[g] < 0 {
			return nil
		}
		for _, i := range grp.layers {
			if s.Choices[i].Bits != b {
				return nil
			}
		}
	}
	return choice
}

// checkFeasible returns an *InfeasibleError when some budget is below the
// smallest cost achievable for that resource alone.
func (r *reduced) checkFeasible() error {
	for _, k := range r.bud {
		if !meets(r.minFull[k], r.p.Resources[k].Limit) {
			return r.infeasible(false)
		}
	}
	return nil
}

func (r *reduced) infeasible(joint bool) error {
	e := &InfeasibleError{Joint: joint}
	for _, k := range r.bud {
		e.Resources = append(e.Resources, r.p.Resources[k])
		e.Min = append(e.Min, r.minFull[k])
	}
	return e
}
