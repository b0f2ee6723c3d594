package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mpsearch/onnx"
	"mpsearch/pipeline"
)

const tableYAML = `bits: [2, 4, 8]
layers:
  - name: a
    params: 1000
    macs: 10000
    omega: {2: 0.5, 4: 0.05, 8: 0.001}
  - name: b
    params: 4000
    macs: 20000
    omega: {2: 0.2, 4: 0.01, 8: 0.0005}
  - name: c
    params: 2000
    macs: 5000
    omega: {2: 0.9, 4: 0.02, 8: 0.0001}
ties: [[a, c]]
`

func TestSearchTable(t *testing.T) {
	dir := t.TempDir()
	table := filepath.Join(dir, "sens.yaml")
	if err := os.WriteFile(table, []byte(tableYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	code, stdout, errs := run(t, "search", "--table", table, "--size-budget", "3000B", "--keep-ends=false", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	// Brute force: a and c tied. Sizes (bytes) = params*bits/8:
	// a,c at 4 + b at 2: 500+1000+1000 = 2500 fits, omega 0.05+0.2+0.02 = 0.27;
	// a,c at 2 + b at 4: 250+2000+500 = 2750, omega 0.5+0.01+0.9 = 1.41;
	// a,c at 4 + b at 4: 500+2000+1000 = 3500 does not fit. Optimum 0.27.
	var s struct {
		Objective float64 `json:"objective"`
		Layers    []struct {
			Name  string `json:"name"`
			WBits int    `json:"w_bits"`
		} `json:"layers"`
		Budgets map[string]struct{ Limit, Used float64 } `json:"budgets"`
	}
	b, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	got := []int{s.Layers[0].WBits, s.Layers[1].WBits, s.Layers[2].WBits}
	if got[0] != 4 || got[1] != 2 || got[2] != 4 || s.Objective < 0.27-1e-12 || s.Objective > 0.27+1e-12 {
		t.Errorf("got bits %v objective %g; want [4 2 4] and 0.27 (brute force)", got, s.Objective)
	}
	if s.Budgets["size"].Limit != 3000 || s.Budgets["size"].Used != 2500 {
		t.Errorf("size budget: got %+v; want limit 3000 used 2500", s.Budgets["size"])
	}
	if !strings.Contains(stdout, "chosen") {
		t.Errorf("stdout lacks the result: %s", stdout)
	}
	for _, f := range []string{"bits.yaml", "report.html"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("%s not written: %v", f, err)
		}
	}
}

func TestSearchBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", tableYAML)
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown layer in ties", []string{"--table", write("t1.yaml", strings.Replace(tableYAML, "[[a, c]]", "[[a, zz]]", 1)), "--size-budget", "3000"}, 1, `unknown layer "zz"`},
		{"negative cost", []string{"--table", write("t2.yaml", strings.Replace(tableYAML, "macs: 5000", "macs: 5000\n    size_bytes: {2: -1, 4: 10, 8: 20}", 1)), "--size-budget", "3000"}, 1, "negative"},
		{"nan omega", []string{"--table", write("t3.yaml", strings.Replace(tableYAML, "2: 0.2,", "2: .nan,", 1)), "--size-budget", "3000"}, 1, "finite"},
		{"unknown field", []string{"--table", write("t4.yaml", strings.Replace(tableYAML, "macs: 5000", "macz: 5000", 1)), "--size-budget", "3000"}, 1, "macz"},
		{"budget unit", []string{"--table", good, "--size-budget", "3ms"}, 2, `unknown unit "ms"`},
		{"budget nonsense", []string{"--table", good, "--latency-budget", "soon"}, 2, "latency budget"},
		{"infeasible", []string{"--table", good, "--size-budget", "100B"}, 1, "below the minimum 1750B achievable"},
		{"latency without profile", []string{"--table", good, "--latency-budget", "1ms"}, 1, "latency"},
		{"table and model", []string{"--table", good, "--model", "x.onnx"}, 2, "--table"},
		{"bad method", []string{"--table", good, "--method", "annealing"}, 2, "--method"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(dir, "out-"+strings.ReplaceAll(c.name, " ", "-"))
			code, _, errs := run(t, append([]string{"search", "--keep-ends=false", "--out", out}, c.args...)...)
			if code != c.code {
				t.Errorf("exit status: got %d; want %d (stderr %q)", code, c.code, errs)
			}
			lines := strings.Split(strings.TrimRight(errs, "\n"), "\n")
			if last := lines[len(lines)-1]; !strings.Contains(last, c.want) {
				t.Errorf("error %q does not mention %q", last, c.want)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("%s was created; a failed search must write nothing", out)
			}
		})
	}
}

// TestParetoRL: pareto --method rl prints the ILP front (proxy optima:
// from a table alone nothing is measured) and the agent's
// configuration at each front point's budget; on this tiny table the
// agent (with its polish) must match the exact front.
func TestParetoRL(t *testing.T) {
	dir := t.TempDir()
	table := filepath.Join(dir, "sens.yaml")
	if err := os.WriteFile(table, []byte(tableYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, errs := run(t, "pareto", "--table", table, "--size-budget", "4000B", "--keep-ends=false", "--method", "rl", "--episodes", "50", "--points", "5", "--out", filepath.Join(dir, "out"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	front := map[string]string{}
	rl := map[string]string{}
	for _, line := range strings.Split(stdout, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 4 && f[0] == "proxy" && f[1] == "optimum":
			front[f[2]] = f[3]
		case len(f) > 6 && f[0] == "RL":
			rl[f[3]] = f[5]
		}
	}
	if len(front) < 2 || len(rl) != len(front) {
		t.Fatalf("got %d front rows and %d RL rows:\n%s", len(front), len(rl), stdout)
	}
	for k, obj := range front {
		if rl[k] != obj {
			t.Errorf("front point %s: ILP objective %s, RL %s", k, obj, rl[k])
		}
	}
}

// TestSearchDemoDeterministic runs the whole job on the built-in demo twice
// and checks the outputs: every file written, budgets held, the exported
// model readable, and byte-identical files for the same inputs and seed.
func TestSearchDemoDeterministic(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline twice")
	}
	t.Setenv("MPSEARCH_CACHE", "off")
	dir := t.TempDir()
	var outs []map[string][]byte
	for i := 0; i < 2; i++ {
		out := filepath.Join(dir, fmt.Sprint("run", i))
		code, stdout, errs := run(t, "search", "--out", out, "--points", "6")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		if !strings.Contains(stdout, "chosen:") || !strings.Contains(errs, "report.html") {
			t.Errorf("stdout %q / stderr %q lack the result and the report's path", stdout, errs)
		}
		files := map[string][]byte{}
		for _, f := range []string{"model.qdq.onnx", "bits.yaml", "summary.json", "report.html"} {
			b, err := os.ReadFile(filepath.Join(out, f))
			if err != nil {
				t.Fatalf("%s not written: %v", f, err)
			}
			files[f] = b
		}
		outs = append(outs, files)
	}
	for f, b := range outs[0] {
		if !bytes.Equal(b, outs[1][f]) {
			t.Errorf("%s differs between two runs with the same inputs and seed", f)
		}
	}
	var s struct {
		Budgets  map[string]struct{ Limit, Used float64 } `json:"budgets"`
		Accuracy map[string]float64                       `json:"accuracy"`
		Layers   []struct {
			WBits int `json:"w_bits"`
		} `json:"layers"`
		Refinement *struct {
			Start struct {
				Bits []int `json:"bits"`
			} `json:"start"`
			Steps []struct {
				Move string `json:"move"`
				Bits []int  `json:"bits"`
			} `json:"steps"`
			Evaluations, Budget int
		} `json:"refinement"`
	}
	if err := json.Unmarshal(outs[0]["summary.json"], &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Budgets) == 0 {
		t.Fatal("summary.json has no budget")
	}
	for r, b := range s.Budgets {
		if b.Used > b.Limit*(1+1e-9) {
			t.Errorf("%s budget: used %g above the limit %g", r, b.Used, b.Limit)
		}
	}
	if len(s.Layers) != 5 || s.Accuracy["float"] < 0.9 || s.Accuracy["quantized"] < 0.85 {
		t.Errorf("summary: %d layers, accuracy %v; want 5 layers, float >= 0.9, quantized >= 0.85", len(s.Layers), s.Accuracy)
	}
	// --refine's default: the path ends at the returned configuration.
	// LeNet's measurements are far under pipeline.RefineWorkBudget.
	if r := s.Refinement; r == nil || r.Budget != pipeline.MaxRefine || r.Evaluations > r.Budget {
		t.Errorf("summary refinement %+v; want budget %d (the default, auto) and at most that many evaluations", r, pipeline.MaxRefine)
	} else {
		last := r.Start.Bits
		if len(r.Steps) > 0 {
			last = r.Steps[len(r.Steps)-1].Bits
		}
		for i, l := range s.Layers {
			if i >= len(last) || l.WBits != last[i] {
				t.Errorf("layers' bits differ from the refinement path's end %v at layer %d", last, i)
				break
			}
		}
	}
	m, err := onnx.Parse(outs[0]["model.qdq.onnx"], "")
	if err != nil {
		t.Fatalf("model.qdq.onnx: %v", err)
	}
	q := 0
	for _, n := range m.Graph.Nodes {
		if n.OpType == "QuantizeLinear" {
			q++
		}
	}
	if q != 5 {
		t.Errorf("model.qdq.onnx has %d QuantizeLinear nodes; want one per layer input (5)", q)
	}
}

// TestInfeasibleBeforeSensitivity checks that a budget no configuration
// meets is refused before the sensitivity stage (which takes minutes on an
// ImageNet model): the demo searched at 1,000 B fails with the ILP's
// minimum and the --keep-ends hint, and stderr shows no sensitivity
// progress.
func TestInfeasibleBeforeSensitivity(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	code, _, errs := run(t, "search", "--size-budget", "1000B", "--no-cache", "--out", out)
	if code != 1 {
		t.Fatalf("exit status: got %d; want 1 (stderr %q)", code, errs)
	}
	lines := strings.Split(strings.TrimRight(errs, "\n"), "\n")
	if last := lines[len(lines)-1]; !strings.Contains(last, "below the minimum") || !strings.Contains(last, "--keep-ends=false") {
		t.Errorf("error %q; want the minimum achievable and the --keep-ends=false hint", last)
	}
	if strings.Contains(errs, "sensitivity") || strings.Contains(errs, "gptq") {
		t.Errorf("stderr shows the sensitivity stage ran before the refusal:\n%s", errs)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("%s was created; a failed search must write nothing", out)
	}
}
