package pipeline

import (
	"testing"

	"mpsearch/ilp"
)

func TestPruneDominated(t *testing.T) {
	p := &ilp.Problem{
		Resources: []ilp.Resource{{Name: "latency", Limit: 10}},
		Layers: []ilp.Layer{
			// 2 bits: worse omega and slower than 8 bits (a VNNI CPU): dominated.
			{Name: "a", Options: []ilp.Option{{Bits: 2, Omega: 1, Costs: []float64{3}}, {Bits: 4, Omega: 0.5, Costs: []float64{1}}, {Bits: 8, Omega: 0.1, Costs: []float64{2}}}},
			// Tied layers keep every option.
			{Name: "b", Options: []ilp.Option{{Bits: 2, Omega: 1, Costs: []float64{3}}, {Bits: 8, Omega: 0.1, Costs: []float64{2}}}},
			{Name: "c", Options: []ilp.Option{{Bits: 2, Omega: 1, Costs: []float64{3}}, {Bits: 8, Omega: 0.1, Costs: []float64{2}}}},
			// Identical options: the first survives.
			{Name: "d", Options: []ilp.Option{{Bits: 4, Omega: 1, Costs: []float64{1}}, {Bits: 8, Omega: 1, Costs: []float64{1}}}},
		},
		Ties: [][]string{{"b", "c"}},
	}
	q := pruneDominated(p)
	want := map[string][]int{"a": {4, 8}, "b": {2, 8}, "c": {2, 8}, "d": {4}}
	for _, l := range q.Layers {
		var got []int
		for _, o := range l.Options {
			got = append(got, o.Bits)
		}
		if len(got) != len(want[l.Name]) {
			t.Errorf("layer %s: got widths %v; want %v", l.Name, got, want[l.Name])
			continue
		}
		for i := range got {
			if got[i] != want[l.Name][i] {
				t.Errorf("layer %s: got widths %v; want %v", l.Name, got, want[l.Name])
			}
		}
	}
	if len(p.Layers[0].Options) != 3 {
		t.Error("pruneDominated modified its input")
	}
}
