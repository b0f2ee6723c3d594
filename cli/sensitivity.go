package cli

import (
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"mpsearch/dataset"
	"mpsearch/network"
	"mpsearch/pipeline"
	"mpsearch/quant"
	"mpsearch/sensitivity"
)

func init() {
	commands["sensitivity"] = command{"per-layer Hessian traces and the sensitivity table", runSensitivity}
}

// sensFlags are the sensitivity settings shared by sensitivity and search.
type sensFlags struct {
	metrics string
	probes  int
	tol     float64
	metric  string
	trace   string
	bits    string
	seed    uint64
	eigen   bool
	// eigenSet: --eigen given explicitly (computed whatever its cost).
	eigenSet bool
	noCache  bool
	// quantizer is --quantizer: the weight rounding (quant.Methods).
	quantizer string
	// biasCorrection is --bias-correction; groups is --group-size.
	biasCorrection bool
	groups         string
	// actCalib is --act-calib (quant.ParseActCalib).
	actCalib string
}

func (s *sensFlags) register(fs interface {
	IntVar(*int, string, int, string)
	Float64Var(*float64, string, float64, string)
	StringVar(*string, string, string, string)
	Uint64Var(*uint64, string, uint64, string)
	BoolVar(*bool, string, bool, string)
}) {
	fs.IntVar(&s.probes, "probes", 500, "maximum Hutchinson probes")
	fs.Float64Var(&s.tol, "tol", 0.02, "stop when every layer's trace has this relative standard error")
	fs.StringVar(&s.metric, "metric", "", "sensitivity metric of the omega column: hessian, quadratic, fisher or direct (default "+sensitivity.DefaultMetric+")")
	fs.StringVar(&s.metrics, "metrics", strings.Join(sensitivity.Metrics, ","), "metrics to compute (comma-separated); search verifies the optimum under each")
	fs.StringVar(&s.trace, "trace", sensitivity.TraceAuto, "trace method: auto (exact or hutch++, whichever is predicted cheaper; never exact for 1000 classes), hutchinson, hutch++, exact")
	fs.StringVar(&s.bits, "bits", "2,3,4,8", "candidate weight bit widths, comma-separated")
	fs.Uint64Var(&s.seed, "seed", 1, "random seed")
	fs.BoolVar(&s.eigen, "eigen", true, "also the top Hessian eigenvalue of every layer: by default when its predicted cost is within the trace budget; given explicitly, always")
	fs.BoolVar(&s.noCache, "no-cache", false, "recompute even if a cached table exists")
	fs.StringVar(&s.quantizer, "quantizer", defaultQuantizer, "weight rounding: rtn (round to nearest) or gptq (GPTQ from the Hessian of each layer's inputs on --data, one scale per output channel); the metrics, verification and export all use it")
	fs.BoolVar(&s.biasCorrection, "bias-correction", defaultBiasCorrection, "correct each layer's bias for the mean output shift of its rounded weights (mean inputs from --data); the metrics, verification and export all use it")
	fs.StringVar(&s.actCalib, "act-calib", quant.DefaultCalib, actCalibUsage)
	fs.StringVar(&s.groups, "group-size", "0", "weight scale granularities the search may choose, comma-separated: 0 is one scale per output channel, G one per output channel and G inputs (e.g. 0,64: every width below the widest also in groups of 64; sizes count the scales; no latency budget, no integer engine)")
}

// defaultBiasCorrection is --bias-correction's default: on. With GPTQ it
// raised uniform W3A8/W2A8 test accuracy in five of six cases on the
// fixtures (LeNet, VGG-style and residual Fashion-MNIST CNNs: +0.2 to +1.9
// points, and −0.02 on VGG W3), and with round to nearest in five of six
// as well (TestBiasCorrectionEvidence in package quant; the README).
const defaultBiasCorrection = true

// parseGroups reads --group-size: 0 (per channel) and group sizes of 1
// or more inputs, comma-separated.
func parseGroups(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		g, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || g < 0 || g > maxGroup {
			return nil, usagef("--group-size: %q is not 0 (per channel) or a number of inputs per scale in 1..%d", f, maxGroup)
		}
		if slices.Contains(out, g) {
			return nil, usagef("--group-size: %d given twice", g)
		}
		out = append(out, g)
	}
	if !slices.Contains(out, 0) {
		return nil, usagef("--group-size: %q lacks 0: per-channel widths are always candidates (the ends stay per channel)", s)
	}
	return out, nil
}

// maxGroup bounds --group-size: a group of more inputs than any layer has
// is per channel in all but name.
const maxGroup = 1 << 16

// options returns the candidate option codes of --bits and --group-size
// (quant.Options).
func (s *sensFlags) options() ([]int, error) {
	bits, err := parseBits(s.bits)
	if err != nil {
		return nil, err
	}
	groups, err := parseGroups(s.groups)
	if err != nil {
		return nil, err
	}
	return quant.Options(bits, groups), nil
}

// spec is the job's weight specification.
func (s *sensFlags) spec() pipeline.WeightSpec {
	return pipeline.WeightSpec{Method: s.quantizer, BiasCorrection: s.biasCorrection}
}

// visited records the settings given explicitly on fs's command line.
func (s *sensFlags) visited(fs *flag.FlagSet) {
	fs.Visit(func(f *flag.Flag) { s.eigenSet = s.eigenSet || f.Name == "eigen" })
}

// defaultQuantizer is --quantizer's default: GPTQ, which returned higher
// test accuracy than round to nearest at the same size budget in three of
// the README's four searches (by 2.51 and 0.66 points at the uniform-3-bit
// sizes of the fixture LeNet and the VGG-style CNN) and 0.08 points lower
// in the fourth, for about 12 forward passes of extra work
// (TestQuantizerEvidence, BenchmarkGPTQCodesModel).
const defaultQuantizer = quant.MethodGPTQ

// checkQuantizer checks a --quantizer value.
func checkQuantizer(q string) error {
	if !slices.Contains(quant.Methods, q) {
		return usagef("--quantizer: %q is not %s", q, strings.Join(quant.Methods, " or "))
	}
	return nil
}

// weightCodes makes the weight source of --quantizer for net, GPTQ's
// Hessians from calib, with codes at widths, showing GPTQ's progress. The
// Hessians' forward passes take --batch samples at a time, or fewer when
// one batch's activations would pass inferBudget (the sums are the same
// up to their order; on ResNet18 a batch of 192 images made the search's
// peak 3.9 GB).
func weightCodes(e *env, spec pipeline.WeightSpec, net *network.Network, calib *dataset.Dataset, widths []int, mf *modelFlags) (quant.WeightCodes, error) {
	label := "gptq"
	if spec.Method != quant.MethodGPTQ {
		label = "bias correction" // round to nearest: the only pass is the means'
	}
	pr := newProgress(e, label)
	defer pr.done()
	return pipeline.NewWeightSource(e.ctx, net, calib, spec, widths, net.InferBatch(inferBudget, mf.batch), mf.threads, func(done, total int, detail string) {
		pr.update(done, total, detail)
	})
}

func parseBits(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		b, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || b < 1 || b > 8 {
			return nil, usagef("--bits: %q is not a bit width in 1..8", f)
		}
		if slices.Contains(out, b) {
			return nil, usagef("--bits: %d given twice", b)
		}
		out = append(out, b)
	}
	return out, nil
}

func (s *sensFlags) config(e *env, mf *modelFlags, pr *progress) (sensitivity.Config, error) {
	bits, err := s.options()
	if err != nil {
		return sensitivity.Config{}, err
	}
	if err := checkQuantizer(s.quantizer); err != nil {
		return sensitivity.Config{}, err
	}
	ac, err := parseActCalib(s.actCalib)
	if err != nil {
		return sensitivity.Config{}, err
	}
	if s.tol <= 0 || s.tol >= 1 {
		return sensitivity.Config{}, usagef("--tol: %g is not in (0, 1)", s.tol)
	}
	if s.probes < 2 || s.probes > maxProbes {
		return sensitivity.Config{}, usagef("--probes: %d is not in 2..%d", s.probes, maxProbes)
	}
	var metrics []string
	for _, m := range strings.Split(s.metrics, ",") {
		if m = strings.TrimSpace(m); m != "" {
			metrics = append(metrics, m)
		}
	}
	check := metrics
	if s.metric != "" { // "": the default, resolved by sensitivity.Config
		check = append([]string{s.metric}, metrics...)
	}
	for _, m := range check {
		if !slices.Contains(sensitivity.Metrics, m) {
			return sensitivity.Config{}, usagef("unknown metric %q (want one of %s)", m, strings.Join(sensitivity.Metrics, ", "))
		}
	}
	switch s.trace {
	case sensitivity.TraceAuto, sensitivity.TraceExact, sensitivity.TraceHutchinson, sensitivity.TraceHutchPP, sensitivity.TraceNone:
	default:
		return sensitivity.Config{}, usagef("--trace: %q is not auto, exact, hutchinson, hutch++ or none", s.trace)
	}
	cfg := sensitivity.Config{Bits: bits, Metric: s.metric, Metrics: metrics, Trace: s.trace, Tol: s.tol, Probes: s.probes, Seed: s.seed, Eigen: s.eigen, EigenAlways: s.eigen && s.eigenSet, Batch: mf.batch, Threads: mf.threads}
	cfg.ActCalib = ac
	if mf.labels == "none" {
		cfg.Loss = sensitivity.LossKL
	}
	stage := ""
	cfg.Progress = func(p sensitivity.Progress) {
		if p.Stage != stage {
			pr.done()
			stage = p.Stage
			*pr = *newProgress(e, "sensitivity "+p.Stage)
		}
		detail := p.Detail
		if p.ETA > 0 {
			detail = fmt.Sprintf("ETA %s  %s", p.ETA.Round(time.Second), detail)
		}
		pr.update(p.Done, p.Total, detail)
	}
	return cfg, nil
}

func runSensitivity(e *env, args []string) error {
	var mf modelFlags
	var sf sensFlags
	fs := newFlags(e, "sensitivity", "sensitivity [--model M --data D [--labels L|none]] [--probes N] [--tol T] [--metric M] [--bits 2,3,4,8] [--seed S] [--shard K/N] [--out sens.yaml]")
	mf.register(fs, true)
	mf.registerEqualize(fs, false)
	sf.register(fs)
	out := fs.String("out", "", "write the table to this YAML `file`")
	shard := fs.String("shard", "", "compute only shard `K/N` (K = 0..N-1) of the table's cells; combine the N tables with 'mpsearch merge'")
	if err := parse(fs, args); err != nil {
		return err
	}
	sf.visited(fs)
	pr := newProgress(e, "sensitivity")
	cfg, err := sf.config(e, &mf, pr)
	if err != nil {
		return err
	}
	if *shard != "" {
		if cfg.Shard, cfg.Shards, err = parseShard(*shard); err != nil {
			return err
		}
	}
	in, err := mf.inputs()
	if err != nil {
		return err
	}
	if cfg.Weights, err = weightCodes(e, sf.spec(), in.Net, in.Calib, cfg.Bits, &mf); err != nil {
		return err
	}
	t, cached, err := pipeline.Sensitivity(e.ctx, in, pipeline.SensitivityRequest{Config: cfg, NoCache: sf.noCache})
	pr.done()
	if err != nil {
		return err
	}
	if cached {
		fmt.Fprintln(e.stderr, "sensitivity: reused the cached table (--no-cache to recompute)")
	}
	if t.Shard != nil {
		fmt.Fprintf(e.stdout, "shard %d/%d of a sharded run: combine all %d tables with 'mpsearch merge'\n", t.Shard.Index, t.Shard.Count, t.Shard.Count)
	} else {
		printTable(e, t)
	}
	if *out != "" {
		if err := t.WriteFile(*out); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "sensitivity: wrote %s\n", *out)
	}
	return nil
}

// parseShard parses --shard K/N.
func parseShard(s string) (k, n int, err error) {
	ks, ns, ok := strings.Cut(s, "/")
	k, err1 := strconv.Atoi(strings.TrimSpace(ks))
	n, err2 := strconv.Atoi(strings.TrimSpace(ns))
	if !ok || err1 != nil || err2 != nil || n < 1 || k < 0 || k >= n {
		return 0, 0, usagef("--shard: %q is not K/N with 0 <= K < N (e.g. $JOB_COMPLETION_INDEX/4)", s)
	}
	return k, n, nil
}

// printTable prints the summary of a sensitivity table.
func printTable(e *env, t *sensitivity.Table) {
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	header := "layer\top\tparams\ttrace\t± stderr\ttrace/param\ttop eig"
	for _, b := range t.Bits {
		header += "\tΩ@" + quant.FormatOption(b)
	}
	fmt.Fprintln(tw, header+"\t")
	for _, l := range t.Layers {
		row := fmt.Sprintf("%s\t%s\t%d\t%.4g\t%.2g\t%.3g\t%.4g", l.Name, l.Op, l.Params, l.Trace, l.TraceStderr, l.Trace/float64(max(l.Params, 1)), l.TopEigenvalue)
		for _, b := range t.Bits {
			v, _ := l.OmegaAt(b)
			row += fmt.Sprintf("\t%.3g", v)
		}
		fmt.Fprintln(tw, row+"\t")
	}
	tw.Flush()
	fmt.Fprintf(e.stdout, "loss %s over %d samples; traces: %s; omega: %s metric\n", t.Loss, t.Samples, t.Trace, t.Metric)
}
