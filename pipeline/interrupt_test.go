package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"mpsearch/dataset"
	"mpsearch/ilp"
	"mpsearch/quant"
	"mpsearch/sensitivity"
)

// randomTable is a table of n layers whose omega falls with the bit width
// roughly as 4^-b times a random layer scale (fixed seed), with two
// budgets' worth of costs (size and BOPs) from random layer sizes: hard
// enough that the branch-and-bound needs to branch.
func randomTable(seed uint64, n int) *sensitivity.Table {
	rng := rand.New(rand.NewPCG(seed, 1))
	t := &sensitivity.Table{Metric: "direct", Bits: []int{2, 3, 4, 8}}
	for i := 0; i < n; i++ {
		l := sensitivity.Layer{Name: fmt.Sprintf("l%d", i), Op: "Conv", Params: int64(1000 + rng.IntN(100000)), MACs: int64(10000 + rng.IntN(1000000)), Omega: map[int]float64{}}
		scale := rng.ExpFloat64()
		for _, b := range t.Bits {
			l.Omega[b] = scale * (1 + 0.3*rng.Float64()) / float64(int(1)<<(2*b))
		}
		t.Layers = append(t.Layers, l)
	}
	return t
}

// TestSearchInterrupted checks that a search whose context ends returns an
// error wrapping context.Canceled and no result, with the ILP and with the
// Pareto sweep (before issue 12 both returned the best-so-far as "ILP
// optimum").
func TestSearchInterrupted(t *testing.T) {
	tab := randomTable(3, 200)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, points := range []int{0, 50} {
		res, err := Search(ctx, tab, SearchConfig{Budgets: []Budget{{Resource: Size, Kind: Fraction, Value: 0.3, Text: "30%"}}, ParetoPoints: points})
		if res != nil || !errors.Is(err, context.Canceled) {
			t.Errorf("points %d: cancelled search: got result %v, error %v; want no result and context.Canceled", points, res != nil, err)
		}
	}
	// Cancelled after the ILP, during the sweep.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	cfg := SearchConfig{Budgets: []Budget{{Resource: Size, Kind: Fraction, Value: 0.3, Text: "30%"}}, ParetoPoints: 1000,
		Progress: func(stage string, done, total int, detail string) {
			if stage == "pareto" && done == 0 {
				cancel2()
			}
		}}
	res, err := Search(ctx2, tab, cfg)
	if res != nil || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled during the sweep: got result %v, error %v; want no result and context.Canceled", res != nil, err)
	}
}

// TestNotProvenLabels checks that an ILP solution cut short by the solver's
// time limit is labelled "best found, proven gap X%" and never "optimum",
// in the result, summary.json and the report.
func TestNotProvenLabels(t *testing.T) {
	tab := randomTable(5, 300)
	cfg := SearchConfig{
		Budgets: []Budget{{Resource: Size, Kind: Fraction, Value: 0.3, Text: "30%"}, {Resource: BOPs, Kind: Fraction, Value: 0.4, Text: "40%"}},
		Solver:  &ilp.BranchAndBound{TimeLimit: time.Nanosecond},
	}
	res, err := Search(context.Background(), tab, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Solution.Optimal {
		t.Fatalf("the instance was solved to optimality within 1ns; make it harder")
	}
	want := "ILP best found, proven gap " + fmtGap(res.Solution.Gap)
	if !strings.HasPrefix(res.Chosen.Label, want) {
		t.Errorf("chosen label %q; want it to start with %q", res.Chosen.Label, want)
	}
	files, _, err := (&Outputs{Result: res, Method: "ilp"}).Render(context.Background(), func(int, int, string) {})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"summary.json", "report.html"} {
		s := string(files[name])
		if strings.Contains(s, "ILP optimum") {
			t.Errorf("%s says \"ILP optimum\" for a solution not proven optimal", name)
		}
		if !strings.Contains(s, want) {
			t.Errorf("%s lacks %q", name, want)
		}
	}
	// The same table solved without a limit is proven and says so.
	cfg.Solver = nil
	res, err = Search(context.Background(), tab, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Solution.Optimal || !strings.HasPrefix(res.Chosen.Label, "ILP optimum") {
		t.Errorf("unlimited solve: Optimal %v, label %q; want true and \"ILP optimum ...\"", res.Solution.Optimal, res.Chosen.Label)
	}
}

// TestInfeasibleNamesFixedLayers checks that a budget out of reach because
// of the layers --keep-ends fixes says so and names the flag, and that the
// same budget is met without it.
func TestInfeasibleNamesFixedLayers(t *testing.T) {
	tab := randomTable(7, 6)
	tab.Layers[5].Params = 10_000_000 // a classifier that dominates the size
	budget := []Budget{{Resource: Size, Kind: Relative, Value: 0.5, Text: "0.5x"}}
	_, err := Search(context.Background(), tab, SearchConfig{Budgets: budget, KeepEnds: true})
	if !errors.Is(err, ilp.ErrInfeasible) || !strings.Contains(err.Error(), "2 of 6 layers fixed") || !strings.Contains(err.Error(), "--keep-ends=false") {
		t.Errorf("keep-ends: got %v; want an infeasible error naming the 2 fixed layers and --keep-ends=false", err)
	}
	if _, err := Search(context.Background(), tab, SearchConfig{Budgets: budget}); err != nil {
		t.Errorf("without keep-ends: %v; want a result", err)
	}
}

// stageCancelBound is issue 9's bound (build item 6): a cancelled stage
// returns within one second.
const stageCancelBound = time.Second

// TestStagesInterrupted cancels the job's stages outside the sensitivity
// table (sensitivity/cancel_test.go has those) from their progress
// callbacks once they have reported a first step, and checks that each
// returns within stageCancelBound with an error wrapping context.Canceled
// and nothing else: GPTQ's Hessian pass, the means pass of bias
// correction over round to nearest, and the verifier's setup (ranges,
// then the held-out outputs).
func TestStagesInterrupted(t *testing.T) {
	net := loadNet(t, "../testdata/fmnist-lenet/lenet.onnx")
	all, err := dataset.Load("../testdata/fmnist-lenet/calib.npy", dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	calib, heldOut := all.Subset(0, 192), all.Subset(192, 64)
	bits := []int{2, 4, 8}
	cases := []struct {
		name   string
		detail string // a step of the stage whose report cancels
		run    func(ctx context.Context, progress func(int, int, string)) (any, error)
	}{
		{"gptq Hessians", "Hessians", func(ctx context.Context, p func(int, int, string)) (any, error) {
			return NewWeightSource(ctx, net, calib, WeightSpec{Method: quant.MethodGPTQ, BiasCorrection: true}, bits, 16, 1, p)
		}},
		{"bias correction means", "mean inputs", func(ctx context.Context, p func(int, int, string)) (any, error) {
			return NewWeightSource(ctx, net, calib, WeightSpec{Method: quant.MethodRTN, BiasCorrection: true}, bits, 16, 1, p)
		}},
		{"verifier ranges", "activation ranges", func(ctx context.Context, p func(int, int, string)) (any, error) {
			return NewNetVerifierCalib(ctx, net, calib, heldOut, 16, quant.ActCalib{}, p)
		}},
		{"verifier outputs", "held-out", func(ctx context.Context, p func(int, int, string)) (any, error) {
			return NewNetVerifierCalib(ctx, net, calib, heldOut, 16, quant.ActCalib{}, p)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var at time.Time
			res, err := c.run(ctx, func(done, total int, detail string) {
				if at.IsZero() && done < total && strings.Contains(detail, c.detail) {
					at = time.Now()
					cancel()
				}
			})
			took := time.Since(at)
			if at.IsZero() {
				t.Fatalf("no step %q was reported; the test did not cancel (err %v)", c.detail, err)
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("got error %v; want an error wrapping context.Canceled", err)
			}
			if res != nil && !reflect.ValueOf(res).IsNil() {
				t.Errorf("got a result %T; want none", res)
			}
			if took > stageCancelBound {
				t.Errorf("returned %v after the cancel; want <= %v", took, stageCancelBound)
			}
		})
	}
}
