package intengine

import (
	"context"
	"fmt"
	"testing"

	"mpsearch/dataset"
	"mpsearch/internal/fixture"
	"mpsearch/network"
	"mpsearch/tensor"
)

func loadLeNet(t testing.TB) *network.Network { return fixture.LeNet(t) }

func loadCalib(t testing.TB) *dataset.Dataset { return fixture.LeNetCalib(t) }

// loadTest returns the 10000 Fashion-MNIST test images, or skips.
func loadTest(t testing.TB) *dataset.Dataset { return fixture.TestSet(t, 0) }

// lenetModel compiles the fixture LeNet with ranges from the 256 shipped
// calibration images.
func lenetModel(t testing.TB, net *network.Network, bits []int) *Model {
	t.Helper()
	r, err := ObserveRanges(context.Background(), net, []*tensor.Tensor{loadCalib(t).X})
	if err != nil {
		t.Fatal(err)
	}
	m, err := Compile(net, Config{Bits: bits, Ranges: r})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// diffInt compares two runs' integer tensors and returns the number of
// differing codes and accumulators, with a description of the first.
func diffInt(got, want *IntResult) (n int, first string) {
	note := func(s string) {
		if first == "" {
			first = s
		}
	}
	if len(got.Tensors) != len(want.Tensors) {
		return 1, "different tensor lists"
	}
	for i, g := range got.Tensors {
		w := want.Tensors[i]
		if g.Name != w.Name || len(g.Codes) != len(w.Codes) {
			n++
			note("tensor " + g.Name + " vs " + w.Name)
			continue
		}
		for j := range g.Codes {
			if g.Codes[j] != w.Codes[j] {
				n++
				note(fmtDiff(g.Name, j, int64(g.Codes[j]), int64(w.Codes[j])))
			}
		}
	}
	if len(got.Acc) != len(want.Acc) {
		return n + 1, "different accumulator sizes"
	}
	for j := range got.Acc {
		if got.Acc[j] != want.Acc[j] {
			n++
			note(fmtDiff("logit accumulators", j, int64(got.Acc[j]), int64(want.Acc[j])))
		}
	}
	return n, first
}

func fmtDiff(name string, j int, g, w int64) string {
	return fmt.Sprintf("%s[%d]: got %d; want %d", name, j, g, w)
}

// argmaxRows returns the index of the largest value of each row of an
// [N, C] tensor.
func argmaxRows(z *tensor.Tensor) []int {
	n, c := z.Shape[0], tensor.Size(z.Shape[1:])
	out := make([]int, n)
	for i := range out {
		row := z.Data[i*c : (i+1)*c]
		for j := range row {
			if row[j] > row[out[i]] {
				out[i] = j
			}
		}
	}
	return out
}

// runBoth runs m and its simulated reference (NewReference) on x, reports
// every integer that differs (prefixed by what), and returns both results.
func runBoth(t *testing.T, m *Model, x *tensor.Tensor, what string) (got, want *IntResult) {
	t.Helper()
	ref, err := NewReference(m)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if got, err = m.RunInt(ctx, x); err != nil {
		t.Fatal(err)
	}
	if want, err = ref.RunInt(ctx, x); err != nil {
		t.Fatal(err)
	}
	if d, first := diffInt(got, want); d > 0 {
		t.Errorf("%s: %d integers differ from the simulation; first: %s", what, d, first)
	}
	return got, want
}
