package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestActCalibFlag: a bad --act-calib is a one-line usage error (exit 2)
// on every command that quantizes; search --table adopts the table's
// calibration unless --act-calib is given, refuses another one in one line
// naming the flag to pass, and records it in bits.yaml and summary.json;
// eval --bits follows bits.yaml's (and says so), and refuses a bits.yaml
// whose act_calib does not parse, naming the file.
func TestActCalibFlag(t *testing.T) {
	dir := t.TempDir()
	model, data := fixtureDir+"lenet.onnx", fixtureDir+"calib.npy"
	bits := filepath.Join(dir, "bits.yaml")
	yml := "method: ilp\nquantizer: rtn\nact_calib: percentile:99.9\nlayers:\n  - {name: /conv1/Conv, w_bits: 8}\n  - {name: /conv2/Conv, w_bits: 4}\n" +
		"  - {name: /fc1/Gemm, w_bits: 4}\n  - {name: /fc2/Gemm, w_bits: 4}\n  - {name: /fc3/Gemm, w_bits: 8}\n"
	if err := os.WriteFile(bits, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"bogus", "percentile:20"} {
		for _, args := range [][]string{
			{"search", "--model", model, "--data", data},
			{"pareto", "--model", model, "--data", data},
			{"sensitivity", "--model", model, "--data", data},
			{"eval", "--model", model, "--data", data, "--bits", bits},
			{"run", "--model", model, "--data", data, "--bits", bits, "--out", filepath.Join(dir, "o.npy")},
		} {
			code, _, errs := run(t, append(args, "--act-calib", bad)...)
			if code != 2 || !strings.Contains(errs, "--act-calib") || strings.Count(strings.TrimSpace(errs), "\n") > 0 {
				t.Errorf("%s --act-calib %s: exit %d, stderr %q; want exit 2 and one line naming --act-calib", args[0], bad, code, errs)
			}
		}
	}
	table := filepath.Join(dir, "sens.yaml")
	if err := os.WriteFile(table, []byte("model_sha256: abc\nquantizer: gptq\nact_calib: mse\n"+tableYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain.yaml")
	if err := os.WriteFile(plain, []byte("model_sha256: abc\nquantizer: gptq\n"+tableYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		args  []string
		code  int
		want  string
		calib string // recorded in the outputs
	}{
		{"table's own calibration", []string{"--table", table}, 0, "", "mse"},
		{"the same given", []string{"--table", table, "--act-calib", "mse"}, 0, "", "mse"},
		{"another given", []string{"--table", table, "--act-calib", "kl"}, 1, "--act-calib mse", ""},
		{"unrecorded is minmax", []string{"--table", plain}, 0, "", "minmax"},
		{"unrecorded, another given", []string{"--table", plain, "--act-calib", "percentile"}, 1, "--act-calib minmax", ""},
	} {
		out := filepath.Join(dir, "out-"+strings.ReplaceAll(c.name, " ", "-"))
		args := append([]string{"search", "--size-budget", "3000", "--keep-ends=false", "--out", out}, c.args...)
		code, _, errs := run(t, args...)
		if code != c.code || !strings.Contains(errs, c.want) || c.code != 0 && strings.Count(strings.TrimSpace(errs), "\n") > 0 {
			t.Errorf("%s: exit %d, stderr %q; want exit %d mentioning %q", c.name, code, errs, c.code, c.want)
			continue
		}
		if c.code != 0 {
			continue
		}
		b, err := os.ReadFile(filepath.Join(out, "bits.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "\nact_calib: "+c.calib+"\n") {
			t.Errorf("%s: bits.yaml lacks act_calib: %s:\n%s", c.name, c.calib, b)
		}
		var sum struct {
			ActCalib *string `json:"act_calib"`
		}
		if b, err = os.ReadFile(filepath.Join(out, "summary.json")); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &sum); err != nil || sum.ActCalib == nil || *sum.ActCalib != c.calib {
			t.Errorf("%s: summary.json act_calib %v (%v); want %q", c.name, sum.ActCalib, err, c.calib)
		}
	}
	code, out, errs := run(t, "eval", "--model", model, "--data", data, "--labels", fixtureDir+"calib_labels.npy", "--bits", bits, "--calib-samples", "64")
	if code != 0 || !strings.Contains(out, "activation ranges by percentile:99.9)") {
		t.Errorf("eval --bits with act_calib percentile:99.9: exit %d, stdout %q, stderr %q; want the calibration named", code, out, errs)
	}
	badBits := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(badBits, []byte(strings.Replace(yml, "percentile:99.9", "median", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs = run(t, "eval", "--model", model, "--data", data, "--bits", badBits, "--calib-samples", "64")
	if code != 1 || !strings.Contains(errs, badBits) || !strings.Contains(errs, "--act-calib") {
		t.Errorf("eval --bits with act_calib median: exit %d, stderr %q; want exit 1 naming the file and --act-calib", code, errs)
	}
}

// TestRunActCalib: run --bits writes the same bytes with --act-calib
// minmax as with a bits.yaml that records none (earlier files), and other
// bytes with kl, whose ranges clip the fixture's activations.
func TestRunActCalib(t *testing.T) {
	dir := t.TempDir()
	model, data := fixtureDir+"lenet.onnx", fixtureDir+"calib.npy"
	bits := filepath.Join(dir, "bits.yaml")
	yml := "method: ilp\nlayers:\n  - {name: /conv1/Conv, w_bits: 8}\n  - {name: /conv2/Conv, w_bits: 8}\n" +
		"  - {name: /fc1/Gemm, w_bits: 8}\n  - {name: /fc2/Gemm, w_bits: 8}\n  - {name: /fc3/Gemm, w_bits: 8}\n"
	if err := os.WriteFile(bits, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	outs := map[string][]byte{}
	for _, c := range []string{"", "minmax", "kl"} {
		out := filepath.Join(dir, "o-"+c+".npy")
		args := []string{"run", "--model", model, "--data", data, "--bits", bits, "--out", out}
		if c != "" {
			args = append(args, "--act-calib", c)
		}
		if code, _, errs := run(t, args...); code != 0 {
			t.Fatalf("run --act-calib %q: exit %d, %s", c, code, errs)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		outs[c] = b
	}
	if !bytes.Equal(outs[""], outs["minmax"]) {
		t.Errorf("run --bits: --act-calib minmax wrote other bytes than the default of a bits.yaml without act_calib")
	}
	if bytes.Equal(outs["minmax"], outs["kl"]) {
		t.Errorf("run --bits: --act-calib kl wrote the same bytes as minmax (its ranges should clip)")
	}
}
