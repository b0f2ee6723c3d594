package pipeline

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"mpsearch/internal/fixture"
	"mpsearch/quant"
	"mpsearch/sensitivity"
)

// equalizeTol bounds the change of a logit (relative to the largest) when
// the float64 network is equalized: float64 rounding only (equalize's own
// tests use the same bound).
const equalizeTol = 1e-9

// TestEqualizeSensitivity: Equalize keeps the float function and the
// layers, changes the weights (so net.Model, which the export writes),
// and equalization is part of the cache key and recorded in the table (a
// table measured the other way is refused, naming --equalize).
func TestEqualizeSensitivity(t *testing.T) {
	t.Setenv("MPSEARCH_CACHE", t.TempDir())
	ctx := context.Background()
	net := fixture.LeNet(t)
	eq, rep, err := Equalize(net)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Pairs) != 4 || len(eq.Layers()) != len(net.Layers()) {
		t.Fatalf("%s, %d layers; want 4 pairs and %d layers", rep, len(eq.Layers()), len(net.Layers()))
	}
	calib := fixture.LeNetCalib(t).Subset(0, 64)
	x, _ := calib.Batch(0, 64)
	ya, err := net.Infer(ctx, x)
	if err != nil {
		t.Fatal(err)
	}
	yb, err := eq.Infer(ctx, x)
	if err != nil {
		t.Fatal(err)
	}
	scale, diff := 0.0, 0.0
	for i := range ya.Data {
		scale, diff = math.Max(scale, math.Abs(ya.Data[i])), math.Max(diff, math.Abs(ya.Data[i]-yb.Data[i]))
	}
	if diff > equalizeTol*scale {
		t.Errorf("equalized logits differ by %g (largest %g); want within %g relative", diff, scale, equalizeTol)
	}
	w0 := net.Model.Graph.Initializers[net.Params()[net.Layers()[0].Weight].Name]
	w1 := eq.Model.Graph.Initializers[eq.Params()[eq.Layers()[0].Weight].Name]
	same := true
	for i := range w0.Data {
		same = same && w0.Data[i] == w1.Data[i]
	}
	if same {
		t.Error("the equalized network's Model holds the original first weight; want the equalized one (the export writes Model)")
	}
	tables := map[bool]*sensitivity.Table{}
	keys := map[bool]string{}
	for _, e := range []bool{false, true} {
		in := &Inputs{Net: net, Calib: calib, ModelSHA256: "model", DataSHA256: "data", Equalized: e}
		if e {
			in.Net = eq
		}
		src, err := NewWeightSource(ctx, in.Net, calib, WeightSpec{Method: quant.MethodRTN}, []int{4, 8}, 32, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg := sensitivity.Config{Bits: []int{4, 8}, Metrics: []string{sensitivity.MetricDirect}, Trace: sensitivity.TraceNone, Weights: src}
		keys[e] = cacheKey(in, cfg)
		if tables[e], _, err = Sensitivity(ctx, in, SensitivityRequest{Config: cfg}); err != nil {
			t.Fatal(err)
		}
		if tables[e].Equalized != e {
			t.Errorf("table computed with equalization %t records %t", e, tables[e].Equalized)
		}
	}
	if keys[false] == keys[true] {
		t.Error("tables with and without equalization share a cache key")
	}
	if err := tables[false].CheckEqualized("sens.yaml", true); !errors.Is(err, sensitivity.ErrTable) || !strings.Contains(err.Error(), "--equalize=false") {
		t.Errorf("table without equalization for a job with it: %v; want a refusal naming --equalize=false", err)
	}
	if err := tables[true].CheckEqualized("sens.yaml", true); err != nil {
		t.Errorf("table with equalization for a job with it: %v", err)
	}
}
