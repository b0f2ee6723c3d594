package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"mpsearch/internal/fixture"
	"mpsearch/quant"
	"mpsearch/sensitivity"
)

// TestSensitivityActCalib: the activation calibration is part of the
// cache key (absent from the key's JSON for minmax, so earlier keys stay
// valid), recorded in the table (absent for minmax), reaches the direct
// metric (kl's clipped ranges change its values), and a table is refused
// for a job with another calibration in one line naming --act-calib.
func TestSensitivityActCalib(t *testing.T) {
	t.Setenv("MPSEARCH_CACHE", t.TempDir())
	ctx := context.Background()
	net := fixture.LeNet(t)
	in := &Inputs{Net: net, Calib: fixture.LeNetCalib(t).Subset(0, 64), ModelSHA256: "model", DataSHA256: "data"}
	calibs := []quant.ActCalib{{}, {Method: quant.CalibKL}}
	keys := map[string]bool{}
	tables := make([]*sensitivity.Table, len(calibs))
	for i, c := range calibs {
		cfg := sensitivity.Config{Bits: []int{2, 8}, Metrics: []string{sensitivity.MetricDirect}, Trace: sensitivity.TraceNone, ActCalib: c}
		b, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if has := strings.Contains(string(b), "ActCalib"); has != (c != quant.ActCalib{}) {
			t.Errorf("%s: the config's JSON (the cache key's) mentions ActCalib: %t; want %t", c, has, c != quant.ActCalib{})
		}
		keys[cacheKey(in, cfg)] = true
		if tables[i], _, err = Sensitivity(ctx, in, SensitivityRequest{Config: cfg}); err != nil {
			t.Fatal(err)
		}
		if want := map[bool]string{true: "", false: c.String()}[c == quant.ActCalib{}]; tables[i].ActCalib != want {
			t.Errorf("%s: table records act_calib %q; want %q", c, tables[i].ActCalib, want)
		}
	}
	if len(keys) != len(calibs) {
		t.Errorf("cache keys: %d distinct for %d calibrations", len(keys), len(calibs))
	}
	same := true
	for li, l := range tables[0].Layers {
		same = same && l.Metrics[sensitivity.MetricDirect][2] == tables[1].Layers[li].Metrics[sensitivity.MetricDirect][2]
	}
	if same {
		t.Errorf("the direct metric at 2 bits is the same with minmax and kl ranges")
	}
	tables[1].ModelSHA256 = "model"
	err := tables[1].CheckActCalib("sens.yaml", quant.ActCalib{})
	if err == nil || !errors.Is(err, sensitivity.ErrTable) || !strings.Contains(err.Error(), "pass --act-calib kl") || strings.Contains(err.Error(), "\n") {
		t.Errorf("CheckActCalib of a kl table for minmax: got %v; want one line wrapping ErrTable naming --act-calib kl", err)
	}
	if err := tables[1].CheckActCalib("sens.yaml", quant.ActCalib{Method: quant.CalibKL}); err != nil {
		t.Errorf("CheckActCalib of a kl table for kl: %v", err)
	}
}
