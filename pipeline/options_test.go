package pipeline

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"mpsearch/internal/fixture"
	"mpsearch/quant"
	"mpsearch/sensitivity"
)

// TestSensitivityBiasCorrectionAndGroups: bias correction is part of the
// cache key and recorded in the table (a table without it is refused for
// a job with it), and a table with options in groups records their sizes
// with the scales (quant.OptionSizeBytes) and measures them: the delta at
// 2g64 is the blocked codes' squared error, below per-channel 2 bits'.
func TestSensitivityBiasCorrectionAndGroups(t *testing.T) {
	t.Setenv("MPSEARCH_CACHE", t.TempDir())
	ctx := context.Background()
	net := fixture.LeNet(t)
	in := &Inputs{Net: net, Calib: fixture.LeNetCalib(t).Subset(0, 64), ModelSHA256: "model", DataSHA256: "data"}
	g2 := quant.OptionCode(2, 64)
	codes := []int{2, g2, 8}
	tables := map[bool]*sensitivity.Table{}
	keys := map[bool]string{}
	for _, bc := range []bool{false, true} {
		src, err := NewWeightSource(ctx, net, in.Calib, WeightSpec{Method: quant.MethodGPTQ, BiasCorrection: bc}, codes, 32, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg := sensitivity.Config{Bits: codes, Metrics: []string{sensitivity.MetricDirect}, Trace: sensitivity.TraceNone, Weights: src}
		keys[bc] = cacheKey(in, cfg)
		if tables[bc], _, err = Sensitivity(ctx, in, SensitivityRequest{Config: cfg}); err != nil {
			t.Fatal(err)
		}
		if tables[bc].BiasCorrection != bc {
			t.Errorf("table computed with bias correction %t records %t", bc, tables[bc].BiasCorrection)
		}
		for li, l := range tables[bc].Layers {
			w := net.Params()[net.Layers()[li].Weight].Value
			for _, c := range codes {
				if want := quant.OptionSizeBytes(w.Shape, net.Layers()[li].ChannelAxis, c); l.SizeBytes[c] != want {
					t.Errorf("%s at %s: size_bytes %g; want %g (weights and scales)", l.Name, quant.FormatOption(c), l.SizeBytes[c], want)
				}
			}
			want, err := quant.LayerSquaredError(src, net, li, g2)
			if err != nil {
				t.Fatal(err)
			}
			if l.Delta[g2] != want || !(l.Delta[g2] < l.Delta[2]) {
				t.Errorf("%s: delta at 2g64 %g, at 2 %g; want the blocked codes' error %g, below per channel", l.Name, l.Delta[g2], l.Delta[2], want)
			}
			if _, ok := l.Metrics[sensitivity.MetricDirect][g2]; !ok {
				t.Errorf("%s: no direct metric at 2g64", l.Name)
			}
		}
	}
	if keys[false] == keys[true] {
		t.Error("tables with and without bias correction share a cache key")
	}
	if err := tables[false].CheckBiasCorrection("sens.yaml", true); !errors.Is(err, sensitivity.ErrTable) || !strings.Contains(err.Error(), "--bias-correction=false") {
		t.Errorf("table without bias correction for a job with it: %v; want a refusal naming --bias-correction=false", err)
	}
	if err := tables[true].CheckBiasCorrection("sens.yaml", true); err != nil {
		t.Errorf("table with bias correction for a job with it: %v", err)
	}
}

// groupTable is three layers of 1000 weights at 2, 2g64, 3 and 8 bits with
// sizes (the scales included) and omegas chosen so that groups pay: all
// three at 2g64 fit 900 B with objective 3.
func groupTable() *sensitivity.Table {
	g2 := quant.OptionCode(2, 64)
	size := map[int]float64{2: 250, g2: 300, 3: 375, 8: 1000}
	var layers []sensitivity.Layer
	for _, n := range []string{"a", "b", "c"} {
		layers = append(layers, sensitivity.Layer{Name: n, Params: 1000, MACs: 1000, SizeBytes: size,
			Omega: map[int]float64{2: 10, g2: 1, 3: 2, 8: 0}})
	}
	return &sensitivity.Table{Bits: []int{2, g2, 3, 8}, Metric: "direct", Layers: layers}
}

// TestSearchGroups: the ILP trades the scales' storage against the error:
// its optimum equals brute force over every configuration of options
// within the budget; the uniform baselines include the options in groups;
// a latency budget with options in groups is refused naming --group-size,
// and so is a table without their sizes.
func TestSearchGroups(t *testing.T) {
	tab := groupTable()
	budget := Budget{Resource: Size, Kind: Absolute, Value: 900}
	res, err := Search(context.Background(), tab, SearchConfig{Budgets: []Budget{budget}})
	if err != nil {
		t.Fatal(err)
	}
	opts := quant.SortOptions(tab.Bits)
	best, bestObj := []int(nil), math.Inf(1)
	for _, x := range opts {
		for _, y := range opts {
			for _, z := range opts {
				c := []int{x, y, z}
				size, obj := 0.0, 0.0
				for i, b := range c {
					size += tab.Layers[i].SizeBytes[b]
					obj += tab.Layers[i].Omega[b]
				}
				if size <= budget.Value && obj < bestObj {
					best, bestObj = c, obj
				}
			}
		}
	}
	if !slices.Equal(res.Chosen.Bits, best) || res.Chosen.Objective != bestObj {
		t.Errorf("chosen %s (objective %g); want the brute-force optimum %s (%g)", quant.FormatOptions(res.Chosen.Bits), res.Chosen.Objective, quant.FormatOptions(best), bestObj)
	}
	var labels []string
	for _, u := range res.Uniform {
		labels = append(labels, u.Label)
	}
	if !slices.Contains(labels, "uniform W2g64A8") {
		t.Errorf("uniform baselines %q: no uniform W2g64A8", labels)
	}
	_, err = Search(context.Background(), tab, SearchConfig{Budgets: []Budget{{Resource: Latency, Kind: Fraction, Value: 0.5}}})
	if !errors.Is(err, ErrBudget) || !strings.Contains(err.Error(), "--group-size") {
		t.Errorf("latency budget with options in groups: %v; want an ErrBudget naming --group-size", err)
	}
	noSize := groupTable()
	noSize.Layers[1].SizeBytes = nil
	_, err = Search(context.Background(), noSize, SearchConfig{Budgets: []Budget{budget}})
	if !errors.Is(err, sensitivity.ErrTable) || !strings.Contains(err.Error(), `"b"`) || !strings.Contains(err.Error(), "size_bytes") {
		t.Errorf("a table without the size of 2g64: %v; want an ErrTable naming layer b and size_bytes", err)
	}
}

// TestCheckPerChannelAndBitsFile: a configuration with a layer in groups
// is refused for the integer engine in one line naming the layer and
// --group-size; bits.yaml records each layer's group size and BitsFor
// reads the option codes back.
func TestCheckPerChannelAndBitsFile(t *testing.T) {
	net := fixture.LeNet(t)
	bits := []int{8, 4, quant.OptionCode(3, 64), 2, 8}
	err := CheckPerChannel(net, bits, "mpsearch run --bits")
	if !errors.Is(err, ErrGroups) || !strings.Contains(err.Error(), `"/fc1/Gemm"`) || !strings.Contains(err.Error(), "--group-size") || strings.Contains(err.Error(), "\n") {
		t.Errorf("CheckPerChannel: %v; want one line wrapping ErrGroups naming /fc1/Gemm and --group-size", err)
	}
	if err := CheckPerChannel(net, []int{8, 4, 3, 2, 8}, "x"); err != nil {
		t.Errorf("per-channel configuration: %v", err)
	}
	tab := &sensitivity.Table{}
	for _, l := range net.Layers() {
		tab.Layers = append(tab.Layers, sensitivity.Layer{Name: l.Node})
	}
	f := NewBitsFile(&SearchResult{Table: tab, Chosen: &Candidate{Bits: bits}}, "lenet.onnx", "ilp")
	if f.Layers[2].WBits != 3 || f.Layers[2].GroupSize != 64 || f.Layers[1].GroupSize != 0 {
		t.Errorf("bits.yaml layers %+v; want fc1 at 3 bits in groups of 64, the others per channel", f.Layers)
	}
	b, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "group_size: 64") || strings.Count(string(b), "group_size") != 1 {
		t.Errorf("bits.yaml:\n%s\nwant group_size: 64 on fc1 only", b)
	}
	back, err := BitsFor(net, f)
	if err != nil || !slices.Equal(back, bits) {
		t.Errorf("BitsFor: %v, %v; want %v", back, err, bits)
	}
}
