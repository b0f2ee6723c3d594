package pipeline

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"testing"

	"mpsearch/dataset"
	"mpsearch/ilp"
	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/quant"
	"mpsearch/sensitivity"

	"mpsearch/internal/citest"
)

const fmnist = "/usr/share/datasets/fashion-mnist/"

// spearman returns the rank correlation of x and y (average ranks for ties).
func spearman(x, y []float64) float64 {
	rank := func(v []float64) []float64 {
		idx := make([]int, len(v))
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return v[idx[a]] < v[idx[b]] })
		r := make([]float64, len(v))
		for i := 0; i < len(idx); {
			j := i
			for j+1 < len(idx) && v[idx[j+1]] == v[idx[i]] {
				j++
			}
			for k := i; k <= j; k++ {
				r[idx[k]] = float64(i+j)/2 + 1
			}
			i = j + 1
		}
		return r
	}
	rx, ry := rank(x), rank(y)
	mx, my := 0.0, 0.0
	for i := range rx {
		mx += rx[i]
		my += ry[i]
	}
	mx /= float64(len(rx))
	my /= float64(len(ry))
	sxy, sxx, syy := 0.0, 0.0, 0.0
	for i := range rx {
		sxy += (rx[i] - mx) * (ry[i] - my)
		sxx += (rx[i] - mx) * (rx[i] - mx)
		syy += (ry[i] - my) * (ry[i] - my)
	}
	return sxy / math.Sqrt(sxx*syy)
}

func TestSpearman(t *testing.T) {
	if got := spearman([]float64{1, 2, 3, 4}, []float64{10, 20, 30, 40}); math.Abs(got-1) > 1e-12 {
		t.Errorf("monotone: got %g; want 1", got)
	}
	if got := spearman([]float64{1, 2, 3, 4}, []float64{4, 3, 2, 1}); math.Abs(got+1) > 1e-12 {
		t.Errorf("reversed: got %g; want -1", got)
	}
	// scipy.stats.spearmanr([1,2,2,3],[1,3,2,4]) = 0.9486832980505138
	if got := spearman([]float64{1, 2, 2, 3}, []float64{1, 3, 2, 4}); math.Abs(got-0.9486832980505138) > 1e-12 {
		t.Errorf("ties: got %.16g; want 0.9486832980505138 (scipy)", got)
	}
}

// TestMetricEvidence measures, on the fixture LeNet, how well each
// sensitivity metric's summed value ranks the measured test-accuracy drop
// of a set of configurations: uniform 8/4/3/2, the ILP optima at the
// uniform-3 and uniform-4 sizes under each metric, and a dozen random
// configurations that fit the uniform-4 size. The default metric must rank
// best (within noise). Figures are logged; the README quotes them.
func TestMetricEvidence(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: evaluates ~30 configurations on 10000 images")
	}
	if _, err := os.Stat(fmnist + "t10k-images-idx3-ubyte.gz"); err != nil {
		citest.Missing(t, "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist, or scripts/setup.sh --test)")
	}
	ctx := context.Background()
	m, err := onnx.Load("../testdata/fmnist-lenet/lenet.onnx")
	if err != nil {
		t.Fatal(err)
	}
	net, err := network.Build(m, network.Options{})
	if err != nil {
		t.Fatal(err)
	}
	norm := dataset.Options{Mean: []float64{0.2860}, Std: []float64{0.3530}}
	calibOpt := norm
	calibOpt.Labels, calibOpt.Limit = fmnist+"train-labels-idx1-ubyte.gz", 1024
	calib, err := dataset.Load(fmnist+"train-images-idx3-ubyte.gz", calibOpt)
	if err != nil {
		t.Fatal(err)
	}
	testOpt := norm
	testOpt.Labels = fmnist + "t10k-labels-idx1-ubyte.gz"
	test, err := dataset.Load(fmnist+"t10k-images-idx3-ubyte.gz", testOpt)
	if err != nil {
		t.Fatal(err)
	}
	bits := []int{2, 3, 4, 8}
	tab, err := sensitivity.Compute(ctx, net, calib, sensitivity.Config{Bits: bits, Threads: 2, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	var cb = calib.X
	ranges, err := quant.ObserveRanges(ctx, net, splitBatches(cb, 256))
	if err != nil {
		t.Fatal(err)
	}
	hook := quant.ActHook(ranges.ActQuantizers())
	accuracy := func(cfg []int) float64 {
		ws := quant.NewWeightSetter(net)
		defer ws.Restore()
		if err := ws.SetAll(cfg); err != nil {
			t.Fatal(err)
		}
		r, err := Evaluate(ctx, net, test, EvalOptions{Hook: hook})
		if err != nil {
			t.Fatal(err)
		}
		return r.Accuracy
	}
	n := len(tab.Layers)
	uniform := func(b int) []int {
		u := make([]int, n)
		for i := range u {
			u[i] = b
		}
		return u
	}
	size := func(cfg []int) float64 {
		s := 0.0
		for i, b := range cfg {
			s += float64(tab.Layers[i].Params) * float64(b)
		}
		return s
	}
	type config struct {
		label string
		bits  []int
	}
	configs := []config{}
	seen := map[string]bool{}
	addCfg := func(label string, b []int) {
		k := fmt.Sprint(b)
		if !seen[k] {
			seen[k] = true
			configs = append(configs, config{label, b})
		}
	}
	for _, b := range []int{8, 4, 3, 2} {
		addCfg(fmt.Sprintf("uniform %d", b), uniform(b))
	}
	for _, target := range []int{3, 4} {
		for _, metric := range sensitivity.Metrics {
			p := &ilp.Problem{Resources: []ilp.Resource{{Name: "size", Limit: size(uniform(target))}}}
			for i, l := range tab.Layers {
				layer := ilp.Layer{Name: l.Name}
				lo := 0.0 // direct is signed; the ILP takes omegas >= 0 (a per-layer shift moves no optimum)
				for _, b := range bits {
					lo = min(lo, l.Metrics[metric][b])
				}
				for _, b := range bits {
					layer.Options = append(layer.Options, ilp.Option{Bits: b, Omega: l.Metrics[metric][b] - lo, Costs: []float64{float64(l.Params) * float64(b)}})
				}
				_ = i
				p.Layers = append(p.Layers, layer)
			}
			s, err := ilp.Default().Solve(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			addCfg(fmt.Sprintf("ILP %s @W%d size", metric, target), choiceBits(s))
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for added := 0; added < 12; {
		c := make([]int, n)
		for i := range c {
			c[i] = bits[rng.IntN(len(bits))]
		}
		if size(c) <= size(uniform(4)) && !seen[fmt.Sprint(c)] {
			addCfg("random", c)
			added++
		}
	}
	base := accuracy(uniform(8))
	drops := make([]float64, len(configs))
	sums := map[string][]float64{}
	var lines []string
	for ci, c := range configs {
		drops[ci] = base - accuracy(c.bits)
		line := fmt.Sprintf("%-26s %v drop %6.2f", c.label, c.bits, 100*drops[ci])
		for _, metric := range sensitivity.Metrics {
			s := 0.0
			for i, b := range c.bits {
				s += tab.Layers[i].Metrics[metric][b]
			}
			sums[metric] = append(sums[metric], s)
			line += fmt.Sprintf("  %s %.4g", metric, s)
		}
		lines = append(lines, line)
	}
	t.Logf("W8A8 accuracy %.2f%%; %d configurations:\n%s", 100*base, len(configs), strings.Join(lines, "\n"))
	best := math.Inf(-1)
	rho := map[string]float64{}
	for _, metric := range sensitivity.Metrics {
		rho[metric] = spearman(sums[metric], drops)
		best = math.Max(best, rho[metric])
		t.Logf("Spearman(%s sum, accuracy drop) = %.3f", metric, rho[metric])
	}
	// The default metric must be the best ranker, up to a small margin for
	// ties among near-equal configurations.
	if rho[sensitivity.DefaultMetric] < best-0.02 {
		t.Errorf("default metric %s ranks with Spearman %.3f; the best metric reaches %.3f: change DefaultMetric", sensitivity.DefaultMetric, rho[sensitivity.DefaultMetric], best)
	}
}
