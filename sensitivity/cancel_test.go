package sensitivity

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// cancelBound is the bound (issue 9, item 6): a cancelled stage
// returns within one second.
const cancelBound = time.Second

// TestCancelMidStage cancels Compute from its progress callback once a
// stage has done its first cell (first: at its start, for the one-step
// ranges pass) and checks that it returns within
// cancelBound with an error wrapping context.Canceled, for every stage.
func TestCancelMidStage(t *testing.T) {
	net, ds := loadFixture(t)
	ds = ds.Subset(0, 128)
	cases := []struct {
		name, stage string
		cfg         Config
		first       int
	}{
		{"KL targets", "targets", Config{Loss: LossKL, Metrics: []string{MetricFisher}, Metric: MetricFisher, Trace: TraceNone}, 1},
		{"exact", "trace", Config{Metrics: []string{MetricHessian}, Metric: MetricHessian, Trace: TraceExact}, 1},
		{"hutchinson", "trace", Config{Metrics: []string{MetricHessian}, Metric: MetricHessian, Trace: TraceHutchinson, Tol: 1e-6}, 1},
		{"hutch++", "trace", Config{Metrics: []string{MetricHessian}, Metric: MetricHessian, Trace: TraceHutchPP, Tol: 1e-6}, 1},
		{"fisher", "fisher", Config{Metrics: []string{MetricFisher}, Metric: MetricFisher, Trace: TraceNone}, 1},
		{"quadratic", "quadratic", Config{Metrics: []string{MetricQuadratic}, Metric: MetricQuadratic, Trace: TraceNone}, 1},
		{"direct", "direct", Config{Metrics: []string{MetricDirect}, Metric: MetricDirect, Trace: TraceNone}, 1},
		{"integer ranges", "ranges", Config{Metrics: []string{MetricDirect}, Metric: MetricDirect, Trace: TraceNone}, 0},
		{"integer compile", "compile", Config{Metrics: []string{MetricDirect}, Metric: MetricDirect, Trace: TraceNone}, 1},
		{"direct float", "direct", Config{Metrics: []string{MetricDirect}, Metric: MetricDirect, Trace: TraceNone, DirectEngine: EngineFloat}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var once sync.Once
			var at time.Time
			cfg := c.cfg
			cfg.Batch = 32
			cfg.Progress = func(p Progress) {
				if p.Stage == c.stage && p.Done >= c.first && p.Done < p.Total {
					once.Do(func() { at = time.Now(); cancel() })
				}
			}
			tb, err := Compute(ctx, net, ds, cfg)
			took := time.Since(at)
			if at.IsZero() {
				t.Fatalf("stage %s never reported a first cell done; the test did not cancel (err %v)", c.stage, err)
			}
			if !errors.Is(err, context.Canceled) || tb != nil {
				t.Errorf("got table %v, error %v; want no table and an error wrapping context.Canceled", tb != nil, err)
			}
			if took > cancelBound {
				t.Errorf("returned %v after the cancel; want <= %v", took, cancelBound)
			}
		})
	}
}
