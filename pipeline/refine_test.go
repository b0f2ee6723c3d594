package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"mpsearch/dataset"
	"mpsearch/ilp"
	"mpsearch/sensitivity"
)

// interactionLoss is a measured loss with interactions between layers, for
// tests of the refinement logic: loss = sum_i a_i e(b_i) + sum_{i<j}
// c_ij e(b_i) e(b_j) with e(b) = 4^-b (the quantization noise power of a
// b-bit uniform quantizer, up to a constant), so the additive proxy of a
// table misses the pair terms. It counts its measurements.
type interactionLoss struct {
	a     []float64
	c     [][]float64
	calls int
}

func noise(b int) float64 { return math.Pow(4, -float64(b)) }

func (f *interactionLoss) eval(bits []int) float64 {
	l := 0.0
	for i, b := range bits {
		l += f.a[i] * noise(b)
		for j := i + 1; j < len(bits); j++ {
			l += f.c[i][j] * noise(b) * noise(bits[j])
		}
	}
	return l
}

func (f *interactionLoss) Loss(ctx context.Context, bits []int) (float64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	f.calls++
	return f.eval(bits), nil
}

// randomCase is a small random table, budgets and loss.
type randomCase struct {
	tab      *sensitivity.Table
	budgets  []Budget
	keepEnds bool
	loss     *interactionLoss
	refine   int
}

func newRandomCase(seed uint64) randomCase {
	rng := rand.New(rand.NewPCG(seed, 7))
	all := []int{1, 2, 3, 4, 8}
	var widths []int
	for len(widths) < 2 {
		widths = nil
		for _, w := range all {
			if rng.IntN(2) == 0 {
				widths = append(widths, w)
			}
		}
	}
	n := 3 + rng.IntN(5)
	tab := &sensitivity.Table{Bits: widths, Metric: "direct"}
	loss := &interactionLoss{a: make([]float64, n), c: make([][]float64, n)}
	for i := range n {
		l := sensitivity.Layer{Name: fmt.Sprintf("l%d", i), Op: "Conv", Params: int64(10 + rng.IntN(2000)), MACs: int64(100 + rng.IntN(100000)),
			Omega: map[int]float64{}, Metrics: map[string]map[int]float64{"direct": {}, "fisher": {}}}
		for _, w := range widths {
			// A proxy that ranks the layers differently from the loss.
			l.Metrics["direct"][w] = rng.Float64() * noise(w) * 1000
			l.Metrics["fisher"][w] = rng.Float64() * noise(w) * 10
			l.Omega[w] = l.Metrics["direct"][w]
		}
		if rng.IntN(6) == 0 {
			l.Bits = widths[rng.IntN(len(widths))]
		}
		tab.Layers = append(tab.Layers, l)
		loss.a[i] = rng.Float64() * 1000
		loss.c[i] = make([]float64, n)
		for j := i + 1; j < n; j++ {
			loss.c[i][j] = rng.Float64() * 1e5
		}
	}
	if rng.IntN(3) == 0 {
		a, b := rng.IntN(n), rng.IntN(n)
		if a != b {
			tab.Ties = [][]string{{tab.Layers[a].Name, tab.Layers[b].Name}}
		}
	}
	budgets := []Budget{{Resource: Size, Kind: Fraction, Value: 0.05 + 0.9*rng.Float64()}}
	if rng.IntN(3) == 0 {
		budgets = append(budgets, Budget{Resource: BOPs, Kind: Fraction, Value: 0.05 + 0.9*rng.Float64()})
	}
	return randomCase{tab: tab, budgets: budgets, keepEnds: rng.IntN(2) == 0, loss: loss, refine: rng.IntN(40)}
}

// checkConfig checks one configuration against the case independently of
// the search's own bookkeeping: sizes and BOPs summed from the table,
// fixed layers, ties.
func (rc randomCase) checkConfig(t *testing.T, what string, bits []int, limits map[string]float64) {
	t.Helper()
	eight := slices.Max(rc.tab.Bits)
	if slices.Contains(rc.tab.Bits, 8) {
		eight = 8
	}
	size, bops := 0.0, 0.0
	for i, l := range rc.tab.Layers {
		size += float64(l.Params) * float64(bits[i]) / 8
		bops += float64(l.MACs) * float64(bits[i]) * 8
		want := l.Bits
		if want == 0 && rc.keepEnds && (i == 0 || i == len(bits)-1) {
			want = eight
		}
		if want != 0 && bits[i] != want {
			t.Errorf("%s %v: layer %d has %d bits; want it fixed at %d", what, bits, i, bits[i], want)
		}
		if !slices.Contains(rc.tab.Bits, bits[i]) {
			t.Errorf("%s %v: layer %d has %d bits, not a candidate width %v", what, bits, i, bits[i], rc.tab.Bits)
		}
	}
	for r, used := range map[string]float64{Size: size, BOPs: bops} {
		if lim, ok := limits[r]; ok && used > lim*(1+ilp.FeasibilityTol) {
			t.Errorf("%s %v: %s %g over the budget %g", what, bits, r, used, lim)
		}
	}
	for _, tie := range rc.tab.Ties {
		var ws []int
		for i, l := range rc.tab.Layers {
			if slices.Contains(tie, l.Name) {
				ws = append(ws, bits[i])
			}
		}
		if slices.Min(ws) != slices.Max(ws) {
			t.Errorf("%s %v: tied layers %v have widths %v", what, bits, tie, ws)
		}
	}
}

// TestRefineProperties: on random small tables, budgets, fixed layers and
// ties, with a loss whose layer interactions the table cannot see, the
// refinement never returns (nor passes through) a configuration over a
// budget, with a fixed layer changed or a tie broken; every step lowers
// the measured loss, which is the loss of the configuration labelled; it
// measures at most its budget; with a budget of 0 it returns the verified
// result unchanged; and the same case gives the same path.
func TestRefineProperties(t *testing.T) {
	ctx := context.Background()
	ran, improved := 0, 0
	for seed := uint64(1); seed <= 150; seed++ {
		rc := newRandomCase(seed)
		search := func(refine int) (*SearchResult, error) {
			rc.loss.calls = 0
			return Search(ctx, rc.tab, SearchConfig{Budgets: rc.budgets, KeepEnds: rc.keepEnds, Verify: rc.loss, Refine: refine})
		}
		off, err := search(0)
		if errors.Is(err, ilp.ErrInfeasible) || errors.Is(err, ilp.ErrInvalid) {
			continue // budgets below what the fixed layers allow, or a tie of two fixed widths
		}
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		ran++
		verified := off.Chosen
		if off.Refinement == nil || off.Refinement.Start != verified || len(off.Refinement.Steps) != 0 || off.Refinement.Evaluations != 0 || off.Refinement.Stopped != StopDisabled {
			t.Errorf("seed %d: refine 0 changed the verified result: %+v", seed, off.Refinement)
		}
		verifyCalls := rc.loss.calls
		res, err := search(rc.refine)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		ref := res.Refinement
		if got, want := fmt.Sprint(ref.Start.Label, ref.Start.Bits), fmt.Sprint(verified.Label, verified.Bits); got != want {
			t.Errorf("seed %d: refinement started from %s; want the verified %s", seed, got, want)
		}
		if ref.Evaluations > rc.refine || rc.loss.calls != verifyCalls+ref.Evaluations {
			t.Errorf("seed %d: %d evaluations (%d calls, %d by verify); want at most %d", seed, ref.Evaluations, rc.loss.calls, verifyCalls, rc.refine)
		}
		rc.checkConfig(t, fmt.Sprintf("seed %d: chosen", seed), res.Chosen.Bits, res.Limits)
		prev := ref.Start.MeasuredLoss
		for k, s := range ref.Steps {
			rc.checkConfig(t, fmt.Sprintf("seed %d: step %d", seed, k+1), s.Bits, res.Limits)
			if want := rc.loss.eval(s.Bits); s.MeasuredLoss != want || !(s.MeasuredLoss < prev) {
				t.Errorf("seed %d: step %d %v measured loss %g; want %g, below the previous %g", seed, k+1, s.Bits, s.MeasuredLoss, want, prev)
			}
			prev = s.MeasuredLoss
		}
		if want := rc.loss.eval(res.Chosen.Bits); res.Chosen.MeasuredLoss != want || res.Chosen.MeasuredLoss > verified.MeasuredLoss {
			t.Errorf("seed %d: chosen %v loss %g; want %g, at most the verified %g", seed, res.Chosen.Bits, res.Chosen.MeasuredLoss, want, verified.MeasuredLoss)
		}
		if len(ref.Steps) > 0 {
			improved++
			if !slices.Equal(res.Chosen.Bits, ref.Steps[len(ref.Steps)-1].Bits) {
				t.Errorf("seed %d: chosen %v is not the last step %v", seed, res.Chosen.Bits, ref.Steps[len(ref.Steps)-1].Bits)
			}
		}
		again, err := search(rc.refine)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := fmt.Sprint(again.Refinement.Moves, again.Chosen.Bits, again.Refinement.Evaluations), fmt.Sprint(ref.Moves, res.Chosen.Bits, ref.Evaluations); got != want {
			t.Errorf("seed %d: second run %s; want the same path %s", seed, got, want)
		}
	}
	// The property test must exercise refinement, not only skip it.
	if ran < 100 || improved < 10 {
		t.Errorf("ran %d cases, %d improved by refinement; want at least 100 and 10", ran, improved)
	}
}

// TestRefineFindsExchange builds a case where the table says layer a is
// sensitive and b is not, while the measured loss says the opposite: the
// ILP optimum puts a at 4 bits, verification falls back on uniform 3 bits,
// which uses the whole budget, so no layer can be raised alone; the
// optimum (brute force over every configuration within the budget) raises
// b and lowers a, which only exchanges reach.
func TestRefineFindsExchange(t *testing.T) {
	widths := []int{2, 3, 4}
	tab := &sensitivity.Table{Bits: widths, Metric: "direct", Layers: []sensitivity.Layer{
		{Name: "a", Params: 100, Omega: map[int]float64{2: 100, 3: 10, 4: 0}},
		{Name: "b", Params: 100, Omega: map[int]float64{2: 1, 3: 0.1, 4: 0}},
		{Name: "c", Params: 100, Omega: map[int]float64{2: 1, 3: 0.1, 4: 0}},
	}}
	loss := &interactionLoss{a: []float64{0.1, 10, 1}, c: [][]float64{make([]float64, 3), make([]float64, 3), make([]float64, 3)}}
	budget := Budget{Resource: Size, Kind: Absolute, Value: 300 * 3 / 8.0} // uniform 3 bits
	res, err := Search(context.Background(), tab, SearchConfig{Budgets: []Budget{budget}, Verify: loss, Refine: 20})
	if err != nil {
		t.Fatal(err)
	}
	// Brute force.
	var best []int
	bestLoss := math.Inf(1)
	for _, x := range widths {
		for _, y := range widths {
			for _, z := range widths {
				c := []int{x, y, z}
				if float64(100*(x+y+z))/8 <= budget.Value && loss.eval(c) < bestLoss {
					best, bestLoss = c, loss.eval(c)
				}
			}
		}
	}
	if res.Plain.Bits[0] != 4 || !slices.Equal(res.Refinement.Start.Bits, []int{3, 3, 3}) || !slices.Equal(best, []int{2, 4, 3}) {
		t.Fatalf("ILP optimum %v, verified %v, optimum %v; the case is built for a at 4, [3 3 3] and [2 4 3]", res.Plain.Bits, res.Refinement.Start.Bits, best)
	}
	if !slices.Equal(res.Chosen.Bits, best) || res.Chosen.MeasuredLoss != bestLoss {
		t.Errorf("refined to %v (loss %g) by %v; want the optimum %v (loss %g)", res.Chosen.Bits, res.Chosen.MeasuredLoss, res.Refinement.Moves, best, bestLoss)
	}
	for _, m := range res.Refinement.Moves {
		if !strings.Contains(m, "raise") || !strings.Contains(m, "lower") {
			t.Errorf("move %q of %v is not an exchange; with no slack every move must be", m, res.Refinement.Moves)
		}
	}
	// summary.json holds the path: start, each step's move, bits, costs and loss.
	sr := NewSummary(res, "ilp").Refinement
	if sr == nil || !slices.Equal(sr.Start.Bits, []int{3, 3, 3}) || len(sr.Steps) != len(res.Refinement.Steps) || sr.Evaluations != res.Refinement.Evaluations || sr.Budget != 20 {
		t.Fatalf("summary refinement %+v; want the path of %+v", sr, res.Refinement)
	}
	for k, st := range sr.Steps {
		c := res.Refinement.Steps[k]
		if st.Move != res.Refinement.Moves[k] || !slices.Equal(st.Bits, c.Bits) || st.MeasuredLoss == nil || *st.MeasuredLoss != loss.eval(c.Bits) || st.Costs[Size] != float64(100*(c.Bits[0]+c.Bits[1]+c.Bits[2]))/8 {
			t.Errorf("summary step %d: %+v; want move %q, bits %v, loss %g", k+1, st, res.Refinement.Moves[k], c.Bits, loss.eval(c.Bits))
		}
	}
}

// TestGreedyMeasured checks the baseline on an additive loss, equal
// costs per layer and the ends kept at 8 bits: from [8 8 8 8 8] it lowers
// the inner layer of least loss increase per byte saved (l1 8→4, then l3
// 8→4, then l2 8→4, reaching 12 inner bits), which here is the brute-force
// optimum within the budget; its configuration fits and keeps the ends.
func TestGreedyMeasured(t *testing.T) {
	widths := []int{2, 4, 8}
	tab := &sensitivity.Table{Bits: widths, Metric: "direct"}
	loss := &interactionLoss{a: []float64{5, 1, 3, 2, 4}, c: make([][]float64, 5)}
	for i := range 5 {
		loss.c[i] = make([]float64, 5)
		tab.Layers = append(tab.Layers, sensitivity.Layer{Name: fmt.Sprintf("l%d", i), Params: 80, Omega: map[int]float64{2: 1, 4: 1, 8: 1}})
	}
	budget := Budget{Resource: Size, Kind: Absolute, Value: 10 * (8 + 12 + 8)} // 10 bytes per bit of width
	res, err := Search(context.Background(), tab, SearchConfig{Budgets: []Budget{budget}, KeepEnds: true, Verify: loss})
	if err != nil {
		t.Fatal(err)
	}
	g, evals, err := res.GreedyMeasured(context.Background(), loss)
	if err != nil {
		t.Fatal(err)
	}
	var best []int
	bestLoss := math.Inf(1)
	for _, x := range widths {
		for _, y := range widths {
			for _, z := range widths {
				c := []int{8, x, y, z, 8}
				if float64(10*(8+x+y+z+8)) <= budget.Value && loss.eval(c) < bestLoss {
					best, bestLoss = c, loss.eval(c)
				}
			}
		}
	}
	if !slices.Equal(best, []int{8, 4, 4, 4, 8}) {
		t.Fatalf("brute force %v; the case is built for [8 4 4 4 8]", best)
	}
	if !slices.Equal(g.Bits, best) || g.MeasuredLoss != bestLoss || !g.Fits {
		t.Errorf("greedy %v (loss %g, fits %v, %d evaluations); want the brute-force optimum %v (loss %g)", g.Bits, g.MeasuredLoss, g.Fits, evals, best, bestLoss)
	}
}

// TestRefineLeNet runs verification and refinement on the fixture LeNet
// (sensitivities on 192 calibration images, held-out loss on the other
// 64) at the uniform-3-bit size: refinement keeps the ends at 8 bits and
// the budget, never ends above the verified loss, records the loss of the
// configuration it returns (re-measured), and two runs give the same path;
// with a budget of 0 the verified result is returned unchanged.
func TestRefineLeNet(t *testing.T) {
	ctx := context.Background()
	net := loadNet(t, "../testdata/fmnist-lenet/lenet.onnx")
	all, err := dataset.Load("../testdata/fmnist-lenet/calib.npy", dataset.Options{Labels: "../testdata/fmnist-lenet/calib_labels.npy"})
	if err != nil {
		t.Fatal(err)
	}
	calib, heldOut := all.Subset(0, 192), all.Subset(192, 64)
	tab, err := sensitivity.Compute(ctx, net, calib, sensitivity.Config{Bits: []int{2, 3, 4, 8}, Metrics: []string{"direct", "fisher"}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	ver, err := NewNetVerifier(ctx, net, calib, heldOut, 0)
	if err != nil {
		t.Fatal(err)
	}
	budget, err := ParseBudget(Size, lenetSizeUniform3)
	if err != nil {
		t.Fatal(err)
	}
	run := func(refine int) *SearchResult {
		res, err := Search(ctx, tab, SearchConfig{Budgets: []Budget{budget}, KeepEnds: true, Verify: ver, Refine: refine})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	off := run(0)
	if off.Chosen != off.Refinement.Start || off.Refinement.Evaluations != 0 {
		t.Errorf("refine 0: chosen %s %v; want the verified %s %v, no evaluation", off.Chosen.Label, off.Chosen.Bits, off.Refinement.Start.Label, off.Refinement.Start.Bits)
	}
	res := run(30)
	if got, want := fmt.Sprint(res.Refinement.Start.Bits), fmt.Sprint(off.Chosen.Bits); got != want {
		t.Errorf("refinement started from %s; want the verified %s", got, want)
	}
	c := res.Chosen
	if c.Bits[0] != 8 || c.Bits[len(c.Bits)-1] != 8 || !c.Fits || c.Costs[Size] > res.Limits[Size] {
		t.Errorf("chosen %v (size %g of %g): want ends at 8 within the budget", c.Bits, c.Costs[Size], res.Limits[Size])
	}
	if c.MeasuredLoss > off.Chosen.MeasuredLoss {
		t.Errorf("refined loss %g above the verified %g", c.MeasuredLoss, off.Chosen.MeasuredLoss)
	}
	again, err := ver.Loss(ctx, c.Bits)
	if err != nil {
		t.Fatal(err)
	}
	if again != c.MeasuredLoss {
		t.Errorf("chosen %v: recorded loss %g, re-measured %g", c.Bits, c.MeasuredLoss, again)
	}
	res2 := run(30)
	if got, want := fmt.Sprint(res2.Refinement.Moves, res2.Chosen.Bits, res2.Chosen.MeasuredLoss), fmt.Sprint(res.Refinement.Moves, c.Bits, c.MeasuredLoss); got != want {
		t.Errorf("second run: %s; want %s", got, want)
	}
	t.Logf("verified %s %v loss %.5g; refined %v loss %.5g by %v (%d evaluations, %s)", off.Chosen.Label, off.Chosen.Bits, off.Chosen.MeasuredLoss, c.Bits, c.MeasuredLoss, res.Refinement.Moves, res.Refinement.Evaluations, res.Refinement.Stopped)
}
