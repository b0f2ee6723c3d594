package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"sync"
	"testing"

	"mpsearch/internal/fixture"
	"mpsearch/quant"
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

// TestSensitivityQuantizer: the weight rounding is part of the cache key
// (round to nearest keeps the key layout of earlier versions, at the
// current cacheVersion), and a table made
// with GPTQ codes measures those codes: its delta is their squared error
// and its direct metric differs from round-to-nearest's.
func TestSensitivityQuantizer(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("MPSEARCH_CACHE", dir)
	net := fixture.LeNet(t)
	in := &Inputs{Net: net, Calib: fixture.LeNetCalib(t).Subset(0, 64), ModelSHA256: "model", DataSHA256: "data"}
	cfg := sensitivity.Config{Bits: []int{2, 8}, Metrics: []string{sensitivity.MetricDirect}, Trace: sensitivity.TraceNone}
	key := func(version int) string {
		b, _ := json.Marshal(struct {
			Model, Data string
			Samples     int
			Cfg         sensitivity.Config
			Version     int
		}{in.ModelSHA256, in.DataSHA256, in.Calib.Len(), cfg, version})
		return HashBytes(b)[:32]
	}
	rtnCfg := cfg
	rtnCfg.Weights = quant.NewRoundToNearest(net)
	if got, want := cacheKey(in, rtnCfg), key(cacheVersion); got != want || cacheKey(in, cfg) != want {
		t.Errorf("round-to-nearest cache key: got %s (nil source %s); want the earlier versions' layout at version %d, %s", got, cacheKey(in, cfg), cacheVersion, want)
	}
	if v1 := key(1); cacheKey(in, cfg) == v1 {
		t.Errorf("cache key %s equals version 1's: tables with clamped direct values and no standard errors would be reused", v1)
	}
	ctx := context.Background()
	gptq, err := NewWeightCodes(ctx, net, in.Calib, quant.MethodGPTQ, cfg.Bits, 32, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	gCfg := cfg
	gCfg.Weights = gptq
	if cacheKey(in, gCfg) == cacheKey(in, rtnCfg) {
		t.Fatal("GPTQ and round-to-nearest tables share a cache key")
	}
	rt, _, err := Sensitivity(ctx, in, SensitivityRequest{Config: rtnCfg})
	if err != nil {
		t.Fatal(err)
	}
	gt, cached, err := Sensitivity(ctx, in, SensitivityRequest{Config: gCfg})
	if err != nil || cached {
		t.Fatalf("GPTQ table: cached %v, error %v; want a fresh table", cached, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("cache entries: got %d; want 2 (one per quantizer)", len(ents))
	}
	differ := 0
	for li, l := range gt.Layers {
		want, err := quant.LayerSquaredError(gptq, net, li, 2)
		if err != nil {
			t.Fatal(err)
		}
		if l.Delta[2] != want {
			t.Errorf("%s: delta at 2 bits %g; want the GPTQ codes' squared error %g", l.Name, l.Delta[2], want)
		}
		if l.Metrics[sensitivity.MetricDirect][2] != rt.Layers[li].Metrics[sensitivity.MetricDirect][2] {
			differ++
		}
	}
	if differ < 4 {
		t.Errorf("direct metric at 2 bits: GPTQ differs from round to nearest in %d of 5 layers; want at least 4", differ)
	}
	if rt.Quantizer != quant.MethodRTN || gt.Quantizer != quant.MethodGPTQ {
		t.Errorf("tables record quantizers %q and %q; want rtn and gptq", rt.Quantizer, gt.Quantizer)
	}
	// A table cached before tables recorded their rounding gets it from
	// its key.
	path := dir + "/sens-" + cacheKey(in, gCfg) + ".yaml"
	old := *gt
	old.Quantizer = ""
	if err := old.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	ct, cached, err := Sensitivity(ctx, in, SensitivityRequest{Config: gCfg})
	if err != nil || !cached {
		t.Fatalf("cached table without a quantizer: cached %v, error %v; want the cached table", cached, err)
	}
	if ct.Quantizer != quant.MethodGPTQ {
		t.Errorf("cached table without a quantizer: quantizer %q; want gptq from the cache key", ct.Quantizer)
	}
}
