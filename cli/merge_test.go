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
}
