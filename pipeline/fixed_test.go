package pipeline

import (
	"context"
	"fmt"
	"testing"

	"mpsearch/dataset"
	"mpsearch/sensitivity"
)

// lenetSizeUniform3 is the fixture LeNet's weight size at uniform 3 bits
// (61,470 parameters x 3 / 8 = 23,051.25 bytes, rounded up), the issue-12 budget at
// which main returned uniform W3A8 with both ends at 3 bits.
const lenetSizeUniform3 = "23052"

// TestSearchRespectsFixedLayers runs the whole search with verification on
// the fixture LeNet (sensitivities and held-out loss on calib.npy) at the
// uniform-3-bit size: with --keep-ends, and with a layer fixed by the
// table's bits. The chosen configuration and every measured candidate must
// keep the fixed layers; plain uniform configurations that override them
// stay in the result only as ReferenceOnly, and the uniform baselines with
// the fixed layers kept are there. (Before issue 12 the search measured
// and returned uniform W3A8, [3 3 3 3 3].)
func TestSearchRespectsFixedLayers(t *testing.T) {
	ctx := context.Background()
	net := loadNet(t, "../testdata/fmnist-lenet/lenet.onnx")
	all, err := dataset.Load("../testdata/fmnist-lenet/calib.npy", dataset.Options{Labels: "../testdata/fmnist-lenet/calib_labels.npy"})
	if err != nil {
		t.Fatal(err)
	}
	calib, heldOut := all.Subset(0, 192), all.Subset(192, 64)
	base, err := sensitivity.Compute(ctx, net, calib, sensitivity.Config{Bits: []int{2, 3, 4, 8}, Metrics: []string{"direct"}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	ver, err := NewNetVerifier(ctx, net, calib, heldOut, 0)
	if err != nil {
		t.Fatal(err)
	}
	budget, err := ParseBudget(Size, lenetSizeUniform3)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		keepEnds bool
		fixed    map[int]int // layer index -> table bits
	}{
		{"keep-ends", true, nil},
		{"table fixes conv2 at 4", false, map[int]int{1: 4}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tab := *base
			tab.Layers = append([]sensitivity.Layer(nil), base.Layers...)
			want := map[int]int{}
			for i, b := range c.fixed {
				tab.Layers[i].Bits = b
				want[i] = b
			}
			if c.keepEnds {
				want[0], want[len(tab.Layers)-1] = 8, 8
			}
			res, err := Search(ctx, &tab, SearchConfig{Budgets: []Budget{budget}, KeepEnds: c.keepEnds, Verify: ver})
			if err != nil {
				t.Fatal(err)
			}
			keeps := func(bits []int) bool {
				for i, b := range want {
					if bits[i] != b {
						return false
					}
				}
				return true
			}
			if !keeps(res.Chosen.Bits) {
				t.Errorf("chosen %s %v; want layers %v kept", res.Chosen.Label, res.Chosen.Bits, want)
			}
			for _, m := range res.Measured {
				if !keeps(m.Bits) {
					t.Errorf("measured candidate %s %v overrides the fixed layers %v", m.Label, m.Bits, want)
				}
			}
			kept := 0
			for _, u := range res.Uniform {
				if u.ReferenceOnly == keeps(u.Bits) {
					t.Errorf("uniform %s %v: ReferenceOnly %v; want %v", u.Label, u.Bits, u.ReferenceOnly, !keeps(u.Bits))
				}
				if !u.ReferenceOnly {
					kept++
				}
			}
			if kept != len(res.Bits) {
				t.Errorf("got %d uniform baselines keeping the fixed layers; want one per width (%d): %v", kept, len(res.Bits), labels(res.Uniform))
			}
		})
	}
}

func labels(cs []*Candidate) []string {
	var out []string
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%s %v", c.Label, c.Bits))
	}
	return out
}
