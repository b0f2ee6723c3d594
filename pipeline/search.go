package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"mpsearch/ilp"
	"mpsearch/quant"
	"mpsearch/rlsearch"
	"mpsearch/sensitivity"
)

// Resources lists the resources in their fixed order.
var Resources = []string{Latency, Size, BOPs}

// Units of the resources, for messages and reports.
var Units = map[string]string{Latency: "ms", Size: "B", BOPs: "BOPs"}

// LatencyModel predicts a layer's latency at a weight bit width.
type LatencyModel interface {
	LayerLatency(layer, bits int) (ms float64, err error)
}

// LatencyOverhead is implemented by latency models that also predict the
// fixed work of a run outside the layers (input quantization, pooling,
// output dequantization). It is part of every configuration's latency, so
// budgets and reported latencies include it; it cannot change the choice.
type LatencyOverhead interface {
	OverheadMs() (float64, error)
}

// Verifier measures the real quantized model: the mean loss on held-out
// data with layer i's weights at bits[i] (activations quantized too).
type Verifier interface {
	Loss(ctx context.Context, bits []int) (float64, error)
}

// SearchConfig controls Search.
type SearchConfig struct {
	Bits    []int    // candidate weight bit widths; default: the table's
	Budgets []Budget // any subset of latency, size, BOPs
	// KeepEnds fixes the first and last layer at 8 bits (or the highest
	// candidate) unless the table fixes them; on by default in the CLI.
	KeepEnds bool
	Solver   ilp.Solver   // default ilp.Default()
	Latency  LatencyModel // predicted latencies when the table has none
	Verify   Verifier     // nil: no measurement (table only)
	// Progress reports stages ("solve", "verify", "pareto").
	Progress func(stage string, done, total int, detail string)
	// ParetoPoints is the size of the sweep for the report (0: none).
	// With Verify, every point is verified and refined (measuredFront).
	ParetoPoints int
	// FrontRefine is the refinement budget of each point of the measured
	// front (0: verified only).
	FrontRefine int
	// ProxyFront makes the sweep the proxy optima only (proxyFront), even
	// with Verify: for models whose held-out measurements are too costly
	// to repeat at every point of the sweep.
	ProxyFront bool
	// Method is "ilp" (default) or "rl": the HAQ-style agent of package
	// rlsearch proposes the configuration instead of the ILP.
	Method string
	// RL configures the agent; Features describe the layers (optional).
	RL       rlsearch.Config
	Features []rlsearch.LayerFeatures
	// Refine is the measurement budget of the refinement that follows
	// verification (see Refinement): at most this many configurations are
	// measured on the verifier's held-out data; 0 disables it. It needs
	// Verify.
	Refine int
}

// RLOutcome is what the RL agent produced, for the report.
type RLOutcome struct {
	Best  *Candidate // the agent's (polished) best
	Agent *Candidate // the agent's own best before the polish
	Curve []rlsearch.CurvePoint
	// Front holds the agent's configurations at the budgets of the ILP
	// front's points (pareto --method rl).
	Front []*Candidate
}

// Candidate is one configuration with its predicted costs and, if
// measured, its loss.
type Candidate struct {
	Label        string
	Bits         []int
	Objective    float64            // proxy: summed omega of the table's metric
	Costs        map[string]float64 // per resource (predicted)
	MeasuredLoss float64            // NaN when not measured
	Fits         bool               // within every budget
	// ReferenceOnly marks a configuration that overrides a fixed layer
	// (the table's bits or --keep-ends): shown for reference, never
	// measured as a candidate nor returned.
	ReferenceOnly bool
}

// SearchResult is the outcome of Search.
type SearchResult struct {
	Table    *sensitivity.Table
	Bits     []int              // candidate widths used
	Limits   map[string]float64 // resolved budgets
	Plain    *Candidate         // the ILP optimum of the table's omega
	Chosen   *Candidate         // the returned configuration
	Measured []*Candidate       // every candidate the verifier measured
	// Uniform holds the uniform configurations of every width; when layers
	// are fixed, these are ReferenceOnly and followed by the uniform
	// configurations with the fixed layers kept ("uniform W3A8, ends at
	// 8"), the only uniform ones that can be returned.
	Uniform []*Candidate
	// Front holds the proxy's Pareto front of the first budgeted resource
	// (the ILP optima, unverified): at the budgets of MeasuredFront when
	// Search had a verifier, else the ILP's own sweep.
	Front []*Candidate
	// MeasuredFront is the front of what Search returns, one point per
	// budget of the sweep (with a verifier and ParetoPoints > 1), and
	// FrontCost its measurements.
	MeasuredFront []*FrontPoint
	FrontCost     *FrontCost
	Problem       *ilp.Problem
	Solution      *ilp.Solution // of Plain (ILP method)
	RL            *RLOutcome    // with Method "rl"
	Resources     []string      // resources with costs known, in Resources order
	// LatencyOverheadMs is the predicted latency outside the layers,
	// included in every Costs[Latency] and latency limit; the ILP's latency
	// resource holds the layers' share only.
	LatencyOverheadMs float64
	// Refinement is the path from the verified configuration to Chosen
	// (with Verify; nil without). With no accepted step Chosen is the
	// verified configuration itself.
	Refinement *Refinement
	// Input is the search input of the table's omega column
	// (sensitivity.SearchInput): what the ILP and the RL agent optimise
	// and candidates' Objective sums.
	Input *sensitivity.SearchInput

	costs costTable // per layer, resource and bit width
	fixed []int     // per layer: the width the table or KeepEnds fixes, 0 if free
}

// total is a configuration's cost of a resource, with the fixed latency
// overhead.
func (res *SearchResult) total(r string, b []int) float64 {
	v := res.costs.total(r, b)
	if r == Latency {
		v += res.LatencyOverheadMs
	}
	return v
}

// candidate makes a Candidate of a configuration: its table objective,
// costs, whether it fits every budget and whether it overrides a fixed
// layer (ReferenceOnly).
func (res *SearchResult) candidate(label string, b []int) *Candidate {
	c := &Candidate{Label: label, Bits: b, Costs: map[string]float64{}, MeasuredLoss: math.NaN(), Fits: true}
	for li, bb := range b {
		v, ok := res.Input.At(li, bb)
		if !ok {
			v, _ = res.Table.Layers[li].OmegaAt(bb)
		}
		c.Objective += v
		if f := res.fixed[li]; f != 0 && bb != f {
			c.ReferenceOnly = true
		}
	}
	for _, r := range res.Resources {
		c.Costs[r] = res.total(r, b)
		if lim, ok := res.Limits[r]; ok && c.Costs[r] > lim*(1+ilp.FeasibilityTol) {
			c.Fits = false
		}
	}
	return c
}

// costTable holds cost per layer, resource and bit width.
type costTable map[string][]map[int]float64

// layerCosts computes or reads the cost of every layer at every width.
func layerCosts(t *sensitivity.Table, bits []int, lat LatencyModel) (costTable, []string, error) {
	ct := costTable{}
	var have []string
	n := len(t.Layers)
	size := make([]map[int]float64, n)
	bops := make([]map[int]float64, n)
	latency := make([]map[int]float64, n)
	// Options in groups have no latency: the integer kernels take one
	// scale per output channel (a latency budget is refused in Search).
	latOK := !quant.AnyGrouped(bits)
	for i, l := range t.Layers {
		size[i], bops[i], latency[i] = map[int]float64{}, map[int]float64{}, map[int]float64{}
		for _, b := range bits {
			wb, g := quant.SplitOption(b)
			if v, ok := l.SizeBytes[b]; ok {
				size[i][b] = v
			} else if g == 0 {
				size[i][b] = float64(l.Params) * float64(b) / 8
			} else {
				return nil, nil, fmt.Errorf("layer %q: no size_bytes for %s (%d-bit weights in groups of %d): the table must give the size of options in groups (mpsearch sensitivity --group-size writes them): %w", l.Name, quant.FormatOption(b), wb, g, sensitivity.ErrTable)
			}
			if v, ok := l.BOPs[b]; ok {
				bops[i][b] = v
			} else {
				bops[i][b] = float64(l.MACs) * float64(wb) * float64(l.ActBits())
			}
			if !latOK {
				continue
			}
			if v, ok := l.LatencyMs[b]; ok {
				latency[i][b] = v
			} else if lat != nil {
				v, err := lat.LayerLatency(i, b)
				if err != nil {
					return nil, nil, fmt.Errorf("layer %q at %d bits: %w", l.Name, b, err)
				}
				latency[i][b] = v
			} else {
				latOK = false
			}
		}
	}
	if latOK {
		ct[Latency] = latency
		have = append(have, Latency)
	}
	ct[Size] = size
	ct[BOPs] = bops
	have = append(have, Size, BOPs)
	return ct, have, nil
}

func (ct costTable) total(res string, bits []int) float64 {
	s := 0.0
	for i, b := range bits {
		s += ct[res][i][b]
	}
	return s
}

// Search chooses the bit widths: it solves the ILP on the table's omega
// under the budgets, then (with a Verifier) measures a handful of
// candidates — the optimum under each metric the table holds, optima at
// slightly tighter budgets, and every uniform configuration that fits and
// keeps the fixed layers — and returns the best measured one, never one
// measured worse than the best such uniform configuration. Every returned
// or measured candidate respects the fixed layers (the table's bits and
// KeepEnds). If ctx ends, Search returns an error and no result; an ILP
// solution not proven optimal is labelled "best found, proven gap X%",
// never "optimum".
func Search(ctx context.Context, t *sensitivity.Table, cfg SearchConfig) (*SearchResult, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	res, su, err := prepare(t, cfg)
	if err != nil {
		return nil, err
	}
	bits, eight := res.Bits, su.eight
	for _, l := range t.Layers {
		for _, b := range bits {
			if _, ok := l.OmegaAt(b); !ok {
				return nil, fmt.Errorf("layer %q has no sensitivity at %s; recompute the table with --bits (and --group-size) including it", l.Name, quant.FormatOption(b))
			}
		}
	}
	// What the ILP, the RL agent and the refinement's order see: the
	// table's omega under sensitivity.SearchInput's rule (noise band,
	// monotone in bits).
	if res.Input, err = t.SearchInput("", bits); err != nil {
		return nil, err
	}
	// buildAt is the problem under the limits (the search's, or a front
	// point's); build is the search's own.
	buildAt := func(limits map[string]float64, omega func(li, b int) float64, scale float64) *ilp.Problem {
		return res.problemAt(su, cfg.KeepEnds, limits, omega, scale)
	}
	build := func(omega func(li, b int) float64, scale float64) *ilp.Problem {
		return buildAt(res.Limits, omega, scale)
	}
	input := res.Input
	tableOmega := func(li, b int) float64 { v, _ := input.At(li, b); return v }
	solver := cfg.Solver
	if solver == nil {
		solver = ilp.Default()
	}
	report := func(stage string, done, total int, detail string) {
		if cfg.Progress != nil {
			cfg.Progress(stage, done, total, detail)
		}
	}
	uniform := func(b int) []int { return uniformBits(len(t.Layers), b) }
	withFixed := res.withFixed
	budgeted := su.budgeted
	mk := res.candidate
	anyFixed := false
	for _, b := range bits {
		c := mk(fmt.Sprintf("uniform W%sA8", quant.FormatOption(b)), uniform(b))
		anyFixed = anyFixed || c.ReferenceOnly
		res.Uniform = append(res.Uniform, c)
	}
	if anyFixed {
		for _, b := range bits {
			if u := withFixed(uniform(b)); !slices.Equal(u, uniform(b)) {
				res.Uniform = append(res.Uniform, mk(fmt.Sprintf("uniform W%sA8, %s", quant.FormatOption(b), fixedNote(t, cfg.KeepEnds, eight)), u))
			}
		}
	}
	res.Problem = build(tableOmega, 1)
	if cfg.Method == "rl" {
		if err := searchRL(ctx, res, cfg, mk, report); err != nil {
			return nil, err
		}
	} else {
		report("solve", 0, 1, "ILP on the table's omega")
		sol, err := solver.Solve(ctx, res.Problem)
		if err != nil {
			return nil, infeasibleHint(err, t, cfg.KeepEnds, eight)
		}
		res.Solution = sol
		res.Plain = mk(ilpLabel(sol, " ("+metricName(t)+")"), choiceBits(sol))
		report("solve", 1, 1, "")
	}
	if res.Plain.ReferenceOnly {
		return nil, fmt.Errorf("search: %s %v overrides a fixed layer (table bits or --keep-ends); this is a bug, please report it", res.Plain.Label, res.Plain.Bits)
	}
	res.Chosen = res.Plain
	if cfg.Verify != nil {
		if err := verify(ctx, t, res, build, solver, mk, cfg, report); err != nil {
			return nil, err
		}
		if err := refine(ctx, res, cfg.Verify, cfg.Refine, report); err != nil {
			return nil, err
		}
	}
	if cfg.ParetoPoints > 1 && len(budgeted) > 0 {
		var err error
		if cfg.Verify != nil && !cfg.ProxyFront {
			// The front of what Search returns: verified and refined at
			// each budget of the sweep (front.go).
			err = measuredFront(ctx, res, cfg, budgeted[0], buildAt, solver, report)
		} else {
			err = proxyFront(ctx, res, solver, cfg.ParetoPoints, mk, report)
		}
		if err != nil {
			return nil, err
		}
		if cfg.Method == "rl" && res.RL != nil {
			if err := rlFront(ctx, res, cfg, mk, report); err != nil {
				return nil, err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		// Whatever a stage returned after the interruption is not a result.
		return nil, fmt.Errorf("search interrupted: %w", err)
	}
	return res, nil
}

// setup is what Search derives from the table and the budgets before any
// omega is read: the candidate widths (in res.Bits), every layer's costs,
// the fixed layers and the resolved limits (in res).
type setup struct {
	eight    int      // the width fixed ends take: 8, or the widest per-channel option
	budgeted []string // resources with a limit, in Resources order
	overhead float64  // predicted latency outside the layers (ms)
}

// prepare resolves the candidate widths, costs, fixed layers and budgets
// of a search on t. It reads no sensitivity, so CheckBudgets can run it on
// a table that has none yet (sensitivity.Skeleton).
func prepare(t *sensitivity.Table, cfg SearchConfig) (*SearchResult, *setup, error) {
	bits := cfg.Bits
	if len(bits) == 0 {
		bits = t.CandidateBits()
	}
	// Option codes (quant.OptionCode) in the order of storage per weight:
	// the widths, each followed by its options in groups.
	bits = quant.SortOptions(bits)
	ct, have, err := layerCosts(t, bits, cfg.Latency)
	if err != nil {
		return nil, nil, err
	}
	res := &SearchResult{Table: t, Bits: bits, Limits: map[string]float64{}, Resources: have, costs: ct}
	su := &setup{}
	lo, hi := bits[0], bits[len(bits)-1]
	for _, b := range bits { // the widest per-channel option
		if !quant.Grouped(b) {
			hi = b
		}
	}
	su.eight = hi
	if slices.Contains(bits, 8) {
		su.eight = 8
	}
	if lm, ok := cfg.Latency.(LatencyOverhead); ok && ct[Latency] != nil {
		if su.overhead, err = lm.OverheadMs(); err != nil {
			return nil, nil, err
		}
	}
	res.LatencyOverheadMs = su.overhead
	res.fixed = fixedWidths(t, cfg.KeepEnds, su.eight)
	n := len(t.Layers)
	seen := map[string]bool{}
	for _, b := range cfg.Budgets {
		if seen[b.Resource] {
			return nil, nil, fmt.Errorf("two budgets on %s: %w", b.Resource, ErrBudget)
		}
		seen[b.Resource] = true
		if _, ok := ct[b.Resource]; !ok && b.Resource == Latency && quant.AnyGrouped(bits) {
			return nil, nil, fmt.Errorf("a latency budget needs every option's latency, and weights in groups have none (the integer kernels take one scale per output channel): drop --group-size (or give --group-size 0) for a latency budget, or use a size budget: %w", ErrBudget)
		}
		if _, ok := ct[b.Resource]; !ok {
			return nil, nil, fmt.Errorf("a %s budget needs %s costs: give a hardware profile or latency_ms in the table: %w", b.Resource, b.Resource, ErrBudget)
		}
		// "50%" is read between the cheapest and dearest configurations
		// the fixed layers allow.
		res.Limits[b.Resource] = b.Resolve(res.total(b.Resource, uniformBits(n, su.eight)), res.total(b.Resource, res.withFixed(uniformBits(n, lo))), res.total(b.Resource, res.withFixed(uniformBits(n, hi))))
	}
	for _, r := range Resources {
		if _, ok := res.Limits[r]; ok {
			su.budgeted = append(su.budgeted, r)
		}
	}
	return res, su, nil
}

// uniformBits is every one of n layers at width b.
func uniformBits(n, b int) []int {
	u := make([]int, n)
	for i := range u {
		u[i] = b
	}
	return u
}

// withFixed sets in c the layers fixed by the table or KeepEnds (and the
// layers tied to them), and returns c.
func (res *SearchResult) withFixed(c []int) []int {
	for i, f := range res.fixed {
		if f != 0 {
			c[i] = f
		}
	}
	return c
}

// problemAt is the ILP on omega under limits (the search's, or a front
// point's), each scaled by scale.
func (res *SearchResult) problemAt(su *setup, keepEnds bool, limits map[string]float64, omega func(li, b int) float64, scale float64) *ilp.Problem {
	t := res.Table
	p := &ilp.Problem{Ties: t.Ties}
	for _, r := range su.budgeted {
		lim := limits[r] * scale
		if r == Latency {
			lim -= su.overhead // the layers' share of the budget
		}
		p.Resources = append(p.Resources, ilp.Resource{Name: r, Unit: Units[r], Limit: lim})
	}
	for i, l := range t.Layers {
		layer := ilp.Layer{Name: l.Name, Fixed: l.Bits}
		if layer.Fixed == 0 && keepEnds && (i == 0 || i == len(t.Layers)-1) {
			layer.Fixed = su.eight
		}
		// The solvers take omegas >= 0, but the search input can be
		// signed (a significant loss decrease): shifting all of a layer's options by the
		// same amount changes every configuration's objective by the
		// same constant (one option per layer), so no optimum moves.
		// Objectives shown are recomputed from the table (mk).
		lo := 0.0
		for _, b := range res.Bits {
			lo = min(lo, omega(i, b))
		}
		for _, b := range res.Bits {
			o := ilp.Option{Bits: b, Omega: omega(i, b) - lo}
			for _, r := range su.budgeted {
				o.Costs = append(o.Costs, res.costs[r][i][b])
			}
			layer.Options = append(layer.Options, o)
		}
		p.Layers = append(p.Layers, layer)
	}
	return p
}

// CheckBudgets says, before any sensitivity is computed, whether the
// budgets of cfg can be met at all: t needs the layers and their costs
// only (sensitivity.Skeleton, or a table), and the answer is the error
// Search would return after the whole sensitivity stage (the ILP's
// minimum of each budgeted resource, which layers are fixed, how to free
// them). A nil error means some configuration fits.
func CheckBudgets(ctx context.Context, t *sensitivity.Table, cfg SearchConfig) error {
	if len(t.Layers) == 0 {
		return fmt.Errorf("no layers: %w", sensitivity.ErrTable)
	}
	res, su, err := prepare(t, cfg)
	if err != nil || len(su.budgeted) == 0 {
		return err
	}
	solver := cfg.Solver
	if solver == nil {
		solver = ilp.Default()
	}
	_, err = solver.Solve(ctx, res.problemAt(su, cfg.KeepEnds, res.Limits, func(int, int) float64 { return 0 }, 1))
	return infeasibleHint(err, t, cfg.KeepEnds, su.eight)
}

// infeasibleHint adds to an infeasible ILP's error which layers were fixed
// and how to free them, since fixed layers (--keep-ends, a table's bits)
// are often what puts a budget out of reach: a classifier of a million
// weights held at 8 bits is 40% of MobileNetV3-small's int8 size.
func infeasibleHint(err error, t *sensitivity.Table, keepEnds bool, eight int) error {
	if !errors.Is(err, ilp.ErrInfeasible) {
		return err
	}
	fixed := 0
	for i, l := range t.Layers {
		if l.Bits != 0 || (keepEnds && (i == 0 || i == len(t.Layers)-1)) {
			fixed++
		}
	}
	if fixed == 0 {
		return err
	}
	hint := "raise the budget"
	if keepEnds {
		hint += ", or pass --keep-ends=false to free the first and last layers"
	}
	return fmt.Errorf("%w, with %d of %d layers fixed (%s): %s", err, fixed, len(t.Layers), fixedNote(t, keepEnds, eight), hint)
}

// fixedWidths returns per layer the width the table fixes, else eight for
// the first and last layer with keepEnds, else 0 (free); a layer tied to a
// fixed one takes its width (conflicting ties are the ILP's error to
// report).
func fixedWidths(t *sensitivity.Table, keepEnds bool, eight int) []int {
	n := len(t.Layers)
	fixed := make([]int, n)
	index := map[string]int{}
	for i, l := range t.Layers {
		index[l.Name] = i
		switch {
		case l.Bits != 0:
			fixed[i] = l.Bits
		case keepEnds && (i == 0 || i == n-1):
			fixed[i] = eight
		}
	}
	for changed := true; changed; {
		changed = false
		for _, tie := range t.Ties {
			w := 0
			for _, name := range tie {
				if f := fixed[index[name]]; f != 0 && w == 0 {
					w = f
				}
			}
			for _, name := range tie {
				if i := index[name]; w != 0 && fixed[i] == 0 {
					fixed[i], changed = w, true
				}
			}
		}
	}
	return fixed
}

// ilpLabel names an ILP solution: "ILP optimum" only when proven optimal.
func ilpLabel(s *ilp.Solution, what string) string {
	if s.Optimal {
		return "ILP optimum" + what
	}
	return fmt.Sprintf("ILP best found, proven gap %s%s", fmtGap(s.Gap), what)
}

// fmtGap formats a relative gap as a percentage.
func fmtGap(g float64) string {
	return fmt.Sprintf("%.3g%%", 100*g)
}

// fixedNote describes the layers a table or KeepEnds fixes, for labels.
func fixedNote(t *sensitivity.Table, keepEnds bool, eight int) string {
	for _, l := range t.Layers {
		if l.Bits != 0 {
			if keepEnds {
				return fmt.Sprintf("ends at %d, table's fixed layers kept", eight)
			}
			return "table's fixed layers kept"
		}
	}
	return fmt.Sprintf("ends at %d", eight)
}

// proxyFront sweeps the ILP's Pareto front of the first budgeted resource
// (no measurement: the front of the proxy, for a search without a
// verifier), each point capped at 2 s and keeping its proven gap.
func proxyFront(ctx context.Context, res *SearchResult, solver ilp.Solver, points int, mk func(string, []int) *Candidate, report func(string, int, int, string)) error {
	report("pareto", 0, 1, "")
	sweep := solver
	if capped := ilp.WithTimeLimit(solver, 2*time.Second); capped != nil {
		sweep = capped
	}
	front, err := ilp.Pareto(ctx, sweep, res.Problem, 0, points)
	if err != nil && !errors.Is(err, ilp.ErrInfeasible) {
		return err
	}
	for i, s := range front {
		label := fmt.Sprintf("proxy optimum %d", i+1)
		if !s.Optimal {
			label += fmt.Sprintf(" (best found, proven gap %s)", fmtGap(s.Gap))
		}
		res.Front = append(res.Front, mk(label, choiceBits(&s)))
	}
	report("pareto", 1, 1, "")
	return nil
}

// rlFront runs the RL agent at the budget of every ILP front point (the
// first budgeted resource), so the report shows both fronts side by side.
func rlFront(ctx context.Context, res *SearchResult, cfg SearchConfig, mk func(string, []int) *Candidate, report func(string, int, int, string)) error {
	feats := cfg.Features
	rc := cfg.RL
	rc.Progress = nil
	for i, f := range res.Front {
		report("rl pareto", i, len(res.Front), f.Label)
		p := *res.Problem
		p.Resources = append([]ilp.Resource(nil), res.Problem.Resources...)
		p.Resources[0].Limit = f.Costs[p.Resources[0].Name]
		if p.Resources[0].Name == Latency {
			p.Resources[0].Limit -= res.LatencyOverheadMs // the layers' share
		}
		if len(feats) != len(res.Table.Layers) {
			feats = defaultFeatures(res.Table)
		}
		r, err := rlsearch.Search(ctx, rlsearch.FromILP(pruneDominated(&p), feats), rc)
		if errors.Is(err, rlsearch.ErrInfeasible) {
			continue // the agent's repair found no configuration at this budget
		}
		if err != nil {
			return err
		}
		res.RL.Front = append(res.RL.Front, mk(fmt.Sprintf("RL at front %d budget", i+1), r.Bits))
	}
	report("rl pareto", len(res.Front), len(res.Front), "")
	return nil
}

func metricName(t *sensitivity.Table) string {
	if t.Metric != "" {
		return t.Metric
	}
	return "table omega"
}

func choiceBits(s *ilp.Solution) []int {
	b := make([]int, len(s.Choices))
	for i, c := range s.Choices {
		b[i] = c.Bits
	}
	return b
}

// verify measures the candidates and picks the best measured one.
func verify(ctx context.Context, t *sensitivity.Table, res *SearchResult, build func(func(int, int) float64, float64) *ilp.Problem, solver ilp.Solver, mk func(string, []int) *Candidate, cfg SearchConfig, report func(string, int, int, string)) error {
	cands := []*Candidate{res.Plain}
	// Optima under the other metrics of the table (ILP method only: with
	// RL the agent's proposal stands against the uniform baselines).
	metrics := []string{}
	for _, m := range sensitivity.Metrics {
		if _, ok := t.Layers[0].Metrics[m]; ok && m != t.Metric && cfg.Method != "rl" {
			metrics = append(metrics, m)
		}
	}
	for _, m := range metrics {
		in, err := t.SearchInput(m, res.Bits)
		if err != nil {
			continue // the metric lacks a candidate width: no optimum under it
		}
		omega := func(li, b int) float64 { v, _ := in.At(li, b); return v }
		if s, err := solver.Solve(ctx, build(omega, 1)); err == nil {
			cands = append(cands, mk(ilpLabel(s, " ("+m+")"), choiceBits(s)))
		} else if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	// Next-best: optima at slightly tighter budgets.
	scales := []float64{0.97, 0.93}
	if cfg.Method == "rl" {
		scales = nil
	}
	for _, scale := range scales {
		tableOmega := func(li, b int) float64 { v, _ := res.Input.At(li, b); return v }
		if s, err := solver.Solve(ctx, build(tableOmega, scale)); err == nil {
			cands = append(cands, mk(ilpLabel(s, fmt.Sprintf(" at %.0f%% of the budget", 100*scale)), choiceBits(s)))
		} else if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	for _, u := range res.Uniform {
		if u.Fits && !u.ReferenceOnly {
			cands = append(cands, u)
		}
	}
	// Only configurations that keep the fixed layers can be returned.
	cands = slices.DeleteFunc(cands, func(c *Candidate) bool { return c.ReferenceOnly })
	// Measure each distinct configuration once.
	measured := map[string]float64{}
	for i, c := range cands {
		key := fmt.Sprint(c.Bits)
		report("verify", i, len(cands), c.Label)
		if v, ok := measured[key]; ok {
			c.MeasuredLoss = v
			continue
		}
		l, err := cfg.Verify.Loss(ctx, c.Bits)
		if err != nil {
			return err
		}
		measured[key] = l
		c.MeasuredLoss = l
		res.Measured = append(res.Measured, c)
	}
	report("verify", len(cands), len(cands), "")
	best := cands[0]
	for _, c := range cands[1:] {
		if c.MeasuredLoss < best.MeasuredLoss {
			best = c
		}
	}
	res.Chosen = best
	sort.SliceStable(res.Measured, func(i, j int) bool { return res.Measured[i].MeasuredLoss < res.Measured[j].MeasuredLoss })
	return nil
}

// searchRL runs the RL agent on the problem and sets res.Plain to its best.
func searchRL(ctx context.Context, res *SearchResult, cfg SearchConfig, mk func(string, []int) *Candidate, report func(string, int, int, string)) error {
	feats := cfg.Features
	if len(feats) != len(res.Table.Layers) {
		feats = defaultFeatures(res.Table)
	}
	rc := cfg.RL
	user := rc.Progress
	rc.Progress = func(p rlsearch.Progress) {
		report("rl", p.Episode, p.Total, fmt.Sprintf("best objective %.4g", p.Best))
		if user != nil {
			user(p)
		}
	}
	r, err := rlsearch.Search(ctx, rlsearch.FromILP(pruneDominated(res.Problem), feats), rc)
	if err != nil {
		return err
	}
	res.Plain = mk("RL best", r.Bits)
	res.RL = &RLOutcome{Best: res.Plain, Agent: mk("RL agent before polish", r.AgentBits), Curve: r.Curve}
	return nil
}

// defaultFeatures describes the layers from the table alone (no network).
func defaultFeatures(t *sensitivity.Table) []rlsearch.LayerFeatures {
	feats := make([]rlsearch.LayerFeatures, len(t.Layers))
	for i, l := range t.Layers {
		feats[i] = rlsearch.LayerFeatures{Params: float64(l.Params), MACs: float64(l.MACs), Kernel: 1, Stride: 1, InputSize: 1}
		switch l.Op {
		case "Conv":
			feats[i].Op = rlsearch.OpConv
		case "MatMul":
			feats[i].Op = rlsearch.OpMatMul
		default:
			feats[i].Op = rlsearch.OpGemm
		}
	}
	return feats
}

// pruneDominated returns a copy of p without the options of untied, free
// layers that another option of the same layer dominates (no larger omega
// and no larger cost, one of them smaller). The RL agent's budget repair
// lowers bit widths to save cost; on CPUs where a narrower width is not
// cheaper (VNNI runs every width at the int8 rate) such options would
// mislead it, and no optimum ever uses them.
func pruneDominated(p *ilp.Problem) *ilp.Problem {
	tied := map[string]bool{}
	for _, g := range p.Ties {
		for _, n := range g {
			tied[n] = true
		}
	}
	q := *p
	q.Layers = make([]ilp.Layer, len(p.Layers))
	for i, l := range p.Layers {
		q.Layers[i] = l
		if l.Fixed != 0 || tied[l.Name] {
			continue
		}
		var kept []ilp.Option
		for a, oa := range l.Options {
			dominated := false
			for b, ob := range l.Options {
				if a != b && dominates(ob, oa, b < a) {
					dominated = true
					break
				}
			}
			if !dominated {
				kept = append(kept, oa)
			}
		}
		q.Layers[i].Options = kept
	}
	return &q
}

// dominates reports whether option b dominates a; for identical options
// only the earlier one (first) survives.
func dominates(b, a ilp.Option, first bool) bool {
	strict := b.Omega < a.Omega
	if b.Omega > a.Omega {
		return false
	}
	for r := range a.Costs {
		if b.Costs[r] > a.Costs[r] {
			return false
		}
		strict = strict || b.Costs[r] < a.Costs[r]
	}
	return strict || first
}

// LayerCost returns layer li's cost of resource r at option code b, if
// known.
func (res *SearchResult) LayerCost(r string, li, b int) (float64, bool) {
	layers, ok := res.costs[r]
	if !ok || li < 0 || li >= len(layers) {
		return 0, false
	}
	v, ok := layers[li][b]
	return v, ok
}
