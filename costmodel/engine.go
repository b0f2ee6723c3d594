package costmodel

import (
	"context"
	"fmt"
	"math/rand/v2"

	"mpsearch/intengine"
	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/tensor"
)

// layerNode is the name of the timed layer in a layer program.
const layerNode = "layer"

// layerProgram is a layer compiled by the integer engine in a small program
// that gives it the path of its shape (layouts, depthwise or direct,
// requantized or int32 output), and the runner of its step alone
// (intengine.Model.LayerRunner): what Measure times is the engine's own
// step.
type layerProgram struct {
	run     func() error
	release func()
}

// newLayerProgram builds and compiles the program of layer s at kernel
// width kbits for a batch, checks that the engine runs the layer on the
// path s describes (intengine.LayerPaths), and prepares its runner.
//
// The program is x -> [view] -> layer -> tail. The view, a Reshape of x
// to its own shape, keeps x channels-first (a view reads the ONNX order)
// when s.InNHWC is false. The tail gives the layer's output its layout: a
// Flatten (channels-first), a 1x1 Conv (channels-last, for a Conv), a
// second Gemm or MatMul (for those), or nothing when the layer produces
// the logits.
func newLayerProgram(ctx context.Context, s LayerShape, kbits, batch, threads int, rng *rand.Rand) (*layerProgram, error) {
	b := &opsNet{rng: rng}
	g := &onnx.Graph{Name: "layer", Initializers: map[string]*tensor.Tensor{}, InitTypes: map[string]onnx.DataType{}}
	b.g = g
	var xShape []int
	weight := func(shape ...int) string {
		b.n++
		name := fmt.Sprintf("w%d", b.n)
		w := tensor.New(shape...)
		for i := range w.Data {
			w.Data[i] = rng.NormFloat64()
		}
		g.Initializers[name] = w
		g.InitTypes[name] = onnx.Float
		g.InitOrder = append(g.InitOrder, name)
		return name
	}
	var out string
	if c := s.Conv; c != nil {
		groups := max(s.Groups, 1)
		cin := c.C * groups
		xShape = []int{cin, c.H, c.W}
		in := "x"
		if !s.InNHWC {
			b.n++
			shape := fmt.Sprintf("shape%d", b.n)
			g.Initializers[shape] = tensor.FromData([]float64{-1, float64(cin), float64(c.H), float64(c.W)}, 4)
			g.InitTypes[shape] = onnx.Int64
			g.InitOrder = append(g.InitOrder, shape)
			in = b.node("Reshape", []string{"x", shape})
		}
		w := weight(s.N*groups, c.C, c.KH, c.KW)
		g.Nodes = append(g.Nodes, onnx.Node{Name: layerNode, OpType: "Conv", Inputs: []string{in, w}, Outputs: []string{"y"}, Attrs: map[string]onnx.Attribute{
			"group":        {Name: "group", Type: onnx.AttrInt, I: int64(groups)},
			"kernel_shape": ints("kernel_shape", int64(c.KH), int64(c.KW)),
			"strides":      ints("strides", int64(max(c.StrideH, 1)), int64(max(c.StrideW, 1))),
			"dilations":    ints("dilations", int64(max(c.DilationH, 1)), int64(max(c.DilationW, 1))),
			"pads":         ints("pads", int64(c.PadTop), int64(c.PadLeft), int64(c.PadBottom), int64(c.PadRight)),
		}})
		switch {
		case s.Logits:
			out = "y"
		case s.OutNHWC:
			out = b.conv1x1("y", s.N*groups, 4)
		default:
			out = b.node("Flatten", []string{"y"})
		}
	} else {
		xShape = []int{s.K}
		if s.M > 1 {
			xShape = []int{s.M, s.K}
		}
		w := weight(s.K, s.N)
		g.Nodes = append(g.Nodes, onnx.Node{Name: layerNode, OpType: "MatMul", Inputs: []string{"x", w}, Outputs: []string{"y"}})
		out = "y"
		if !s.Logits {
			w2 := weight(s.N, 4)
			out = b.node("MatMul", []string{"y", w2})
		}
	}
	dims := []onnx.Dim{{Value: -1, Param: "N"}}
	for _, d := range xShape {
		dims = append(dims, onnx.Dim{Value: int64(d)})
	}
	g.Inputs = []onnx.ValueInfo{{Name: "x", ElemType: onnx.Float, Shape: dims}}
	g.Outputs = []onnx.ValueInfo{{Name: out, ElemType: onnx.Float}}
	net, err := network.Build(&onnx.Model{IRVersion: 8, Opset: 13, Graph: g}, network.Options{})
	if err != nil {
		return nil, fmt.Errorf("costmodel: layer %q: building its program: %w", s.Name, err)
	}
	paths, err := intengine.LayerPaths(net)
	if err != nil {
		return nil, fmt.Errorf("costmodel: layer %q: %w", s.Name, err)
	}
	if got := shapeOfPath(s, paths[0]); got != s.pathKey() {
		return nil, fmt.Errorf("%w: layer %q: the engine runs its program as %s; the shape says %s", ErrShape, s.Name, got, s.pathKey())
	}
	x := tensor.New(append([]int{batch}, xShape...)...)
	for i := range x.Data {
		x.Data[i] = rng.NormFloat64()
	}
	ranges, err := intengine.ObserveRanges(ctx, net, []*tensor.Tensor{x})
	if err != nil {
		return nil, err
	}
	bits := make([]int, len(net.Layers()))
	for i := range bits {
		bits[i] = 8
	}
	bits[0] = kbits
	m, err := intengine.Compile(net, intengine.Config{Bits: bits, Ranges: ranges, Threads: threads})
	if err != nil {
		return nil, fmt.Errorf("costmodel: layer %q: %w", s.Name, err)
	}
	run, release, err := m.LayerRunner(ctx, x, layerNode)
	if err != nil {
		return nil, err
	}
	return &layerProgram{run: run, release: release}, nil
}

// WithPath returns s with the path the integer engine takes for it
// (intengine.LayerPaths).
func (s LayerShape) WithPath(p intengine.LayerPath) LayerShape {
	if s.Conv != nil {
		s.InNHWC, s.OutNHWC, s.Depthwise, s.Direct = p.InNHWC, p.OutNHWC, p.Depthwise, p.Direct
	}
	s.Logits, s.Stream = p.Logits, p.Stream
	return s
}

// pathKey describes the path fields of s, for messages.
func (s LayerShape) pathKey() string {
	return fmt.Sprintf("in NHWC %v, out NHWC %v, depthwise %v, direct %v, logits %v, stream %v", s.InNHWC, s.OutNHWC, s.Depthwise, s.Direct, s.Logits, s.Stream)
}

func shapeOfPath(s LayerShape, p intengine.LayerPath) string {
	return s.WithPath(p).pathKey()
}
