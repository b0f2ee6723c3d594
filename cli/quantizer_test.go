package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"mpsearch/pipeline"
)

// TestQuantizerRecorded: search on the built-in demo, with the default
// --quantizer (gptq), records the rounding in bits.yaml and summary.json; eval --bits on that
// file rounds the same way unless --quantizer says otherwise, and says
// which in its JSON.
func TestQuantizerRecorded(t *testing.T) {
	t.Setenv("MPSEARCH_CACHE", "off")
	if defaultQuantizer != "gptq" {
		t.Fatalf("default --quantizer %q; this test expects gptq", defaultQuantizer)
	}
	out := filepath.Join(t.TempDir(), "out")
	code, _, errs := run(t, "search", "--refine", "0", "--points", "2", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	f, err := pipeline.ReadBitsFile(filepath.Join(out, "bits.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var sum struct {
		Quantizer string `json:"quantizer"`
	}
	b, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	if f.Quantizer != "gptq" || sum.Quantizer != "gptq" {
		t.Errorf("quantizer recorded: bits.yaml %q, summary.json %q; want gptq in both", f.Quantizer, sum.Quantizer)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "gptq"},
		{[]string{"--quantizer", "rtn"}, "rtn"},
	} {
		code, stdout, errs := run(t, append([]string{"eval", "--bits", filepath.Join(out, "bits.yaml"), "--json"}, c.args...)...)
		if code != 0 {
			t.Fatalf("eval %v: exit %d: %s", c.args, code, errs)
		}
		var res struct {
			Quantizer string             `json:"quantizer"`
			Accuracy  map[string]float64 `json:"accuracy"`
		}
		if err := json.Unmarshal([]byte(stdout), &res); err != nil {
			t.Fatal(err)
		}
		if res.Quantizer != c.want || res.Accuracy["simulated"] == 0 {
			t.Errorf("eval --bits %v: quantizer %q, accuracies %v; want %q and a simulated accuracy", c.args, res.Quantizer, res.Accuracy, c.want)
		}
	}
}
