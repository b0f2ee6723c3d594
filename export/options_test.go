package export

import (
	"context"
	"testing"

	"mpsearch/onnx"
	"mpsearch/quant"
	"mpsearch/tensor"
)

// storedBytes is the size of an initializer's raw data as ONNX stores it:
// INT4 two values a byte, INT8 one, FLOAT four.
func storedBytes(t *testing.T, dt onnx.DataType, n int) int {
	t.Helper()
	switch dt {
	case onnx.Int4:
		return (n + 1) / 2
	case onnx.Int8:
		return n
	case onnx.Float:
		return 4 * n
	case onnx.Float16:
		return 2 * n
	}
	t.Fatalf("initializer type %v: not a weight or scale type of the export", dt)
	return 0
}

// TestOptionSizeBytesIsExported exports the fixture LeNet with option
// codes per channel and in groups of 64 (quant.WithGroups over round to
// nearest) and checks that quant.OptionSizeBytes, the size the search
// prices an option at, equals the bytes the file stores for the layer's
// weight and scales, at 4 and 8 bits (where the stored width is the
// option's: INT4, INT8; FLOAT scales per channel, FLOAT16 in groups), and
// that every option in groups is written with block_size.
func TestOptionSizeBytesIsExported(t *testing.T) {
	net := loadLeNet(t)
	ds := loadCalib(t)
	ctx := context.Background()
	g64, err := quant.NewBlockCodes(ctx, quant.MethodRTN, net, []*tensor.Tensor{ds.X}, quant.BlockCodesOptions{CodesOptions: quant.CodesOptions{Widths: []int{4, 8}}, Block: 64})
	if err != nil {
		t.Fatal(err)
	}
	src := quant.WithGroups(quant.NewRoundToNearest(net), map[int]quant.WeightCodes{64: g64})
	bits := []int{quant.OptionCode(8, 64), quant.OptionCode(4, 64), 4, quant.OptionCode(8, 64), 8}
	m, note, err := Compact(net, Config{Bits: bits, Act: calibActs(t, net, ds), Weights: src})
	if err != nil || note != "" {
		t.Fatalf("export: note %q, error %v", note, err)
	}
	b, err := onnx.Marshal(m, onnx.SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	back, err := onnx.Parse(b, "")
	if err != nil {
		t.Fatal(err)
	}
	g := back.Graph
	for li, l := range net.Layers() {
		w := net.Params()[l.Weight]
		q, s := w.Name+"_quantized", w.Name+"_scale"
		if quant.Grouped(bits[li]) {
			s += "_fp16" // cast to FLOAT in the graph
		}
		qt, ok1 := g.Initializers[q]
		st, ok2 := g.Initializers[s]
		if !ok1 || !ok2 {
			t.Fatalf("layer %q: no initializers %q and %q", l.Node, q, s)
		}
		got := storedBytes(t, g.InitTypes[q], qt.Size()) + storedBytes(t, g.InitTypes[s], st.Size())
		want := quant.OptionSizeBytes(w.Value.Shape, l.ChannelAxis, bits[li])
		if float64(got) != want {
			t.Errorf("layer %q at %s: the file stores %d B of weights and scales; OptionSizeBytes says %.0f", l.Node, quant.FormatOption(bits[li]), got, want)
		}
		blocked := false
		for _, n := range g.Nodes {
			if len(n.Inputs) > 0 && n.Inputs[0] == q {
				_, blocked = n.Attrs["block_size"]
			}
		}
		if blocked != quant.Grouped(bits[li]) {
			t.Errorf("layer %q at %s: block_size written %t; want %t", l.Node, quant.FormatOption(bits[li]), blocked, quant.Grouped(bits[li]))
		}
	}
}
