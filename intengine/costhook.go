package intengine

import (
	"context"
	"fmt"
	"strings"

	"mpsearch/network"
	"mpsearch/tensor"
)

// The cost model's view of the engine (package costmodel). It describes and
// times what the engine runs, through the engine itself, so that the model
// cannot drift from it: LayerPaths says which kernels each layer's step
// calls, LayerRunner runs one layer's step alone.

// LayerPath says how the engine runs one Conv, Gemm or MatMul (see
// layerStep.run and runConv).
type LayerPath struct {
	Node string
	// Rows is the number of GEMM rows per sample: OH*OW for a Conv, the
	// rows of one sample for a Gemm or MatMul (in a serial plan, the rows
	// of the whole batch-1 input).
	Rows int
	// InNHWC and OutNHWC: the input and output tensors are stored
	// channels-last (layout.go).
	InNHWC, OutNHWC bool
	// Depthwise: kernels.DepthwiseNHWC, without a patch matrix.
	Depthwise bool
	// Direct: a 1x1 convolution with stride 1 on a channels-last input
	// with one group, one GEMM on the input itself.
	Direct bool
	// Logits: the layer produces the graph output as int32 accumulators
	// (kernels.GEMM and a bias pass instead of GEMMRequant).
	Logits bool
	// Serial: the program runs one sample at a time (a serial plan).
	Serial bool
	// Stream: the layer also packs its weights for the small-M stream
	// kernels (kernels.GEMMStreamRequant) and runs a product on them when
	// it has at most StreamMaxRows(kernel bits) rows (a batch's Rows).
	Stream bool
}

// StreamMaxRows is the most GEMM rows with which a Stream layer's product
// at kbits-bit kernel weights runs on the stream kernels rather than the
// tile GEMM (streamMaxRows).
func StreamMaxRows(kbits int) int { return streamMaxRows(kbits) }

// LayerPaths plans the network as Compile does and returns the path of
// every layer, in network.Layers() order. It needs no quantizers: paths
// depend on the graph only.
func LayerPaths(net *network.Network) ([]LayerPath, error) {
	p, err := analyze(net)
	if err != nil {
		return nil, err
	}
	out := make([]LayerPath, len(net.Layers()))
	for _, st := range p.steps {
		s, ok := st.(*layerStep)
		if !ok {
			continue
		}
		in := s.conv && p.nhwc[s.in]
		o := s.conv && s.out >= 0 && p.nhwc[s.out]
		dw := s.conv && s.groups > 1 && s.groups == s.cin && s.n == 1 && in && o // as setup decides
		out[s.li] = LayerPath{
			Node: s.node, Rows: s.rows, InNHWC: in, OutNHWC: o,
			Depthwise: dw,
			Direct:    in && s.groups == 1 && s.pointwise,
			Logits:    s.out < 0,
			Serial:    p.serial,
			Stream:    !dw && s.rows <= streamMaxRows(1),
		}
	}
	return out, nil
}

// LayerRunner runs the program once on x and returns a function that runs
// the step of layer node again, alone, on the same workspace (its input
// holds the codes of x), and a function that hands the workspace back;
// run must not be called after release, nor concurrently with itself.
// The step runs exactly as in Run: same kernels, buffers and scratch.
func (m *Model) LayerRunner(ctx context.Context, x *tensor.Tensor, node string) (run func() error, release func(), err error) {
	idx := -1
	for i, st := range m.plan.steps {
		if s, ok := st.(*layerStep); ok && s.node == node {
			idx = i
		}
	}
	if idx < 0 {
		return nil, nil, fmt.Errorf("intengine: no layer %q in the program: %w", node, ErrConfig)
	}
	return m.stepRunner(ctx, x, idx)
}

// StepRunner is LayerRunner for any step of the program: the step whose
// node (Timing's StepTiming.Node, "node+activation" for a fused
// activation, or its ONNX node alone) is node, e.g. an Add, so that a
// cost model can time it alone with its tables and buffers cold.
func (m *Model) StepRunner(ctx context.Context, x *tensor.Tensor, node string) (run func() error, release func(), err error) {
	idx := -1
	for i, st := range m.plan.steps {
		d, _ := st.describe()
		if d == node || strings.HasPrefix(d, node+"+") {
			idx = i
		}
	}
	if idx < 0 {
		return nil, nil, fmt.Errorf("intengine: no step %q in the program: %w", node, ErrConfig)
	}
	return m.stepRunner(ctx, x, idx)
}

func (m *Model) stepRunner(ctx context.Context, x *tensor.Tensor, idx int) (run func() error, release func(), err error) {
	if err := m.check(x); err != nil {
		return nil, nil, err
	}
	n := x.Shape[0]
	ws := m.getWorkspace(x)
	if err := m.exec(ctx, ws, n, nil); err != nil {
		m.putWorkspace(ws)
		return nil, nil, err
	}
	s := m.plan.steps[idx]
	exec := func(s step) error { return s.run(ws, n) }
	if m.plan.serial && n > 1 {
		exec = m.serialRunner(ws, n)
	}
	return func() error { return exec(s) }, func() { m.putWorkspace(ws) }, nil
}

// ImageChunkBytes bounds the patch matrix of one convolution GEMM: the
// engine runs the images of a batch in chunks whose patch matrices fit in
// it (a chunk of one image at batch 1).
const ImageChunkBytes = colsBytes

// StepLayouts plans the network as Compile does and returns, for every
// step that is not a layer, whether it writes a channels-last tensor,
// keyed by the step's node (describe: "input" for the input quantization,
// "node+activation" for a fused activation) and by its ONNX node alone.
func StepLayouts(net *network.Network) (map[string]bool, error) {
	p, err := analyze(net)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, st := range p.steps {
		if _, ok := st.(*layerStep); ok {
			continue
		}
		_, o := st.buffers()
		node, _ := st.describe()
		nhwc := o >= 0 && p.nhwc[o]
		out[node] = nhwc
		if i := strings.IndexByte(node, '+'); i > 0 {
			out[node[:i]] = nhwc
		}
	}
	return out, nil
}

// FloatSteps plans the network as Compile does and returns the number of
// float fallback steps it would run (see Model.FloatNodes).
func FloatSteps(net *network.Network) (int, error) {
	nodes, err := FloatStepNodes(net)
	return len(nodes), err
}

// FloatStepNodes plans the network as Compile does and returns the ONNX
// nodes of the float fallback steps it would run (see Model.FloatNodes),
// e.g. a transformer's bias Adds, which no integer cost model describes.
func FloatStepNodes(net *network.Network) (map[string]bool, error) {
	p, err := analyze(net)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, st := range p.steps {
		if node, op := st.describe(); strings.HasSuffix(op, " (float)") {
			out[node] = true
		}
	}
	return out, nil
}
