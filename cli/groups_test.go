package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGroupsAndBiasCorrectionFlags: `run --bits` refuses a bits.yaml with
// a layer in groups in one line naming the layer and --group-size (the
// integer engine takes one scale per output channel); search refuses
// --measure-latency with groups and a malformed --group-size (usage,
// exit 2); search --table adopts the table's bias correction unless
// --bias-correction is given, and refuses a table measured without it
// for --bias-correction=true.
func TestGroupsAndBiasCorrectionFlags(t *testing.T) {
	dir := t.TempDir()
	bits := filepath.Join(dir, "bits.yaml")
	yml := "method: ilp\nquantizer: gptq\nlayers:\n  - {name: /conv1/Conv, w_bits: 8, a_bits: 8}\n  - {name: /conv2/Conv, w_bits: 4, a_bits: 8}\n" +
		"  - {name: /fc1/Gemm, w_bits: 3, group_size: 64, a_bits: 8}\n  - {name: /fc2/Gemm, w_bits: 2, a_bits: 8}\n  - {name: /fc3/Gemm, w_bits: 8, a_bits: 8}\n"
	if err := os.WriteFile(bits, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := run(t, "run", "--model", fixtureDir+"lenet.onnx", "--data", fixtureDir+"calib.npy", "--bits", bits, "--out", filepath.Join(dir, "o.npy"))
	if code != 1 || !strings.Contains(errs, `"/fc1/Gemm"`) || !strings.Contains(errs, "--group-size") || strings.Count(strings.TrimSpace(errs), "\n") > 0 {
		t.Errorf("run --bits with fc1 in groups: exit %d, stderr %q; want exit 1 and one line naming /fc1/Gemm and --group-size", code, errs)
	}
	table := filepath.Join(dir, "sens.yaml")
	if err := os.WriteFile(table, []byte("model_sha256: abc\nquantizer: gptq\n"+tableYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"measure latency with groups", []string{"--table", table, "--size-budget", "3000", "--group-size", "0,64", "--measure-latency"}, 2, "--measure-latency"},
		{"rl with groups", []string{"--table", table, "--size-budget", "3000", "--group-size", "0,64", "--method", "rl"}, 2, "--method rl"},
		{"group size without 0", []string{"--table", table, "--size-budget", "3000", "--group-size", "64"}, 2, "lacks 0"},
		{"group size not a number", []string{"--table", table, "--size-budget", "3000", "--group-size", "0,x"}, 2, "--group-size"},
		{"table without bias correction", []string{"--table", table, "--size-budget", "3000", "--keep-ends=false", "--bias-correction=true"}, 1, "--bias-correction=false"},
		{"table's own bias correction", []string{"--table", table, "--size-budget", "3000", "--keep-ends=false"}, 0, ""},
	} {
		args := append([]string{"search"}, c.args...)
		args = append(args, "--out", filepath.Join(dir, "out-"+strings.ReplaceAll(c.name, " ", "-")))
		code, _, errs := run(t, args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d mentioning %q", c.name, code, errs, c.code, c.want)
		}
	}
}
