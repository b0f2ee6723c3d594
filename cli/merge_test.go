package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
