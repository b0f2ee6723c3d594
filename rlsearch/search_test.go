package rlsearch

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// gapTol is the acceptance bound: the result within 2% of the
// ILP optimum after at most 300 episodes.
const gapTol = 0.02

type benchTable struct {
	name string
	p    *Problem
	seed uint64
}

// benchTables are the tables the search is judged on: random tables of 20,
// 40 and 60 layers (with ties, fixed first/last layers and one to three
// budgets in turn) and the fixture LeNet's table.
func benchTables() []benchTable {
	var out []benchTable
	for _, n := range []int{20, 40, 60} {
		for seed := uint64(1); seed <= 3; seed++ {
			rng := rand.New(rand.NewPCG(seed, uint64(n)))
			o := tableOpts{layers: n, ties: seed == 2, fixed: seed == 3, nbud: 1 + int(seed)%3}
			out = append(out, benchTable{fmt.Sprintf("random%d/seed%d", n, seed), randomTable(rng, o), seed})
		}
	}
	for seed := uint64(1); seed <= 3; seed++ {
		out = append(out, benchTable{fmt.Sprintf("lenet/seed%d", seed), lenetTable(), seed})
	}
	return out
}

// TestSearchMatchesILP: on every bench table, every best configuration the
// search reports is within budget and the result is within gapTol of the
// ILP optimum after 300 episodes. It logs the gap against episodes of the
// agent alone and of the agent's best after the polish.
func TestSearchMatchesILP(t *testing.T) {
	if testing.Short() {
		t.Skip("about 10 s")
	}
	marks := []int{25, 50, 100, 200, 300}
	t.Logf("gap to the ILP optimum, agent alone / after the polish, at episodes %v:", marks)
	var agentAt300 []float64
	for _, bt := range benchTables() {
		opt := optimum(t, bt.p).Objective
		gap := func(o float64) float64 { return o/opt - 1 }
		var row []string
		cfg := Config{Episodes: 300, Seed: bt.seed}
		cfg.Progress = func(pr Progress) {
			if !within(bt.p, pr.BestBits) {
				t.Errorf("%s episode %d: best configuration %v exceeds a budget", bt.name, pr.Episode, pr.BestBits)
			}
			if slices.Contains(marks, pr.Episode) {
				pol, err := Improve(bt.p, pr.BestBits)
				if err != nil {
					t.Fatalf("%s: %v", bt.name, err)
				}
				po, _ := bt.p.objective(pol)
				row = append(row, fmt.Sprintf("%6.2f%%/%5.2f%%", 100*gap(pr.Best), 100*gap(po)))
			}
		}
		res, err := Search(context.Background(), bt.p, cfg)
		if err != nil {
			t.Fatalf("%s: %v", bt.name, err)
		}
		t.Logf("%-16s %s", bt.name, strings.Join(row, " "))
		agentAt300 = append(agentAt300, gap(res.AgentObjective))
		if !within(bt.p, res.Bits) || !within(bt.p, res.AgentBits) {
			t.Errorf("%s: result exceeds a budget", bt.name)
		}
		if g := gap(res.Objective); g > gapTol {
			t.Errorf("%s: objective %.6g is %.2f%% above the ILP optimum %.6g; want at most %.0f%%", bt.name, res.Objective, 100*g, opt, 100*gapTol)
		}
		if res.Objective > res.AgentObjective {
			t.Errorf("%s: polish worsened the objective from %g to %g", bt.name, res.AgentObjective, res.Objective)
		}
		if res.Episodes != 300 || res.Curve[len(res.Curve)-1].Best != res.AgentObjective {
			t.Errorf("%s: %d episodes, last curve point %+v; want 300 and the agent's best %g", bt.name, res.Episodes, res.Curve[len(res.Curve)-1], res.AgentObjective)
		}
	}
	slices.Sort(agentAt300)
	t.Logf("agent alone at 300 episodes: median gap %.2f%%, worst %.2f%%", 100*agentAt300[len(agentAt300)/2], 100*agentAt300[len(agentAt300)-1])
}

// TestSearchDeterministic: the same seed gives the same result; another
// seed explores differently.
func TestSearchDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	p := randomTable(rng, tableOpts{layers: 30, ties: true, fixed: true, nbud: 2})
	run := func(seed uint64) *Result {
		res, err := Search(context.Background(), p, Config{Episodes: 60, Warmup: 10, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	a, b := run(9), run(9)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("same seed, different results:\n%+v\n%+v", a, b)
	}
	if c := run(10); reflect.DeepEqual(a.Curve, c.Curve) {
		t.Errorf("seeds 9 and 10 gave the same curve %v", a.Curve)
	}
}

// TestSearchRespectsTiesAndFixed: results keep tied layers together and
// fixed layers at their width.
func TestSearchRespectsTiesAndFixed(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	p := randomTable(rng, tableOpts{layers: 25, ties: true, fixed: true, nbud: 3})
	res, err := Search(context.Background(), p, Config{Episodes: 40, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, bits := range [][]int{res.Bits, res.AgentBits} {
		for i, l := range p.Layers {
			if l.Fixed != 0 && bits[i] != l.Fixed {
				t.Errorf("fixed layer %s: got %d bits; want %d", l.Name, bits[i], l.Fixed)
			}
		}
		idx := map[string]int{}
		for i, l := range p.Layers {
			idx[l.Name] = i
		}
		for _, tie := range p.Ties {
			for _, n := range tie[1:] {
				if bits[idx[n]] != bits[idx[tie[0]]] {
					t.Errorf("tied %s and %s: got %d and %d bits", tie[0], n, bits[idx[tie[0]]], bits[idx[n]])
				}
			}
		}
	}
	obj, cost := p.objective(res.Bits)
	if obj != res.Objective || !slices.Equal(cost, res.Costs) {
		t.Errorf("reported objective %g, costs %v; recomputed %g, %v", res.Objective, res.Costs, obj, cost)
	}
}

// TestSearchAccuracyReward drives the search with a measured-accuracy
// callback (a synthetic one: 0.9 minus the summed Omega, so its best
// configurations are the table's) and checks caching, the reported accuracy
// and error propagation.
func TestSearchAccuracyReward(t *testing.T) {
	p := lenetTable()
	calls := map[string]int{}
	acc := func(ctx context.Context, bits []int) (float64, error) {
		calls[fmt.Sprint(bits)]++
		o, _ := p.objective(bits)
		return 0.9 - o, nil
	}
	res, err := Search(context.Background(), p, Config{Episodes: 200, Seed: 3, Reward: RewardAccuracy, Accuracy: acc})
	if err != nil {
		t.Fatal(err)
	}
	for k, n := range calls {
		if n != 1 {
			t.Errorf("configuration %s measured %d times; want once (cached)", k, n)
		}
	}
	if want, _ := acc(context.Background(), res.Bits); math.Abs(res.Accuracy-want) > 1e-15 {
		t.Errorf("reported accuracy %g; the callback gives %g", res.Accuracy, want)
	}
	if !within(p, res.Bits) || res.Polished {
		t.Errorf("within budget %v, polished %v; want true, false", within(p, res.Bits), res.Polished)
	}
	opt := optimum(t, p).Objective
	t.Logf("accuracy reward, agent alone after 200 episodes: objective %.4g, %.2f%% above the ILP optimum %.4g; %d configurations measured", res.Objective, 100*(res.Objective/opt-1), opt, len(calls))
	for _, c := range res.Curve {
		if c.Best > res.Accuracy {
			t.Errorf("curve point %+v above the final best accuracy %g", c, res.Accuracy)
		}
	}

	boom := errors.New("boom")
	_, err = Search(context.Background(), p, Config{Episodes: 5, Reward: RewardAccuracy,
		Accuracy: func(context.Context, []int) (float64, error) { return 0, boom }})
	if !errors.Is(err, boom) {
		t.Errorf("callback error: got %v; want it wrapped", err)
	}
	_, err = Search(context.Background(), p, Config{Reward: RewardAccuracy})
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("accuracy reward without callback: got %v; want ErrInvalid", err)
	}
}

// TestSearchContext: cancelling mid-search returns the best so far.
func TestSearchContext(t *testing.T) {
	p := lenetTable()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res, err := Search(ctx, p, Config{Episodes: 100, Seed: 1, Progress: func(pr Progress) {
		if pr.Episode == 7 {
			cancel()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Episodes != 7 || !within(p, res.Bits) {
		t.Errorf("got %d episodes, within budget %v; want 7, true", res.Episodes, within(p, res.Bits))
	}
	if _, err := Search(ctx, p, Config{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled before the first episode: got %v; want context.Canceled", err)
	}
}

// TestSearchNothingToDecide: all layers fixed gives the fixed configuration.
func TestSearchNothingToDecide(t *testing.T) {
	p := lenetTable()
	for i := range p.Layers {
		p.Layers[i].Fixed = 4
	}
	p.Resources[0].Limit = math.Inf(1)
	p.Resources[1].Limit = math.Inf(1)
	res, err := Search(context.Background(), p, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{4, 4, 4, 4, 4}; !slices.Equal(res.Bits, want) {
		t.Errorf("got %v; want %v", res.Bits, want)
	}
}

// TestConfigErrors: bad settings are rejected with ErrInvalid.
func TestConfigErrors(t *testing.T) {
	p := lenetTable()
	for _, cfg := range []Config{
		{Reward: "loss"},
		{Tau: 2},
		{SigmaDecay: 1.5},
		{Episodes: -1},
	} {
		if _, err := Search(context.Background(), p, cfg); !errors.Is(err, ErrInvalid) {
			t.Errorf("config %+v: got %v; want ErrInvalid", cfg, err)
		}
	}
}

// TestFromILP: converting to the ilp problem and back gives the original,
// with options sorted by bit width.
func TestFromILP(t *testing.T) {
	rng := rand.New(rand.NewPCG(61, 62))
	p := randomTable(rng, tableOpts{layers: 12, ties: true, fixed: true, nbud: 2})
	q := toILP(p)
	for i := range q.Layers {
		slices.Reverse(q.Layers[i].Options) // FromILP must sort them back
	}
	feats := make([]LayerFeatures, len(p.Layers))
	for i, l := range p.Layers {
		feats[i] = l.Features
	}
	back := FromILP(q, feats)
	if !reflect.DeepEqual(back, p) {
		t.Errorf("round trip differs:\n got %+v\nwant %+v", back, p)
	}
	if err := FromILP(q, nil).Validate(); err != nil {
		t.Errorf("without features: %v", err)
	}
}
