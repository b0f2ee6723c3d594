package rlsearch

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"mpsearch/ilp"
)

// ErrInvalid is wrapped by every validation error of a Problem or Config.
var ErrInvalid = errors.New("rlsearch: invalid problem")

// ErrInfeasible is wrapped by the error returned when lowering bit widths
// cannot bring a configuration within every budget.
var ErrInfeasible = errors.New("rlsearch: infeasible")

// FeasibilityTol is the relative tolerance with which a budget holds: a total
// cost c meets limit L when c <= L + FeasibilityTol*max(1, |L|). It is the
// same tolerance as ilp.FeasibilityTol, so that both packages agree on which
// configurations are within budget; it absorbs the rounding of summing the
// same costs in different orders (about n*eps relative for n layers).
const FeasibilityTol = 1e-9

// OpKind is the kind of operator a layer is.
type OpKind int

// The operator kinds a layer can be.
const (
	OpConv OpKind = iota
	OpGemm
	OpMatMul
)

// String returns the ONNX operator name.
func (k OpKind) String() string {
	switch k {
	case OpConv:
		return "Conv"
	case OpGemm:
		return "Gemm"
	case OpMatMul:
		return "MatMul"
	}
	return "OpKind(" + strconv.Itoa(int(k)) + ")"
}

// LayerFeatures describes a layer's shape; the agent sees them, normalised
// over the network, as part of its state. Zero values are allowed (a table
// without a model); they only make the state less informative.
type LayerFeatures struct {
	Op          OpKind
	InChannels  int     // input channels (input features for Gemm/MatMul)
	OutChannels int     // output channels (output features)
	Kernel      int     // kernel side (1 for Gemm/MatMul)
	Stride      int     // stride (1 for Gemm/MatMul)
	Params      float64 // weights
	MACs        float64 // multiply-accumulates per sample
	InputSize   int     // spatial size of the input feature map (H*W; 1 for Gemm/MatMul)
}

// Layer is one decision: exactly one of its bit widths is chosen.
type Layer struct {
	Name     string
	Features LayerFeatures
	Bits     []int       // allowed bit widths, strictly increasing
	Omega    []float64   // Omega[j]: objective contribution at Bits[j], finite and >= 0
	Costs    [][]float64 // Costs[j][r]: cost of resource r at Bits[j], finite and >= 0
	Fixed    int         // if not 0, the layer must take this bit width
}

// Resource is one kind of additive cost (latency, size, BOPs, ...) and its
// budget.
type Resource struct {
	Name  string  // used in messages
	Limit float64 // total cost must not exceed it; math.Inf(1) for no budget
}

// Problem is a per-layer bit-width choice: minimise the summed Omega subject
// to every budget, tied layers sharing a width and fixed layers taking theirs.
type Problem struct {
	Resources []Resource
	Layers    []Layer
	// Ties lists groups of layer names that must get the same bit width.
	// Groups sharing a layer are merged.
	Ties [][]string
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// Validate checks p and returns an error wrapping ErrInvalid naming the first
// offending resource, layer or tie group.
func (p *Problem) Validate() error {
	_, err := compile(p)
	return err
}

// FromILP converts an ilp.Problem into a Problem. features[i] describes
// p.Layers[i]; features may be shorter than the layer list (or nil), in which
// case the remaining layers get zero features. Options are sorted by bit
// width. The result is not validated: call Validate or Search.
func FromILP(p *ilp.Problem, features []LayerFeatures) *Problem {
	q := &Problem{
		Resources: make([]Resource, len(p.Resources)),
		Layers:    make([]Layer, len(p.Layers)),
		Ties:      make([][]string, len(p.Ties)),
	}
	for k, r := range p.Resources {
		q.Resources[k] = Resource{Name: r.Name, Limit: r.Limit}
	}
	for i, l := range p.Layers {
		opts := append([]ilp.Option(nil), l.Options...)
		sort.SliceStable(opts, func(a, b int) bool { return opts[a].Bits < opts[b].Bits })
		ql := Layer{
			Name:  l.Name,
			Fixed: l.Fixed,
			Bits:  make([]int, len(opts)),
			Omega: make([]float64, len(opts)),
			Costs: make([][]float64, len(opts)),
		}
		if i < len(features) {
			ql.Features = features[i]
		}
		for j, o := range opts {
			ql.Bits[j] = o.Bits
			ql.Omega[j] = o.Omega
			ql.Costs[j] = append([]float64(nil), o.Costs...)
		}
		q.Layers[i] = ql
	}
	for g, t := range p.Ties {
		q.Ties[g] = append([]string(nil), t...)
	}
	return q
}

// meets reports whether total cost c meets limit l within FeasibilityTol.
func meets(c, l float64) bool {
	return c <= l+FeasibilityTol*math.Max(1, math.Abs(l))
}

// group is one decision of the compiled problem: a tie group (or a single
// layer) choosing one of the widths all its members allow.
type group struct {
	members []int     // layer indices, increasing
	bits    []int     // common allowed widths, increasing
	omega   []float64 // summed over members, per level
	cost    []float64 // summed over members, cost[j*nr+r]
	fixed   bool      // one level only (fixed layer or a single common width)
	level   []int     // level[m*len(bits)+j]: option index of members[m] at bits[j]
}

// env is the compiled problem the search works on: decisions are groups,
// ordered by their first member.
type env struct {
	p      *Problem
	nr     int
	groups []group
	limit  []float64 // per resource; +Inf when unbudgeted
	budget []int     // indices of budgeted resources
}

func compile(p *Problem) (*env, error) {
	if p == nil {
		return nil, invalid("nil problem")
	}
	nr := len(p.Resources)
	e := &env{p: p, nr: nr, limit: make([]float64, nr)}
	rnames := make(map[string]bool, nr)
	for k, r := range p.Resources {
		if r.Name == "" {
			return nil, invalid("resource %d has no name", k)
		}
		if rnames[r.Name] {
			return nil, invalid("resource %q listed twice", r.Name)
		}
		rnames[r.Name] = true
		if math.IsNaN(r.Limit) {
			return nil, invalid("%s budget is NaN; give a number or +Inf for no budget", r.Name)
		}
		e.limit[k] = r.Limit
		if !math.IsInf(r.Limit, 1) {
			e.budget = append(e.budget, k)
		}
	}
	if len(p.Layers) == 0 {
		return nil, invalid("no layers")
	}
	index := make(map[string]int, len(p.Layers))
	for i := range p.Layers {
		l := &p.Layers[i]
		if l.Name == "" {
			return nil, invalid("layer %d has no name", i)
		}
		if _, dup := index[l.Name]; dup {
			return nil, invalid("layer %q listed twice", l.Name)
		}
		index[l.Name] = i
		if len(l.Bits) == 0 {
			return nil, invalid("layer %q has no bit widths", l.Name)
		}
		if len(l.Omega) != len(l.Bits) || len(l.Costs) != len(l.Bits) {
			return nil, invalid("layer %q: %d bit widths but %d omegas and %d cost rows", l.Name, len(l.Bits), len(l.Omega), len(l.Costs))
		}
		for j, b := range l.Bits {
			if b <= 0 {
				return nil, invalid("layer %q: bit width %d is not positive", l.Name, b)
			}
			if j > 0 && b <= l.Bits[j-1] {
				return nil, invalid("layer %q: bit widths %v are not strictly increasing", l.Name, l.Bits)
			}
			if o := l.Omega[j]; math.IsNaN(o) || math.IsInf(o, 0) || o < 0 {
				return nil, invalid("layer %q: omega %v at %d bits is not a finite number >= 0", l.Name, o, b)
			}
			if len(l.Costs[j]) != nr {
				return nil, invalid("layer %q: %d costs at %d bits for %d resources", l.Name, len(l.Costs[j]), b, nr)
			}
			for k, c := range l.Costs[j] {
				if math.IsNaN(c) || math.IsInf(c, 0) || c < 0 {
					return nil, invalid("layer %q: %s cost %v at %d bits is not a finite number >= 0", l.Name, p.Resources[k].Name, c, b)
				}
			}
		}
		if l.Fixed != 0 && indexOf(l.Bits, l.Fixed) < 0 {
			return nil, invalid("layer %q: fixed to %d bits, which it does not allow (allows %s)", l.Name, l.Fixed, bitList(l.Bits))
		}
	}

	// Tie groups, in the order of their first layer.
	names := make([]string, len(p.Layers))
	for i, l := range p.Layers {
		names[i] = l.Name
	}
	groups, err := ilp.TieGroups(names, p.Ties)
	if err != nil {
		return nil, invalid("%v", err)
	}
	for _, ms := range groups {
		e.groups = append(e.groups, group{members: ms})
	}
	for gi := range e.groups {
		if err := e.buildGroup(&e.groups[gi]); err != nil {
			return nil, err
		}
	}
	return e, nil
}

func (e *env) buildGroup(g *group) error {
	p := e.p
	names := func() string {
		s := make([]string, len(g.members))
		for m, i := range g.members {
			s[m] = strconv.Quote(p.Layers[i].Name)
		}
		return strings.Join(s, ", ")
	}
	// Common widths, restricted to the fixed width if any member is fixed.
	fixed := 0
	for _, i := range g.members {
		if f := p.Layers[i].Fixed; f != 0 {
			if fixed != 0 && f != fixed {
				return invalid("tied layers %s are fixed to different widths %d and %d", names(), fixed, f)
			}
			fixed = f
		}
	}
	for _, b := range p.Layers[g.members[0]].Bits {
		if fixed != 0 && b != fixed {
			continue
		}
		all := true
		for _, i := range g.members[1:] {
			if indexOf(p.Layers[i].Bits, b) < 0 {
				all = false
				break
			}
		}
		if all {
			g.bits = append(g.bits, b)
		}
	}
	if len(g.bits) == 0 {
		if fixed != 0 {
			return invalid("tied layers %s: fixed width %d is not allowed by all of them", names(), fixed)
		}
		return invalid("tied layers %s allow no common bit width", names())
	}
	nb := len(g.bits)
	g.fixed = nb == 1
	g.omega = make([]float64, nb)
	g.cost = make([]float64, nb*e.nr)
	g.level = make([]int, len(g.members)*nb)
	for m, i := range g.members {
		l := &p.Layers[i]
		for j, b := range g.bits {
			o := indexOf(l.Bits, b)
			g.level[m*nb+j] = o
			g.omega[j] += l.Omega[o]
			for k := 0; k < e.nr; k++ {
				g.cost[j*e.nr+k] += l.Costs[o][k]
			}
		}
	}
	return nil
}

func indexOf(s []int, v int) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func bitList(b []int) string {
	s := make([]string, len(b))
	for j, v := range b {
		s[j] = strconv.Itoa(v)
	}
	return strings.Join(s, ",")
}

// eval sums the objective and the costs of the group levels x into cost
// (length nr) and returns the objective, both summed in group order.
func (e *env) eval(x []int, cost []float64) float64 {
	for k := range cost {
		cost[k] = 0
	}
	obj := 0.0
	for gi := range e.groups {
		g := &e.groups[gi]
		j := x[gi]
		obj += g.omega[j]
		c := g.cost[j*e.nr : (j+1)*e.nr]
		for k := range cost {
			cost[k] += c[k]
		}
	}
	return obj
}

// fits reports whether every budget holds for the total costs.
func (e *env) fits(cost []float64) bool {
	for _, k := range e.budget {
		if !meets(cost[k], e.limit[k]) {
			return false
		}
	}
	return true
}

// bits expands group levels into one bit width per layer.
func (e *env) bits(x []int, out []int) []int {
	if out == nil {
		out = make([]int, len(e.p.Layers))
	}
	for gi := range e.groups {
		g := &e.groups[gi]
		for _, i := range g.members {
			out[i] = g.bits[x[gi]]
		}
	}
	return out
}

// levels maps bit widths per layer into group levels, checking that they are
// allowed, respect ties and fixed layers.
func (e *env) levels(bits []int) ([]int, error) {
	if len(bits) != len(e.p.Layers) {
		return nil, invalid("%d bit widths for %d layers", len(bits), len(e.p.Layers))
	}
	x := make([]int, len(e.groups))
	for gi := range e.groups {
		g := &e.groups[gi]
		first := g.members[0]
		j := indexOf(g.bits, bits[first])
		if j < 0 {
			return nil, invalid("layer %q: %d bits is not among its allowed widths %s (ties and fixed widths included)", e.p.Layers[first].Name, bits[first], bitList(g.bits))
		}
		for _, i := range g.members[1:] {
			if bits[i] != bits[first] {
				return nil, invalid("tied layers %q and %q get different widths %d and %d", e.p.Layers[first].Name, e.p.Layers[i].Name, bits[first], bits[i])
			}
		}
		x[gi] = j
	}
	return x, nil
}

// objective returns the summed Omega and costs of bits per layer, summed in
// layer order, as reported to callers.
func (p *Problem) objective(bits []int) (float64, []float64) {
	cost := make([]float64, len(p.Resources))
	obj := 0.0
	for i := range p.Layers {
		l := &p.Layers[i]
		j := indexOf(l.Bits, bits[i])
		obj += l.Omega[j]
		for k, c := range l.Costs[j] {
			cost[k] += c
		}
	}
	return obj, cost
}
