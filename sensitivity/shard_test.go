package sensitivity

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"mpsearch/dataset"
	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/tensor"
)

// shardConfig computes every metric and stage on a few fixture images.
func shardConfig() Config {
	return Config{Bits: []int{2, 4, 8}, Trace: TraceAuto, Eigen: true, Seed: 7, Batch: 16}
}

// TestShardsMergeToOneRun checks that merging the shards of a run gives
// the unsharded table byte for byte, for several shard counts and
// whatever order the shards come in.
func TestShardsMergeToOneRun(t *testing.T) {
	net, ds := loadFixture(t)
	ds = ds.Subset(0, 32)
	ctx := context.Background()
	one, err := Compute(ctx, net, ds, shardConfig())
	if err != nil {
		t.Fatal(err)
	}
	want, err := one.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 3, 7} {
		shards := make([]*Table, n)
		for k := range shards {
			cfg := shardConfig()
			cfg.Shard, cfg.Shards = k, n
			if shards[k], err = Compute(ctx, net, ds, cfg); err != nil {
				t.Fatal(err)
			}
		}
		// Round trip through YAML, as the shards travel between machines.
		for k, s := range shards {
			b, err := s.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if shards[k], err = ReadShard(bytes.NewReader(b), "shard"); err != nil {
				t.Fatal(err)
			}
		}
		rand.New(rand.NewPCG(uint64(n), 1)).Shuffle(n, func(i, j int) { shards[i], shards[j] = shards[j], shards[i] })
		merged, err := Merge(shards)
		if err != nil {
			t.Fatalf("%d shards: %v", n, err)
		}
		got, err := merged.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%d shards: merged table differs from one run:\n got %s\nwant %s", n, got, want)
		}
		if n > 1 {
			if b, _ := shards[0].Marshal(); bytes.Equal(b, want) {
				t.Errorf("%d shards: a single shard equals the whole run; want a part", n)
			}
		}
	}
}

func TestMergeRefuses(t *testing.T) {
	net, ds := loadFixture(t)
	ds = ds.Subset(0, 16)
	ctx := context.Background()
	shard := func(k, n int, seed uint64) *Table {
		cfg := Config{Bits: []int{2, 8}, Metrics: []string{MetricDirect, MetricFisher}, Trace: TraceNone, Seed: seed, Shard: k, Shards: n}
		tb, err := Compute(ctx, net, ds, cfg)
		if err != nil {
			t.Fatal(err)
		}
		tb.ModelSHA256, tb.DataSHA256 = "m", "d"
		return tb
	}
	a, b := shard(0, 2, 1), shard(1, 2, 1)
	other := shard(1, 2, 2)
	model := shard(1, 2, 1)
	model.ModelSHA256 = "other"
	rounding := shard(1, 2, 1)
	rounding.Quantizer = "gptq"
	calib := shard(1, 2, 1)
	calib.ActCalib = "kl"
	cases := []struct {
		name   string
		tables []*Table
		want   string
	}{
		{"settings", []*Table{a, other}, "other settings"},
		{"model", []*Table{a, model}, "another model"},
		{"quantizer", []*Table{a, rounding}, "another weight rounding (--quantizer gptq; recompute it with --quantizer rtn"},
		{"act calib", []*Table{a, calib}, "activation ranges by kl, the others by minmax (recompute it with --act-calib minmax"},
		{"missing", []*Table{a}, "2 shards; got 1"},
		{"twice", []*Table{a, a}, "given twice"},
	}
	for _, c := range cases {
		_, err := Merge(c.tables)
		if err == nil || !errors.Is(err, ErrTable) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: got error %v; want one line wrapping ErrTable containing %q", c.name, err, c.want)
		}
	}
	if m, err := Merge([]*Table{b, a}); err != nil || m.Quantizer != "rtn" {
		t.Errorf("matching shards: got %v; want them merged, recording quantizer rtn (no weight source rounds to nearest)", err)
	}
	buf, err := a.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Read(bytes.NewReader(buf), "a.yaml"); err == nil || !strings.Contains(err.Error(), "mpsearch merge") {
		t.Errorf("Read of a shard: got %v; want a refusal naming mpsearch merge", err)
	}
}

// wideModel is a Gemm with the given number of classes (piecewise linear).
func wideModel(classes int) *onnx.Model {
	rng := rand.New(rand.NewPCG(3, 3))
	w := tensor.New(classes, 4)
	for i := range w.Data {
		w.Data[i] = rng.NormFloat64()
	}
	return &onnx.Model{Opset: 13, Graph: &onnx.Graph{
		Inputs:       []onnx.ValueInfo{{Name: "x", ElemType: onnx.Float, Shape: []onnx.Dim{{Value: -1}, {Value: 4}}}},
		Outputs:      []onnx.ValueInfo{{Name: "z", ElemType: onnx.Float}},
		Nodes:        []onnx.Node{{Name: "fc", OpType: "Gemm", Inputs: []string{"x", "w"}, Outputs: []string{"z"}, Attrs: map[string]onnx.Attribute{"transB": {Name: "transB", Type: onnx.AttrInt, I: 1}}}},
		Initializers: map[string]*tensor.Tensor{"w": w},
		InitTypes:    map[string]onnx.DataType{},
		InitOrder:    []string{"w"},
	}}
}

func TestChooseTrace(t *testing.T) {
	cases := []struct {
		classes, probes int
		pl              bool
		want            string
	}{
		{10, 500, true, TraceExact},
		{480, 500, true, TraceExact},
		{481, 500, true, TraceHutchPP},
		{1000, 500, true, TraceHutchPP},
		{1000, 100000, true, TraceHutchPP},
		{10, 500, false, TraceHutchPP},
		{148, 2, true, TraceExact},   // 444 <= 6*(8+64+2)
		{149, 2, true, TraceHutchPP}, // 447 > 444
	}
	for _, c := range cases {
		if got := ChooseTrace(c.classes, c.pl, c.probes); got != c.want {
			t.Errorf("ChooseTrace(%d classes, pl %v, %d probes): got %s; want %s", c.classes, c.pl, c.probes, got, c.want)
		}
	}
	// Compute with --trace auto on real models.
	for _, c := range []struct {
		classes int
		want    string
	}{{10, TraceExact}, {1000, TraceHutchPP}} {
		net, err := network.Build(wideModel(c.classes), network.Options{})
		if err != nil {
			t.Fatal(err)
		}
		x := tensor.New(6, 4)
		for i := range x.Data {
			x.Data[i] = float64(i%5) - 2
		}
		ds := &dataset.Dataset{X: x}
		tb, err := Compute(context.Background(), net, ds, Config{Metrics: []string{MetricHessian}, Metric: MetricHessian, Probes: 16, Tol: 0.5})
		if err != nil {
			t.Fatal(err)
		}
		if tb.Trace != c.want {
			t.Errorf("%d classes, --trace auto: got %s; want %s", c.classes, tb.Trace, c.want)
		}
	}
}
