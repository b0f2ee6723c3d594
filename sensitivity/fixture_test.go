package sensitivity

import (
	"bytes"
	"context"
	"math"
	"slices"
	"strings"
	"testing"

	"mpsearch/dataset"
	"mpsearch/internal/fixture"
	"mpsearch/network"
)

// Reference values of testdata/fmnist-lenet/reference.json,
// "hessian_first256": the loss is the mean cross-entropy over the 256
// shipped images; PyTorch 1.13, 1000 Rademacher probes.
var fixture256 = []struct {
	node                  string
	hutch, hutchSE, exact float64
	topConverged          float64
}{
	{"/conv1/Conv", 69.25455825876867, 1.901538535432917, 68.48328792788142, 37.54053497314453},
	{"/conv2/Conv", 33.05241845098133, 0.6379685791262459, 33.14465871097657, 5.31706428527832},
	{"/fc1/Gemm", 22.44280980350278, 0.4806523116298661, 22.854248936963764, 2.510459423065185},
	{"/fc2/Gemm", 10.0387, 0.3631, 9.7628, 1.47989},
	{"/fc3/Gemm", 31.6406, 0.8243, 32.1574, 9.91148},
}

// The fixture's calibration loss over the 256 images (reference.json).
const fixtureLoss256 = 0.1343218982219696

// Tolerances. exactRel: the reference is PyTorch float32 with float64 dot
// products, we are float64 throughout; the logits agree to ~1e-5 relative,
// so traces agree to ~1e-4. eigRel: the 2%.
const (
	exactRel = 2e-4
	eigRel   = 0.02
)

func loadFixture(t testing.TB) (*network.Network, *dataset.Dataset) {
	t.Helper()
	return fixture.LeNet(t), fixture.LeNetCalib(t)
}

func TestFixtureLoss(t *testing.T) {
	net, ds := loadFixture(t)
	o, err := NewOracle(context.Background(), net, ds, OracleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := o.Loss(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(l-fixtureLoss256) > 1e-6 {
		t.Errorf("calibration loss: got %.8f; want %.8f (reference.json)", l, fixtureLoss256)
	}
}

func TestFixtureExactTraces(t *testing.T) {
	net, ds := loadFixture(t)
	if ok, why := net.PiecewiseLinear(); !ok {
		t.Fatalf("LeNet should qualify for exact traces: %s", why)
	}
	o, err := NewOracle(context.Background(), net, ds, OracleOptions{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := o.GGNTraces(context.Background(), ds.Len(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, ref := range fixture256 {
		if math.Abs(tr[i]-ref.exact) > exactRel*ref.exact {
			t.Errorf("%s exact trace: got %.6f; want %.6f (reference exact_trace_fisher_ggn)", ref.node, tr[i], ref.exact)
		}
	}
}

func TestFixtureHutchinsonAndEigen(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	net, ds := loadFixture(t)
	cfg := Config{Trace: TraceHutchinson, Tol: 0.02, Probes: 600, Seed: 1, Eigen: true, Metrics: []string{MetricHessian}, Metric: MetricHessian, Threads: 2}
	tab, err := Compute(context.Background(), net, ds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, ref := range fixture256 {
		l := tab.Layers[i]
		se := math.Hypot(l.TraceStderr, ref.hutchSE)
		if math.Abs(l.Trace-ref.hutch) > 3*se {
			t.Errorf("%s Hutchinson trace: got %.3f ± %.3f; want %.3f ± %.3f (within 3 combined standard errors)", ref.node, l.Trace, l.TraceStderr, ref.hutch, ref.hutchSE)
		}
		if math.Abs(l.Trace-ref.exact) > 3*l.TraceStderr+exactRel*ref.exact {
			t.Errorf("%s Hutchinson trace %.3f ± %.3f is more than 3 standard errors from the exact %.3f", ref.node, l.Trace, l.TraceStderr, ref.exact)
		}
		if l.TraceStderr > 0.021*math.Abs(l.Trace) && tab.Probes < cfg.Probes {
			t.Errorf("%s: stopped at relative error %.3f above the tolerance", ref.node, l.TraceStderr/l.Trace)
		}
		if math.Abs(l.TopEigenvalue-ref.topConverged) > eigRel*ref.topConverged {
			t.Errorf("%s top eigenvalue: got %.5f; want %.5f within 2%%", ref.node, l.TopEigenvalue, ref.topConverged)
		}
	}
}

func TestComputeDeterministic(t *testing.T) {
	net, ds := loadFixture(t)
	ds = ds.Subset(0, 64)
	cfg := Config{Trace: TraceHutchinson, Probes: 20, Tol: 1e-9, Seed: 42, Bits: []int{2, 4, 8}}
	var out [][]byte
	for _, threads := range []int{1, 2} {
		cfg.Threads = threads
		cfg.Batch = 32
		tab, err := Compute(context.Background(), net, ds, cfg)
		if err != nil {
			t.Fatal(err)
		}
		b, err := tab.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	if !bytes.Equal(out[0], out[1]) {
		t.Errorf("tables differ between runs with the same seed:\n%s\n---\n%s", out[0], out[1])
	}
	// The network's weights are untouched by the direct metric.
	net2, _ := loadFixture(t)
	for i, p := range net.Params() {
		for j, v := range p.Value.Data {
			if v != net2.Params()[i].Value.Data[j] {
				t.Fatalf("parameter %s changed by Compute", p.Name)
			}
		}
	}
}

// TestFixtureHutchPlusPlus: the variance-reduced estimator reaches the
// tolerance and its traces agree with the exact ones within 3 standard
// errors.
func TestFixtureHutchPlusPlus(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	net, ds := loadFixture(t)
	cfg := Config{Trace: TraceHutchPP, Tol: 0.02, Probes: 2000, Seed: 3, Metrics: []string{MetricHessian}, Metric: MetricHessian, Threads: 2}
	tab, err := Compute(context.Background(), net, ds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, ref := range fixture256 {
		l := tab.Layers[i]
		if l.TraceStderr > 0.02*l.Trace*1.0001 {
			t.Errorf("%s: relative standard error %.4f above the 0.02 tolerance", ref.node, l.TraceStderr/l.Trace)
		}
		if math.Abs(l.Trace-ref.exact) > 3*l.TraceStderr+exactRel*ref.exact {
			t.Errorf("%s Hutch++ trace %.3f ± %.3f is more than 3 standard errors from the exact %.3f", ref.node, l.Trace, l.TraceStderr, ref.exact)
		}
	}
}

// TestTraceBudget checks --trace auto's budget on the fixture LeNet
// (exact traces: 30 pass units × 256 samples × its multiply-adds, about
// 3·10^9): under the budget the traces and the hessian metric are there;
// over it the table has no traces (trace none), no hessian metric, and one
// progress line says why; an omega metric of hessian ignores the budget.
func TestTraceBudget(t *testing.T) {
	net, ds := loadFixture(t)
	for _, tc := range []struct {
		name        string
		budget      float64
		metric      string
		wantHessian bool
	}{
		{"default budget", 0, MetricDirect, true},
		{"no bound", -1, MetricDirect, true},
		{"over a tiny budget", 1e6, MetricDirect, false},
		{"hessian omega ignores the budget", 1e6, MetricHessian, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var notes []string
			cfg := Config{Metric: tc.metric, Metrics: []string{MetricHessian, MetricFisher}, TraceBudget: tc.budget, Bits: []int{4, 8},
				Progress: func(p Progress) {
					if p.Stage == "trace" && strings.HasPrefix(p.Detail, "skipped") {
						notes = append(notes, p.Detail)
					}
				}}
			tab, err := Compute(context.Background(), net, ds, cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, hasH := tab.Layers[0].Metrics[MetricHessian]
			if hasH != tc.wantHessian {
				t.Errorf("hessian metric present: got %v; want %v", hasH, tc.wantHessian)
			}
			if _, ok := tab.Layers[0].Metrics[MetricFisher]; !ok {
				t.Error("fisher metric missing")
			}
			if tc.wantHessian != (tab.Trace != TraceNone) || tc.wantHessian != (tab.Layers[0].Trace > 0) {
				t.Errorf("trace method %q, first trace %g; want traces computed = %v", tab.Trace, tab.Layers[0].Trace, tc.wantHessian)
			}
			if wantNotes := map[bool]int{true: 0, false: 1}[tc.wantHessian]; len(notes) != wantNotes {
				t.Errorf("skip notes: got %q; want %d", notes, wantNotes)
			}
		})
	}
}

// TestEigenBudget checks that the top eigenvalues obey the trace budget
// on the fixture LeNet with 64 samples (up to 600 pass units × 64 × its
// multiply-adds, about 1.5·10^10): within it they are computed; over a tiny
// budget they are skipped with one note; EigenAlways (an explicit --eigen)
// computes them anyway, to the same values.
func TestEigenBudget(t *testing.T) {
	net, ds := loadFixture(t)
	ds = ds.Subset(0, 64)
	var want []float64
	for _, tc := range []struct {
		name      string
		budget    float64
		always    bool
		wantEigen bool
	}{
		{"default budget", 0, false, true},
		{"over a tiny budget", 1e6, false, false},
		{"explicit over a tiny budget", 1e6, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var notes []string
			cfg := Config{Metric: MetricFisher, Metrics: []string{MetricFisher}, Trace: TraceNone, Eigen: true, EigenAlways: tc.always,
				TraceBudget: tc.budget, Bits: []int{4, 8},
				Progress: func(p Progress) {
					if p.Stage == "eigen" && strings.HasPrefix(p.Detail, "skipped") {
						notes = append(notes, p.Detail)
					}
				}}
			tab, err := Compute(context.Background(), net, ds, cfg)
			if err != nil {
				t.Fatal(err)
			}
			var got []float64
			for _, l := range tab.Layers {
				got = append(got, l.TopEigenvalue)
			}
			if !tc.wantEigen {
				for i, v := range got {
					if v != 0 {
						t.Errorf("layer %d top eigenvalue %g; want none (skipped)", i, v)
					}
				}
				if len(notes) != 1 {
					t.Errorf("skip notes: got %q; want 1", notes)
				}
				return
			}
			if len(notes) != 0 {
				t.Errorf("skip notes: got %q; want none", notes)
			}
			if want == nil {
				want = got
				for i, v := range got {
					if v <= 0 {
						t.Errorf("layer %d top eigenvalue %g; want > 0 (a Gauss-Newton block of a trained layer)", i, v)
					}
				}
			} else if !slices.Equal(got, want) {
				t.Errorf("top eigenvalues %v; want %v (the default budget's)", got, want)
			}
		})
	}
}
