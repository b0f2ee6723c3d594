package rlsearch

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"mpsearch/ilp"
)

// monotoneTable is randomTable with every layer's costs sorted to grow with
// the bit width (the premise under which lowering bits is the way to meet a
// budget) and budgets anywhere from below the least total cost to 90% of
// the way to the largest.
func monotoneTable(rng *rand.Rand, layers int) *Problem {
	p := randomTable(rng, tableOpts{layers: layers, ties: rng.IntN(2) == 0, fixed: rng.IntN(3) == 0, nbud: 1 + rng.IntN(3)})
	for i := range p.Layers {
		l := &p.Layers[i]
		for k := range p.Resources {
			col := make([]float64, len(l.Bits))
			for j := range col {
				col[j] = l.Costs[j][k]
			}
			slices.Sort(col)
			for j := range col {
				l.Costs[j][k] = col[j]
			}
		}
	}
	var ks []int
	for k, r := range p.Resources {
		if !math.IsInf(r.Limit, 1) {
			ks = append(ks, k)
		}
	}
	setBudgets(p, ks, func() float64 { return -0.1 + rng.Float64() })
	return p
}

// randomBits draws allowed widths respecting ties and fixed layers.
func randomBits(rng *rand.Rand, p *Problem) []int {
	e, err := compile(p)
	if err != nil {
		panic(err)
	}
	x := make([]int, len(e.groups))
	for gi := range e.groups {
		x[gi] = rng.IntN(len(e.groups[gi].bits))
	}
	return e.bits(x, nil)
}

// TestRepairProperty: on random tables and random starting configurations,
// Repair either meets every budget, only lowering widths and keeping ties
// and fixed layers, or reports ErrInfeasible exactly when the exact solver
// finds no feasible configuration either.
func TestRepairProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	infeasible := 0
	const cases = 300
	for c := 0; c < cases; c++ {
		p := monotoneTable(rng, 5+rng.IntN(26))
		start := randomBits(rng, p)
		got, err := Repair(p, start)
		_, ilpErr := (&ilp.BranchAndBound{}).Solve(context.Background(), toILP(p))
		ilpInfeasible := errors.Is(ilpErr, ilp.ErrInfeasible)
		if ilpErr != nil && !ilpInfeasible {
			t.Fatalf("case %d: ilp: %v", c, ilpErr)
		}
		if err != nil {
			if !errors.Is(err, ErrInfeasible) {
				t.Fatalf("case %d: got error %v; want nil or ErrInfeasible", c, err)
			}
			if !ilpInfeasible {
				t.Errorf("case %d: Repair says infeasible (%v); the ILP finds a feasible configuration", c, err)
			}
			infeasible++
			continue
		}
		if ilpInfeasible {
			t.Errorf("case %d: Repair found a configuration; the ILP says infeasible", c)
		}
		if !within(p, got) {
			_, cost := p.objective(got)
			t.Errorf("case %d: repaired costs %v exceed budgets %v", c, cost, p.Resources)
		}
		e, err := compile(p)
		if err != nil {
			t.Fatalf("case %d: %v", c, err)
		}
		if _, err := e.levels(got); err != nil {
			t.Errorf("case %d: repaired configuration breaks ties or fixed widths: %v", c, err)
		}
		for i := range got {
			if got[i] > start[i] {
				t.Errorf("case %d: layer %d raised from %d to %d bits; repair only lowers", c, i, start[i], got[i])
			}
		}
	}
	t.Logf("%d cases, %d infeasible", cases, infeasible)
	if infeasible == 0 || infeasible == cases {
		t.Errorf("%d of %d cases infeasible; the generator should produce both kinds", infeasible, cases)
	}
}

// TestRepairNoOpWhenFeasible: a configuration within budget is returned
// unchanged.
func TestRepairNoOpWhenFeasible(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	for c := 0; c < 100; c++ {
		p := randomTable(rng, tableOpts{layers: 5 + rng.IntN(40), ties: c%2 == 0, fixed: c%3 == 0, nbud: 3})
		start := randomBits(rng, p)
		_, cost := p.objective(start)
		for k := range p.Resources {
			p.Resources[k].Limit = cost[k] * (1 + 0.1*rng.Float64()*float64(c%2))
		}
		got, err := Repair(p, start)
		if err != nil {
			t.Fatalf("case %d: %v", c, err)
		}
		if !slices.Equal(got, start) {
			t.Errorf("case %d: feasible configuration changed from %v to %v", c, start, got)
		}
	}
}

// TestRepairInfeasibleMessage: the error names the budget and what is
// achievable.
func TestRepairInfeasibleMessage(t *testing.T) {
	p := &Problem{
		Resources: []Resource{{Name: "size", Limit: 100}},
		Layers: []Layer{
			{Name: "a", Bits: []int{4, 8}, Omega: []float64{1, 0}, Costs: [][]float64{{60}, {120}}},
			{Name: "b", Bits: []int{4, 8}, Omega: []float64{1, 0}, Costs: [][]float64{{50}, {100}}},
		},
	}
	_, err := Repair(p, []int{8, 8})
	if !errors.Is(err, ErrInfeasible) {
		t.Fatalf("got %v; want ErrInfeasible", err)
	}
	for _, want := range []string{"size budget 100", "110"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := Search(context.Background(), p, Config{Episodes: 5}); !errors.Is(err, ErrInfeasible) {
		t.Errorf("Search: got %v; want ErrInfeasible", err)
	}
}

// TestRepairGreedyChoice: the repair lowers the layer with the least
// Omega increase per unit of cost saved, the saving counted up to the
// excess (a saving beyond what is needed earns nothing).
func TestRepairGreedyChoice(t *testing.T) {
	layers := func() []Layer {
		return []Layer{
			{Name: "a", Bits: []int{4, 8}, Omega: []float64{0.3, 0}, Costs: [][]float64{{50}, {100}}},
			{Name: "b", Bits: []int{4, 8}, Omega: []float64{0.5, 0}, Costs: [][]float64{{100}, {200}}},
		}
	}
	tests := []struct {
		limit float64
		want  []int
	}{
		// Excess 100: a closes half of it for 0.3 (0.6 per excess closed),
		// b all of it for 0.5.
		{200, []int{8, 4}},
		// Excess 20: both close it; a costs less Omega. Uncapped, b would
		// look better (0.005 per unit saved against a's 0.006).
		{280, []int{4, 8}},
		// Excess 140: b first (0.5 per 1 against a's 0.3 per 50/140), then a.
		{160, []int{4, 4}},
	}
	for _, tc := range tests {
		p := &Problem{Resources: []Resource{{Name: "size", Limit: tc.limit}}, Layers: layers()}
		got, err := Repair(p, []int{8, 8})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("limit %g: got %v; want %v", tc.limit, got, tc.want)
		}
	}
}

// bruteForce returns the optimum of a small problem by enumeration.
func bruteForce(p *Problem) (float64, []int) {
	e, err := compile(p)
	if err != nil {
		panic(err)
	}
	x := make([]int, len(e.groups))
	cost := make([]float64, e.nr)
	best, bestX := math.Inf(1), []int(nil)
	var rec func(int)
	rec = func(gi int) {
		if gi == len(e.groups) {
			if o := e.eval(x, cost); e.fits(cost) && o < best {
				best, bestX = o, append([]int(nil), x...)
			}
			return
		}
		for j := range e.groups[gi].bits {
			x[gi] = j
			rec(gi + 1)
		}
	}
	rec(0)
	if bestX == nil {
		return best, nil
	}
	return best, e.bits(bestX, nil)
}

// TestImprove: the polish never worsens, stays within budget, ends where
// no single-layer change helps (checked by enumerating those changes), and
// usually reaches the optimum of small tables (enumeration).
func TestImprove(t *testing.T) {
	rng := rand.New(rand.NewPCG(51, 52))
	optimal, cases := 0, 0
	for c := 0; c < 200; c++ {
		p := randomTable(rng, tableOpts{layers: 4 + rng.IntN(5), ties: c%2 == 0, nbud: 1 + c%3})
		opt, optBits := bruteForce(p)
		if optBits == nil {
			continue
		}
		start, err := Repair(p, randomBits(rng, p))
		if err != nil {
			continue // repair can fail on costs that fall with bits
		}
		cases++
		got, err := Improve(p, start)
		if err != nil {
			t.Fatalf("case %d: %v", c, err)
		}
		o0, _ := p.objective(start)
		o, _ := p.objective(got)
		if !within(p, got) || o > o0 {
			t.Errorf("case %d: polish gave objective %g (start %g), within budget %v", c, o, o0, within(p, got))
		}
		e, err := compile(p)
		if err != nil {
			t.Fatalf("case %d: %v", c, err)
		}
		for i := range p.Layers {
			for _, b := range p.Layers[i].Bits {
				y := slices.Clone(got)
				y[i] = b
				if _, err := e.levels(y); err != nil {
					continue // breaks a tie or a fixed width
				}
				if oy, _ := p.objective(y); within(p, y) && oy < o*(1-1e-9) {
					t.Errorf("case %d: setting layer %d to %d bits improves the polished %g to %g", c, i, b, o, oy)
				}
			}
		}
		if o <= opt*(1+1e-9) {
			optimal++
		}
	}
	t.Logf("polish reached the optimum in %d of %d small tables", optimal, cases)
	// The polish is a heuristic; on tables this small it should almost
	// always be exact.
	if optimal < cases*9/10 {
		t.Errorf("polish optimal in %d of %d cases; want at least 90%%", optimal, cases)
	}
}

// TestValidate: malformed problems give errors wrapping ErrInvalid that
// name the culprit.
func TestValidate(t *testing.T) {
	good := func() *Problem {
		return &Problem{
			Resources: []Resource{{Name: "size", Limit: 1000}},
			Layers: []Layer{
				{Name: "a", Bits: []int{4, 8}, Omega: []float64{1, 0.1}, Costs: [][]float64{{50}, {100}}},
				{Name: "b", Bits: []int{2, 4}, Omega: []float64{1, 0.1}, Costs: [][]float64{{50}, {100}}},
			},
		}
	}
	if err := good().Validate(); err != nil {
		t.Fatalf("valid problem: %v", err)
	}
	tests := []struct {
		name  string
		edit  func(p *Problem)
		wants string
	}{
		{"no layers", func(p *Problem) { p.Layers = nil }, "no layers"},
		{"unsorted bits", func(p *Problem) { p.Layers[0].Bits = []int{8, 4} }, `"a"`},
		{"negative omega", func(p *Problem) { p.Layers[1].Omega[0] = -1 }, `"b"`},
		{"NaN cost", func(p *Problem) { p.Layers[1].Costs[0][0] = math.NaN() }, "size cost"},
		{"short omega", func(p *Problem) { p.Layers[0].Omega = []float64{1} }, "omegas"},
		{"cost count", func(p *Problem) { p.Layers[0].Costs[1] = []float64{1, 2} }, "2 costs"},
		{"fixed not allowed", func(p *Problem) { p.Layers[0].Fixed = 2 }, "fixed to 2"},
		{"duplicate layer", func(p *Problem) { p.Layers[1].Name = "a" }, "twice"},
		{"unknown tie", func(p *Problem) { p.Ties = [][]string{{"a", "zz"}} }, `"zz"`},
		{"no common width", func(p *Problem) { p.Layers[1].Bits = []int{2, 3}; p.Ties = [][]string{{"a", "b"}} }, "no common"},
		{"NaN budget", func(p *Problem) { p.Resources[0].Limit = math.NaN() }, "NaN"},
	}
	for _, tc := range tests {
		p := good()
		tc.edit(p)
		err := p.Validate()
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wants) {
			t.Errorf("%s: got %v; want ErrInvalid mentioning %s", tc.name, err, tc.wants)
		}
	}
}
