package ilp

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrInvalid is wrapped by every validation error of a Problem.
var ErrInvalid = errors.New("ilp: invalid problem")

// ErrInfeasible is wrapped by the error returned when no configuration meets
// the budgets. The wrapping error is an *InfeasibleError.
var ErrInfeasible = errors.New("ilp: infeasible")

// ErrInterrupted is wrapped, together with the context's own error, by the
// error a solver or Pareto returns when the caller's context ends: a search
// cut short by the caller yields no configuration.
var ErrInterrupted = errors.New("ilp: interrupted")

// interrupted returns an error wrapping ErrInterrupted and ctx.Err() if ctx
// has ended, else nil.
func interrupted(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrInterrupted, err)
	}
	return nil
}

// FeasibilityTol is the relative tolerance with which a budget holds: a total
// cost c meets limit L when c <= L + FeasibilityTol*max(1, |L|). It absorbs
// the rounding of summing the same costs in different orders (about n*eps
// relative for n layers, far below this value) and matches lp_solve's own
// primal feasibility tolerance (1e-9 by default).
const FeasibilityTol = 1e-9

// OptimalityTol is the relative gap below which a solution is reported as
// Optimal: no configuration has an objective below (1-OptimalityTol) times
// the returned one. It equals lp_solve's default relative MIP gap.
const OptimalityTol = 1e-9

// Resource is one kind of cost (latency, size, BOPs, ...) and its budget.
type Resource struct {
	Name  string  // for instance "latency"; used in messages
	Unit  string  // appended to numbers in messages, for instance "ms"
	Limit float64 // the budget: total cost must not exceed it; math.Inf(1) for none
}

// Option is one bit width a layer can take.
type Option struct {
	Bits  int       // bit width, > 0
	Omega float64   // objective contribution (sensitivity), finite and >= 0
	Costs []float64 // cost per resource, indexed like Problem.Resources; finite and >= 0
}

// Layer is one decision: exactly one of its options is chosen.
type Layer struct {
	Name    string
	Options []Option
	Fixed   int // if not 0, the layer must take this bit width
}

// Problem is a multiple-choice knapsack problem: choose one option per layer
// minimising the sum of Omega subject to every budget, tied layers getting
// the same bit width and fixed layers their given one.
type Problem struct {
	Resources []Resource
	Layers    []Layer
	// Ties lists groups of layer names that must get the same bit width.
	// Groups sharing a layer are merged.
	Ties [][]string
}

// Choice is the option chosen for one layer.
type Choice struct {
	Option int // index into Layer.Options
	Bits   int // that option's bit width
}

// Solution is a configuration and what is known about its optimality.
type Solution struct {
	Choices   []Choice  // one per layer, in Problem.Layers order
	Objective float64   // sum of the chosen Omega
	Costs     []float64 // total cost per resource, indexed like Problem.Resources
	Optimal   bool      // proven optimal within OptimalityTol
	Gap       float64   // proven relative gap (Objective-bound)/Objective; 0 when Optimal
	Nodes     int       // branch-and-bound nodes explored
}

// Solver finds a configuration of minimum objective within the budgets.
// Solve returns an error wrapping ErrInvalid for a malformed problem and
// ErrInfeasible when no configuration meets the budgets. When ctx ends
// (the caller interrupted the job) it returns an error wrapping ErrInterrupted
// and ctx's error, never a configuration: a cut-short search is not a result.
// Only the solver's own TimeLimit returns the best configuration found, with
// its proven Gap and Optimal false.
type Solver interface {
	Solve(ctx context.Context, p *Problem) (*Solution, error)
}

// HintedSolver is a Solver that can start from a known configuration, for
// instance the solution of a neighbouring budget in a Pareto sweep. The hint
// only speeds the search up; it need not be feasible.
type HintedSolver interface {
	Solver
	SolveHint(ctx context.Context, p *Problem, hint *Solution) (*Solution, error)
}

// InfeasibleError reports budgets that no configuration meets.
type InfeasibleError struct {
	Resources []Resource // the budgeted resources
	Min       []float64  // smallest cost of each achievable on its own (ties and fixed layers respected)
	// Joint is true when each budget can be met on its own but not all at once.
	Joint bool
}

// Error says, for each budget, the smallest cost achievable.
func (e *InfeasibleError) Error() string {
	var b strings.Builder
	b.WriteString(ErrInfeasible.Error())
	b.WriteString(": ")
	if e.Joint {
		b.WriteString("budgets cannot all be met at once (")
		for k, r := range e.Resources {
			if k > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s %s, minimum %s alone", r.Name, fmtQty(r.Limit, r.Unit), fmtQty(e.Min[k], r.Unit))
		}
		b.WriteString("); relax one of them")
		return b.String()
	}
	first := true
	for k, r := range e.Resources {
		if !first {
			b.WriteString("; ")
		}
		first = false
		if meets(e.Min[k], r.Limit) {
			fmt.Fprintf(&b, "%s budget %s (minimum %s achievable)", r.Name, fmtQty(r.Limit, r.Unit), fmtQty(e.Min[k], r.Unit))
		} else {
			fmt.Fprintf(&b, "%s budget %s below the minimum %s achievable", r.Name, fmtQty(r.Limit, r.Unit), fmtQty(e.Min[k], r.Unit))
		}
	}
	return b.String()
}

// Unwrap returns ErrInfeasible.
func (e *InfeasibleError) Unwrap() error { return ErrInfeasible }

func fmtQty(v float64, unit string) string {
	return strconv.FormatFloat(v, 'g', 6, 64) + unit
}

// meets reports whether total cost c meets limit l within FeasibilityTol.
func meets(c, l float64) bool {
	return c <= l+FeasibilityTol*math.Max(1, math.Abs(l))
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// Validate checks p and returns an error wrapping ErrInvalid naming the first
// offending layer, option or tie group.
func (p *Problem) Validate() error {
	if p == nil {
		return invalid("nil problem")
	}
	names := make(map[string]bool, len(p.Resources))
	for k, r := range p.Resources {
		if r.Name == "" {
			return invalid("resource %d has no name", k)
		}
		if names[r.Name] {
			return invalid("resource %q listed twice", r.Name)
		}
		names[r.Name] = true
		if math.IsNaN(r.Limit) {
			return invalid("%s budget is NaN", r.Name)
		}
	}
	if len(p.Layers) == 0 {
		return invalid("no layers")
	}
	index := make(map[string]int, len(p.Layers))
	for i := range p.Layers {
		l := &p.Layers[i]
		if l.Name == "" {
			return invalid("layer %d has no name", i)
		}
		if _, dup := index[l.Name]; dup {
			return invalid("layer %q listed twice", l.Name)
		}
		index[l.Name] = i
		if len(l.Options) == 0 {
			return invalid("layer %q has no options", l.Name)
		}
		seen := make(map[int]bool, len(l.Options))
		for _, o := range l.Options {
			if o.Bits <= 0 {
				return invalid("layer %q: bit width %d is not positive", l.Name, o.Bits)
			}
			if seen[o.Bits] {
				return invalid("layer %q: %d bits offered twice", l.Name, o.Bits)
			}
			seen[o.Bits] = true
			if math.IsNaN(o.Omega) || math.IsInf(o.Omega, 0) || o.Omega < 0 {
				return invalid("layer %q: omega %v at %d bits is not a finite number >= 0", l.Name, o.Omega, o.Bits)
			}
			if len(o.Costs) != len(p.Resources) {
				return invalid("layer %q: %d costs at %d bits for %d resources", l.Name, len(o.Costs), o.Bits, len(p.Resources))
			}
			for k, c := range o.Costs {
				if math.IsNaN(c) || math.IsInf(c, 0) || c < 0 {
					return invalid("layer %q: %s cost %v at %d bits is not a finite number >= 0", l.Name, p.Resources[k].Name, c, o.Bits)
				}
			}
		}
		if l.Fixed != 0 && !seen[l.Fixed] {
			return invalid("layer %q: fixed to %d bits, which it does not offer (offers %s)", l.Name, l.Fixed, bitList(l.Options))
		}
	}
	for g, tie := range p.Ties {
		if len(tie) == 0 {
			return invalid("tie group %d is empty", g)
		}
		for _, name := range tie {
			if _, ok := index[name]; !ok {
				return invalid("tie group %d: unknown layer %q", g, name)
			}
		}
	}
	return nil
}

func bitList(opts []Option) string {
	s := make([]string, len(opts))
	for j, o := range opts {
		s[j] = strconv.Itoa(o.Bits)
	}
	return strings.Join(s, ",")
}

// optionIndex returns the index of the option of l with the given bits, or -1.
func optionIndex(l *Layer, bits int) int {
	for j, o := range l.Options {
		if o.Bits == bits {
			return j
		}
	}
	return -1
}

// Evaluate returns the solution that gives layer i the option choice[i]
// (indexes into Layers[i].Options), with its objective and costs summed in
// layer order. Optimal, Gap and Nodes are left zero.
func (p *Problem) Evaluate(choice []int) *Solution {
	s := &Solution{
		Choices: make([]Choice, len(p.Layers)),
		Costs:   make([]float64, len(p.Resources)),
	}
	for i := range p.Layers {
		o := &p.Layers[i].Options[choice[i]]
		s.Choices[i] = Choice{Option: choice[i], Bits: o.Bits}
		s.Objective += o.Omega
		for k, c := range o.Costs {
			s.Costs[k] += c
		}
	}
	return s
}

// Feasible reports whether s meets every budget of p within FeasibilityTol
// and respects ties and fixed layers.
func (p *Problem) Feasible(s *Solution) bool {
	if len(s.Choices) != len(p.Layers) {
		return false
	}
	for k, r := range p.Resources {
		if !meets(s.Costs[k], r.Limit) {
			return false
		}
	}
	bits := make(map[string]int, len(p.Layers))
	for i, l := range p.Layers {
		if l.Fixed != 0 && s.Choices[i].Bits != l.Fixed {
			return false
		}
		bits[l.Name] = s.Choices[i].Bits
	}
	for _, tie := range p.Ties {
		for _, name := range tie[1:] {
			if bits[name] != bits[tie[0]] {
				return false
			}
		}
	}
	return true
}
