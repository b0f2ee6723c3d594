package export

import (
	"errors"
	"strings"
	"testing"

	"mpsearch/internal/fixture"
	"mpsearch/network"
	"mpsearch/onnx"
)

// compactRatio is the bound: a model with every layer at 4 bits is
// at most this fraction of the same model at 8 bits, as files.
const compactRatio = 0.55

// TestCompactShrinks exports the Fashion-MNIST fixtures (LeNet, the
// VGG-style and the residual CNN) with every layer at 8, 4, 3 and 2 bits
// by Compact and checks the file sizes: 4 bits at most compactRatio of 8
// bits, no larger at fewer bits, opset 21 with INT4 weight codes exactly
// when some layer has 4 bits or fewer, and the codes the same as the
// opset-13 INT8 export's.
func TestCompactShrinks(t *testing.T) {
	for _, path := range []string{"fmnist-lenet/lenet.onnx", "vgg-fmnist/model.onnx", "resnet-fmnist/model.onnx"} {
		src, err := onnx.Load(fixture.Path(path))
		if err != nil {
			t.Fatal(err)
		}
		net, err := network.Build(src, network.Options{})
		if err != nil {
			t.Fatal(err)
		}
		size := map[int]int{}
		for _, bits := range []int{8, 4, 3, 2} {
			cfg := Config{Bits: uniform(net, bits)}
			m, note, err := Compact(net, cfg)
			if err != nil || note != "" {
				t.Fatalf("%s at %d bits: note %q, error %v; want INT4 at opset 21 without a note", path, bits, note, err)
			}
			b, err := onnx.Marshal(m, onnx.SaveOptions{})
			if err != nil {
				t.Fatal(err)
			}
			size[bits] = len(b)
			wantOpset, wantType := int64(MinOpset), onnx.Int8
			if bits <= Int4Bits {
				wantOpset, wantType = Int4Opset, onnx.Int4
			}
			if m.Opset < wantOpset {
				t.Errorf("%s at %d bits: opset %d; want %d or later", path, bits, m.Opset, wantOpset)
			}
			plain, err := QDQ(net, cfg)
			if err != nil {
				t.Fatal(err)
			}
			for name, dt := range m.Graph.InitTypes {
				if !strings.HasSuffix(name, "_quantized") {
					continue
				}
				if dt != wantType {
					t.Errorf("%s at %d bits: %s is %v; want %v", path, bits, name, dt, wantType)
				}
				if got, want := m.Graph.Initializers[name].Data, plain.Graph.Initializers[name].Data; !equalFloats(got, want) {
					t.Errorf("%s at %d bits: %s holds other codes than the INT8 export's", path, bits, name)
				}
			}
		}
		t.Logf("%s: file bytes at 8/4/3/2 bits: %d %d %d %d (4/8 = %.3f)", path, size[8], size[4], size[3], size[2], float64(size[4])/float64(size[8]))
		if r := float64(size[4]) / float64(size[8]); r > compactRatio {
			t.Errorf("%s: 4-bit file %d B is %.3f of the 8-bit file %d B; want <= %.2f", path, size[4], r, size[8], compactRatio)
		}
		if size[3] > size[4] || size[2] > size[4] {
			t.Errorf("%s: 3- and 2-bit files %d and %d B; want no larger than the 4-bit file %d B", path, size[3], size[2], size[4])
		}
	}
}

// TestCompactFallsBack: a model with an operator the export cannot raise
// to opset 21 is exported at its own opset with INT8 codes and a note
// naming the operator, where QDQ with Opset21 refuses it.
func TestCompactFallsBack(t *testing.T) {
	b := newCNNGraph(3, 2, 6, 6)
	c := b.node("c", "Conv", []string{"x", b.init("w", 0.5, []int{4, 2, 3, 3}), b.init("b", 0.1, []int{4})})
	hs := b.node("sp", "Softplus", []string{c}) // not in the export's list of operators that keep their meaning up to opset 21
	flat := b.node("flat", "Flatten", []string{hs})
	net := b.build(t, b.node("fc", "Gemm", []string{flat, b.init("wf", 0.5, []int{64, 3}), b.init("bf", 0.1, []int{3})}))
	bits := uniform(net, 4)
	if _, err := QDQ(net, Config{Bits: bits, Opset21: true}); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "Softplus") {
		t.Fatalf("QDQ at opset 21: got %v; want a refusal of Softplus wrapping ErrUnsupported", err)
	}
	m, note, err := Compact(net, Config{Bits: bits})
	if err != nil {
		t.Fatal(err)
	}
	if m.Opset != MinOpset || !strings.Contains(note, "INT8") || !strings.Contains(note, `node "sp" (Softplus)`) || strings.Contains(note, "\n") {
		t.Errorf("fallback: opset %d, note %q; want the model's own opset and one line saying why not INT4 at opset 21", m.Opset, note)
	}
	for name, dt := range m.Graph.InitTypes {
		if strings.HasSuffix(name, "_quantized") && dt != onnx.Int8 {
			t.Errorf("fallback: %s is %v; want INT8", name, dt)
		}
	}
}

func uniform(net *network.Network, bits int) []int {
	out := make([]int, len(net.Layers()))
	for i := range out {
		out[i] = bits
	}
	return out
}

func equalFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
