package sensitivity

import (
	"context"
	"fmt"
	"math"
	"testing"

	"mpsearch/network"
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
// terms).
const fisherRel = 1e-9

// TestFisherMatchesTangentPasses checks the fisher metric (one backward
// pass per batch, one operator tangent per layer) against the reference
// (one tangent pass per layer) on the fixture LeNet and the small residual
// model with a float Tanh step (residualModel), at 1 and 2 threads.
func TestFisherMatchesTangentPasses(t *testing.T) {
	lenet, ds := loadFixture(t)
	res, rds := residualData(t, 100)
	for _, tc := range []struct {
		name string
		net  *network.Network
	}{{"lenet", lenet}, {"residual", res}} {
		data := ds
		if tc.name == "residual" {
			data = rds
		}
		for _, threads := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/threads %d", tc.name, threads), func(t *testing.T) {
				cfg := Config{Bits: []int{2, 4, 8}}
				if err := cfg.defaults(); err != nil {
					t.Fatal(err)
				}
				o, err := NewOracle(context.Background(), tc.net, data, OracleOptions{Threads: threads, Batch: 64})
				if err != nil {
					t.Fatal(err)
				}
				mk := func() *Table {
					tab := &Table{Samples: data.Len()}
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
				for li := range got.Layers {
					for _, b := range cfg.Bits {
						g, w := got.Layers[li].Metrics[MetricFisher][b], want.Layers[li].Metrics[MetricFisher][b]
						if math.Abs(g-w) > fisherRel*math.Abs(w) || (w == 0) != (g == 0) {
							t.Errorf("layer %d at %d bits: got %.12g; want %.12g (tangent passes)", li, b, g, w)
						}
					}
				}
			})
		}
	}
}
