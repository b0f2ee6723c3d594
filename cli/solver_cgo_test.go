//go:build cgo

package cli

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// solverTol is the relative objective tolerance between the two solvers:
// both prove optimality, lp_solve's on floating-point LP bounds scaled by
// powers of two (ilp.LPSolve), so they agree to rounding.
const solverTol = 1e-9

// randomTableYAML is a sensitivity table of n layers with random sizes and
// sensitivities decreasing in the bit width (seeded), two tied layers.
func randomTableYAML(seed uint64, n int) string {
	rng := rand.New(rand.NewPCG(seed, 1))
	var b strings.Builder
	b.WriteString("bits: [1, 2, 3, 4, 8]\nlayers:\n")
	for i := 0; i < n; i++ {
		params := 500 + rng.IntN(20000)
		fmt.Fprintf(&b, "  - name: l%d\n    params: %d\n    macs: %d\n    omega: {", i, params, params*(1+rng.IntN(50)))
		s := rng.Float64()
		for j, bits := range []int{1, 2, 3, 4, 8} {
			if j > 0 {
				b.WriteString(", ")
			}
			// Quantization noise falls about 4x per extra bit.
			fmt.Fprintf(&b, "%d: %.6g", bits, s*math.Pow(4, -float64(bits))*(0.5+rng.Float64()))
		}
		b.WriteString("}\n")
	}
	b.WriteString("ties: [[l2, l5]]\n")
	return b.String()
}

// searchSummary runs search with args plus --out and returns summary.json.
func searchSummary(t *testing.T, args ...string) (objective float64, bits []int, stdout string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out")
	code, stdout, errs := run(t, append(args, "--out", out)...)
	if code != 0 {
		t.Fatalf("%v: exit %d: %s", args, code, errs)
	}
	var s struct {
		Objective float64 `json:"objective"`
		Layers    []struct {
			WBits int `json:"w_bits"`
		} `json:"layers"`
	}
	b, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	for _, l := range s.Layers {
		bits = append(bits, l.WBits)
	}
	return s.Objective, bits, stdout
}

// TestSolverLPSolveEndToEnd runs `search --solver lp_solve` on random
// tables with a size and a BOPs budget (first and last layers kept at 8
// bits, two layers tied) and compares the optimum with `--solver go`:
// two independent exact solvers must find the same objective.
func TestSolverLPSolveEndToEnd(t *testing.T) {
	dir := t.TempDir()
	for _, seed := range []uint64{1, 2, 3} {
		table := filepath.Join(dir, fmt.Sprintf("t%d.yaml", seed))
		if err := os.WriteFile(table, []byte(randomTableYAML(seed, 16)), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, budgets := range [][]string{{"--size-budget", "35%"}, {"--size-budget", "60%", "--bops-budget", "40%"}} {
			args := append([]string{"search", "--table", table}, budgets...)
			goObj, goBits, _ := searchSummary(t, append(args, "--solver", "go")...)
			lpObj, lpBits, stdout := searchSummary(t, append(args, "--solver", "lp_solve")...)
			if math.Abs(lpObj-goObj) > solverTol*math.Abs(goObj) {
				t.Errorf("seed %d %v: lp_solve objective %.12g (bits %v); go %.12g (bits %v)", seed, budgets, lpObj, lpBits, goObj, goBits)
			}
			if !strings.Contains(stdout, "optimum") {
				t.Errorf("seed %d %v: stdout does not report a proven optimum:\n%s", seed, budgets, stdout)
			}
			if lpBits[0] != 8 || lpBits[len(lpBits)-1] != 8 || lpBits[2] != lpBits[5] {
				t.Errorf("seed %d %v: lp_solve bits %v break --keep-ends or the tie l2=l5", seed, budgets, lpBits)
			}
		}
	}
}
