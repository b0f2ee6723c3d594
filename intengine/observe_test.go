package intengine

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"mpsearch/network"
	"mpsearch/quant"
	"mpsearch/tensor"
)

// residualNetUnnamed is residualNet with its first convolution's node
// unnamed: the hook cannot tell which node reads the model input.
func residualNetUnnamed(t testing.TB) *network.Network {
	net := residualNet(t)
	m := *net.Model
	g := m.Graph.Clone()
	g.Nodes[0].Name = ""
	m.Graph = g
	out, err := network.Build(&m, network.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// addOutNet ends in a residual Add, whose output (a quantization point) is
// the graph output: no node reads it, Infer returns it.
func addOutNet(t testing.TB) *network.Network {
	b := newGraphBuilder(3, []int64{2, 5, 5})
	c1 := b.node("c1", "Conv", []string{"x", b.init("w1", 0.4, []int{4, 2, 3, 3}), b.init("b1", 0.1, []int{4})}, aInts("pads", 1, 1, 1, 1))
	r1 := b.node("r1", "Relu", []string{c1})
	c2 := b.node("c2", "Conv", []string{r1, b.init("w2", 0.4, []int{4, 4, 1, 1}), b.init("b2", 0.1, []int{4})})
	return b.build(t, b.node("add", "Add", []string{r1, c2}))
}

// Ranges observed through Infer's hook equal those observed through
// Forward bit for bit, for every calibration method, on the residual
// network (every pattern the engine supports) and the fixture LeNet; a
// network whose readers the hook cannot name is observed through Forward.
func TestObserveInferEqualsForward(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 6))
	cases := []struct {
		name  string
		net   *network.Network
		x     []*tensor.Tensor
		infer bool // whether the Infer path applies
	}{
		{"residual", residualNet(t), nil, true},
		{"lenet", loadLeNet(t), []*tensor.Tensor{loadCalib(t).X}, true},
		{"graph output at a point", addOutNet(t), nil, true},
		{"residual, an unnamed node", residualNetUnnamed(t), nil, false},
	}
	for _, tc := range cases {
		if tc.x == nil {
			tc.x = []*tensor.Tensor{randBatch(rng, 7, tc.net.SampleShape), randBatch(rng, 4, tc.net.SampleShape)}
		}
		names, err := QuantPoints(tc.net)
		if err != nil {
			t.Fatal(err)
		}
		if r, ok := newPointReaders(tc.net, names); ok && tc.name == "graph output at a point" && r.outPoint < 0 {
			t.Fatalf("%s: the graph output %q is not among the points %v", tc.name, tc.net.OutputName, names)
		}
		for _, c := range testCalibs {
			obs := newObserver(tc.net, names, c)
			got, err := observeRanges(ctx, tc.net, tc.x, 2, c, names, obs)
			if err != nil {
				t.Fatal(err)
			}
			if obs.useInfer() != tc.infer {
				t.Errorf("%s, %s: every batch observed through Infer: got %t; want %t", tc.name, c, obs.useInfer(), tc.infer)
			}
			want, err := observeRanges(ctx, tc.net, tc.x, 2, c, names, &observer{calib: c})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%s, %s: %d ranges; want %d", tc.name, c, len(got), len(want))
			}
			for n, w := range want {
				if got[n] != w {
					t.Errorf("%s, %s: range of %s: got %v; want %v (through Forward)", tc.name, c, n, got[n], w)
				}
			}
		}
	}
}

// observeInfer adds nothing and says so when a point has no reader the
// hook sees (here: the reader of one point is forgotten), so that the
// caller observes that batch through Forward instead.
func TestObserveInferIncomplete(t *testing.T) {
	net := residualNet(t)
	names, err := QuantPoints(net)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := newPointReaders(net, names)
	forgot := 0 // the model input's point: read by c1 only
	if names[forgot] != "x" || r.outPoint == forgot {
		t.Fatalf("the first point is %q (the graph output: %t); want the model input x", names[forgot], r.outPoint == forgot)
	}
	for _, m := range r.at {
		for j, p := range m {
			if p == forgot {
				delete(m, j)
			}
		}
	}
	stats := make([]*quant.ActStats, len(names))
	for i := range stats {
		stats[i] = quant.NewActStats(quant.ActCalib{})
	}
	x := randBatch(rand.New(rand.NewPCG(1, 2)), 3, net.SampleShape)
	ok, err := r.observeInfer(context.Background(), net, x, stats, quant.ActCalib{})
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		t.Fatalf("observeInfer with %q unread: got ok; want a refusal", names[forgot])
	}
	for i, s := range stats {
		if r := s.Range(quant.ActCalib{}); r[0] <= r[1] {
			t.Errorf("%s: observed %v after a refusal; want nothing added", names[i], r)
		}
	}
}

// TestRangeObserver checks that ranges observed during a caller's own
// passes, batches split otherwise and run concurrently, are
// ObserveRangesCalib's, that Infer returns net.Infer's output bit for bit,
// and that LayerRanges are quant's layer-input ranges of the same data.
func TestRangeObserver(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 8))
	cases := []struct {
		name string
		net  *network.Network
		x    *tensor.Tensor
	}{
		{"residual", residualNet(t), nil},
		{"lenet", loadLeNet(t), loadCalib(t).X},
		{"residual, an unnamed node (observed through Forward)", residualNetUnnamed(t), nil},
	}
	for _, tc := range cases {
		if tc.x == nil {
			tc.x = randBatch(rng, 11, tc.net.SampleShape)
		}
		n := tc.x.Shape[0]
		per := tc.x.Size() / n
		part := func(lo, hi int) *tensor.Tensor {
			return tensor.FromData(tc.x.Data[lo*per:hi*per], append([]int{hi - lo}, tc.x.Shape[1:]...)...)
		}
		for _, c := range testCalibs {
			want, err := ObserveRangesCalib(ctx, tc.net, []*tensor.Tensor{tc.x}, 1, c)
			if err != nil {
				t.Fatal(err)
			}
			ro, err := NewRangeObserver(tc.net, c)
			if err != nil {
				t.Fatal(err)
			}
			cuts := []int{0, 3, 4, n}
			errs := make([]error, len(cuts)-1)
			var wg sync.WaitGroup
			for i := range errs {
				wg.Go(func() {
					xb := part(cuts[i], cuts[i+1])
					got, err := ro.Infer(ctx, xb)
					if err != nil {
						errs[i] = err
						return
					}
					ref, err := tc.net.Infer(ctx, xb)
					if err != nil {
						errs[i] = err
						return
					}
					for j := range ref.Data {
						if math.Float64bits(got.Data[j]) != math.Float64bits(ref.Data[j]) {
							errs[i] = fmt.Errorf("output %d of part %d: got %v; want net.Infer's %v", j, i, got.Data[j], ref.Data[j])
							return
						}
					}
				})
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Fatalf("%s, %s: %v", tc.name, c, err)
				}
			}
			if got := ro.Samples(); got != n {
				t.Errorf("%s, %s: %d samples observed; want %d", tc.name, c, got, n)
			}
			got := ro.Ranges()
			if len(got) != len(want) {
				t.Fatalf("%s, %s: %d ranges; want %d", tc.name, c, len(got), len(want))
			}
			for name, w := range want {
				if got[name] != w {
					t.Errorf("%s, %s: range of %s: got %v; want ObserveRangesCalib's %v", tc.name, c, name, got[name], w)
				}
			}
			layers := ro.LayerRanges()
			ql, err := quant.ObserveRangesThreads(ctx, tc.net, []*tensor.Tensor{part(0, 5), part(5, n)}, c, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(layers) != len(ql) {
				t.Fatalf("%s, %s: %d layer ranges; want %d", tc.name, c, len(layers), len(ql))
			}
			for node, w := range ql {
				if layers[node] != w {
					t.Errorf("%s, %s: layer %s: got %v; want quant's %v", tc.name, c, node, layers[node], w)
				}
			}
		}
	}
}
