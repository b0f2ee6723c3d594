package pipeline

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Resources that budgets apply to.
const (
	Latency = "latency" // milliseconds
	Size    = "size"    // bytes
	BOPs    = "bops"    // bit operations per sample
)

// ErrBudget is wrapped by errors about budget strings.
var ErrBudget = errors.New("invalid budget")

// BudgetKind says how a budget's value is to be read.
type BudgetKind int

const (
	// Absolute is a value in the resource's base unit (ms, bytes, BOPs).
	Absolute BudgetKind = iota
	// Relative is a multiple of the uniform 8-bit model's cost ("0.6x").
	Relative
	// Fraction is HAWQ's way: a fraction of the distance from the
	// all-lowest-bit cost to the all-highest-bit cost ("50%").
	Fraction
)

// Budget is a parsed budget on one resource.
type Budget struct {
	Resource string
	Kind     BudgetKind
	Value    float64
	Text     string // as the user wrote it
}

// ParseBudget reads a budget for resource: absolute with a unit
// (latency: us, ms, s; size: B, KB, MB, GB, KiB, MiB, GiB; bops: BOPs,
// KBOPs, MBOPs, GBOPs, TBOPs), a plain number in base units (ms, bytes,
// BOPs), "0.6x" relative to uniform 8-bit, or "50%" of the way from the
// all-lowest-bit to the all-highest-bit cost.
func ParseBudget(resource, s string) (Budget, error) {
	b := Budget{Resource: resource, Text: s}
	t := strings.TrimSpace(s)
	bad := func(why string) (Budget, error) {
		return b, fmt.Errorf("%s budget %q: %s: %w", resource, s, why, ErrBudget)
	}
	if t == "" {
		return bad("empty")
	}
	lower := strings.ToLower(t)
	switch {
	case strings.HasSuffix(t, "%"):
		v, err := strconv.ParseFloat(strings.TrimSpace(t[:len(t)-1]), 64)
		if err != nil || v < 0 || v > 100 || math.IsNaN(v) {
			return bad("want a percentage from 0% to 100%")
		}
		b.Kind, b.Value = Fraction, v/100
		return b, nil
	case strings.HasSuffix(lower, "x") && !strings.HasSuffix(lower, "ops"):
		v, err := strconv.ParseFloat(strings.TrimSpace(t[:len(t)-1]), 64)
		if err != nil || !(v > 0) || math.IsInf(v, 0) {
			return bad("want a positive multiple of the uniform 8-bit cost, such as 0.6x")
		}
		b.Kind, b.Value = Relative, v
		return b, nil
	}
	// Split number and unit.
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') && t[i-1] != '.' {
		i--
	}
	num, unit := strings.TrimSpace(t[:i]), strings.TrimSpace(t[i:])
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || !(v > 0) || math.IsInf(v, 0) {
		return bad("want a positive number with a unit")
	}
	var units map[string]float64
	switch resource {
	case Latency:
		units = map[string]float64{"": 1, "ms": 1, "us": 1e-3, "µs": 1e-3, "s": 1e3}
	case Size:
		units = map[string]float64{"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}
	case BOPs:
		units = map[string]float64{"": 1, "bops": 1, "kbops": 1e3, "mbops": 1e6, "gbops": 1e9, "tbops": 1e12}
	default:
		return bad("unknown resource")
	}
	f, ok := units[strings.ToLower(unit)]
	if !ok {
		keys := map[string]string{Latency: "us, ms, s", Size: "B, KB, MB, GB, KiB, MiB, GiB", BOPs: "BOPs, KBOPs, MBOPs, GBOPs, TBOPs"}
		return bad(fmt.Sprintf("unknown unit %q (want %s, a multiple like 0.6x, or a percentage)", unit, keys[resource]))
	}
	b.Kind, b.Value = Absolute, v*f
	return b, nil
}

// Resolve turns the budget into an absolute limit given the costs of the
// uniform 8-bit model, of the all-lowest and of the all-highest bit widths.
func (b Budget) Resolve(uniform8, lowest, highest float64) float64 {
	switch b.Kind {
	case Relative:
		return b.Value * uniform8
	case Fraction:
		return lowest + b.Value*(highest-lowest)
	}
	return b.Value
}
