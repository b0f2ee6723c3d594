package plots

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
)

// ErrInvalidReport is wrapped by the errors Write and WriteFile return when
// the Report itself is unusable (nil, or a budget without a positive limit).
var ErrInvalidReport = errors.New("plots: invalid report")

// Report is everything the HTML report shows. Every slice is optional: a
// chart or table whose data is absent is left out. Floating-point fields
// documented as "NaN when unknown" may be NaN; Write never emits NaN into
// the page.
type Report struct {
	// Title heads the page; Model names the network (typically its path).
	Title, Model string
	// Generated is caller-supplied provenance text (for instance a timestamp
	// and the command line). Write never reads the clock, so equal Reports
	// give byte-identical HTML.
	Generated string
	// Method is the search method that chose the configuration: "ilp" or "rl".
	Method string

	// Layers are the quantizable layers in network order; Bits are the
	// chosen weight bits.
	Layers []Layer
	// Front holds the proxy's optima (the ILP on the search input,
	// unverified): drawn as "proxy optimum, unverified", hidden until its
	// legend entry is clicked.
	Front []Point
	// MeasuredFront is the front of what the search returns: at each
	// budget of the sweep, the verified and refined configuration.
	MeasuredFront []Point
	// FrontBudgets are the swept resource's budgets of MeasuredFront's
	// points (same order; optional), listed in the front's table.
	FrontBudgets []float64
	// FrontResource is the resource the fronts were swept in ("latency",
	// "size" or "bops"; empty: the first budget's, else size): the
	// trade-off charts are drawn against it alone. FrontNote says which
	// other budgets were held fixed ("" when none).
	FrontResource, FrontNote string
	// FloatAccuracy is the float model's accuracy on the same data as the
	// points' (NaN when unknown).
	FloatAccuracy float64
	// FloatNodes are the nodes the integer engine runs in float between
	// quantized tensors ("name (Op)"); FloatNodesNote explains an empty
	// list when the engine could not be planned.
	FloatNodes     []string
	FloatNodesNote string
	// RL are configurations found by the reinforcement-learning search.
	RL []Point
	// LearningCurve is the RL search's best objective per episode.
	LearningCurve []CurvePoint
	// Uniform are the uniform-bit-width baselines (8/4/3/2 bits).
	Uniform []Point
	// Candidates are the configurations measured by the verifier: proxy
	// objective and measured loss side by side.
	Candidates []Point
	// Chosen is the returned configuration, or nil.
	Chosen *Point
	// Budgets are the enforced resource budgets and the chosen
	// configuration's use of them.
	Budgets []Budget
	// Latency compares predicted and measured latency per configuration.
	Latency []LatencyCheck
	// Kernels are measured integer-kernel throughputs.
	Kernels []KernelRate
}

// Layer is one quantizable layer.
type Layer struct {
	Name, Op string
	Params   int64 // weight count
	// Bits and ABits are the chosen weight and activation bit widths
	// (0 when unknown).
	Bits, ABits int
	// Omega is the sensitivity per weight bit width, signed (a measured
	// loss decrease is negative); NaN values are shown as missing.
	// OmegaStderr is its standard error per width (absent or NaN: none).
	Omega       map[int]float64
	OmegaStderr map[int]float64
	// Trace is the Hessian trace Tr(H_i) and TraceStderr its standard error
	// (NaN when unknown).
	Trace, TraceStderr float64
	// LatencyMs and SizeBytes are the predicted costs at the chosen bits
	// (NaN when unknown).
	LatencyMs, SizeBytes float64
}

// Point is one bit-width configuration and its predicted and measured
// figures.
type Point struct {
	Label string
	// Bits are the weight bits per layer, in the order of Report.Layers.
	Bits []int
	// Objective is the proxy: the sum of Omega over layers.
	Objective float64
	// LatencyMs, SizeBytes and BOPs are the predicted costs (NaN when unknown).
	LatencyMs, SizeBytes, BOPs float64
	// Accuracy is the top-1 accuracy as a fraction in [0, 1] and
	// MeasuredLoss the loss of the real quantized model; NaN when unknown.
	Accuracy, MeasuredLoss float64
	// ReferenceOnly marks a configuration that overrides a fixed layer
	// (a plain uniform one when the ends are kept at 8 bits).
	ReferenceOnly bool
}

// CurvePoint is the RL search's progress after an episode.
type CurvePoint struct {
	Episode int
	// Best is the best objective found so far; Gap is the relative gap
	// (Best-opt)/opt to the ILP optimum, NaN when the optimum is unknown.
	Best, Gap float64
}

// Budget is one enforced resource budget.
type Budget struct {
	// Resource names the budget ("latency", "size", "bops"); Unit is the
	// unit of Limit and Used ("ms", "bytes", "BOPs").
	Resource, Unit string
	// Limit must be positive and finite; Used must be finite and >= 0.
	Limit, Used float64
}

// LatencyCheck compares the cost model's prediction with a measurement.
type LatencyCheck struct {
	Label                   string
	PredictedMs, MeasuredMs float64
	// Baseline marks the configuration the report's speed-ups are
	// measured against (uniform 8 bits); at most one check has it.
	Baseline bool
}

// KernelRate is the measured throughput of an integer GEMM kernel with
// Bits-bit weights on an M×K by K×N product.
type KernelRate struct {
	Bits, M, K, N int
	GOPS          float64
}

// Write writes r as one self-contained HTML page to w. The page embeds the
// ECharts library and references no external resource. Equal Reports give
// byte-identical output.
func Write(w io.Writer, r *Report) error {
	if err := validate(r); err != nil {
		return err
	}
	page, err := buildPage(r)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, page); err != nil {
		return fmt.Errorf("plots: render page: %w", err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("plots: write report: %w", err)
	}
	return nil
}

// WriteFile writes the report to path atomically: it writes a temporary
// file in the same directory and renames it over path, so a reader never
// sees a partial report and a failure leaves any previous file intact.
func WriteFile(path string, r *Report) (err error) {
	var buf bytes.Buffer
	if err := Write(&buf, r); err != nil {
		return err
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return fmt.Errorf("plots: create report %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("plots: write report %s: %w", path, err)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("plots: write report %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("plots: write report %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("plots: write report %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("plots: write report %s: %w", path, err)
	}
	return nil
}

func validate(r *Report) error {
	if r == nil {
		return fmt.Errorf("%w: nil Report", ErrInvalidReport)
	}
	for _, b := range r.Budgets {
		if !(b.Limit > 0) || math.IsInf(b.Limit, 0) {
			return fmt.Errorf("%w: budget %q has limit %v; want a positive finite limit", ErrInvalidReport, b.Resource, b.Limit)
		}
		if !(b.Used >= 0) || math.IsInf(b.Used, 0) {
			return fmt.Errorf("%w: budget %q has use %v; want a finite value >= 0", ErrInvalidReport, b.Resource, b.Used)
		}
	}
	for _, l := range r.Layers {
		if l.Params < 0 {
			return fmt.Errorf("%w: layer %q has %d params; want >= 0", ErrInvalidReport, l.Name, l.Params)
		}
	}
	return nil
}
