package sensitivity

import (
	"errors"
	"fmt"
	"slices"

	"mpsearch/network"
)

// DefaultDirectBudget is Config.DirectBudget's default: 10^13
// multiply-adds of float-engine forward passes, a few minutes on two
// cores. It bounds the direct metric only where it runs on the float
// engine (the integer engine refused the model, or Config.DirectEngine is
// EngineFloat); on the integer engine, with its prefix reuse, the direct
// metric is always measured. ViT-B/16 with 32 images (200 cells × 1.75·10^10
// multiply-adds × 32 ≈ 1.1·10^14) is over it; every Fashion-MNIST model
// is far under it (the VGG-style model: 28 cells × 2.2·10^7 × 1024 ≈
// 6.3·10^11).
const DefaultDirectBudget = 1e13

// errDirectSkipped is directMetric's answer when the float-engine direct
// metric is over the budget and the omega metric was not asked for.
var errDirectSkipped = errors.New("direct metric over the budget")

// directOverBudget returns why the float-engine direct metric is skipped,
// or "" when it is measured: its predicted cost, one forward pass over the
// samples per (layer, width) cell of the whole table (not only this
// shard's, so every shard decides alike), is over cfg.DirectBudget, and
// the omega metric was left to its default (an asked-for direct omega is
// always measured) with another metric to take its place.
func directOverBudget(net *network.Network, samples int, cfg *Config) string {
	budget := cfg.DirectBudget
	if budget == 0 {
		budget = DefaultDirectBudget
	}
	alt := directAlternative(cfg)
	if budget < 0 || cfg.metricAsked || alt == "" {
		return ""
	}
	var macs int64
	for _, l := range net.Layers() {
		macs += l.MACs
	}
	cells := len(net.Layers()) * len(cfg.Bits)
	cost := float64(cells) * float64(macs) * float64(samples)
	if cost <= budget {
		return ""
	}
	return fmt.Sprintf("skipped on the float engine: %d cells would take about %.2g multiply-adds (%d samples each), over the budget of %.2g; the omega metric is %s instead (--metric direct measures it)", cells, cost, samples, budget, alt)
}

// directAlternative is the metric that takes the omega column when the
// direct metric is skipped: fisher, else quadratic, among the metrics
// computed; "" when neither is.
func directAlternative(cfg *Config) string {
	for _, m := range []string{MetricFisher, MetricQuadratic} {
		if slices.Contains(cfg.Metrics, m) {
			return m
		}
	}
	return ""
}
