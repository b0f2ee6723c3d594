package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mpsearch/pipeline"
	"mpsearch/sensitivity"
)

// TestShardMergeCLI runs 'sensitivity' once and as 3 shards on the fixture
// LeNet, merges the shards with 'merge' and checks the merged file equals
// the one-run file byte for byte; 'search --table' then uses it, and
// 'merge' refuses shards of different settings in one line.
func TestShardMergeCLI(t *testing.T) {
	t.Setenv("MPSEARCH_CACHE", "off")
	dir := t.TempDir()
	common := []string{"sensitivity", "--model", fixtureDir + "lenet.onnx", "--data", fixtureDir + "calib.npy", "--labels", fixtureDir + "calib_labels.npy",
		"--limit", "24", "--bits", "2,4,8", "--metrics", "direct,fisher,hessian", "--trace", "exact", "--eigen=false"}
	one := filepath.Join(dir, "one.yaml")
	if code, _, errs := run(t, append(common, "--out", one)...); code != 0 {
		t.Fatalf("one run: exit %d: %s", code, errs)
	}
	var shards []string
	for k := 0; k < 3; k++ {
		f := filepath.Join(dir, "shard"+string(rune('0'+k))+".yaml")
		if code, _, errs := run(t, append(common, "--shard", string(rune('0'+k))+"/3", "--out", f)...); code != 0 {
			t.Fatalf("shard %d: exit %d: %s", k, code, errs)
		}
		shards = append(shards, f)
	}
	merged := filepath.Join(dir, "merged.yaml")
	if code, _, errs := run(t, append(append([]string{"merge"}, shards[2], shards[0], shards[1]), "--out", merged)...); code != 0 {
		t.Fatalf("merge: exit %d: %s", code, errs)
	}
	want, _ := os.ReadFile(one)
	got, _ := os.ReadFile(merged)
	if len(want) == 0 || !bytes.Equal(got, want) {
		t.Errorf("merged table differs from one run:\n got %s\nwant %s", got, want)
	}
	if code, _, errs := run(t, "search", "--table", merged, "--size-budget", "0.5x", "--out", filepath.Join(dir, "out")); code != 0 {
		t.Errorf("search --table merged.yaml: exit %d: %s", code, errs)
	}
	checkTableQuantizer(t, merged, dir)
	checkTableWithModel(t, merged, dir)
	if code, _, errs := run(t, "search", "--table", shards[0], "--size-budget", "0.5x", "--out", filepath.Join(dir, "out2")); code == 0 || !strings.Contains(errs, "mpsearch merge") {
		t.Errorf("search --table shard0.yaml: exit %d, %q; want a refusal naming mpsearch merge", code, errs)
	}
	other := filepath.Join(dir, "other.yaml")
	if code, _, errs := run(t, append(common, "--seed", "5", "--shard", "1/3", "--out", other)...); code != 0 {
		t.Fatalf("other shard: exit %d: %s", code, errs)
	}
	code, _, errs := run(t, "merge", shards[0], other, shards[2], "--out", filepath.Join(dir, "bad.yaml"))
	if code != 1 || !strings.Contains(errs, "other settings") || strings.Count(errs, "\n") != 1 {
		t.Errorf("merge of mixed settings: exit %d, %q; want exit 1 and one line naming other settings", code, errs)
	}
	rtn := filepath.Join(dir, "rtn.yaml")
	if code, _, errs := run(t, append(common, "--quantizer", "rtn", "--shard", "1/3", "--out", rtn)...); code != 0 {
		t.Fatalf("rtn shard: exit %d: %s", code, errs)
	}
	code, _, errs = run(t, "merge", shards[0], rtn, shards[2], "--out", filepath.Join(dir, "bad.yaml"))
	if want := "another weight rounding (--quantizer rtn; recompute it with --quantizer gptq"; code != 1 || !strings.Contains(errs, want) || strings.Count(errs, "\n") != 1 {
		t.Errorf("merge of mixed roundings: exit %d, %q; want exit 1 and one line containing %q", code, errs, want)
	}
}

// checkTableQuantizer: search --table with the gptq table merged adopts
// its rounding when --quantizer is not given (recorded in summary.json),
// refuses --quantizer rtn in one line naming both and the flag, and
// refuses the same table without its quantizer line (as mpsearch wrote
// tables before recording it).
func checkTableQuantizer(t *testing.T, merged, dir string) {
	t.Helper()
	out := filepath.Join(dir, "adopt")
	if code, _, errs := run(t, "search", "--table", merged, "--size-budget", "0.5x", "--out", out); code != 0 {
		t.Fatalf("search --table: exit %d: %s", code, errs)
	}
	b, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"quantizer": "gptq"`) {
		t.Errorf("search --table of a gptq table without --quantizer: summary.json does not say quantizer gptq")
	}
	code, _, errs := run(t, "search", "--table", merged, "--quantizer", "rtn", "--size-budget", "0.5x", "--out", filepath.Join(dir, "x"))
	if want := "was measured with weights rounded by gptq, not rtn: pass --quantizer gptq"; code != 1 || !strings.Contains(errs, want) || strings.Count(errs, "\n") != 1 {
		t.Errorf("search --table gptq table --quantizer rtn: exit %d, %q; want exit 1 and one line containing %q", code, errs, want)
	}
	tb, err := os.ReadFile(merged)
	if err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(dir, "old.yaml")
	if err := os.WriteFile(old, []byte(strings.Replace(string(tb), "quantizer: gptq\n", "", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs = run(t, "pareto", "--table", old, "--size-budget", "0.5x", "--out", filepath.Join(dir, "y"))
	if want := "does not record the weight rounding"; code != 1 || !strings.Contains(errs, want) {
		t.Errorf("pareto --table without its quantizer: exit %d, %q; want exit 1 containing %q", code, errs, want)
	}
}

// checkTableWithModel: search --table merged.yaml with the model and data
// (the sharded flow of the README) uses the table's sensitivities (each
// layer's omega in summary.json is the table's at its chosen width),
// verifies and exports model.qdq.onnx; the table with another model, or
// with --model but no --data, is refused in one line.
func checkTableWithModel(t *testing.T, merged, dir string) {
	t.Helper()
	out := filepath.Join(dir, "withmodel")
	data := []string{"--model", fixtureDir + "lenet.onnx", "--data", fixtureDir + "calib.npy", "--labels", fixtureDir + "calib_labels.npy", "--limit", "24"}
	if code, _, errs := run(t, append([]string{"search", "--table", merged, "--size-budget", "0.5x", "--out", out}, data...)...); code != 0 {
		t.Fatalf("search --table with --model and --data: exit %d: %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(out, "model.qdq.onnx")); err != nil {
		t.Errorf("search --table with --model and --data wrote no model.qdq.onnx: %v", err)
	}
	tab, err := sensitivity.ReadFile(merged)
	if err != nil {
		t.Fatal(err)
	}
	var sum struct {
		Layers []pipeline.SummaryLayer `json:"layers"`
	}
	b, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	if len(sum.Layers) != len(tab.Layers) {
		t.Fatalf("summary.json has %d layers; want the table's %d", len(sum.Layers), len(tab.Layers))
	}
	for i, l := range sum.Layers {
		if want, _ := tab.Layers[i].OmegaAt(l.WBits); l.Omega != want {
			t.Errorf("layer %s at %d bits: summary omega %g; want the table's %g", l.Name, l.WBits, l.Omega, want)
		}
	}
	other := append([]string{"search", "--table", merged, "--size-budget", "0.5x", "--out", filepath.Join(dir, "y"), "--model", "../testdata/vgg-fmnist/model.onnx"}, data[2:]...)
	if code, _, errs := run(t, other...); code != 1 || !strings.Contains(errs, "computed for another model") || strings.Count(errs, "\n") != 1 {
		t.Errorf("search --table with another model: exit %d, %q; want exit 1 and one line saying the table was computed for another model", code, errs)
	}
	if code, _, errs := run(t, "search", "--table", merged, "--model", fixtureDir+"lenet.onnx", "--size-budget", "0.5x", "--out", filepath.Join(dir, "z")); code != 2 || !strings.Contains(errs, "needs --data") {
		t.Errorf("search --table --model without --data: exit %d, %q; want a usage error naming --data", code, errs)
	}
}
