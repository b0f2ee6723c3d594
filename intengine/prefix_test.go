package intengine

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"mpsearch/network"
	"mpsearch/tensor"
)

func TestLiveAt(t *testing.T) {
	net := residualNet(t)
	m := compileSynthetic(t, net, nil)
	// Steps: input, c1+r1, c2, add1+r2, ap, c3+clip, mp, c4, add2, ap2, r3, gap, fc+rf, head.
	for _, tc := range []struct {
		step int
		want []string
	}{
		{0, nil},
		{1, []string{"x"}},
		{2, []string{"r1_out"}},           // read by c2 and add1
		{3, []string{"r1_out", "c2_out"}}, // add1's inputs
		{7, []string{"ap_out", "mp_out"}}, // c4 reads ap, add2 reads mp
		{13, []string{"rf_out"}},
		{14, nil}, // the output is the int32 accumulator
	} {
		if got := m.LiveAt(tc.step); !slices.Equal(got, tc.want) {
			t.Errorf("live at step %d (%v): got %v; want %v", tc.step, m.Steps()[min(tc.step, len(m.Steps())-1)], got, tc.want)
		}
	}
}

// poisonPool gives m a pool of its own holding a workspace whose buffers
// hold garbage, so that RunFrom reading a tensor it was not handed shows.
func poisonPool(m *Model, x *tensor.Tensor) {
	m.pool = &wsPool{}
	ws := m.getWorkspace(x)
	rng := rand.New(rand.NewPCG(1, 1))
	for _, b := range ws.bufs {
		for i := range b {
			b[i] = uint8(rng.IntN(256))
		}
	}
	m.putWorkspace(ws)
}

// checkPrefixVariants checks, for every layer and bit width, that a run of
// the base model stopped at the layer's step and continued in the
// WithLayerBits variant gives the output of the model compiled with that
// configuration and of its simulated quantization, bit for bit.
func checkPrefixVariants(t *testing.T, net *network.Network, compile func([]int) *Model, x *tensor.Tensor, widths []int) {
	t.Helper()
	ctx := context.Background()
	base := compile(nil)
	nl := len(net.Layers())
	for li := 0; li < nl; li++ {
		cut, err := base.LayerStep(li)
		if err != nil {
			t.Fatal(err)
		}
		p, err := base.Start(x)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.RunTo(ctx, cut); err != nil {
			t.Fatal(err)
		}
		for _, b := range widths {
			v, err := base.WithLayerBits(li, b)
			if err != nil {
				t.Fatal(err)
			}
			poisonPool(v, x)
			got, err := v.RunFrom(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			bits := make([]int, nl)
			for i := range bits {
				bits[i] = 8
			}
			bits[li] = b
			full := compile(bits)
			want, err := full.Run(ctx, x)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := NewReference(full)
			if err != nil {
				t.Fatal(err)
			}
			sim, err := ref.RunInt(ctx, x)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want.Data {
				if got.Data[i] != want.Data[i] || got.Data[i] != sim.Output.Data[i] {
					t.Fatalf("layer %d at %d bits, output %d: prefix+variant %v; compiled model %v; simulation %v", li, b, i, got.Data[i], want.Data[i], sim.Output.Data[i])
				}
			}
		}
		p.Release()
	}
}

func TestPrefixVariantsResidual(t *testing.T) {
	net := residualNet(t)
	x := randBatch(rand.New(rand.NewPCG(21, 4)), 13, net.SampleShape)
	checkPrefixVariants(t, net, func(bits []int) *Model { return compileSynthetic(t, net, bits) }, x, []int{1, 2, 3, 4, 6, 8})
}

func TestPrefixVariantsLeNet(t *testing.T) {
	net := loadLeNet(t)
	x, _ := loadCalib(t).Batch(0, 40)
	checkPrefixVariants(t, net, func(bits []int) *Model { return lenetModel(t, net, bits) }, x, []int{1, 2, 4, 8})
}

// A Prefix that ran to its end gives Run's output; RunFrom refuses a
// prefix that ran past the layer the variant changes, or one of another
// compiled model.
func TestPrefixErrors(t *testing.T) {
	ctx := context.Background()
	net := residualNet(t)
	base := compileSynthetic(t, net, nil)
	x := randBatch(rand.New(rand.NewPCG(3, 4)), 5, net.SampleShape)
	p, err := base.Start(x)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	if _, err := p.Output(); !errors.Is(err, ErrConfig) {
		t.Errorf("output before the end: got %v; want ErrConfig", err)
	}
	if err := p.RunTo(ctx, len(base.Steps())); err != nil {
		t.Fatal(err)
	}
	got, err := p.Output()
	if err != nil {
		t.Fatal(err)
	}
	want, err := base.Run(ctx, x)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Data, want.Data) {
		t.Errorf("prefix run to the end: got %v; want %v", got.Data, want.Data)
	}
	if err := p.RunTo(ctx, 2); !errors.Is(err, ErrConfig) {
		t.Errorf("run backwards: got %v; want ErrConfig", err)
	}
	v, err := base.WithLayerBits(2, 4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.RunFrom(ctx, p); !errors.Is(err, ErrConfig) {
		t.Errorf("prefix past the changed layer: got %v; want ErrConfig", err)
	}
	other := compileSynthetic(t, net, nil)
	p2, err := other.Start(x)
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Release()
	if _, err := base.RunFrom(ctx, p2); !errors.Is(err, ErrConfig) {
		t.Errorf("prefix of another compiled model: got %v; want ErrConfig", err)
	}
	for _, tc := range []struct{ li, b int }{{-1, 4}, {6, 4}, {0, 0}, {0, 9}} {
		if _, err := base.WithLayerBits(tc.li, tc.b); !errors.Is(err, ErrConfig) {
			t.Errorf("WithLayerBits(%d, %d): got %v; want ErrConfig", tc.li, tc.b, err)
		}
	}
}

// Ranges observed on several batches at once equal those observed one
// batch after another, and those of the batches concatenated.
func TestObserveRangesParallel(t *testing.T) {
	ctx := context.Background()
	net := residualNet(t)
	rng := rand.New(rand.NewPCG(5, 9))
	var batches []*tensor.Tensor
	all := &tensor.Tensor{Shape: append([]int{0}, net.SampleShape...)}
	for _, n := range []int{4, 7, 1, 5, 3} {
		x := randBatch(rng, n, net.SampleShape)
		batches = append(batches, x)
		all.Data = append(all.Data, x.Data...)
		all.Shape[0] += n
	}
	want, err := ObserveRanges(ctx, net, []*tensor.Tensor{all})
	if err != nil {
		t.Fatal(err)
	}
	for _, threads := range []int{1, 2, 3, 8} {
		got, err := ObserveRangesParallel(ctx, net, batches, threads)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%d threads: %d ranges; want %d", threads, len(got), len(want))
		}
		for name, w := range want {
			if got[name] != w {
				t.Errorf("%d threads: range of %s: got %v; want %v (one batch of all samples)", threads, name, got[name], w)
			}
		}
	}
}
