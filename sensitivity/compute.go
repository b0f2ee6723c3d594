package sensitivity

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"mpsearch/dataset"
	"mpsearch/hessian"
	"mpsearch/intengine"
	"mpsearch/network"
	"mpsearch/quant"
	"mpsearch/tensor"
)

// Metric names.
const (
	MetricHessian   = "hessian"
	MetricQuadratic = "quadratic"
	MetricFisher    = "fisher"
	MetricDirect    = "direct"
)

// Metrics lists every metric in a fixed order.
var Metrics = []string{MetricHessian, MetricQuadratic, MetricFisher, MetricDirect}

// DefaultMetric is the metric of the omega column when none is asked for:
// the one whose search input ranks the measured accuracy of mixed
// configurations best on average over three trained models of different
// structure (TestMetricEvidence in package pipeline; the README's evidence
// table). That is fisher (mean Spearman 0.944 over the LeNet fixture, the
// VGG-style and the residual CNN; direct 0.923, which ranks best on LeNet
// alone and was the default while the evidence was LeNet's only). The
// search still computes direct and hessian and measures their optima.
const DefaultMetric = MetricFisher

// Trace estimation methods.
const (
	TraceAuto       = "auto" // the cheaper of exact and Hutch++ by predicted cost (see ChooseTrace)
	TraceHutchinson = "hutchinson"
	TraceHutchPP    = "hutch++"
	TraceExact      = "exact"
	TraceNone       = "none" // no traces (only metrics that need none)
)

// Engines of the direct metric (Config.DirectEngine).
const (
	EngineInt   = "int"
	EngineFloat = "float"
)

// ErrConfig is wrapped by errors about invalid settings.
var ErrConfig = errors.New("invalid sensitivity settings")

// Config controls Compute.
type Config struct {
	Bits    []int    // candidate weight bit widths, default 2,3,4,8
	Metric  string   // metric of the omega column, default DefaultMetric
	Metrics []string // metrics to compute, default all
	Trace   string   // default TraceAuto
	Tol     float64  // relative standard error target, default 0.02
	Probes  int      // maximum Hutchinson probes, default 500
	Seed    uint64
	Eigen   bool // also the top eigenvalue of every block
	Loss    string
	Batch   int
	// Threads is the number of mini-batches processed at once (default
	// 1); the direct metric on the integer engine uses that many workers,
	// every CPU when 0.
	Threads int
	// Shard and Shards select shard Shard (0-based) of Shards: Compute then
	// computes only that shard's cells (see shard.go) and marks the table
	// as a shard for Merge. Shards 0 means no sharding.
	Shard, Shards int
	// DirectEngine is where the direct metric is measured: EngineInt (the
	// default, "") or EngineFloat (the earlier float-engine measurement;
	// see doc.go for how the two differ).
	DirectEngine string
	// DirectBudget bounds the predicted cost of the direct metric where it
	// runs on the float engine, in multiply-adds (0: DefaultDirectBudget;
	// negative: no bound); see directOverBudget.
	DirectBudget float64
	// metricAsked records that Metric was given (not left to its default):
	// an asked-for omega metric is never skipped by a budget.
	metricAsked bool
	// TraceBudget bounds the predicted cost of the traces that --trace
	// auto computes, in multiply-adds (0: DefaultTraceBudget; negative: no
	// bound). Above it, unless the omega metric is hessian, auto computes
	// no traces and the hessian metric is left out of the table (see
	// traceOverBudget).
	TraceBudget float64
	// EigenAlways computes the top eigenvalues (Eigen) whatever their
	// predicted cost; without it they are skipped, with a note, when that
	// cost is over TraceBudget (eigenOverBudget), as --trace auto skips
	// traces.
	EigenAlways bool `json:",omitempty"`
	// Progress, if not nil, receives the stage and its progress.
	Progress func(Progress) `json:"-"`
	// Weights is the source of the quantized weights every metric measures
	// (quant.WeightCodes); nil rounds to nearest.
	Weights quant.WeightCodes `json:"-"`
	// ActCalib chooses the activation ranges of the metrics that quantize
	// activations (direct; quant.ActCalib, zero: minmax, which leaves the
	// cache keys of earlier versions unchanged).
	ActCalib quant.ActCalib `json:",omitzero"`
	// LayerRanges, if not nil, receives the ranges of every layer's input
	// on the calibration data (quant.ObserveRangesThreads's under
	// ActCalib) when the KL targets' pass observed them for the direct
	// metric, so that a later stage on the same data (the verifier) need
	// not observe them again. It is not called otherwise.
	LayerRanges func(quant.ActRanges) `json:"-"`

	stage      string    // stage of the last report
	stageStart time.Time // when it began
	// ranges are the integer engine's activation ranges when the KL
	// targets' pass observed them (nil: the direct metric observes them).
	ranges intengine.Ranges
}

// Progress reports a stage of Compute. Done and Total count the stage's
// cells (for direct a layer-bit pair on one chunk of samples on the
// integer engine, a layer-bit pair on the float engine; a layer for
// quadratic and fisher, a mini-batch for exact traces, a probe for
// Hutchinson and Hutch++).
type Progress struct {
	Stage       string // "targets", "trace", "eigen", "quadratic", "fisher", "ranges", "compile", "direct"
	Done, Total int
	Detail      string
	// Elapsed is the time since the stage began; ETA the predicted time
	// left (Elapsed per cell done times the cells left; 0 before the
	// first cell is done).
	Elapsed, ETA time.Duration
}

func (c *Config) defaults() error {
	if len(c.Bits) == 0 {
		c.Bits = []int{2, 3, 4, 8}
	}
	for _, b := range c.Bits {
		if bb, g := quant.SplitOption(b); bb < 1 || bb > 8 || g < 0 {
			return fmt.Errorf("bit width %d outside 1..8 (or a width in groups, quant.OptionCode): %w", b, ErrConfig)
		}
	}
	c.Bits = quant.SortOptions(c.Bits)
	if c.Metric == "" {
		c.Metric = DefaultMetric
	} else {
		c.metricAsked = true
	}
	if len(c.Metrics) == 0 {
		c.Metrics = slices.Clone(Metrics)
	}
	for _, m := range append([]string{c.Metric}, c.Metrics...) {
		if !slices.Contains(Metrics, m) {
			return fmt.Errorf("unknown metric %q (want one of %v): %w", m, Metrics, ErrConfig)
		}
	}
	if !slices.Contains(c.Metrics, c.Metric) {
		c.Metrics = append(c.Metrics, c.Metric)
	}
	if c.Trace == "" {
		c.Trace = TraceAuto
	}
	switch c.Trace {
	case TraceAuto, TraceHutchinson, TraceHutchPP, TraceExact, TraceNone:
	default:
		return fmt.Errorf("unknown trace method %q (want auto, hutchinson, hutch++, exact or none): %w", c.Trace, ErrConfig)
	}
	if c.Trace == TraceNone && slices.Contains(c.Metrics, MetricHessian) {
		return fmt.Errorf("the hessian metric needs traces; drop --trace none: %w", ErrConfig)
	}
	switch c.DirectEngine {
	case "", EngineInt, EngineFloat:
	default:
		return fmt.Errorf("unknown direct-metric engine %q (want %s or %s): %w", c.DirectEngine, EngineInt, EngineFloat, ErrConfig)
	}
	if c.Tol <= 0 {
		c.Tol = 0.02
	}
	if c.Probes <= 0 {
		c.Probes = 500
	}
	if c.Shards < 0 || (c.Shards > 0 && (c.Shard < 0 || c.Shard >= c.Shards)) || (c.Shards == 0 && c.Shard != 0) {
		return fmt.Errorf("shard %d of %d: want 0 <= K < N (--shard K/N): %w", c.Shard, c.Shards, ErrConfig)
	}
	return nil
}

func (c *Config) report(stage string, done, total int, detail string) {
	if c.Progress == nil {
		return
	}
	now := time.Now()
	if stage != c.stage {
		c.stage, c.stageStart = stage, now
	}
	p := Progress{Stage: stage, Done: done, Total: total, Detail: detail, Elapsed: now.Sub(c.stageStart)}
	if done > 0 && total > done {
		p.ETA = time.Duration(float64(p.Elapsed) / float64(done) * float64(total-done))
	}
	c.Progress(p)
}

// Skeleton is the table of net's layers before any sensitivity: names,
// operators, parameter and multiply-add counts, the candidate widths bits
// (option codes) and, when some option is in groups, each option's size
// with its scales as the export stores them. Compute fills it in;
// pipeline.CheckBudgets reads a budget's feasibility off it before
// anything is measured.
func Skeleton(net *network.Network, bits []int) *Table {
	params := net.Params()
	groups := quant.AnyGrouped(bits)
	t := &Table{Bits: bits}
	for _, l := range net.Layers() {
		w := params[l.Weight].Value
		row := Layer{Name: l.Node, Op: l.Op, Params: int64(w.Size()), MACs: l.MACs}
		if groups { // sizes with the scales, as the export stores them
			row.SizeBytes = map[int]float64{}
			for _, b := range bits {
				row.SizeBytes[b] = quant.OptionSizeBytes(w.Shape, l.ChannelAxis, b)
			}
		}
		t.Layers = append(t.Layers, row)
	}
	return t
}

// Compute builds the sensitivity table of net on the calibration data ds.
// The network's weights are left as they were. With cfg.Shards > 0 the
// table holds only shard cfg.Shard's cells (see Merge).
func Compute(ctx context.Context, net *network.Network, ds *dataset.Dataset, cfg Config) (*Table, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	ro := cfg.rangeObserver(net)
	oopt := OracleOptions{Loss: cfg.Loss, Batch: cfg.Batch, Threads: cfg.Threads,
		Progress: func(done, total int) {
			cfg.report("targets", done, total, "the float model's outputs (the KL loss's targets)")
		}}
	if ro != nil {
		oopt.Infer = ro.Infer
	}
	o, err := NewOracle(ctx, net, ds, oopt)
	if err != nil {
		return nil, err
	}
	if ro != nil && ro.Samples() == ds.Len() {
		cfg.ranges = ro.Ranges()
		if cfg.LayerRanges != nil {
			cfg.LayerRanges(ro.LayerRanges())
		}
	}
	t := Skeleton(net, cfg.Bits)
	t.Samples, t.Loss, t.Metric, t.Seed, t.Tol, t.Quantizer = ds.Len(), o.lossName(), cfg.Metric, cfg.Seed, cfg.Tol, quant.MethodRTN
	if cfg.Weights != nil {
		t.Quantizer = cfg.Weights.Method()
		_, t.BiasCorrection = cfg.Weights.(quant.BiasShifter)
	}
	if cfg.ActCalib != (quant.ActCalib{}) {
		t.ActCalib = cfg.ActCalib.String()
	}
	if quant.AnyGrouped(cfg.Bits) && cfg.DirectEngine != EngineFloat && slices.Contains(cfg.Metrics, MetricDirect) {
		// The integer engine takes one scale per output channel; every
		// cell is measured on the float engine so that they compare.
		cfg.DirectEngine = EngineFloat
		cfg.report("direct", 0, 0, "options in groups: the direct metric is measured on the float engine (the integer engine takes one scale per output channel)")
	}
	for i := range t.Layers {
		row := &t.Layers[i]
		row.Delta, row.Metrics = map[int]float64{}, map[string]map[int]float64{}
		for _, b := range cfg.Bits {
			d, err := quant.LayerSquaredError(cfg.Weights, net, i, b)
			if err != nil {
				return nil, fmt.Errorf("layer %q: %w", row.Name, err)
			}
			row.Delta[b] = d
		}
	}
	pl := newPlan(&cfg)
	if pl.take() { // the global cell: traces, eigenvalues, hessian metric
		if err := globalCell(ctx, o, net, t, &cfg); err != nil {
			return nil, err
		}
	}
	for _, m := range cfg.Metrics {
		var err error
		switch m {
		case MetricQuadratic:
			err = quadraticMetric(ctx, o, net, t, &cfg, pl.takeN(len(t.Layers)))
		case MetricFisher:
			err = fisherMetric(ctx, o, net, t, &cfg, pl.takeN(len(t.Layers)))
		case MetricDirect:
			err = directMetric(ctx, o, net, t, &cfg, pl.takeN(len(t.Layers)*len(cfg.Bits)))
			if errors.Is(err, errDirectSkipped) {
				cfg.Metric, t.Metric, err = directAlternative(&cfg), directAlternative(&cfg), nil
			}
		}
		if err != nil {
			return nil, err
		}
	}
	for i := range t.Layers {
		l := &t.Layers[i]
		l.Omega = map[int]float64{}
		for b, v := range l.Metrics[cfg.Metric] {
			l.Omega[b] = v
		}
	}
	if cfg.Shards > 0 {
		t.Shard = &ShardInfo{Index: cfg.Shard, Count: cfg.Shards, Cells: pl.next, Settings: cfg.settingsHash()}
	}
	return t, nil
}

// rangeObserver returns an observer of the integer engine's activation
// ranges for the KL targets' pass when the direct metric will measure on
// the integer engine, so that the ranges cost no float pass of their own
// (nil otherwise, and when the engine refuses the model: the direct
// metric then reports the refusal as before).
func (c *Config) rangeObserver(net *network.Network) *intengine.RangeObserver {
	if !slices.Contains(c.Metrics, MetricDirect) || c.DirectEngine == EngineFloat || quant.AnyGrouped(c.Bits) {
		return nil
	}
	ro, err := intengine.NewRangeObserver(net, c.ActCalib)
	if err != nil {
		return nil
	}
	return ro
}

// globalCell computes what needs every layer at once: the traces, the top
// eigenvalues and the hessian metric (which is made of the traces).
func globalCell(ctx context.Context, o *Oracle, net *network.Network, t *Table, cfg *Config) error {
	skipped := false
	if cfg.Trace != TraceNone {
		err := computeTraces(ctx, o, net, t, cfg)
		skipped = errors.Is(err, errTraceSkipped)
		if err != nil && !skipped {
			return err
		}
	}
	if cfg.Eigen && !cfg.EigenAlways {
		if why := eigenOverBudget(net, t.Samples, cfg); why != "" {
			cfg.report("eigen", 0, 0, why)
			cfg.Eigen = false
		}
	}
	if cfg.Eigen {
		cfg.report("eigen", 0, 1, "top Hessian eigenvalue of every layer")
		res, err := hessian.TopEigenvalues(ctx, o, hessian.EigenOptions{Seed: cfg.Seed})
		if err != nil {
			return err
		}
		cfg.report("eigen", 1, 1, "")
		for i, b := range res.Blocks {
			t.Layers[i].TopEigenvalue = b.Value
		}
	}
	if slices.Contains(cfg.Metrics, MetricHessian) && !skipped {
		for i := range t.Layers {
			l := &t.Layers[i]
			l.Metrics[MetricHessian] = map[int]float64{}
			for _, b := range cfg.Bits {
				l.Metrics[MetricHessian][b] = l.Trace / float64(l.Params) * l.Delta[b]
			}
		}
	}
	return nil
}

func (o *Oracle) lossName() string {
	if len(o.losses) > 0 {
		if _, ok := o.losses[0].(network.SoftTarget); ok {
			return LossKL
		}
	}
	return LossCE
}

func computeTraces(ctx context.Context, o *Oracle, net *network.Network, t *Table, cfg *Config) error {
	method := cfg.Trace
	pl, why := net.PiecewiseLinear()
	if method == TraceExact && !pl {
		return fmt.Errorf("exact traces need logits piecewise linear in each layer's weights, but %s is not: use --trace hutchinson: %w", why, ErrConfig)
	}
	if method == TraceAuto {
		classes, err := o.classes(ctx)
		if err != nil {
			return err
		}
		method = ChooseTrace(classes, pl, cfg.Probes)
		if why := traceOverBudget(net, t.Samples, method, classes, cfg); why != "" {
			cfg.report("trace", 0, 0, why)
			t.Trace = TraceNone
			return errTraceSkipped
		}
	}
	t.Trace = method
	if method == TraceExact {
		nb := len(o.batches)
		done := 0
		var mu sync.Mutex
		cfg.report("trace", 0, nb, "exact Gauss-Newton traces")
		tr, err := o.GGNTraces(ctx, t.Samples, func() {
			mu.Lock()
			done++
			cfg.report("trace", done, nb, "exact Gauss-Newton traces")
			mu.Unlock()
		})
		if err != nil {
			return err
		}
		for i := range t.Layers {
			t.Layers[i].Trace = tr[i]
		}
		return nil
	}
	opts := hessian.Options{Tol: cfg.Tol, MaxProbes: cfg.Probes, Seed: cfg.Seed}
	probes := 0 // probes done, for the per-product reports
	opts.Progress = func(p hessian.Progress) {
		probes = p.Probes
		cfg.report("trace", p.Probes, cfg.Probes, fmt.Sprintf("worst relative error %.3f (%s)", p.WorstRelErr, p.Block))
	}
	opts.Products = func(n int) {
		cfg.report("trace", probes, cfg.Probes, fmt.Sprintf("%s: %d Hessian-vector products", method, n))
	}
	cfg.report("trace", 0, cfg.Probes, fmt.Sprintf("%s: first Hessian-vector products", method))
	var res *hessian.Result
	var err error
	if method == TraceHutchPP {
		res, err = hessian.HutchPlusPlus(ctx, o, hessian.PPOptions{Options: opts})
	} else {
		res, err = hessian.Hutchinson(ctx, o, opts)
	}
	if err != nil {
		return err
	}
	t.Probes = res.Blocks[0].Probes
	for i, b := range res.Blocks {
		t.Layers[i].Trace = b.Trace
		t.Layers[i].TraceStderr = b.StdErr
	}
	return nil
}

// layerDirections returns, for layer li, one direction per candidate bit
// width: ΔW = Q_b(W) - W on the layer's block, zero elsewhere (flat layout,
// k = len(bits)).
func layerDirections(o *Oracle, net *network.Network, li int, bits []int, codes quant.WeightCodes) ([]float64, error) {
	d, err := layerWeightDirections(net, li, bits, codes)
	if err != nil {
		return nil, err
	}
	blk := o.blocks[li]
	v := make([]float64, len(bits)*o.dim)
	for j := range bits {
		copy(v[j*o.dim+blk.Offset:j*o.dim+blk.Offset+blk.Len], d.Data[j*blk.Len:(j+1)*blk.Len])
	}
	return v, nil
}

// quadraticMetric: g·ΔW + ½ ΔW·HΔW per layer and bit width (one batched
// HVP per layer), signed: a predicted decrease is kept as such (the search
// input's rule, SearchInput, decides what the search makes of it).
func quadraticMetric(ctx context.Context, o *Oracle, net *network.Network, t *Table, cfg *Config, own []bool) error {
	total := count(own)
	if total == 0 {
		return nil
	}
	g, err := o.Gradient(ctx)
	if err != nil {
		return err
	}
	k := len(cfg.Bits)
	done := 0
	for li := range t.Layers {
		if !own[li] {
			continue
		}
		cfg.report("quadratic", done, total, t.Layers[li].Name)
		done++
		v, err := layerDirections(o, net, li, cfg.Bits, cfg.Weights)
		if err != nil {
			return err
		}
		hv := make([]float64, len(v))
		if err := o.HVP(ctx, v, hv, k); err != nil {
			return err
		}
		blk := o.blocks[li]
		m := map[int]float64{}
		for j, b := range cfg.Bits {
			lin, quad := 0.0, 0.0
			for i := blk.Offset; i < blk.Offset+blk.Len; i++ {
				d := v[j*o.dim+i]
				lin += g[i] * d
				quad += d * hv[j*o.dim+i]
			}
			m[b] = lin + quad/2
		}
		t.Layers[li].Metrics[MetricQuadratic] = m
	}
	cfg.report("quadratic", total, total, "")
	return nil
}

// fisherMetric: the empirical Fisher along ΔW per layer and bit width,
// Σ_s (∇L_s·ΔW)² / (2N) over the calibration samples s. Each sample's
// directional derivative ∇L_s·ΔW comes from network's
// LayerDirectionalDots: one backward pass per batch serves every layer,
// and each layer adds one per-sample weight-gradient product (or one
// tangent of its own operator) along its k directions, instead of a
// forward tangent pass through the rest of the network per layer
// (fisherTangentPasses in the tests, the reference it equals). Its
// mini-batches are groups of the oracle's (fisherGroup: sized by what a
// fisher pass holds, not by a Hessian-vector product's tangents); a batch
// whose output gradient is zero in every entry (the KL loss at the float
// model's own outputs, where every sample's gradient vanishes) adds zero
// and skips the backward pass. Batches are summed in batch order, so the
// result does not depend on Threads.
func fisherMetric(ctx context.Context, o *Oracle, net *network.Network, t *Table, cfg *Config, own []bool) error {
	k := len(cfg.Bits)
	n := float64(t.Samples)
	total := count(own)
	if total == 0 {
		return nil
	}
	// The directions (k weight-sized arrays per layer, 816 MB on
	// ResNet50) are made when a batch first needs them: never when every
	// output gradient is zero.
	dirs := make([]*tensor.Tensor, len(t.Layers))
	var once sync.Once
	var dirsErr error
	makeDirs := func() error {
		once.Do(func() {
			for li := range t.Layers {
				if own[li] && dirsErr == nil {
					dirs[li], dirsErr = layerWeightDirections(net, li, cfg.Bits, cfg.Weights)
				}
			}
		})
		return dirsErr
	}
	g := o.fisherGroup()
	nb := (len(o.batches) + g - 1) / g
	parts := make([][][]float64, nb) // batch, layer, bit width
	var mu sync.Mutex
	done := 0
	what := fmt.Sprintf("%d layers, one backward pass per batch of up to %d samples", total, g*o.batches[0].Shape[0])
	if g*o.batches[0].Shape[0] == 1 {
		what = fmt.Sprintf("%d layers, one backward pass per sample", total)
	}
	cfg.report("fisher", 0, nb, what)
	err := o.fisherBatches(ctx, g, o.fisherLosses(cfg.Seed), func(b int, p *network.Pass, loss network.Loss) error {
		_, gz, err := loss.Eval(p.Output())
		if err != nil {
			return err
		}
		parts[b] = make([][]float64, len(t.Layers))
		if allZero(gz.Data) {
			for li := range t.Layers {
				if own[li] {
					parts[b][li] = make([]float64, k)
				}
			}
		} else if err := makeDirs(); err != nil {
			return err
		} else if err := fisherSums(ctx, p, gz, dirs, k, n, parts[b]); err != nil {
			return err
		}
		mu.Lock()
		done++
		cfg.report("fisher", done, nb, what)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}
	for li := range t.Layers {
		if !own[li] {
			continue
		}
		m := map[int]float64{}
		for j, b := range cfg.Bits {
			s := 0.0
			for _, p := range parts {
				s += p[li][j]
			}
			m[b] = s / n / 2
		}
		t.Layers[li].Metrics[MetricFisher] = m
	}
	return nil
}

// fisherSums sets sums[li][j] to Σ_s (N·∇L_s·dir_li,j)² over the samples s
// of pass p (gz, the batch's output gradient, has rows ∇L_s/N).
func fisherSums(ctx context.Context, p *network.Pass, gz *tensor.Tensor, dirs []*tensor.Tensor, k int, n float64, sums [][]float64) error {
	dots, err := p.LayerDirectionalDots(ctx, gz, k, func(li int) (*tensor.Tensor, error) { return dirs[li], nil })
	if err != nil {
		return err
	}
	for li, d := range dots {
		if d == nil {
			continue
		}
		rows := len(d) / k
		s := make([]float64, k)
		for j := range s {
			for _, v := range d[j*rows : (j+1)*rows] {
				v *= n
				s[j] += v * v
			}
		}
		sums[li] = s
	}
	return nil
}

// allZero reports whether every value of x is zero.
func allZero(x []float64) bool {
	for _, v := range x {
		if v != 0 {
			return false
		}
	}
	return true
}

// layerWeightDirections returns ΔW = Q_b(W) - W of layer li's weight for
// each width b of bits, as [len(bits)]+weight shape.
func layerWeightDirections(net *network.Network, li int, bits []int, codes quant.WeightCodes) (*tensor.Tensor, error) {
	l := net.Layers()[li]
	w := net.Params()[l.Weight].Value
	d := tensor.New(append([]int{len(bits)}, w.Shape...)...)
	for j, b := range bits {
		q, err := quant.Fake(codes, net, li, b)
		if err != nil {
			return nil, err
		}
		dj := d.Data[j*w.Size() : (j+1)*w.Size()]
		for i := range dj {
			dj[i] = q[i] - w.Data[i]
		}
	}
	return d, nil
}

// directMetric: the measured change of the calibration loss when only that
// layer's weights go to b bits. By default it is measured on the integer
// engine (directIntMetric, see doc.go); with Config.DirectEngine
// EngineFloat, or when the integer engine refuses the model, on the float
// engine (directFloatMetric).
func directMetric(ctx context.Context, o *Oracle, net *network.Network, t *Table, cfg *Config, own []bool) error {
	total := count(own)
	if total == 0 {
		return nil
	}
	note := ""
	if cfg.DirectEngine != EngineFloat {
		refused, err := directIntMetric(ctx, o, t, cfg, own)
		if err != nil || refused == nil {
			return err
		}
		note = " (float engine: the integer engine refused the model)"
		cfg.report("direct", 0, total, fmt.Sprintf("the integer engine cannot run this model (%v); measuring the direct metric on the float engine instead", refused))
	}
	if why := directOverBudget(net, t.Samples, cfg); why != "" {
		cfg.report("direct", 0, 0, why)
		return errDirectSkipped
	}
	return directFloatMetric(ctx, o, net, t, cfg, own, note)
}

// directFloatMetric: the measured change of the calibration loss when
// only that layer's weights are quantized, with every layer's input
// activations quantized to uint8 (ranges observed on the calibration data)
// in both the measured and the baseline model, on the float engine;
// signed, with its standard error over chunks of directChunk samples as on
// the integer engine. note is appended to every progress detail.
func directFloatMetric(ctx context.Context, o *Oracle, net *network.Network, t *Table, cfg *Config, own []bool, note string) error {
	total := count(own)
	if total == 0 {
		return nil
	}
	ranges, err := quant.ObserveRangesCalib(ctx, net, o.batches, cfg.ActCalib)
	if err != nil {
		return err
	}
	hook := quant.ActHook(ranges.ActQuantizers())
	base, baseC, err := o.lossChunks(ctx, hook)
	if err != nil {
		return err
	}
	ws := quant.NewWeightSetterCodes(net, cfg.Weights)
	defer ws.Restore()
	done := 0
	for li := range t.Layers {
		changed := false
		for j, b := range cfg.Bits {
			if !own[li*len(cfg.Bits)+j] {
				continue
			}
			m, se := directCells(&t.Layers[li])
			cfg.report("direct", done, total, fmt.Sprintf("%s at %s bits%s", t.Layers[li].Name, quant.FormatOption(b), note))
			done++
			if err := ws.Set(li, b); err != nil {
				return err
			}
			changed = true
			l, lc, err := o.lossChunks(ctx, hook)
			if err != nil {
				return err
			}
			d := make([]float64, len(lc))
			for u := range lc {
				d[u] = lc[u] - baseC[u]
			}
			m[b], se[b] = l-base, stderrOfSum(d)
		}
		if !changed {
			continue
		}
		if err := ws.Set(li, 0); err != nil {
			return err
		}
	}
	cfg.report("direct", total, total, "")
	return nil
}

// Predicted costs of the trace methods, in forward passes over the
// calibration data (what ChooseTrace compares):
//
//   - exact Gauss-Newton traces: per class one backward pass down to the
//     first layer (about two forward passes: the data-gradient products)
//     plus the per-sample weight-gradient norms (about one: the weight
//     products), so exactCostPerClass per class;
//   - Hutch++: per Hessian-vector product a forward tangent pass (two
//     products per layer) and a backward pass with tangents (four), so
//     hvpCost per product, times its predicted products: the global
//     sketch (8 pilot products and 2·DefaultSketchSize) and the residual
//     probes, predicted as hutchPPResidualProbes (Hutch++ reached 2% on
//     every fixture-LeNet layer with 240 products in all,
//     BenchmarkTraceToTolerance) and at most the --probes limit.
const (
	exactCostPerClass     = 3
	hvpCost               = 6
	hutchPPResidualProbes = 168
)

// DefaultTraceBudget is Config.TraceBudget's default: 10^12
// multiply-adds, a few minutes of this engine's Hessian-vector products on
// two cores. Exact traces of the Fashion-MNIST models stay inside it (the
// VGG-style model: 10 classes × 3 units × 2.2·10^7 multiply-adds × 1024
// samples ≈ 6.8·10^11); Hutch++ on an ImageNet model does not
// (MobileNetV3-small: 1,440 units × 5.7·10^7 × 24 samples ≈ 2·10^12).
const DefaultTraceBudget = 1e12

// errTraceSkipped is computeTraces' answer when --trace auto finds the
// traces over the budget.
var errTraceSkipped = errors.New("traces over the budget")

// traceOverBudget returns why the traces that --trace auto chose (method)
// are skipped, or "" when they are computed: their predicted cost, in
// forward-pass units (see the constants above) times the network's
// multiply-adds per sample times the samples, is over cfg.TraceBudget, and
// the omega metric does not need them. The rule depends only on the model,
// the data size and the settings, so tables stay reproducible.
func traceOverBudget(net *network.Network, samples int, method string, classes int, cfg *Config) string {
	budget := cfg.TraceBudget
	if budget == 0 {
		budget = DefaultTraceBudget
	}
	if budget < 0 || cfg.Metric == MetricHessian {
		return ""
	}
	units := float64(exactCostPerClass * classes)
	if method != TraceExact {
		units = float64(hvpCost * (8 + 2*hessian.DefaultSketchSize + min(hutchPPResidualProbes, cfg.Probes)))
	}
	var macs int64
	for _, l := range net.Layers() {
		macs += l.MACs
	}
	cost := units * float64(macs) * float64(samples)
	if cost <= budget {
		return ""
	}
	return fmt.Sprintf("skipped: %s traces would take about %.2g multiply-adds (%.0f pass units × %d samples), over the budget of %.2g; the hessian metric is left out (--trace %s computes them)", method, cost, units, samples, budget, method)
}

// eigenOverBudget returns why the top eigenvalues are skipped, or "" when
// they are computed: power iteration's predicted cost, DefaultEigenMaxIter
// Hessian-vector products of hvpCost pass units each (an upper bound: it
// stops earlier where it converges) times the network's multiply-adds per
// sample times the samples, is over cfg.TraceBudget (the budget the
// traces share). On the fixture LeNet (1024 samples) it is 2.6·10^11; on
// ResNet18 with 64 samples 7·10^13, which took 8 GB and more than minutes.
func eigenOverBudget(net *network.Network, samples int, cfg *Config) string {
	budget := cfg.TraceBudget
	if budget == 0 {
		budget = DefaultTraceBudget
	}
	if budget < 0 {
		return ""
	}
	var macs int64
	for _, l := range net.Layers() {
		macs += l.MACs
	}
	units := float64(hvpCost * hessian.DefaultEigenMaxIter)
	cost := units * float64(macs) * float64(samples)
	if cost <= budget {
		return ""
	}
	return fmt.Sprintf("skipped: the top eigenvalues would take up to %.2g multiply-adds (%.0f pass units × %d samples), over the budget of %.2g (--eigen computes them)", cost, units, samples, budget)
}

// ChooseTrace is the trace method of --trace auto for a network with the
// given number of output classes: exact Gauss-Newton traces when the
// logits are piecewise linear in each layer (pl) and their predicted cost
// (classes × backward passes) is at most Hutch++'s (products × HVP), else
// Hutch++. With the default probe limit exact is chosen up to 480 classes,
// so never for 1000-class models.
func ChooseTrace(classes int, pl bool, maxProbes int) string {
	if !pl {
		return TraceHutchPP
	}
	products := 8 + 2*hessian.DefaultSketchSize + min(hutchPPResidualProbes, maxProbes)
	if exactCostPerClass*classes <= hvpCost*products {
		return TraceExact
	}
	return TraceHutchPP
}
