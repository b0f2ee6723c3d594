package cli

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestUsageContracts checks the issue-12 usage errors (exit 2, one line
// naming the flag): duplicate --bits, repeated budget flags, unbounded
// size-like flags (--limit included), an unknown --solver.
func TestUsageContracts(t *testing.T) {
	dir := t.TempDir()
	table := filepath.Join(dir, "sens.yaml")
	if err := os.WriteFile(table, []byte(tableYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	imgs := pngFolder(t, 2)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"duplicate bits", []string{"search", "--table", table, "--bits", "2,2"}, "--bits: 2 given twice"},
		{"duplicate bits in sensitivity", []string{"sensitivity", "--bits", "4,8,4"}, "--bits: 4 given twice"},
		{"repeated size budget", []string{"search", "--table", table, "--size-budget", "3000", "--size-budget", "4000"}, "given twice"},
		{"repeated latency budget", []string{"pareto", "--table", table, "--latency-budget", "1ms", "--latency-budget", "1ms"}, "given twice"},
		{"points too many", []string{"pareto", "--table", table, "--points", "100000000"}, "--points: 100000000 is not in 2..1000"},
		{"refine negative", []string{"search", "--table", table, "--refine", "-1"}, "--refine: \"-1\" is not auto or a count in 0..100000"},
		{"refine too many", []string{"pareto", "--table", table, "--refine", "100000000"}, "--refine: \"100000000\" is not auto or a count in 0..100000"},
		{"probes too many", []string{"sensitivity", "--probes", "1000000000"}, "--probes: 1000000000 is not in 2..1000000"},
		{"batch too large", []string{"eval", "--batch", "100000000"}, "--batch: 100000000 is not in 1..65536"},
		{"resize too large", []string{"eval", "--model", fixtureDir + "lenet.onnx", "--data", imgs, "--resize", "99999x99999"}, "--resize: 99999x99999 exceeds 8192x8192"},
		{"threads zero", []string{"eval", "--threads", "0"}, "0 is below 1"},
		{"limit too large", []string{"eval", "--limit", "100000000"}, "-limit: 100000000 is not in 0..16777216"},
		{"limit negative on the demo", []string{"eval", "--limit", "-1"}, "-limit: -1 is not in 0..16777216"},
		{"limit too large in sensitivity", []string{"sensitivity", "--limit", "100000000"}, "-limit: 100000000 is not in 0..16777216"},
		{"limit too large in search", []string{"search", "--table", table, "--limit", "100000000"}, "-limit: 100000000 is not in 0..16777216"},
		{"unknown solver", []string{"search", "--table", table, "--size-budget", "3000", "--solver", "cplex"}, `--solver: "cplex" is not go or lp_solve`},
		{"unknown quantizer", []string{"search", "--table", table, "--size-budget", "3000", "--quantizer", "adaround"}, `--quantizer: "adaround" is not rtn or gptq`},
		{"unknown quantizer in pareto", []string{"pareto", "--table", table, "--quantizer", "GPTQ"}, `--quantizer: "GPTQ" is not rtn or gptq`},
		{"unknown quantizer in sensitivity", []string{"sensitivity", "--quantizer", "awq"}, `--quantizer: "awq" is not rtn or gptq`},
		{"unknown quantizer in eval", []string{"eval", "--quantizer", "awq"}, `--quantizer: "awq" is not rtn or gptq`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, errs := run(t, append(c.args, "--out", filepath.Join(dir, "out"))...)
			if c.args[0] == "eval" {
				code, _, errs = run(t, c.args...)
			}
			if code != 2 || !strings.Contains(errs, c.want) || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
				t.Errorf("got exit %d, stderr %q; want exit 2 and one line containing %q", code, errs, c.want)
			}
		})
	}
}

// pngFolder writes a folder of one class with n 4x4 gray PNG images.
func pngFolder(t *testing.T, n int) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		var b bytes.Buffer
		if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, 4, 4))); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "a", string(rune('0'+i))+".png"), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestResizeMemoryEstimate checks that a --resize within the per-side
// bound but beyond the memory available is refused before decoding.
func TestResizeMemoryEstimate(t *testing.T) {
	avail, ok := memAvailable()
	if !ok {
		t.Fatal("no MemAvailable in /proc/meminfo")
	}
	// 8192x8192x3 float64 = 1.6 GB per image: twice as many images as
	// fit (other processes change the memory available between calls).
	n := 2*int(avail/(8192*8192*3*8)) + 2
	if err := checkResizeMemory(pngFolder(t, min(n, 60)), 8192, 8192, 0); n <= 60 && (err == nil || !strings.Contains(err.Error(), "more than the")) {
		t.Errorf("%d images at 8192x8192 with %.1f GB available: got %v; want a memory error", n, float64(avail)/1e9, err)
	}
	if err := checkResizeMemory(pngFolder(t, 2), 64, 64, 0); err != nil {
		t.Errorf("2 images at 64x64: got %v; want nil", err)
	}
}

// TestThreadsCapped checks that --threads is capped at the CPUs available
// (one goroutine and BLAS thread per requested thread used to exhaust
// memory) and that the demo still evaluates.
func TestThreadsCapped(t *testing.T) {
	var n int
	if err := (threadsFlag{&n}).Set("100000000"); err != nil || n != runtime.NumCPU() {
		t.Errorf("--threads 100000000: got %d, %v; want %d (the CPUs)", n, err, runtime.NumCPU())
	}
	code, out, errs := run(t, "eval", "--threads", "100000000", "--limit", "64")
	if code != 0 || !strings.Contains(out, "64 samples") {
		t.Errorf("eval --threads 100000000: exit %d, stdout %q, stderr %q; want exit 0 on 64 samples", code, out, errs)
	}
}

// TestHelpOnce checks that -h prints the usage header once.
func TestHelpOnce(t *testing.T) {
	for _, c := range []string{"search", "pareto", "eval", "sensitivity", "profile", "inspect"} {
		code, _, errs := run(t, c, "-h")
		if code != 0 || strings.Count(errs, "Usage: mpsearch "+c) != 1 || !strings.Contains(errs, "Flags:\n  -") {
			t.Errorf("%s -h: exit %d; want exit 0 and the usage header once followed by the flags; got %q", c, code, errs)
		}
	}
	_, _, errs := run(t, "search", "-h")
	if !strings.Contains(errs, "highest of --bits when 8 is not among them") {
		t.Errorf("search -h does not say what --keep-ends does without 8 in --bits")
	}
}

// TestOutChecked checks that an --out that is a file or is not writable
// fails before the job runs, for search and profile.
func TestOutChecked(t *testing.T) {
	dir := t.TempDir()
	table := filepath.Join(dir, "sens.yaml")
	if err := os.WriteFile(table, []byte(tableYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "afile")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	roWritable := os.WriteFile(filepath.Join(ro, "probe"), nil, 0o644) == nil // root ignores modes
	cases := []struct {
		name string
		args []string
		want string
		skip bool
	}{
		{"search out is a file", []string{"search", "--table", table, "--size-budget", "3000", "--keep-ends=false", "--out", file}, "is a file", false},
		{"search out under a file", []string{"search", "--table", table, "--size-budget", "3000", "--keep-ends=false", "--out", filepath.Join(file, "sub")}, "is a file", false},
		{"search out not writable", []string{"search", "--table", table, "--size-budget", "3000", "--keep-ends=false", "--out", filepath.Join(ro, "out")}, "cannot write", roWritable},
		{"profile out is a directory", []string{"profile", "--quick", "--out", dir}, "is a directory", false},
		{"profile out not writable", []string{"profile", "--quick", "--out", filepath.Join(ro, "p.yaml")}, "cannot write", roWritable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.skip {
				t.Skip("running as root: directory modes do not stop writes")
			}
			code, _, errs := run(t, c.args...)
			if code != 1 || !strings.Contains(errs, c.want) || strings.Contains(errs, "profile 1/") {
				t.Errorf("got exit %d, stderr %q; want exit 1 before the job, mentioning %q", code, errs, c.want)
			}
		})
	}
}

// TestInterruptedWritesNothing checks that an interrupted search or pareto
// writes no output and exits 1 saying so (issue 12: it wrote every output
// labelled "ILP optimum" and exited 0).
func TestInterruptedWritesNothing(t *testing.T) {
	dir := t.TempDir()
	table := filepath.Join(dir, "sens.yaml")
	if err := os.WriteFile(table, []byte(tableYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range []string{"search", "pareto"} {
		out := filepath.Join(dir, "out-"+c)
		var so, se bytes.Buffer
		code := Run(ctx, []string{c, "--table", table, "--size-budget", "3000", "--keep-ends=false", "--out", out}, &so, &se)
		if code != 1 || !strings.Contains(se.String(), "interrupted; nothing written") {
			t.Errorf("%s: got exit %d, stderr %q; want exit 1 and \"interrupted; nothing written\"", c, code, se.String())
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%s: %s exists; an interrupted job must write nothing", c, out)
		}
		if strings.Contains(so.String(), "optimum") {
			t.Errorf("%s: stdout %q reports a result", c, so.String())
		}
	}
}

// TestDemoShowsMixedPrecision checks that the no-argument search on the
// built-in demo returns a genuinely mixed configuration on any CPU, with
// one line saying which default budget was used and why (issue 12: on a
// VNNI CPU the default latency budget returned 8 bits everywhere).
func TestDemoShowsMixedPrecision(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	code, stdout, errs := run(t, "search", "--out", out, "--points", "4")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var why string
	for _, l := range strings.Split(errs, "\n") {
		if strings.Contains(l, "no budget given") {
			why = l
		}
	}
	if !strings.Contains(why, "so ") {
		t.Errorf("stderr has no line saying why the default budget was chosen: %q", errs)
	}
	b, err := os.ReadFile(filepath.Join(out, "bits.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	widths := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.TrimSpace(l); strings.HasPrefix(f, "w_bits:") {
			widths[f] = true
		}
	}
	if len(widths) < 2 {
		t.Errorf("the demo chose one width everywhere (%v); want a mixed configuration. %s\n%s", widths, why, stdout)
	}
}
