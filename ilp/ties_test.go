package ilp

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestTieGroupsBruteForce: TieGroups equals the connected components of
// the graph joining every two layers of a tie group, found by repeated
// relaxation (a plainly written fixed point), on random ties.
func TestTieGroupsBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 9))
	for trial := 0; trial < 200; trial++ {
		n := 1 + rng.IntN(12)
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("l%d", i)
		}
		var ties [][]string
		for g := rng.IntN(5); g > 0; g-- {
			var tie []string
			for k := 1 + rng.IntN(3); k > 0; k-- {
				tie = append(tie, names[rng.IntN(n)])
			}
			ties = append(ties, tie)
		}
		got, err := TieGroups(names, ties)
		if err != nil {
			t.Fatal(err)
		}
		// Brute force: label = smallest index reachable; relax until stable.
		label := make([]int, n)
		for i := range label {
			label[i] = i
		}
		for changed := true; changed; {
			changed = false
			for _, tie := range ties {
				lo := n
				for _, name := range tie {
					lo = min(lo, label[slices.Index(names, name)])
				}
				for _, name := range tie {
					if i := slices.Index(names, name); label[i] != lo {
						label[i], changed = lo, true
					}
				}
			}
			for i := range label { // propagate through shared labels
				if label[label[i]] < label[i] {
					label[i], changed = label[label[i]], true
				}
			}
		}
		var want [][]int
		for r := 0; r < n; r++ {
			var g []int
			for i := range label {
				if label[i] == r {
					g = append(g, i)
				}
			}
			if g != nil {
				want = append(want, g)
			}
		}
		if !slices.EqualFunc(got, want, slices.Equal[[]int]) {
			t.Fatalf("ties %v over %d layers: got %v; want %v", ties, n, got, want)
		}
	}
	if _, err := TieGroups([]string{"a"}, [][]string{{}}); err == nil {
		t.Error("an empty tie group: no error")
	}
	if _, err := TieGroups([]string{"a"}, [][]string{{"a", "b"}}); err == nil {
		t.Error("an unknown layer: no error")
	}
}
