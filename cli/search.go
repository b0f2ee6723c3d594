package cli

import (
	"flag"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"mpsearch/dataset"
	"mpsearch/demo"
	"mpsearch/ilp"
	"mpsearch/pipeline"
	"mpsearch/quant"
	"mpsearch/rlsearch"
	"mpsearch/sensitivity"
)

func init() {
	commands["search"] = command{"choose bit widths under budgets; writes the quantized model, bits.yaml, summary.json, report.html", runSearch}
	commands["pareto"] = command{"the Pareto front of sensitivity against a budgeted cost", runPareto}
}

// searchFlags are the flags of search and pareto.
type searchFlags struct {
	mf          modelFlags
	sf          sensFlags
	table       string
	profile     string
	latency     string
	size        string
	bops        string
	method      string
	out         string
	evalData    string
	evalLabels  string
	keepEnds    bool
	points      int
	solver      string
	episodes    int
	reward      string
	noVerify    bool
	measure     bool
	heldOutFrac float64
	refine      string
	frontRefine string
	bitsSet     bool // --bits given explicitly
	// quantizerSet: --quantizer given explicitly (with --table, else the
	// table's own rounding is used); biasSet and groupsSet likewise for
	// --bias-correction and --group-size.
	quantizerSet bool
	biasSet      bool
	groupsSet    bool
	// actCalibSet: --act-calib given (with --table, else the table's).
	actCalibSet bool
}

// parse parses the flags and records which were given.
func (s *searchFlags) parse(fs *flag.FlagSet, args []string) error {
	if err := parse(fs, args); err != nil {
		return err
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "bits":
			s.bitsSet = true
		case "quantizer":
			s.quantizerSet = true
		case "bias-correction":
			s.biasSet = true
		case "group-size":
			s.groupsSet = true
		case "act-calib":
			s.actCalibSet = true
		}
	})
	s.sf.visited(fs)
	return nil
}

func (s *searchFlags) register(fs *flag.FlagSet) {
	s.mf.register(fs, true)
	s.mf.registerEqualize(fs, false)
	s.sf.register(fs)
	// Search skips what it does not use by default: eigenvalues, and the
	// quadratic metric (the slowest; its optima rarely differ from the
	// other metrics' on the reference models).
	s.sf.eigen = false
	fs.Lookup("eigen").DefValue = "false"
	s.sf.metrics = "direct,hessian,fisher"
	fs.Lookup("metrics").DefValue = s.sf.metrics
	fs.StringVar(&s.table, "table", "", "use this sensitivity table (sens.yaml) instead of computing one")
	fs.StringVar(&s.profile, "profile", "", "hardware profile YAML for latency (default: this CPU's if shipped, else the analytic AVX2 one)")
	fs.Var(&onceString{v: &s.latency}, "latency-budget", "latency budget: 1.5ms, 0.6x (of uniform 8-bit) or 50% (from all-lowest to all-highest bits)")
	fs.Var(&onceString{v: &s.size}, "size-budget", "weight size budget: 120KB, 2MiB, 0.5x or 50%")
	fs.Var(&onceString{v: &s.bops}, "bops-budget", "bit-operations budget: 3.2GBOPs, 0.5x or 50%")
	fs.StringVar(&s.solver, "solver", "go", "ILP solver: go (exact branch-and-bound, the faster on the benchmarks) or lp_solve")
	fs.StringVar(&s.method, "method", "ilp", "search method: ilp or rl")
	fs.StringVar(&s.out, "out", "mpsearch-out", "output `dir`")
	fs.StringVar(&s.evalData, "eval-data", "", "held-out data for accuracy (same forms as --data)")
	fs.StringVar(&s.evalLabels, "eval-labels", "", "labels of --eval-data")
	fs.BoolVar(&s.keepEnds, "keep-ends", true, "keep the first and last layer at 8 bits (at the highest of --bits when 8 is not among them); every returned candidate keeps them")
	fs.IntVar(&s.points, "points", 20, fmt.Sprintf("points of the Pareto sweep (2..%d); with a model and data each point is verified and refined as search does at that budget", maxPoints))
	fs.StringVar(&s.frontRefine, "front-refine", "auto", fmt.Sprintf("refinement measurements at each point of the measured front (0..%d; 0: verified only; auto: an eighth of --refine auto, %d..%d)", maxRefine, minFrontRefine, maxFrontRefine))
	fs.IntVar(&s.episodes, "episodes", 300, "episodes of the RL agent (--method rl)")
	fs.StringVar(&s.reward, "reward", "table", "RL reward: table or accuracy")
	fs.BoolVar(&s.noVerify, "no-verify", false, "return the ILP optimum without measuring candidates")
	fs.BoolVar(&s.measure, "measure-latency", false, "also time the integer-only engine on the chosen and uniform configurations (predicted vs measured in the report; timings make outputs differ run to run)")
	fs.Float64Var(&s.heldOutFrac, "held-out", 0.25, "fraction of --data kept out of the sensitivity computation to measure candidates")
	fs.StringVar(&s.refine, "refine", "auto", fmt.Sprintf("after verification, refine the configuration by greedy exchanges measured on the held-out data: at most N measurements (0..%d; 0: off; auto: %d..%d, fewer for larger models and held-out sets)", maxRefine, pipeline.MinRefine, pipeline.MaxRefine))
}

func (s *searchFlags) budgets() ([]pipeline.Budget, error) {
	var out []pipeline.Budget
	for _, b := range []struct{ res, text string }{{pipeline.Latency, s.latency}, {pipeline.Size, s.size}, {pipeline.BOPs, s.bops}} {
		if b.text == "" {
			continue
		}
		bb, err := pipeline.ParseBudget(b.res, b.text)
		if err != nil {
			return nil, usagef("%v", err)
		}
		out = append(out, bb)
	}
	return out, nil
}

func runSearch(e *env, args []string) error {
	var s searchFlags
	fs := newFlags(e, "search", "search [--model M --data D | --table sens.yaml] [--latency-budget B] [--size-budget B] [--bops-budget B] [--bits 2,4,8] [--method ilp|rl] [--out DIR]")
	s.register(fs)
	// search measures a smaller front for its report than pareto does.
	s.points = searchPoints
	fs.Lookup("points").DefValue = fmt.Sprint(searchPoints)
	if err := s.parse(fs, args); err != nil {
		return err
	}
	return search(e, &s, false)
}

func runPareto(e *env, args []string) error {
	var s searchFlags
	fs := newFlags(e, "pareto", "pareto (same inputs as search) [--points N]")
	s.register(fs)
	if err := s.parse(fs, args); err != nil {
		return err
	}
	return search(e, &s, true)
}

// job is the loaded state of a search.
type job struct {
	in       *pipeline.Inputs
	heldOut  *dataset.Dataset
	evalData *dataset.Dataset
	table    *sensitivity.Table
	verifier *pipeline.NetVerifier
}

func search(e *env, s *searchFlags, paretoOnly bool) error {
	if s.method != "ilp" && s.method != "rl" {
		return usagef("--method: %q is not ilp or rl", s.method)
	}
	if s.heldOutFrac <= 0 || s.heldOutFrac >= 1 {
		return usagef("--held-out: %g is not in (0, 1)", s.heldOutFrac)
	}
	if s.points < 2 || s.points > maxPoints {
		return usagef("--points: %d is not in 2..%d", s.points, maxPoints)
	}
	refine, err := parseRefine(s.refine)
	if err != nil {
		return err
	}
	frontRefine, err := parseRefine(s.frontRefine)
	if err != nil {
		return usagef("--front-refine: %q is not auto or a count in 0..%d", s.frontRefine, maxRefine)
	}
	budgets, err := s.budgets()
	if err != nil {
		return err
	}
	if err := checkQuantizer(s.sf.quantizer); err != nil {
		return err
	}
	if _, err := parseActCalib(s.sf.actCalib); err != nil {
		return err
	}
	bits, err := s.sf.options()
	if err != nil {
		return err
	}
	if s.table != "" && !s.bitsSet && !s.groupsSet {
		bits = nil // the table's own bit widths
	}
	if err := s.checkGroups(bits); err != nil {
		return err
	}
	if !slices.Contains(ilp.Solvers, s.solver) {
		return usagef("--solver: %q is not %s", s.solver, strings.Join(ilp.Solvers, " or "))
	}
	solver, err := ilp.NewSolver(s.solver)
	if err != nil {
		return err
	}
	if err := pipeline.CheckOutDir(s.out); err != nil {
		return err
	}
	if s.keepEnds && bits != nil && !slices.Contains(bits, 8) {
		fmt.Fprintf(e.stderr, "search: 8 is not among --bits; --keep-ends keeps the first and last layer at %d bits\n", slices.MaxFunc(bits, quant.CompareOptions))
	}
	pr := newProgress(e, "search")
	defer pr.done()
	j := &job{}
	switch {
	case s.table != "" && (s.mf.model == "") != (s.mf.data == ""):
		return usagef("--table with --model needs --data too (the calibration and held-out data), or neither (the table alone)")
	case s.table != "" && s.mf.model == "":
		if err := readTable(s, j); err != nil {
			return err
		}
	default:
		if err := loadInputs(s, j); err != nil {
			return err
		}
	}
	lat, profName, err := latencyFor(e.ctx, s, j)
	if err != nil {
		return err
	}
	if j.in != nil {
		if s.table == "" && len(budgets) > 0 {
			// A budget that nothing meets is said now, not after the
			// sensitivity stage.
			cfg := pipeline.SearchConfig{Bits: bits, Budgets: budgets, KeepEnds: s.keepEnds, Latency: lat, Solver: solver}
			if err := pipeline.CheckBudgets(e.ctx, sensitivity.Skeleton(j.in.Net, bits), cfg); err != nil {
				return err
			}
		}
		if err := loadTable(e, s, j, pr); err != nil {
			return err
		}
	}
	if bits == nil {
		if err := s.checkGroups(j.table.CandidateBits()); err != nil {
			return err
		}
	}
	if len(budgets) == 0 {
		def, why := defaultBudget(j.table, lat, bits)
		budgets = []pipeline.Budget{def}
		fmt.Fprintf(e.stderr, "search: no budget given; using --%s-budget %s: %s\n", def.Resource, def.Text, why)
	}
	cfg := pipeline.SearchConfig{Bits: bits, Budgets: budgets, KeepEnds: s.keepEnds, Latency: lat, ParetoPoints: s.points, Method: s.method, Solver: solver}
	if j.verifier != nil && !s.noVerify {
		measureConfig(e, s, j, &cfg, refine, frontRefine, paretoOnly)
	}
	if s.method == "rl" {
		if err := rlConfig(s, j, &cfg); err != nil {
			return err
		}
	}
	stage := ""
	cfg.Progress = func(st string, done, total int, detail string) {
		if st != stage {
			pr.done()
			stage = st
			*pr = *newProgress(e, st)
		}
		pr.update(done, total, detail)
	}
	res, err := pipeline.Search(e.ctx, j.table, cfg)
	pr.done()
	if err != nil {
		return err
	}
	if err := e.ctx.Err(); err != nil {
		return err // interrupted: nothing is written
	}
	out := &pipeline.Outputs{Result: res, Method: s.method, ModelName: j.table.Model, Profile: profName, Quantizer: s.sf.quantizer, BiasCorrection: s.sf.biasCorrection, Equalize: s.mf.equalize.v}
	out.ActCalib, _ = quant.ParseActCalib(s.sf.actCalib) // checked
	if j.in != nil {
		out.Net = j.in.Net
		out.Verifier = j.verifier
		out.EvalData = j.evalData
		if s.measure {
			out.Calib = j.in.Calib
		}
	}
	pr = newProgress(e, "report") // test accuracies, --measure-latency
	files, order, err := out.Render(e.ctx, func(done, total int, detail string) {
		pr.update(done, total, detail)
	})
	pr.done()
	if err != nil {
		return err
	}
	if err := e.ctx.Err(); err != nil {
		return err // interrupted: nothing is written
	}
	if err := pipeline.WriteFiles(s.out, files, order); err != nil {
		return err
	}
	printResult(e, res, out, paretoOnly)
	printExport(e, res, out)
	abs, _ := filepath.Abs(filepath.Join(s.out, "report.html"))
	fmt.Fprintf(e.stderr, "search: wrote %s in %s; open the report: %s\n", strings.Join(order, ", "), s.out, abs)
	return nil
}

// The measured front's defaults: search measures searchPoints points for
// its report (pareto --points 20); each point's refinement budget is an
// eighth of --refine auto within [minFrontRefine, maxFrontRefine], so a
// front costs at most about points × (verification + maxFrontRefine)
// held-out measurements.
const (
	searchPoints                   = 6
	minFrontRefine, maxFrontRefine = 4, 16
)

// defaultBudget is the budget of a search given none: half-way (50%) on
// latency when the profile predicts that the lowest bit width runs faster
// than the highest, else half-way on size (on CPUs whose kernels run every
// width at the 8-bit rate, as with VNNI, a latency budget cannot buy any
// narrower weights and the result would be uniform 8 bits). why is one
// line saying which and why.
func defaultBudget(t *sensitivity.Table, lat pipeline.LatencyModel, bits []int) (pipeline.Budget, string) {
	half := func(r string) pipeline.Budget {
		return pipeline.Budget{Resource: r, Kind: pipeline.Fraction, Value: 0.5, Text: "50%"}
	}
	if lat == nil {
		return half(pipeline.Size), "no latency costs without a model, so half-way between the smallest and the largest weights"
	}
	if len(bits) == 0 {
		bits = t.CandidateBits()
	}
	if quant.AnyGrouped(bits) {
		return half(pipeline.Size), "weights in groups have no latency (the integer kernels take one scale per output channel), so half-way between the smallest and the largest weights"
	}
	lo, hi := slices.Min(bits), slices.Max(bits)
	var msLo, msHi float64
	for i := range t.Layers {
		a, errLo := lat.LayerLatency(i, lo)
		b, errHi := lat.LayerLatency(i, hi)
		if errLo != nil || errHi != nil {
			return half(pipeline.Latency), "half-way between the fastest and the slowest configuration"
		}
		msLo, msHi = msLo+a, msHi+b
	}
	if msLo < defaultSpeedup*msHi {
		return half(pipeline.Latency), fmt.Sprintf("the profile predicts %d-bit weights %.3g ms against %.3g ms at %d bits, so narrower weights buy speed on this CPU", lo, msLo, msHi, hi)
	}
	return half(pipeline.Size), fmt.Sprintf("the profile predicts %d-bit weights no faster than %d-bit on this CPU (%.3g ms against %.3g ms), so narrower weights buy size here, not speed", lo, hi, msLo, msHi)
}

// defaultSpeedup: the default budget is on latency only when the lowest
// bit width takes less than this fraction of the highest's layer time.
const defaultSpeedup = 0.9

// measureConfig sets cfg's held-out measurements: the verifier, the
// refinement budget (--refine, auto: pipeline.DefaultRefine) and the
// measured front (--front-refine; search shows the proxy front on models
// whose measurements are costly).
func measureConfig(e *env, s *searchFlags, j *job, cfg *pipeline.SearchConfig, refine, frontRefine int, paretoOnly bool) {
	auto := pipeline.DefaultRefine(j.in.Net, j.heldOut.Len())
	cfg.Verify = j.verifier
	cfg.Refine = refine
	if refine < 0 {
		cfg.Refine = auto
	}
	cfg.FrontRefine = frontRefine
	if frontRefine < 0 {
		cfg.FrontRefine = min(maxFrontRefine, max(minFrontRefine, auto/8))
	}
	if !paretoOnly && auto < pipeline.MaxRefine {
		// The measured front would repeat verification and refinement at
		// every point; on models where measurements are costly (the
		// refinement budget is cut below its maximum) the report shows the
		// proxy optima, and pareto measures the front.
		cfg.ProxyFront = true
		fmt.Fprintf(e.stderr, "search: the report's front is the proxy optima, unverified: a held-out measurement costs %.2g multiply-add equivalents here, so measuring %d points is left to mpsearch pareto\n", pipeline.MeasurementWork(j.in.Net, j.heldOut.Len()), s.points)
	}
}

// rlConfig sets cfg's RL agent (--method rl): episodes, seed and reward.
func rlConfig(s *searchFlags, j *job, cfg *pipeline.SearchConfig) error {
	if s.episodes < 1 {
		return usagef("--episodes: %d is below 1", s.episodes)
	}
	cfg.RL = rlsearch.Config{Episodes: s.episodes, Seed: s.sf.seed, Reward: s.reward}
	switch s.reward {
	case rlsearch.RewardTable:
	case rlsearch.RewardAccuracy:
		if j.verifier == nil {
			return usagef("--reward accuracy needs --model and --data (it measures the quantized model)")
		}
		cfg.RL.Accuracy = j.verifier.Accuracy
	default:
		return usagef("--reward: %q is not table or accuracy", s.reward)
	}
	if j.in != nil {
		cfg.Features = pipeline.LayerFeatures(j.in.Net)
	}
	return nil
}

// readTable reads --table, adopting its weight rounding unless
// --quantizer was given (then the two must agree).
func readTable(s *searchFlags, j *job) error {
	t, err := sensitivity.ReadFile(s.table)
	if err != nil {
		return err
	}
	if !s.quantizerSet && t.Quantizer != "" {
		s.sf.quantizer = t.Quantizer
	}
	if err := t.CheckQuantizer(s.table, s.sf.quantizer); err != nil {
		return err
	}
	if !s.biasSet && t.ModelSHA256 != "" {
		s.sf.biasCorrection = t.BiasCorrection
	}
	if err := t.CheckBiasCorrection(s.table, s.sf.biasCorrection); err != nil {
		return err
	}
	if !s.mf.equalize.set && t.ModelSHA256 != "" {
		s.mf.equalize.v = t.Equalized
	}
	if err := t.CheckEqualized(s.table, s.mf.equalize.v); err != nil {
		return err
	}
	if !s.actCalibSet && t.ModelSHA256 != "" {
		s.sf.actCalib = t.ActCalibName()
	}
	ac, err := parseActCalib(s.sf.actCalib)
	if err != nil {
		return fmt.Errorf("%s: %w", s.table, err)
	}
	if err := t.CheckActCalib(s.table, ac); err != nil {
		return err
	}
	j.table = t
	return nil
}

// tableJob reads --table for a search that also has the model and data
// (a table computed elsewhere, e.g. merged from shards): the table must
// be the model's (its hash, when recorded, and its layers), and the
// weight codes that are verified and exported are made from this run's
// calibration split with the table's rounding.
func tableJob(e *env, s *searchFlags, j *job) (quant.WeightCodes, error) {
	if err := readTable(s, j); err != nil {
		return nil, err
	}
	t, in := j.table, j.in
	if s.mf.equalize.v && !in.Equalized { // adopted from the table
		net, _, err := pipeline.Equalize(in.Net)
		if err != nil {
			return nil, err
		}
		in.Net, in.Equalized = net, true
	}
	if t.ModelSHA256 != "" && t.ModelSHA256 != in.ModelSHA256 {
		return nil, fmt.Errorf("%s was computed for another model (%s, sha256 %.12s…) than --model %s (%.12s…): pass the model it was computed for, or recompute it with mpsearch sensitivity", s.table, t.Model, t.ModelSHA256, s.mf.model, in.ModelSHA256)
	}
	layers := in.Net.Layers()
	if len(t.Layers) != len(layers) {
		return nil, fmt.Errorf("%s has %d layers; --model %s has %d: pass the model the table was computed for", s.table, len(t.Layers), s.mf.model, len(layers))
	}
	for i, l := range layers {
		if t.Layers[i].Name != l.Node {
			return nil, fmt.Errorf("%s: layer %d is %q; --model %s has %q there: pass the model the table was computed for", s.table, i, t.Layers[i].Name, s.mf.model, l.Node)
		}
	}
	widths := t.CandidateBits()
	if s.bitsSet || s.groupsSet {
		widths, _ = s.sf.options() // checked by search
	}
	return weightCodes(e, s.sf.spec(), in.Net, in.Calib, widths, &s.mf)
}

// loadInputs loads model, data, held-out split and eval data.
func loadInputs(s *searchFlags, j *job) error {
	in, err := s.mf.inputs()
	if err != nil {
		return err
	}
	all := in.Calib
	nh := int(math.Round(float64(all.Len()) * s.heldOutFrac))
	if nh < 1 || nh >= all.Len() {
		return fmt.Errorf("%s has %d samples: too few to keep %.0f%% out for measuring candidates (use --no-verify or more data)", all.Source, all.Len(), 100*s.heldOutFrac)
	}
	in.Calib = all.Subset(0, all.Len()-nh)
	in.DataSHA256 = pipeline.HashBytes([]byte(fmt.Sprintf("%s|first %d", in.DataSHA256, in.Calib.Len())))
	j.heldOut = all.Subset(all.Len()-nh, nh)
	j.in = in
	switch {
	case s.evalData != "":
		opt, err := s.mf.options()
		if err != nil {
			return err
		}
		opt.Labels, opt.Limit = s.evalLabels, 0
		if j.evalData, err = dataset.Load(s.evalData, opt); err != nil {
			return err
		}
	case s.mf.model == "":
		if j.evalData, err = dataset.FromNPZBytes(demo.TestNPZ(), "built-in demo test set", dataset.Options{}); err != nil {
			return err
		}
	}
	return nil
}

// loadTable makes the sensitivity table of the loaded inputs (computed,
// cached, or --table) and the verifier.
func loadTable(e *env, s *searchFlags, j *job, pr *progress) error {
	in := j.in
	var weights quant.WeightCodes
	var layerRanges quant.ActRanges // observed by the sensitivity stage, if it did
	var err error
	if s.table != "" {
		if weights, err = tableJob(e, s, j); err != nil {
			return err
		}
	} else {
		cfg, err := s.sf.config(e, &s.mf, pr)
		if err != nil {
			return err
		}
		if cfg.Weights, err = weightCodes(e, s.sf.spec(), in.Net, in.Calib, cfg.Bits, &s.mf); err != nil {
			return err
		}
		cfg.LayerRanges = func(r quant.ActRanges) { layerRanges = r } // the verifier's, on the same data
		t, cached, err := pipeline.Sensitivity(e.ctx, in, pipeline.SensitivityRequest{Config: cfg, NoCache: s.sf.noCache})
		pr.done()
		if err != nil {
			return err
		}
		if cached {
			fmt.Fprintln(e.stderr, "search: reused the cached sensitivity table (--no-cache to recompute)")
		}
		j.table, weights = t, cfg.Weights
	}
	// The verifier's passes keep no activations (Infer); its batch is
	// bounded like the forward-only commands'.
	ac, err := parseActCalib(s.sf.actCalib)
	if err != nil {
		return err
	}
	vp := newProgress(e, "verifier")
	progress := func(done, total int, detail string) { vp.update(done, total, detail) }
	batch := in.Net.InferBatch(inferBudget, s.mf.batch)
	if layerRanges != nil {
		j.verifier, err = pipeline.NewNetVerifierRanges(e.ctx, in.Net, in.Calib, j.heldOut, batch, layerRanges, s.mf.threads, progress)
	} else {
		j.verifier, err = pipeline.NewNetVerifierThreads(e.ctx, in.Net, in.Calib, j.heldOut, batch, ac, s.mf.threads, progress)
	}
	vp.done()
	if err != nil {
		return err
	}
	j.verifier.Weights = weights
	return nil
}

// printResult prints the chosen configuration.
func printResult(e *env, res *pipeline.SearchResult, out *pipeline.Outputs, paretoOnly bool) {
	if paretoOnly && len(res.MeasuredFront) > 0 {
		printFront(e, res, out)
		return
	}
	if paretoOnly {
		tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "point\tobjective\tlatency ms\tsize B\tBOPs\taccuracy\tbits\t")
		rows := res.Front
		if res.RL != nil {
			rows = append(append([]*pipeline.Candidate(nil), rows...), res.RL.Front...)
		}
		for _, c := range rows {
			fmt.Fprintf(tw, "%s\t%.4g\t%s\t%.0f\t%.3g\t%s\t%v\t\n", c.Label, c.Objective, fmtCost(c.Costs, pipeline.Latency), c.Costs[pipeline.Size], c.Costs[pipeline.BOPs], fmtAcc(out.Accuracy[c.Label]), quant.FormatOptions(c.Bits))
		}
		tw.Flush()
		return
	}
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "layer\top\tbits\tomega\tlatency ms\tsize B\t")
	for i, l := range res.Table.Layers {
		b := res.Chosen.Bits[i]
		om, _ := l.OmegaAt(b)
		latency := "-"
		if ms := out.LayerLatency; i < len(ms) {
			latency = fmt.Sprintf("%.4f", ms[i])
		}
		size := float64(l.Params) * float64(b) / 8
		if v, ok := res.LayerCost(pipeline.Size, i, b); ok {
			size = v
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.3g\t%s\t%.0f\t\n", l.Name, l.Op, quant.FormatOption(b), om, latency, size)
	}
	tw.Flush()
	fmt.Fprintf(e.stdout, "chosen: %s; objective %.4g", res.Chosen.Label, res.Chosen.Objective)
	for _, r := range pipeline.Resources {
		if v, ok := res.Chosen.Costs[r]; ok {
			lim := ""
			if l, ok := res.Limits[r]; ok {
				lim = fmt.Sprintf(" of %.4g", l)
			}
			fmt.Fprintf(e.stdout, "; %s %.4g%s%s", r, v, pipeline.Units[r], lim)
		}
	}
	fmt.Fprintln(e.stdout)
	if !math.IsNaN(res.Chosen.MeasuredLoss) {
		fmt.Fprintf(e.stdout, "measured held-out loss %.4f (%s: %.4f)\n", res.Chosen.MeasuredLoss, res.Plain.Label, res.Plain.MeasuredLoss)
	}
	if a, ok := out.Accuracy["float"]; ok {
		fmt.Fprintf(e.stdout, "accuracy: float %.2f%%, quantized %.2f%%\n", 100*a, 100*out.Accuracy[res.Chosen.Label])
	}
}

// printFront prints the measured front (summary.json's "front"): per
// point the swept budget, the returned configuration's costs, measured
// held-out loss, accuracy and bits, then what the front cost.
func printFront(e *env, res *pipeline.SearchResult, out *pipeline.Outputs) {
	r := res.MeasuredFront[0].Resource
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "point\t%s budget %s\tlatency ms\tsize B\tBOPs\tmeasured loss\taccuracy\tbits\t\n", r, pipeline.Units[r])
	for i, p := range res.MeasuredFront {
		c := p.Chosen
		fmt.Fprintf(tw, "%d\t%.4g\t%s\t%.0f\t%.3g\t%.4g\t%s\t%v\t\n", i+1, p.Budget, fmtCost(c.Costs, pipeline.Latency), c.Costs[pipeline.Size], c.Costs[pipeline.BOPs], c.MeasuredLoss, fmtAcc(out.Accuracy[c.Label]), quant.FormatOptions(c.Bits))
	}
	tw.Flush()
	held := ""
	for _, name := range pipeline.Resources {
		if lim, ok := res.Limits[name]; ok && name != r {
			held += fmt.Sprintf("; %s held at %.4g %s", name, lim, pipeline.Units[name])
		}
	}
	if fc := res.FrontCost; fc != nil {
		fmt.Fprintf(e.stdout, "front: %d of %d budgets feasible%s; %d held-out measurements (verification and at most %d refinement measurements per point)\n", len(res.MeasuredFront), fc.Points, held, fc.Measurements, fc.RefinePerPoint)
	}
}

// printExport prints model.qdq.onnx's size next to the chosen
// configuration's predicted weight size, and on stderr why weights of 4
// bits or fewer were stored as INT8 when they were.
func printExport(e *env, res *pipeline.SearchResult, out *pipeline.Outputs) {
	x := out.Export
	if x == nil {
		return
	}
	pred := ""
	if v, ok := res.Chosen.Costs[pipeline.Size]; ok {
		pred = fmt.Sprintf("; predicted weight size %.0f B", v)
	}
	fmt.Fprintf(e.stdout, "%s: %d B at opset %d%s\n", x.File, x.Bytes, x.Opset, pred)
	if x.Note != "" {
		fmt.Fprintf(e.stderr, "search: %s: %s\n", x.File, x.Note)
	}
}

func fmtCost(c map[string]float64, r string) string {
	if v, ok := c[r]; ok {
		return fmt.Sprintf("%.4g", v)
	}
	return "-"
}

func fmtAcc(a float64) string {
	if a == 0 || math.IsNaN(a) {
		return "-"
	}
	return fmt.Sprintf("%.2f%%", 100*a)
}

// checkGroups refuses what options in groups cannot do: the RL agent's
// actions are widths on a numeric scale, and --measure-latency runs the
// integer engine (one scale per output channel).
func (s *searchFlags) checkGroups(options []int) error {
	if !quant.AnyGrouped(options) {
		return nil
	}
	if s.method == "rl" {
		return usagef("--method rl: the agent's actions are bit widths on a numeric scale, not options in groups: drop --group-size (or give --group-size 0), or use --method ilp")
	}
	if s.measure {
		return usagef("--measure-latency runs the integer engine, which takes one scale per output channel: drop --group-size (or give --group-size 0) to measure latency")
	}
	return nil
}
