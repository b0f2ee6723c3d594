//go:build !cgo

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSolverLPSolveUnavailable: without cgo there is no lp_solve, and
// --solver lp_solve is one line, exit 1, naming the way out.
func TestSolverLPSolveUnavailable(t *testing.T) {
	dir := t.TempDir()
	table := filepath.Join(dir, "sens.yaml")
	if err := os.WriteFile(table, []byte(tableYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := run(t, "search", "--table", table, "--size-budget", "3000", "--solver", "lp_solve", "--out", filepath.Join(dir, "out"))
	if code != 1 || !strings.Contains(errs, "--solver go") || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
		t.Errorf("got exit %d, stderr %q; want exit 1 and one line naming --solver go", code, errs)
	}
}
