package ilp

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// small returns a valid two-layer problem with a latency budget; each test
// breaks one thing.
func small() *Problem {
	return &Problem{
		Resources: []Resource{{Name: "latency", Unit: "ms", Limit: 1.2}, {Name: "size", Unit: "B", Limit: math.Inf(1)}},
		Layers: []Layer{
			{Name: "conv1", Options: []Option{
				{Bits: 4, Omega: 0.5, Costs: []float64{0.5, 10}},
				{Bits: 8, Omega: 0.1, Costs: []float64{0.8, 20}},
			}},
			{Name: "fc", Options: []Option{
				{Bits: 4, Omega: 0.3, Costs: []float64{0.5, 30}},
				{Bits: 8, Omega: 0.01, Costs: []float64{1.0, 60}},
			}},
		},
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(p *Problem)
		want   string
	}{
		{"negative cost", func(p *Problem) { p.Layers[1].Options[0].Costs[1] = -1 },
			`ilp: invalid problem: layer "fc": size cost -1 at 4 bits is not a finite number >= 0`},
		{"NaN omega", func(p *Problem) { p.Layers[0].Options[1].Omega = math.NaN() },
			`ilp: invalid problem: layer "conv1": omega NaN at 8 bits is not a finite number >= 0`},
		{"negative omega", func(p *Problem) { p.Layers[0].Options[1].Omega = -0.1 },
			`ilp: invalid problem: layer "conv1": omega -0.1 at 8 bits is not a finite number >= 0`},
		{"unknown layer in ties", func(p *Problem) { p.Ties = [][]string{{"conv1", "conv9"}} },
			`ilp: invalid problem: tie group 0: unknown layer "conv9"`},
		{"no common bits", func(p *Problem) {
			p.Layers[1].Options[0].Bits, p.Layers[1].Options[1].Bits = 2, 3
			p.Ties = [][]string{{"conv1", "fc"}}
		}, `ilp: invalid problem: tie group [conv1, fc]: no bit width is offered by all its layers`},
		{"fixed bits not offered", func(p *Problem) { p.Layers[0].Fixed = 2 },
			`ilp: invalid problem: layer "conv1": fixed to 2 bits, which it does not offer (offers 4,8)`},
		{"tied layers fixed differently", func(p *Problem) {
			p.Layers[0].Fixed, p.Layers[1].Fixed = 4, 8
			p.Ties = [][]string{{"conv1", "fc"}}
		}, `ilp: invalid problem: tie group [conv1, fc]: layer "conv1" is fixed to 4 bits but layer "fc" to 8`},
		{"fixed bits not offered by tied layer", func(p *Problem) {
			p.Layers[1].Options[0].Bits = 2
			p.Layers[0].Fixed = 4
			p.Ties = [][]string{{"conv1", "fc"}}
		}, `ilp: invalid problem: tie group [conv1, fc]: layer "conv1" is fixed to 4 bits, which tied layer "fc" does not offer`},
		{"cost count", func(p *Problem) { p.Layers[1].Options[1].Costs = []float64{1} },
			`ilp: invalid problem: layer "fc": 1 costs at 8 bits for 2 resources`},
		{"duplicate bits", func(p *Problem) { p.Layers[1].Options[1].Bits = 4 },
			`ilp: invalid problem: layer "fc": 4 bits offered twice`},
		{"duplicate layer", func(p *Problem) { p.Layers[1].Name = "conv1" },
			`ilp: invalid problem: layer "conv1" listed twice`},
		{"NaN budget", func(p *Problem) { p.Resources[0].Limit = math.NaN() },
			`ilp: invalid problem: latency budget is NaN`},
	}
	for _, tt := range tests {
		p := small()
		tt.break_(p)
		for _, s := range solvers() {
			_, err := s.Solve(context.Background(), p)
			if err == nil || err.Error() != tt.want {
				t.Errorf("%s: %T: got error %v; want %s", tt.name, s, err, tt.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: %T: error %v does not wrap ErrInvalid", tt.name, s, err)
			}
		}
	}
}

func TestInfeasibleMessage(t *testing.T) {
	tests := []struct {
		name string
		edit func(p *Problem)
		want string
	}{
		{"below minimum", func(p *Problem) { p.Resources[0].Limit = 0.9 },
			"ilp: infeasible: latency budget 0.9ms below the minimum 1ms achievable"},
		{"two budgets, one too low", func(p *Problem) { p.Resources[0].Limit, p.Resources[1].Limit = 2, 35 },
			"ilp: infeasible: latency budget 2ms (minimum 1ms achievable); size budget 35B below the minimum 40B achievable"},
		{"fixed layer raises the minimum", func(p *Problem) { p.Layers[1].Fixed = 8; p.Resources[0].Limit = 1.4 },
			"ilp: infeasible: latency budget 1.4ms below the minimum 1.5ms achievable"},
		{"tie raises the minimum", func(p *Problem) {
			p.Layers[1].Options[0].Bits = 2
			p.Ties = [][]string{{"conv1", "fc"}}
			p.Resources[0].Limit = 1.7
		}, "ilp: infeasible: latency budget 1.7ms below the minimum 1.8ms achievable"},
		{"jointly infeasible", func(p *Problem) {
			// Each budget alone can be met (latency 0.7 at 8+8 bits,
			// size 50 at 8+4 bits), but latency <= 0.8 needs fc at 8
			// bits, which needs size 80.
			p.Layers[0].Options[0].Costs = []float64{0.5, 25}
			p.Layers[0].Options[1].Costs = []float64{0.3, 20}
			p.Layers[1].Options[0].Costs = []float64{0.7, 30}
			p.Layers[1].Options[1].Costs = []float64{0.4, 60}
			p.Resources[0].Limit, p.Resources[1].Limit = 0.8, 50
		}, "ilp: infeasible: budgets cannot all be met at once (latency 0.8ms, minimum 0.7ms alone, size 50B, minimum 50B alone); relax one of them"},
	}
	for _, tt := range tests {
		p := small()
		tt.edit(p)
		for _, s := range solvers() {
			_, err := s.Solve(context.Background(), p)
			if err == nil || err.Error() != tt.want {
				t.Errorf("%s: %T: got error %v; want %s", tt.name, s, err, tt.want)
			}
			var ie *InfeasibleError
			if !errors.Is(err, ErrInfeasible) || !errors.As(err, &ie) {
				t.Errorf("%s: %T: error %v is not an *InfeasibleError wrapping ErrInfeasible", tt.name, s, err)
			}
		}
	}
}

// TestTimeLimit checks that a search cut short returns a feasible
// configuration with a gap that is a true bound: the optimum (proven
// without a limit) lies in [Objective*(1-Gap), Objective].
func TestTimeLimit(t *testing.T) {
	p := realisticProblem(7, 100, benchBits, 0.3)
	opt, err := (&BranchAndBound{}).Solve(context.Background(), p)
	if err != nil || !opt.Optimal {
		t.Fatalf("reference: got %v, %v; want a proven optimum", opt, err)
	}
	cut, err := (&BranchAndBound{TimeLimit: time.Nanosecond}).Solve(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if cut.Optimal || !(cut.Gap > 0) {
		t.Fatalf("time-limited search: got Optimal=%v Gap=%g; want false and a positive gap (is the instance too easy?)", cut.Optimal, cut.Gap)
	}
	if !p.Feasible(cut) {
		t.Fatalf("time-limited solution violates a budget: costs %v", cut.Costs)
	}
	if lb := cut.Objective * (1 - cut.Gap); lb > opt.Objective*(1+objTol) || cut.Objective < opt.Objective*(1-objTol) {
		t.Errorf("got objective %g with gap %g (bound %g); the optimum %g must lie in [bound, objective]", cut.Objective, cut.Gap, lb, opt.Objective)
	}
}

func TestPareto(t *testing.T) {
	p := realisticProblem(3, 12, []int{2, 4, 8}, 0.5)
	p.Resources[2].Limit = math.Inf(1)
	for _, s := range solvers() {
		front, err := Pareto(context.Background(), s, p, 0, 15)
		if err != nil {
			t.Fatalf("%T: %v", s, err)
		}
		if len(front) < 3 {
			t.Fatalf("%T: got %d points; want at least 3", s, len(front))
		}
		for k, sol := range front {
			if !sol.Optimal {
				t.Errorf("%T: point %d not proven optimal", s, k)
			}
			// Each point is optimal for its own cost as the budget
			// (brute force), and the front strictly trades cost for
			// objective.
			q := *p
			q.Resources = append([]Resource(nil), p.Resources...)
			q.Resources[0].Limit = sol.Costs[0]
			if want := bruteForce(&q); math.Abs(sol.Objective-want) > objTol*want {
				t.Errorf("%T: point %d (latency %g): got objective %g; want %g", s, k, sol.Costs[0], sol.Objective, want)
			}
			if !p.Feasible(&Solution{Choices: sol.Choices, Costs: []float64{0, sol.Costs[1], 0}}) {
				t.Errorf("%T: point %d violates the size budget", s, k)
			}
			if k > 0 && !(sol.Costs[0] > front[k-1].Costs[0] && sol.Objective < front[k-1].Objective) {
				t.Errorf("%T: point %d (%g, %g) not after point %d (%g, %g) on the front", s, k, sol.Costs[0], sol.Objective, k-1, front[k-1].Costs[0], front[k-1].Objective)
			}
		}
		if got, want := front[0].Costs[0], minAlone(p, 0); got < want*(1-1e-12) {
			t.Errorf("%T: cheapest point costs %g, below the minimum %g", s, got, want)
		}
	}
	if _, err := Pareto(context.Background(), &BranchAndBound{}, p, 3, 10); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "resource 3 out of range") {
		t.Errorf("got %v; want an ErrInvalid naming resource 3", err)
	}
}

func minAlone(p *Problem, k int) float64 {
	s := 0.0
	for _, l := range p.Layers {
		m := math.Inf(1)
		for _, o := range l.Options {
			m = math.Min(m, o.Costs[k])
		}
		s += m
	}
	return s
}

// TestInterruptNoResult checks that a solver or a Pareto sweep whose
// caller's context ends returns an error wrapping ErrInterrupted and
// context.Canceled, and no configuration: an interrupted search is not a
// result (issue 12). Before the fix both returned their best-so-far.
func TestInterruptNoResult(t *testing.T) {
	p := realisticProblem(7, 100, benchBits, 0.3)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, s := range solvers() {
		sol, err := s.Solve(ctx, p)
		if sol != nil || !errors.Is(err, ErrInterrupted) || !errors.Is(err, context.Canceled) {
			t.Errorf("%T: cancelled Solve: got %v, %v; want no solution and an ErrInterrupted wrapping context.Canceled", s, sol, err)
		}
		front, err := Pareto(ctx, s, p, 0, 10)
		if front != nil || !errors.Is(err, ErrInterrupted) {
			t.Errorf("%T: cancelled Pareto: got %d points, %v; want none and ErrInterrupted", s, len(front), err)
		}
	}
	// Cancelled in the middle of a sweep (after its third solve).
	var calls atomic.Int32
	mid, stop := context.WithCancel(context.Background())
	defer stop()
	s := cancelAfter{Solver: &BranchAndBound{}, n: 3, calls: &calls, cancel: stop}
	front, err := Pareto(mid, s, p, 0, 50)
	if front != nil || !errors.Is(err, ErrInterrupted) {
		t.Errorf("Pareto cancelled mid-sweep: got %d points, %v; want none and ErrInterrupted", len(front), err)
	}
	if got := calls.Load(); got > 4 {
		t.Errorf("Pareto cancelled mid-sweep went on for %d solves; want it to stop at the next one", got)
	}
}

// cancelAfter is a Solver that cancels a context after n solves.
type cancelAfter struct {
	Solver
	n      int32
	calls  *atomic.Int32
	cancel context.CancelFunc
}

func (c cancelAfter) Solve(ctx context.Context, p *Problem) (*Solution, error) {
	if c.calls.Add(1) >= c.n {
		c.cancel()
	}
	return c.Solver.Solve(ctx, p)
}
