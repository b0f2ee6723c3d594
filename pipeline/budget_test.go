package pipeline

import (
	"errors"
	"math"
	"testing"
)

func TestParseBudget(t *testing.T) {
	for _, c := range []struct {
		res, s string
		kind   BudgetKind
		v      float64
	}{
		{Latency, "1.5ms", Absolute, 1.5},
		{Latency, "250us", Absolute, 0.25},
		{Latency, "2", Absolute, 2},
		{Size, "120KB", Absolute, 120e3},
		{Size, "2MiB", Absolute, 2 << 20},
		{Size, "4096", Absolute, 4096},
		{BOPs, "3.2GBOPs", Absolute, 3.2e9},
		{Latency, "0.6x", Relative, 0.6},
		{Size, "50%", Fraction, 0.5},
	} {
		b, err := ParseBudget(c.res, c.s)
		if err != nil {
			t.Errorf("ParseBudget(%s, %q): %v", c.res, c.s, err)
			continue
		}
		if b.Kind != c.kind || math.Abs(b.Value-c.v) > 1e-12*c.v {
			t.Errorf("ParseBudget(%s, %q): got kind %d value %g; want %d %g", c.res, c.s, b.Kind, b.Value, c.kind, c.v)
		}
	}
	for _, c := range []struct{ res, s string }{
		{Latency, "1.5KB"}, {Size, "12 parsecs"}, {Size, "-3KB"}, {Latency, "150%"}, {Latency, "0x"}, {Size, ""}, {BOPs, "fast"}, {Latency, "NaNms"},
	} {
		if _, err := ParseBudget(c.res, c.s); !errors.Is(err, ErrBudget) {
			t.Errorf("ParseBudget(%s, %q): got %v; want ErrBudget", c.res, c.s, err)
		}
	}
	b, _ := ParseBudget(Size, "50%")
	if got := b.Resolve(800, 200, 800); got != 500 {
		t.Errorf("50%% between 200 and 800: got %g; want 500", got)
	}
	b, _ = ParseBudget(Size, "0.5x")
	if got := b.Resolve(800, 200, 800); got != 400 {
		t.Errorf("0.5x of 800: got %g; want 400", got)
	}
}
