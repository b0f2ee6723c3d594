package pipeline

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"mpsearch/ilp"
)

// TestCheckBudgetsAgreesWithSearch checks CheckBudgets, the feasibility
// test a search runs before its sensitivity stage, against Search itself
// and against brute force: over a sweep of size and BOPs budgets, with and
// without fixed ends, CheckBudgets fails exactly when Search does (with
// the same error), and exactly when the budget is below the smallest cost
// any configuration has (each free layer at its cheapest option, the ends
// at 8 bits when kept).
func TestCheckBudgetsAgreesWithSearch(t *testing.T) {
	tab := randomTable(11, 7)
	tab.Layers[6].Params = 400_000 // a large classifier, as MobileNetV2's
	verdicts := map[bool]int{}
	for _, keep := range []bool{false, true} {
		for _, res := range []string{Size, BOPs} {
			for _, frac := range []float64{0.15, 0.2, 0.26, 0.3, 0.4, 0.6} {
				name := fmt.Sprintf("%s %.2fx keep-ends %v", res, frac, keep)
				cfg := SearchConfig{Budgets: []Budget{{Resource: res, Kind: Relative, Value: frac, Text: fmt.Sprintf("%gx", frac)}}, KeepEnds: keep}
				pre := CheckBudgets(context.Background(), tab, cfg)
				verdicts[pre == nil]++
				_, full := Search(context.Background(), tab, cfg)
				if (pre == nil) != (full == nil) || (pre != nil && pre.Error() != full.Error()) {
					t.Errorf("%s: CheckBudgets %v; Search %v; want the same verdict and error", name, pre, full)
				}
				// Brute force: the cheapest configuration's cost.
				r, _, err := prepare(tab, cfg)
				if err != nil {
					t.Fatal(err)
				}
				least := 0.0
				for i := range tab.Layers {
					best := -1.0
					for _, b := range r.Bits {
						if f := r.fixed[i]; f != 0 && b != f {
							continue
						}
						if c := r.costs[res][i][b]; best < 0 || c < best {
							best = c
						}
					}
					least += best
				}
				if wantInfeasible := least > r.Limits[res]; wantInfeasible != errors.Is(pre, ilp.ErrInfeasible) {
					t.Errorf("%s: cheapest configuration %g against limit %g; CheckBudgets said %v", name, least, r.Limits[res], pre)
				}
			}
		}
	}
	if verdicts[true] == 0 || verdicts[false] == 0 {
		t.Errorf("feasible/infeasible budgets in the sweep: %d/%d; want some of each", verdicts[true], verdicts[false])
	}
}
