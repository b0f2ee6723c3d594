package pipeline

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"mpsearch/ilp"
	"mpsearch/network"
	"mpsearch/quant"
	"mpsearch/sensitivity"
)

// Refinement is the path from the verified configuration to the returned
// one: greedy moves whose effect was measured jointly (the whole
// configuration on the verifier's held-out data), each accepted because it
// lowered the measured loss within every budget.
type Refinement struct {
	Start       *Candidate   // the verified configuration refinement began from
	Steps       []*Candidate // each accepted move's configuration, in order
	Moves       []string     // each step's move, e.g. "raise conv2 4→8, lower fc1 3→2"
	Evaluations int          // measurements made (configurations already measured are free)
	Budget      int          // the measurement budget (SearchConfig.Refine)
	// Stopped says why refinement ended: StopLocalOptimum (no move of the
	// last configuration lowers the measured loss), StopBudget or
	// StopDisabled.
	Stopped string
}

// Stop reasons of a refinement.
const (
	StopLocalOptimum = "local optimum"
	StopBudget       = "measurement budget"
	StopDisabled     = "disabled" // a budget of 0, or a start not measured
)

// unit is one decision of the refinement: a layer, or a group of tied
// layers that always share a width. Fixed layers form no unit.
type unit struct {
	layers []int // layer indices, ascending
	name   string
}

// decisionUnits merges tied layers into units, in order of their first
// layer, and leaves out layers fixed by the table or KeepEnds (fixed[i] !=
// 0), together with any layer tied to one.
func decisionUnits(t *sensitivity.Table, fixed []int) []unit {
	names := make([]string, len(t.Layers))
	for i, l := range t.Layers {
		names[i] = l.Name
	}
	groups, _ := ilp.TieGroups(names, t.Ties) // Search checked the ties
	var units []unit
	for _, g := range groups {
		free := true
		var gn []string
		for _, li := range g {
			free = free && fixed[li] == 0
			gn = append(gn, t.Layers[li].Name)
		}
		if free {
			units = append(units, unit{layers: g, name: strings.Join(gn, "+")})
		}
	}
	return units
}

// move is one neighbour of the current configuration: unit up to width
// upTo (raise), and/or unit down to width downTo (lower); -1 for none.
type move struct {
	up, upTo, down, downTo int
	bits                   []int
	prior                  float64 // proxy change, for the order of measurement
	kind                   int     // 0 raise alone, 1 exchange, 2 lower alone (tie-break)
}

func (m move) String(units []unit, cur []int) string {
	var parts []string
	if m.up >= 0 {
		u := units[m.up]
		parts = append(parts, fmt.Sprintf("raise %s %s→%s", u.name, quant.FormatOption(cur[u.layers[0]]), quant.FormatOption(m.upTo)))
	}
	if m.down >= 0 {
		u := units[m.down]
		parts = append(parts, fmt.Sprintf("lower %s %s→%s", u.name, quant.FormatOption(cur[u.layers[0]]), quant.FormatOption(m.downTo)))
	}
	return strings.Join(parts, ", ")
}

// refiner holds what refinement and the greedy baseline need.
type refiner struct {
	res    *SearchResult
	units  []unit
	widths []int // candidate widths, ascending
	prior  func(li, b int) float64
	fits   func(bits []int) bool
}

func newRefiner(res *SearchResult) *refiner {
	r := &refiner{res: res, units: decisionUnits(res.Table, res.fixed), widths: res.Bits}
	r.prior = proxyPrior(res.Table, res.Bits)
	r.fits = func(b []int) bool { return res.candidate("", b).Fits }
	return r
}

// set returns a copy of bits with every layer of u at width w.
func (u unit) set(bits []int, w int) []int {
	c := slices.Clone(bits)
	for _, li := range u.layers {
		c[li] = w
	}
	return c
}

// delta is the prior's change when unit u goes from its width in bits to w.
func (r *refiner) delta(u unit, bits []int, w int) float64 {
	d := 0.0
	for _, li := range u.layers {
		d += r.prior(li, w) - r.prior(li, bits[li])
	}
	return d
}

// moves lists the neighbours of cur that meet every budget, in the fixed
// order of measurement: ascending prior change, ties by kind (raise alone,
// exchange, lower alone) and then by unit order. A raise goes one width up;
// if it alone breaks a budget it is paired with lowering another unit by
// the fewest widths that restore every budget; a lower goes one width down.
func (r *refiner) moves(cur []int) []move {
	var out []move
	for a, ua := range r.units {
		k := slices.Index(r.widths, cur[ua.layers[0]])
		if k < 0 || k+1 >= len(r.widths) {
			continue // at the highest width (or, by a caller's error, at none of them)
		}
		wa := r.widths[k+1]
		up := ua.set(cur, wa)
		if r.fits(up) {
			out = append(out, move{up: a, upTo: wa, down: -1, downTo: -1, bits: up, prior: r.delta(ua, cur, wa), kind: 0})
			continue
		}
		for b, ub := range r.units {
			if b == a {
				continue
			}
			kb := slices.Index(r.widths, cur[ub.layers[0]])
			for j := kb - 1; j >= 0; j-- {
				wb := r.widths[j]
				ex := ub.set(up, wb)
				if r.fits(ex) {
					out = append(out, move{up: a, upTo: wa, down: b, downTo: wb, bits: ex, prior: r.delta(ua, cur, wa) + r.delta(ub, cur, wb), kind: 1})
					break
				}
			}
		}
	}
	for b, ub := range r.units {
		kb := slices.Index(r.widths, cur[ub.layers[0]])
		if kb <= 0 {
			continue
		}
		wb := r.widths[kb-1]
		if down := ub.set(cur, wb); r.fits(down) {
			out = append(out, move{up: -1, upTo: -1, down: b, downTo: wb, bits: down, prior: r.delta(ub, cur, wb), kind: 2})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].prior != out[j].prior {
			return out[i].prior < out[j].prior
		}
		return out[i].kind < out[j].kind
	})
	return out
}

// proxyPrior orders the moves before they are measured: the mean over the
// table's metrics (or its omega column when it has none) of each metric's
// search input (sensitivity.SearchInput: the rule the ILP sees, noise band
// and monotone repair included), normalised by that metric's total
// magnitude over the layers at the lowest width, so that no metric's scale
// dominates. It only decides which move is measured first; acceptance is
// by measured loss alone.
func proxyPrior(t *sensitivity.Table, widths []int) func(li, b int) float64 {
	var cols []*sensitivity.SearchInput
	for _, m := range sensitivity.Metrics {
		if _, ok := t.Layers[0].Metrics[m]; !ok {
			continue
		}
		if in, err := t.SearchInput(m, widths); err == nil {
			cols = append(cols, in)
		}
	}
	if len(cols) == 0 {
		if in, err := t.SearchInput("", widths); err == nil {
			cols = append(cols, in)
		}
	}
	scales := make([]float64, len(cols))
	for k, in := range cols {
		for li := range t.Layers {
			v, _ := in.At(li, widths[0])
			scales[k] += math.Abs(v)
		}
	}
	return func(li, b int) float64 {
		s := 0.0
		for k, in := range cols {
			if scales[k] > 0 {
				v, _ := in.At(li, b)
				s += v / scales[k]
			}
		}
		return s / float64(max(1, len(cols)))
	}
}

// measuredLosses caches measurements by configuration; only cache misses
// count against the measurement budget.
type measuredLosses struct {
	v      Verifier
	loss   map[string]float64
	evals  int
	budget int
}

// get returns the loss of bits, measuring it if needed; ok is false when
// measuring would exceed the budget.
func (m *measuredLosses) get(ctx context.Context, bits []int) (loss float64, ok bool, err error) {
	key := fmt.Sprint(bits)
	if l, hit := m.loss[key]; hit {
		return l, true, nil
	}
	if m.evals >= m.budget {
		return 0, false, nil
	}
	l, err := m.v.Loss(ctx, bits)
	if err != nil {
		return 0, false, err
	}
	m.evals++
	m.loss[key] = l
	return l, true, nil
}

// refine improves res.Chosen by greedy moves measured jointly on the
// verifier's held-out data, at most budget measurements: from the current
// configuration the moves are measured in their fixed order (see moves)
// and the first whose measured loss is strictly lower is accepted; it
// stops when no move of the current configuration lowers the loss (a local
// optimum) or the budget is used. Every configuration it measures keeps
// the fixed layers and ties and meets every budget. No randomness is
// involved: the same inputs give the same path.
func refine(ctx context.Context, res *SearchResult, v Verifier, budget int, report func(string, int, int, string)) error {
	start := res.Chosen
	ref := &Refinement{Start: start, Budget: budget, Stopped: StopLocalOptimum}
	res.Refinement = ref
	if budget <= 0 || math.IsNaN(start.MeasuredLoss) {
		ref.Stopped = StopDisabled
		return nil
	}
	r := newRefiner(res)
	ml := &measuredLosses{v: v, loss: map[string]float64{}, budget: budget}
	for _, c := range res.Measured {
		ml.loss[fmt.Sprint(c.Bits)] = c.MeasuredLoss
	}
	cur, curLoss := start.Bits, start.MeasuredLoss
	report("refine", 0, budget, "from "+start.Label)
	for {
		accepted := false
		for _, m := range r.moves(cur) {
			l, ok, err := ml.get(ctx, m.bits)
			if err != nil {
				return err
			}
			if !ok {
				ref.Stopped = StopBudget
				break
			}
			report("refine", ml.evals, budget, fmt.Sprintf("loss %.4g", curLoss))
			if l < curLoss {
				ref.Moves = append(ref.Moves, m.String(r.units, cur))
				step := res.candidate(fmt.Sprintf("refine step %d: %s", len(ref.Steps)+1, ref.Moves[len(ref.Moves)-1]), m.bits)
				step.MeasuredLoss = l
				ref.Steps = append(ref.Steps, step)
				cur, curLoss, accepted = m.bits, l, true
				break
			}
		}
		if !accepted {
			break
		}
	}
	ref.Evaluations = ml.evals
	report("refine", budget, budget, "")
	if len(ref.Steps) == 0 {
		return nil
	}
	chosen := res.candidate(fmt.Sprintf("refined from %s (%d steps)", start.Label, len(ref.Steps)), cur)
	chosen.MeasuredLoss = curLoss
	res.Chosen = chosen
	res.Measured = append([]*Candidate{chosen}, res.Measured...)
	return nil
}

// GreedyMeasured is the greedy descent on measured loss, a baseline for
// the search: from every free unit (layer or tie group) at its highest
// width, it lowers one unit by one width at a time, choosing the lowering
// whose measured loss increase per unit of budgeted cost saved (summed
// over the budgets, each relative to its limit) is least, until every
// budget holds. Fixed layers and ties are kept; it needs res from Search
// (its budgets and fixed layers). It returns the configuration and the
// number of measurements made.
func (res *SearchResult) GreedyMeasured(ctx context.Context, v Verifier) (*Candidate, int, error) {
	r := newRefiner(res)
	ml := &measuredLosses{v: v, loss: map[string]float64{}, budget: math.MaxInt}
	cur := slices.Clone(res.Chosen.Bits) // fixed and tied-to-fixed layers as they must be
	for _, u := range r.units {
		cur = u.set(cur, r.widths[len(r.widths)-1])
	}
	saved := func(from, to []int) float64 {
		s := 0.0
		for name, lim := range res.Limits {
			if lim > 0 {
				s += (res.costs.total(name, from) - res.costs.total(name, to)) / lim
			}
		}
		return s
	}
	curLoss, _, err := ml.get(ctx, cur)
	if err != nil {
		return nil, 0, err
	}
	for !r.fits(cur) {
		best, bestScore, bestLoss := []int(nil), math.Inf(1), 0.0
		for _, u := range r.units {
			k := slices.Index(r.widths, cur[u.layers[0]])
			if k <= 0 {
				continue
			}
			next := u.set(cur, r.widths[k-1])
			s := saved(cur, next)
			if s <= 0 {
				continue // saves nothing on the budgets
			}
			l, _, err := ml.get(ctx, next)
			if err != nil {
				return nil, 0, err
			}
			if score := (l - curLoss) / s; score < bestScore {
				best, bestScore, bestLoss = next, score, l
			}
		}
		if best == nil {
			return nil, ml.evals, fmt.Errorf("greedy descent: no lowering of a free layer saves budgeted cost and the budgets still do not hold: %w", ErrBudget)
		}
		cur, curLoss = best, bestLoss
	}
	c := res.candidate("greedy on measured loss", cur)
	c.MeasuredLoss = curLoss
	return c, ml.evals, nil
}

// MeasurementWork is the cost of one held-out measurement in
// multiply-add equivalents: per sample, the layers' multiply-adds plus
// ValueWork for every value the nodes compute (network's
// ValuesPerSample), times the heldOut samples.
func MeasurementWork(net *network.Network, heldOut int) float64 {
	var macs int64
	for _, l := range net.Layers() {
		macs += l.MACs
	}
	return (float64(macs) + ValueWork*float64(net.ValuesPerSample())) * float64(max(heldOut, 1))
}

// Refinement budget sizing (--refine auto).
const (
	// ValueWork is the float engine's time for one computed value in
	// units of one multiply-add's: the least-squares fit of a held-out
	// measurement's time (NetVerifier.Loss, 64 images, two threads, a
	// quiet machine, 2026-12-05) to multiply-adds and values per sample
	// on ResNet18, ResNet50, MobileNetV2 and EfficientNet-B0 gives 162;
	// 100 puts the four within 0.71-1.20 of their mean time per unit,
	// where multiply-adds alone spread them 6.8 times (a MobileNetV2 or
	// EfficientNet-B0 multiply-add cost 4-7 of ResNet's: their depthwise
	// convolutions, activations and Adds write many values for few
	// multiply-adds).
	ValueWork = 100
	// RefineWorkBudget bounds the work that the default refinement may
	// spend: measurements × MeasurementWork. 2·10^12 keeps the 128
	// measurements that the 16-layer residual Fashion-MNIST CNN needed
	// to reach its local optimum (about 4·10^9 per measurement on 256
	// held-out images) and the other Fashion-MNIST models' 128, and gives
	// the ImageNet CNNs with 64 held-out images 8-19 measurements, which
	// took 38-82 s on two CPUs (ResNet18 13, MobileNetV2 19,
	// EfficientNet-B0 12, ResNet50 the minimum of 8, its 82 s).
	RefineWorkBudget = 2e12
	// MinRefine and MaxRefine bound the default: at least a few exchanges
	// on the largest models, and no more than the residual CNN used.
	MinRefine, MaxRefine = 8, 128
)

// DefaultRefine is the measurement budget of --refine auto for a network
// whose candidates are measured on heldOut samples: RefineWorkBudget over
// the work of one measurement, within [MinRefine, MaxRefine]. It depends
// on the model and the data size only, so runs stay reproducible.
func DefaultRefine(net *network.Network, heldOut int) int {
	per := MeasurementWork(net, heldOut)
	if per <= 0 {
		return MaxRefine
	}
	return int(min(MaxRefine, max(MinRefine, math.Floor(RefineWorkBudget/per))))
}
