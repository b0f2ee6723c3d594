package costmodel_test

import (
	"fmt"
	"testing"

	"mpsearch/costmodel"
	"mpsearch/kernels"
	"mpsearch/network"
	"mpsearch/onnx"
)

// lenetPath is the fixture LeNet (Fashion-MNIST, 28x28x1).
const lenetPath = "../testdata/fmnist-lenet/lenet.onnx"

// shapesFromNetwork turns the quantizable layers of a network into layer
// shapes, as the pipeline does: Conv geometry from the input, output and
// weight shapes (InferConv), groups from the weight's input channels.
func shapesFromNetwork(net *network.Network) ([]costmodel.LayerShape, error) {
	params := net.Params()
	var out []costmodel.LayerShape
	for _, l := range net.Layers() {
		ws := params[l.Weight].Value.Shape
		switch l.Op {
		case "Conv":
			if len(l.InShape) != 4 || len(l.OutShape) != 4 || len(ws) != 4 {
				return nil, fmt.Errorf("layer %s: only 2-D convolutions are handled here", l.Node)
			}
			c, h, w := l.InShape[1], l.InShape[2], l.InShape[3]
			n, oh, ow := l.OutShape[1], l.OutShape[2], l.OutShape[3]
			groups := c / ws[1]
			g, err := costmodel.InferConv(ws[1], h, w, ws[2], ws[3], oh, ow)
			if err != nil {
				return nil, fmt.Errorf("layer %s: %w", l.Node, err)
			}
			g.C = c
			s, err := costmodel.ConvLayer(l.Node, g, n, groups)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		default:
			in, o := ws[1], ws[0]
			if !l.TransB {
				in, o = ws[0], ws[1]
			}
			rows := 1
			for _, d := range l.InShape[1 : len(l.InShape)-1] {
				rows *= d
			}
			out = append(out, costmodel.GemmLayer(l.Node, l.Op, rows, in, o))
		}
	}
	return out, nil
}

func lenetShapes(tb testing.TB) []costmodel.LayerShape {
	tb.Helper()
	m, err := onnx.Load(lenetPath)
	if err != nil {
		tb.Fatal(err)
	}
	net, err := network.Build(m, network.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	s, err := shapesFromNetwork(net)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// vggShapes are the quantized layers of the VGG-style CNN of
// scripts/make_vgg.py on 32x32x3 inputs: 3x3 convolutions with padding 1
// (conv64 conv64 pool conv128 conv128 pool conv256 conv256 pool), then
// fc256 and fc10 on the 4096 flattened features.
func vggShapes(tb testing.TB) []costmodel.LayerShape {
	tb.Helper()
	var out []costmodel.LayerShape
	c, hw := 3, 32
	for i, v := range []int{64, 64, 0, 128, 128, 0, 256, 256, 0} {
		if v == 0 {
			hw /= 2
			continue
		}
		g := kernels.ConvShape{C: c, H: hw, W: hw, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}
		s, err := costmodel.ConvLayer(fmt.Sprintf("conv%d", i), g, v, 1)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, s)
		c = v
	}
	out = append(out,
		costmodel.GemmLayer("fc1", "Gemm", 1, c*hw*hw, 256),
		costmodel.GemmLayer("fc2", "Gemm", 1, 256, 10))
	return out
}

// TestModelShapes checks the shapes derived from the LeNet fixture against
// the figures `mpsearch inspect` prints for it (weights and MACs per
// sample), and the VGG shapes against the MAC count of scripts/make_vgg.py.
func TestModelShapes(t *testing.T) {
	want := []struct {
		name       string
		m, k, n    int
		params     int64
		macs       int64
		hasGeomety bool
	}{
		{"/conv1/Conv", 784, 25, 6, 150, 117600, true},
		{"/conv2/Conv", 100, 150, 16, 2400, 240000, true},
		{"/fc1/Gemm", 1, 400, 120, 48000, 48000, false},
		{"/fc2/Gemm", 1, 120, 84, 10080, 10080, false},
		{"/fc3/Gemm", 1, 84, 10, 840, 840, false},
	}
	got := lenetShapes(t)
	if len(got) != len(want) {
		t.Fatalf("LeNet has %d layers; want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Name != w.name || g.M != w.m || g.K != w.k || g.N != w.n || g.Params != w.params || g.MACs != w.macs || (g.Conv != nil) != w.hasGeomety {
			t.Errorf("layer %d: got %s M=%d K=%d N=%d params=%d MACs=%d; want %s M=%d K=%d N=%d params=%d MACs=%d",
				i, g.Name, g.M, g.K, g.N, g.Params, g.MACs, w.name, w.m, w.k, w.n, w.params, w.macs)
		}
	}
	var macs int64
	for _, s := range vggShapes(t) {
		macs += s.MACs
	}
	// make_vgg.py: "about 154M multiply-accumulates per 32x32 image".
	if macs < 153e6 || macs > 155e6 {
		t.Errorf("VGG MACs per sample = %d; want about 154M", macs)
	}
}
