package sensitivity

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"mpsearch/dataset"
	"mpsearch/network"
	"mpsearch/tensor"
)

// fisherTangentPasses is the earlier fisher algorithm, kept as the
// reference: per layer, a forward tangent pass along its k directions
// through the rest of the network, dotted with the output gradient.
func fisherTangentPasses(ctx context.Context, o *Oracle, net *network.Network, t *Table, cfg *Config, own []bool) error {
	k := len(cfg.Bits)
	n := float64(t.Samples)
	total := count(own)
	done := 0
	for li := range t.Layers {
		if !own[li] {
			continue
		}
		cfg.report("fisher", done, total, t.Layers[li].Name)
		done++
		v, err := layerDirections(o, net, li, cfg.Bits, nil)
		if err != nil {
			return err
		}
		dirs := o.directions(v, k)
		parts := make([][]float64, len(o.batches))
		err = o.forEachBatch(ctx, func(b int, p *network.Pass) error {
			tz, err := p.Tangents(dirs, k)
			if err != nil {
				return err
			}
			_, gz, err := o.losses[b].Eval(p.Output())
			if err != nil {
				return err
			}
			rows, c := gz.Shape[0], gz.Shape[1]
			sums := make([]float64, k)
			for j := 0; j < k; j++ {
				for r := 0; r < rows; r++ {
					d := 0.0
					for q := 0; q < c; q++ {
						// gz rows are per-sample gradients divided by N.
						d += gz.Data[r*c+q] * n * tz.Data[j*rows*c+r*c+q]
					}
					sums[j] += d * d
				}
			}
			parts[b] = sums
			return nil
		})
		if err != nil {
			return err
		}
		m := map[int]float64{}
		for j, b := range cfg.Bits {
			s := 0.0
			for _, p := range parts {
				s += p[j]
			}
			m[b] = s / n / 2
		}
		t.Layers[li].Metrics[MetricFisher] = m
	}
	if total > 0 {
		cfg.report("fisher", total, total, "")
	}
	return nil
}

// fisherRel bounds the difference between the two fisher algorithms: the
// same sums in another order (float64 rounding of sums of about 10^3
// terms), and with fisher's larger mini-batches (fisherGroup) the batch
// sums grouped differently.
const fisherRel = 1e-9

// TestFisherMatchesTangentPasses checks the fisher metric (one backward
// pass per batch, per-sample weight gradients per layer) against the
// reference (one tangent pass per layer, on the oracle's own mini-batches)
// on the fixture LeNet and the small residual model with a float Tanh step
// (residualModel, random labels), at 1 and 2 threads, and on LeNet with
// mini-batches limited by memory (OracleOptions.PassBytes) and no cached
// passes, so that fisher takes two of them per pass, the last group short
// (with cached passes it takes them one by one). The values at 2
// threads equal those at 1 bit for bit.
func TestFisherMatchesTangentPasses(t *testing.T) {
	lenet, ds := loadFixture(t)
	res, rds := residualData(t, 100)
	rng := rand.New(rand.NewPCG(5, 17))
	rds.Y = make([]int, rds.Len())
	for i := range rds.Y {
		rds.Y[i] = rng.IntN(3)
	}
	p1, err := lenet.Forward(context.Background(), tensor.FromData(ds.X.Data[:784], 1, 1, 28, 28))
	if err != nil {
		t.Fatal(err)
	}
	// Oracle batches of 5 samples; fisher's bound allows 10.
	lenetBytes := p1.Bytes() * passFactor * 5
	first := map[string][]float64{} // each case's values at 1 thread
	for _, tc := range []struct {
		name      string
		net       *network.Network
		data      *dataset.Dataset
		opt       OracleOptions
		group     int
		batchSize int
	}{
		{"lenet", lenet, ds, OracleOptions{Batch: 64}, 1, 64},
		{"residual", res, rds, OracleOptions{Batch: 64}, 1, 64},
		{"lenet grouped", lenet, ds.Subset(0, 48), OracleOptions{Batch: 64, PassBytes: lenetBytes, MaxCacheBytes: 1}, 2, 5},
		// Cached passes are reused as they are: no groups.
		{"lenet cached", lenet, ds.Subset(0, 48), OracleOptions{Batch: 64, PassBytes: lenetBytes}, 1, 5},
	} {
		for _, threads := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/threads %d", tc.name, threads), func(t *testing.T) {
				cfg := Config{Bits: []int{2, 4, 8}}
				if err := cfg.defaults(); err != nil {
					t.Fatal(err)
				}
				opt := tc.opt
				opt.Threads = threads
				o, err := NewOracle(context.Background(), tc.net, tc.data, opt)
				if err != nil {
					t.Fatal(err)
				}
				if got := o.batches[0].Shape[0]; got != tc.batchSize {
					t.Fatalf("oracle mini-batch: got %d samples; want %d", got, tc.batchSize)
				}
				if got := o.fisherGroup(); got != tc.group {
					t.Fatalf("fisher group: got %d mini-batches; want %d", got, tc.group)
				}
				mk := func() *Table {
					tab := &Table{Samples: tc.data.Len()}
					for range tc.net.Layers() {
						tab.Layers = append(tab.Layers, Layer{Metrics: map[string]map[int]float64{}})
					}
					return tab
				}
				own := make([]bool, len(tc.net.Layers()))
				for i := range own {
					own[i] = true
				}
				got, want := mk(), mk()
				if err := fisherMetric(context.Background(), o, tc.net, got, &cfg, own); err != nil {
					t.Fatal(err)
				}
				if err := fisherTangentPasses(context.Background(), o, tc.net, want, &cfg, own); err != nil {
					t.Fatal(err)
				}
				var vals []float64
				for li := range got.Layers {
					for _, b := range cfg.Bits {
						vals = append(vals, got.Layers[li].Metrics[MetricFisher][b])
					}
				}
				if ref, ok := first[tc.name]; !ok {
					first[tc.name] = vals
				} else {
					for i, v := range vals {
						if v != ref[i] {
							t.Errorf("value %d: got %.17g; want %.17g, bit for bit, as at 1 thread", i, v, ref[i])
						}
					}
				}
				for li := range got.Layers {
					for _, b := range cfg.Bits {
						g, w := got.Layers[li].Metrics[MetricFisher][b], want.Layers[li].Metrics[MetricFisher][b]
						if !(w > 0) {
							t.Errorf("layer %d at %d bits: reference %g; want > 0 (a case that can fail)", li, b, w)
						}
						if !(math.Abs(g-w) <= fisherRel*math.Abs(w)) {
							t.Errorf("layer %d at %d bits: got %.12g; want %.12g (tangent passes)", li, b, g, w)
						}
					}
				}
			})
		}
	}
}

// TestFisherZeroAtOwnTargets: with the KL loss against the float model's
// own outputs (no labels), every sample's gradient at the float model is
// zero, and so is the fisher metric of every layer, computed without
// backward passes (the all-zero output gradient) and equal to the
// reference's.
func TestFisherZeroAtOwnTargets(t *testing.T) {
	net, ds := loadFixture(t)
	ds = &dataset.Dataset{X: ds.X, Source: ds.Source} // no labels: KL
	cfg := Config{Bits: []int{2, 8}}
	if err := cfg.defaults(); err != nil {
		t.Fatal(err)
	}
	o, err := NewOracle(context.Background(), net, ds, OracleOptions{Batch: 64})
	if err != nil {
		t.Fatal(err)
	}
	if o.lossName() != LossKL {
		t.Fatalf("loss %s; want %s", o.lossName(), LossKL)
	}
	tab := &Table{Samples: ds.Len()}
	own := make([]bool, len(net.Layers()))
	for i := range own {
		own[i] = true
		tab.Layers = append(tab.Layers, Layer{Metrics: map[string]map[int]float64{}})
	}
	if err := fisherMetric(context.Background(), o, net, tab, &cfg, own); err != nil {
		t.Fatal(err)
	}
	for li, l := range tab.Layers {
		for _, b := range cfg.Bits {
			if v, ok := l.Metrics[MetricFisher][b]; !ok || v != 0 {
				t.Errorf("layer %d at %d bits: got %g (present %v); want 0", li, b, v, ok)
			}
		}
	}
}
