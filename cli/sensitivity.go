package cli

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"mpsearch/pipeline"
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
	noCache bool
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
	fs.StringVar(&s.metric, "metric", sensitivity.DefaultMetric, "sensitivity metric of the omega column: hessian, quadratic, fisher or direct")
	fs.StringVar(&s.metrics, "metrics", strings.Join(sensitivity.Metrics, ","), "metrics to compute (comma-separated); search verifies the optimum under each")
	fs.StringVar(&s.trace, "trace", sensitivity.TraceAuto, "trace method: auto (exact when the network allows it), hutchinson, hutch++, exact")
	fs.StringVar(&s.bits, "bits", "2,3,4,8", "candidate weight bit widths, comma-separated")
	fs.Uint64Var(&s.seed, "seed", 1, "random seed")
	fs.BoolVar(&s.eigen, "eigen", true, "also the top Hessian eigenvalue of every layer")
	fs.BoolVar(&s.noCache, "no-cache", false, "recompute even if a cached table exists")
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
	bits, err := parseBits(s.bits)
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
	for _, m := range append([]string{s.metric}, metrics...) {
		if !slices.Contains(sensitivity.Metrics, m) {
			return sensitivity.Config{}, usagef("unknown metric %q (want one of %s)", m, strings.Join(sensitivity.Metrics, ", "))
		}
	}
	switch s.trace {
	case sensitivity.TraceAuto, sensitivity.TraceExact, sensitivity.TraceHutchinson, sensitivity.TraceHutchPP, sensitivity.TraceNone:
	default:
		return sensitivity.Config{}, usagef("--trace: %q is not auto, exact, hutchinson, hutch++ or none", s.trace)
	}
	cfg := sensitivity.Config{Bits: bits, Metric: s.metric, Metrics: metrics, Trace: s.trace, Tol: s.tol, Probes: s.probes, Seed: s.seed, Eigen: s.eigen, Batch: mf.batch, Threads: mf.threads}
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
		pr.update(p.Done, p.Total, p.Detail)
	}
	return cfg, nil
}

func runSensitivity(e *env, args []string) error {
	var mf modelFlags
	var sf sensFlags
	fs := newFlags(e, "sensitivity", "sensitivity [--model M --data D [--labels L|none]] [--probes N] [--tol T] [--metric M] [--bits 2,3,4,8] [--seed S] [--out sens.yaml]")
	mf.register(fs, true)
	sf.register(fs)
	out := fs.String("out", "", "write the table to this YAML `file`")
	if err := parse(fs, args); err != nil {
		return err
	}
	pr := newProgress(e, "sensitivity")
	cfg, err := sf.config(e, &mf, pr)
	if err != nil {
		return err
	}
	in, err := mf.inputs()
	if err != nil {
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
	printTable(e, t)
	if *out != "" {
		if err := t.WriteFile(*out); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "sensitivity: wrote %s\n", *out)
	}
	return nil
}

// printTable prints the summary of a sensitivity table.
func printTable(e *env, t *sensitivity.Table) {
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	header := "layer\top\tparams\ttrace\t± stderr\ttrace/param\ttop eig"
	for _, b := range t.Bits {
		header += fmt.Sprintf("\tΩ@%d", b)
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
