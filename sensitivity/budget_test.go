package sensitivity

import (
	"context"
	"strings"
	"testing"
)

// TestDirectBudget: the direct metric on the float engine is skipped over
// its budget when the omega metric was left to its default, and the omega
// column is then the fisher metric (the default metric since issue 14's
// evidence on three models); an asked-for direct omega, and the integer
// engine, are never skipped.
func TestDirectBudget(t *testing.T) {
	net, ds := loadFixture(t)
	for _, tc := range []struct {
		name       string
		budget     float64
		metric     string
		engine     string
		wantDirect bool
	}{
		{"default budget", 0, "", EngineFloat, true},
		{"no bound", -1, "", EngineFloat, true},
		{"over a tiny budget", 1e6, "", EngineFloat, false},
		{"asked-for direct ignores the budget", 1e6, MetricDirect, EngineFloat, true},
		{"integer engine ignores the budget", 1e6, "", EngineInt, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var notes []string
			cfg := Config{Metric: tc.metric, Metrics: []string{MetricFisher, MetricDirect}, DirectBudget: tc.budget, DirectEngine: tc.engine,
				Bits: []int{4, 8}, Trace: TraceNone,
				Progress: func(p Progress) {
					if p.Stage == "direct" && strings.HasPrefix(p.Detail, "skipped") {
						notes = append(notes, p.Detail)
					}
				}}
			tab, err := Compute(context.Background(), net, ds, cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, hasDirect := tab.Layers[0].Metrics[MetricDirect]
			if hasDirect != tc.wantDirect {
				t.Errorf("direct metric present: got %v; want %v", hasDirect, tc.wantDirect)
			}
			// The omega column: the asked-for metric, else DefaultMetric,
			// else (direct skipped) fisher, the alternative computed.
			wantOmega := tc.metric
			if wantOmega == "" {
				wantOmega = DefaultMetric
			}
			if !tc.wantDirect {
				wantOmega = MetricFisher
			}
			if tab.Metric != wantOmega {
				t.Errorf("omega metric: got %q; want %q", tab.Metric, wantOmega)
			}
			for _, l := range tab.Layers {
				for b, v := range l.Metrics[wantOmega] {
					if l.Omega[b] != v {
						t.Errorf("%s at %d bits: omega %g; want the %s value %g", l.Name, b, l.Omega[b], wantOmega, v)
					}
				}
			}
			if wantNotes := map[bool]int{true: 0, false: 1}[tc.wantDirect]; len(notes) != wantNotes {
				t.Errorf("skip notes: got %q; want %d", notes, wantNotes)
			}
		})
	}
}
