package hessian

import (
	"context"
	"errors"
	"reflect"
	"testing"
)

// cancellingOracle cancels its context once it has served after products,
// so that estimators are stopped from inside any of their loops (sketch,
// pilot, residual probes, eigen iterations).
type cancellingOracle struct {
	Oracle
	after, served int
	cancelled     bool
	callsAfter    int // HVP calls after the one that cancelled
	cancel        context.CancelFunc
}

func (c *cancellingOracle) HVP(ctx context.Context, v, hv []float64, k int) error {
	if c.cancelled {
		c.callsAfter++
	}
	c.served += k
	if c.served >= c.after && !c.cancelled {
		c.cancelled = true
		c.cancel()
	}
	return c.Oracle.HVP(ctx, v, hv, k)
}

// TestCancelInsideEveryLoop cancels after 1, 9 and 40 products: inside
// Hutch++'s pilot (8 products), its sketch (2·SketchSize) and the residual
// probes, and inside the eigen iterations. Each estimator must return an
// error wrapping context.Canceled, no result, and request no product after
// the one that cancelled.
func TestCancelInsideEveryLoop(t *testing.T) {
	a := calibrationMatrix()
	base := mustOracle(t, a, testBlocks)
	run := map[string]func(ctx context.Context, o Oracle) (any, error){
		"hutchinson": func(ctx context.Context, o Oracle) (any, error) {
			return Hutchinson(ctx, o, Options{Seed: 1, Tol: 1e-9, MaxProbes: 1000, ProbesPerPass: 1})
		},
		"hutch++ global": func(ctx context.Context, o Oracle) (any, error) {
			return HutchPlusPlus(ctx, o, PPOptions{Options: Options{Seed: 1, Tol: 1e-9, MaxProbes: 1000, ProbesPerPass: 1}, SketchSize: 8})
		},
		"hutch++ per-block": func(ctx context.Context, o Oracle) (any, error) {
			return HutchPlusPlus(ctx, o, PPOptions{Options: Options{Seed: 1, Tol: 1e-9, MaxProbes: 1000, ProbesPerPass: 1}, SketchSize: 8, Deflation: DeflatePerBlock})
		},
		"power": func(ctx context.Context, o Oracle) (any, error) {
			return TopEigenvalues(ctx, o, EigenOptions{Seed: 1, Tol: 1e-14, MaxIter: 1000})
		},
		"lanczos": func(ctx context.Context, o Oracle) (any, error) {
			return TopEigenvalues(ctx, o, EigenOptions{Seed: 1, Method: Lanczos, Tol: 1e-14, MaxIter: 1000})
		},
	}
	for name, f := range run {
		for _, after := range []int{1, 9, 40} {
			ctx, cancel := context.WithCancel(context.Background())
			o := &cancellingOracle{Oracle: base, after: after, cancel: cancel}
			res, err := f(ctx, o)
			cancel()
			if !o.cancelled {
				// Finished in fewer products (only the later cut points).
				if err != nil || after == 1 {
					t.Errorf("%s: finished after %d products with error %v; want a result", name, o.served, err)
				}
				continue
			}
			if !errors.Is(err, context.Canceled) || !reflect.ValueOf(res).IsNil() {
				t.Errorf("%s cancelled after %d products: got result %v, error %v; want no result and an error wrapping context.Canceled", name, after, !reflect.ValueOf(res).IsNil(), err)
			}
			if o.callsAfter > 0 {
				t.Errorf("%s cancelled after %d products: %d oracle calls after the cancel; want none", name, after, o.callsAfter)
			}
		}
	}
}
