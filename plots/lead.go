package plots

import (
	"fmt"
	"math"
	"strings"
)

// resourceCost is a point's cost of a budget's resource.
func resourceCost(p *Point, resource string) float64 {
	switch resource {
	case "latency":
		return p.LatencyMs
	case "size":
		return p.SizeBytes
	case "bops":
		return p.BOPs
	}
	return math.NaN()
}

// fitsBudgets reports whether p meets every budget (a cost unknown for a
// budgeted resource does not fit).
func (r *Report) fitsBudgets(p *Point) bool {
	for _, b := range r.Budgets {
		c := resourceCost(p, b.Resource)
		if !finite(c) || c > b.Limit*(1+1e-9) {
			return false
		}
	}
	return true
}

// bestUniform is the uniform configuration of the highest accuracy that
// meets every budget and keeps the fixed layers (nil when none is known).
func (r *Report) bestUniform() *Point {
	var best *Point
	for i := range r.Uniform {
		u := &r.Uniform[i]
		if u.ReferenceOnly || !finite(u.Accuracy) || !r.fitsBudgets(u) {
			continue
		}
		if best == nil || u.Accuracy > best.Accuracy {
			best = u
		}
	}
	return best
}

// leadText is the report's summary in a few sentences: the budgets, the
// returned configuration and its accuracy against the best uniform
// configuration that fits and against float.
func leadText(r *Report) []string {
	c := r.Chosen
	if c == nil {
		return nil
	}
	var out []string
	if len(r.Budgets) > 0 {
		var bs []string
		for _, b := range r.Budgets {
			bs = append(bs, fmt.Sprintf("%s ≤ %s", b.Resource, fmtQuantity(b.Limit, b.Unit)))
		}
		out = append(out, "Budget: "+strings.Join(bs, ", ")+".")
	}
	ret := fmt.Sprintf("Returned: %s (weights %s)", c.Label, bitHistogram(c.Bits))
	for _, b := range r.Budgets {
		if v := resourceCost(c, b.Resource); finite(v) {
			ret += fmt.Sprintf(", %s %s (%.0f%% of the budget)", b.Resource, fmtQuantity(v, b.Unit), 100*v/b.Limit)
		}
	}
	out = append(out, ret+".")
	if !finite(c.Accuracy) {
		return out
	}
	acc := "Test accuracy " + fmtPct(c.Accuracy)
	if u := r.bestUniform(); u != nil {
		acc += fmt.Sprintf("; best uniform that fits, %s: %s (%+.2f points)", u.Label, fmtPct(u.Accuracy), 100*(c.Accuracy-u.Accuracy))
	} else {
		acc += "; no uniform configuration that keeps the fixed layers fits the budget"
	}
	if finite(r.FloatAccuracy) {
		acc += fmt.Sprintf("; float: %s (%+.2f points)", fmtPct(r.FloatAccuracy), 100*(c.Accuracy-r.FloatAccuracy))
	}
	return append(out, acc+".")
}
