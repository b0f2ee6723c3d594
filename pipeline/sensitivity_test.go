package pipeline

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"

	"mpsearch/internal/fixture"
	"mpsearch/sensitivity"
)

// TestSensitivityCancelLeavesNoCache cancels a cached sensitivity run in
// the middle of its direct stage and checks that the error wraps
// context.Canceled and that the cache folder holds no entry, not even a
// temporary file; the same run not cancelled writes exactly one entry.
func TestSensitivityCancelLeavesNoCache(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("MPSEARCH_CACHE", dir)
	in := &Inputs{Net: fixture.LeNet(t), Calib: fixture.LeNetCalib(t).Subset(0, 32), ModelSHA256: "model", DataSHA256: "data"}
	cfg := sensitivity.Config{Bits: []int{2, 8}, Metrics: []string{sensitivity.MetricDirect}, Trace: sensitivity.TraceNone}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	cancelled := false
	cfg.Progress = func(p sensitivity.Progress) {
		if p.Stage == "direct" && p.Done >= 1 && p.Done < p.Total {
			once.Do(func() { cancelled = true; cancel() })
		}
	}
	_, _, err := Sensitivity(ctx, in, SensitivityRequest{Config: cfg})
	if !cancelled || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled %v, error %v; want a cancel mid-stage and an error wrapping context.Canceled", cancelled, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("cache after the cancel: got %d entries (%s...); want none", len(ents), ents[0].Name())
	}
	cfg.Progress = nil
	if _, cached, err := Sensitivity(context.Background(), in, SensitivityRequest{Config: cfg}); err != nil || cached {
		t.Fatalf("uncancelled run: cached %v, error %v; want a fresh table", cached, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("cache after a complete run: got %d entries; want 1", len(ents))
	}
}
