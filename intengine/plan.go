package intengine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"mpsearch/kernels"
	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/tensor"
)

// ErrUnsupported is wrapped by the errors Compile returns for graph patterns
// the integer engine cannot run; the message names the node.
var ErrUnsupported = errors.New("unsupported")

// ErrConfig is wrapped by the errors Compile returns for a Config that does
// not fit the network (bit widths, missing ranges, impossible scales).
var ErrConfig = errors.New("bad configuration")

// probeBatch is the batch size of the float pass that learns every value's
// shape; it is 2 (not 1) so that a view that moves the batch axis is caught.
const probeBatch = 2

// buffer is one uint8 tensor of the integer program. Views (Flatten,
// Reshape...) alias their input's buffer; MaxPool, the average pools and
// standalone ReLU/Clip write a new buffer with their input's quantizer.
type buffer struct {
	name   string // value name where the tensor is stored
	size   int    // elements per sample
	own    bool   // a quantization point: its quantizer comes from its own range
	parent int    // buffer whose quantizer this one shares (itself when own)
}

// plan is the structure of the integer program, before any quantizer or
// weight is known: which values are stored as uint8, which steps run.
type plan struct {
	net    *network.Network
	bufs   []buffer
	steps  []step
	valBuf map[string]int   // value name -> buffer (views included)
	shapes map[string][]int // value name -> per-sample shape
	// outBuf is the buffer of the graph output, or -1 when the output is
	// the int32 accumulator of outLayer.
	outBuf   int
	outLayer *layerStep
	outShape []int // per sample
	// writer and lastRead give, per buffer, the step that writes it and
	// the last step that reads it (-1 for none); see liveness.
	writer, lastRead []int
	// serial marks a program that runs one sample at a time (see
	// analyze): whole names the values that do not keep the batch as
	// their first axis, whose shapes in shapes are their whole shape at
	// batch 1.
	serial bool
	whole  map[string]bool
	// nhwc marks the buffers stored channels-last (layout.go).
	nhwc []bool
	// micro is the number of samples per pass of a full run (0: the whole
	// batch at once); see microBatch.
	micro int
}

// step is one operation of the integer program.
type step interface {
	// describe returns the ONNX node (with a fused activation, "conv+relu")
	// and its operator.
	describe() (node, op string)
	// run executes the step for a batch of n samples.
	run(ws *workspace, n int) error
	// buffers returns the buffers the step reads and the one it writes
	// (-1: the int32 accumulators of the logits layer). Every buffer is
	// written by exactly one step.
	buffers() (ins []int, out int)
}

// QuantPoints returns, in program order, the names of the values the
// integer engine stores as uint8 with their own quantizer: the model input,
// the output of every Conv/Gemm/MatMul (after a fused ReLU/Clip) except a
// final one that produces the int32 logits, the output of every Add (after
// a fused ReLU/Clip) and Concat, and the output of every float fallback
// step. Config.Ranges must hold a range for each.
func QuantPoints(net *network.Network) ([]string, error) {
	p, err := analyze(net)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, b := range p.bufs {
		if b.own {
			names = append(names, b.name)
		}
	}
	return names, nil
}

// nodeRef names a node in errors: its name, or its index when unnamed.
func nodeRef(n *onnx.Node, i int) string {
	if n.Name != "" {
		return fmt.Sprintf("node %q (%s)", n.Name, n.OpType)
	}
	return fmt.Sprintf("node #%d (%s, unnamed)", i, n.OpType)
}

func unsupported(n *onnx.Node, i int, format string, args ...any) error {
	return fmt.Errorf("intengine: %s: %s: %w", nodeRef(n, i), fmt.Sprintf(format, args...), ErrUnsupported)
}

// errBatchAxis marks analyze's refusal of a value that does not keep the
// batch as its first axis (a Shape node, a reshape that folds the batch
// into another axis): the program is then planned to run serially.
var errBatchAxis = errors.New("the batch is not the first axis")

// analyze walks the rewritten ONNX graph of net and builds the plan. A
// graph in which some value does not keep the batch as its first axis
// (the batch size read by Shape nodes, transformers' attention reshapes
// that fold the batch into the heads) is planned serially: the program
// is built for batch 1, every value depending on the data only through
// its shape is a constant of the batch-1 probe, and Run executes each step
// once per sample (execSteps). Both plans compute the same codes per
// sample.
func analyze(net *network.Network) (*plan, error) {
	p, err := analyzeMode(net, false)
	if errors.Is(err, errBatchAxis) {
		if ps, errs := analyzeMode(net, true); errs == nil {
			return ps, nil
		}
	}
	return p, err
}

// analyzeMode builds the batch-first plan, or with serial the plan of
// one sample at a time.
func analyzeMode(net *network.Network, serial bool) (*plan, error) {
	if net == nil || net.Model == nil || net.Model.Graph == nil {
		return nil, fmt.Errorf("intengine: nil network: %w", ErrConfig)
	}
	if net.SampleShape == nil || len(net.InputNames) != 1 {
		return nil, fmt.Errorf("intengine: the network needs exactly one data input of known shape (got inputs %v): %w", net.InputNames, ErrUnsupported)
	}
	probe := func(n int) (*network.Pass, error) {
		pass, err := net.Forward(context.Background(), tensor.New(append([]int{n}, net.SampleShape...)...))
		if err != nil {
			return nil, fmt.Errorf("intengine: float probe pass: %w", err)
		}
		return pass, nil
	}
	// pass gives the shapes and the constants; in a serial plan, pass2
	// tells the values that keep the batch first from the whole ones.
	var pass, pass2 *network.Pass
	var err error
	if pass, err = probe(map[bool]int{false: probeBatch, true: 1}[serial]); err != nil {
		return nil, err
	}
	if serial {
		if pass2, err = probe(probeBatch); err != nil {
			return nil, err
		}
	}
	g := net.Model.Graph
	p := &plan{net: net, valBuf: map[string]int{}, shapes: map[string][]int{}, outBuf: -1, serial: serial, whole: map[string]bool{}}

	// Dynamic values depend on the data input; everything else is a
	// constant the float engine folded. In a serial plan, what depends on
	// the data only through Shape nodes is a constant of batch 1 too.
	dynamic := map[string]bool{net.InputName: true}
	isDyn := make([]bool, len(g.Nodes))
	consumers := map[string][]int{}
	for i := range g.Nodes {
		n := &g.Nodes[i]
		for _, in := range n.Inputs {
			if dynamic[in] {
				isDyn[i] = true
			}
		}
		if serial && n.OpType == "Shape" {
			isDyn[i] = false
		}
		if !isDyn[i] {
			continue
		}
		for _, in := range n.Inputs {
			if dynamic[in] {
				consumers[in] = append(consumers[in], i)
			}
		}
		for _, o := range n.Outputs {
			if o != "" {
				dynamic[o] = true
			}
		}
	}
	shapeOf := func(name string, n *onnx.Node, i int) ([]int, error) {
		if s, ok := p.shapes[name]; ok {
			return s, nil
		}
		v := pass.Value(name)
		if serial {
			if v == nil || len(v.Shape) < 1 {
				return nil, unsupported(n, i, "value %q has no shape in the probe pass", name)
			}
			v2 := pass2.Value(name)
			if v.Shape[0] == 1 && v2 != nil && len(v2.Shape) == len(v.Shape) && v2.Shape[0] == probeBatch && tensor.SameShape(v.Shape[1:], v2.Shape[1:]) {
				p.shapes[name] = slices.Clone(v.Shape[1:])
			} else {
				p.shapes[name], p.whole[name] = slices.Clone(v.Shape), true
			}
			return p.shapes[name], nil
		}
		if v == nil || len(v.Shape) < 1 || v.Shape[0] != probeBatch {
			return nil, fmt.Errorf("%w (%w)", unsupported(n, i, "value %q does not keep the batch as its first axis", name), errBatchAxis)
		}
		s := append([]int(nil), v.Shape[1:]...)
		p.shapes[name] = s
		return s, nil
	}
	constOf := func(name string) *tensor.Tensor {
		if t, ok := g.Initializers[name]; ok {
			return t
		}
		if dynamic[name] {
			return nil
		}
		return pass.Value(name)
	}
	layerOf := map[string]int{}
	for li, l := range net.Layers() {
		layerOf[l.Node] = li
	}

	newBuf := func(name string, own bool, parent int) int {
		b := len(p.bufs)
		if own {
			parent = b
		}
		p.bufs = append(p.bufs, buffer{name: name, size: tensor.Size(p.shapes[name]), own: own, parent: parent})
		p.valBuf[name] = b
		return b
	}
	if _, err := shapeOf(net.InputName, &onnx.Node{Name: net.InputName, OpType: "input"}, -1); err != nil {
		return nil, err
	}
	p.steps = append(p.steps, &quantizeStep{out: newBuf(net.InputName, true, 0)})

	// fusable reports the ReLU/Clip node that may be fused into the
	// producer of value v: v's only consumer, v not a graph output.
	fusable := func(v string) (int, act, error) {
		cs := consumers[v]
		if len(cs) != 1 || v == net.OutputName {
			return -1, act{}, nil
		}
		c := &g.Nodes[cs[0]]
		if (c.OpType != "Relu" && c.OpType != "Clip") || c.Inputs[0] != v {
			return -1, act{}, nil
		}
		a, err := activation(c, cs[0], net.Model.Opset, constOf)
		if err != nil {
			return -1, act{}, nil // runs as its own (float fallback) step
		}
		return cs[0], a, nil
	}
	// fallback adds node n as a float step whose output is a quantization
	// point.
	fallback := func(n *onnx.Node, i int, outName string, outShape []int) error {
		fs, err := newFloatStep(n, i, g, net.Model.Opset, dynamic, p, outName, outShape, constOf)
		if err != nil {
			return err
		}
		fs.out = newBuf(outName, true, 0)
		p.steps = append(p.steps, fs)
		return nil
	}

	skip := make([]bool, len(g.Nodes))
	bufIn := func(n *onnx.Node, i, j int) (int, error) {
		b, ok := p.valBuf[n.Inputs[j]]
		if !ok {
			return 0, unsupported(n, i, "input %q is not a uint8 tensor of the integer program (an int32 accumulator can only be the graph output)", n.Inputs[j])
		}
		return b, nil
	}
	for i := range g.Nodes {
		if !isDyn[i] || skip[i] {
			continue
		}
		n := &g.Nodes[i]
		if len(n.Outputs) < 1 || n.Outputs[0] == "" {
			return nil, unsupported(n, i, "no output")
		}
		outName := n.Outputs[0]
		outShape, err := shapeOf(outName, n, i)
		if err != nil {
			return nil, err
		}
		switch n.OpType {
		case "Conv", "Gemm", "MatMul":
			li, ok := layerOf[n.Name]
			if !ok || n.Name == "" {
				// Not a quantizable layer (say a product of two activations).
				if err := fallback(n, i, outName, outShape); err != nil {
					return nil, err
				}
				continue
			}
			if !dynamic[n.Inputs[0]] {
				return nil, unsupported(n, i, "the data must be the first input")
			}
			in, err := bufIn(n, i, 0)
			if err != nil {
				return nil, err
			}
			ls, err := newLayerStep(net, li, n, i, p.shapes[n.Inputs[0]], outShape, constOf)
			if err != nil {
				return nil, err
			}
			ls.in, ls.outName = in, outName
			if outName == net.OutputName {
				if len(consumers[outName]) > 0 {
					return nil, unsupported(n, i, "the graph output %q is also consumed by other nodes", outName)
				}
				ls.out = -1
				p.outLayer = ls
				p.outShape = outShape
				p.steps = append(p.steps, ls)
				continue
			}
			fi, a, err := fusable(outName)
			if err != nil {
				return nil, err
			}
			store := outName
			if fi >= 0 {
				skip[fi] = true
				store = g.Nodes[fi].Outputs[0]
				ls.fused, ls.act = g.Nodes[fi].Name, a
				if _, err := shapeOf(store, &g.Nodes[fi], fi); err != nil {
					return nil, err
				}
			}
			ls.out = newBuf(store, true, 0)
			p.steps = append(p.steps, ls)
		case "Add":
			if len(n.Inputs) != 2 || !dynamic[n.Inputs[0]] || !dynamic[n.Inputs[1]] ||
				!tensor.SameShape(p.shapes[n.Inputs[0]], p.shapes[n.Inputs[1]]) || !tensor.SameShape(p.shapes[n.Inputs[0]], outShape) ||
				p.whole[n.Inputs[0]] != p.whole[n.Inputs[1]] || p.whole[n.Inputs[0]] != p.whole[outName] {
				// A constant addend or broadcasting: no integer path.
				if err := fallback(n, i, outName, outShape); err != nil {
					return nil, err
				}
				continue
			}
			a, err := bufIn(n, i, 0)
			if err != nil {
				return nil, err
			}
			b, err := bufIn(n, i, 1)
			if err != nil {
				return nil, err
			}
			as := &addStep{node: n.Name, outName: outName, a: a, b: b, act: act{lo: math.Inf(-1), hi: math.Inf(1)}}
			fi, ac, err := fusable(outName)
			if err != nil {
				return nil, err
			}
			store := outName
			if fi >= 0 {
				skip[fi] = true
				store = g.Nodes[fi].Outputs[0]
				as.fused, as.act = g.Nodes[fi].Name, ac
				if _, err := shapeOf(store, &g.Nodes[fi], fi); err != nil {
					return nil, err
				}
			}
			as.out = newBuf(store, true, 0)
			p.steps = append(p.steps, as)
		case "Relu", "Clip":
			in, err := bufIn(n, i, 0)
			if err != nil {
				return nil, err
			}
			a, err := activation(n, i, net.Model.Opset, constOf)
			if err != nil { // bounds computed from the data
				if err := fallback(n, i, outName, outShape); err != nil {
					return nil, err
				}
				continue
			}
			out := newBuf(outName, false, p.bufs[in].parent)
			p.steps = append(p.steps, &clampStep{node: n.Name, opType: n.OpType, in: in, out: out, act: a})
		case "MaxPool", "AveragePool", "GlobalAveragePool":
			in, err := bufIn(n, i, 0)
			if err != nil {
				return nil, err
			}
			for j, o := range n.Outputs[1:] {
				if o != "" && len(consumers[o]) > 0 {
					return nil, unsupported(n, i, "output %d (%q) is used; only the pooled values are supported", j+1, o)
				}
			}
			ps, err := newPoolStep(n, i, p.shapes[n.Inputs[0]], outShape)
			if err == nil && (p.whole[n.Inputs[0]] || p.whole[outName]) {
				err = unsupported(n, i, "pooling a value without the batch as its first axis")
			}
			if err != nil { // a window the integer pools do not handle
				if err := fallback(n, i, outName, outShape); err != nil {
					return nil, err
				}
				continue
			}
			ps.in = in
			ps.out = newBuf(outName, false, p.bufs[in].parent)
			p.steps = append(p.steps, ps)
		case "Flatten", "Reshape", "Identity", "Dropout", "Squeeze", "Unsqueeze":
			in, err := bufIn(n, i, 0)
			if err != nil {
				return nil, err
			}
			if n.OpType == "Dropout" {
				for _, o := range n.Outputs[1:] {
					if o != "" && len(consumers[o]) > 0 {
						return nil, unsupported(n, i, "the mask output is used")
					}
				}
			}
			if tensor.Size(outShape) != p.bufs[in].size {
				return nil, unsupported(n, i, "a view of %d values per sample has %d", p.bufs[in].size, tensor.Size(outShape))
			}
			p.valBuf[outName] = in
		case "Concat":
			var inShapes [][]int
			allData := true
			for _, in := range n.Inputs {
				allData = allData && dynamic[in] && !p.whole[in]
				inShapes = append(inShapes, p.shapes[in])
			}
			allData = allData && !p.whole[outName]
			var cs *concatStep
			if allData {
				cs, err = newConcatStep(n, i, inShapes, outShape)
			}
			if !allData || err != nil {
				if err := fallback(n, i, outName, outShape); err != nil {
					return nil, err
				}
				continue
			}
			for j := range n.Inputs {
				b, err := bufIn(n, i, j)
				if err != nil {
					return nil, err
				}
				cs.ins = append(cs.ins, b)
			}
			cs.out = newBuf(outName, true, 0)
			p.steps = append(p.steps, cs)
		default:
			// No integer implementation (Sigmoid, Mul, BatchNormalization,
			// HardSwish...): dequantize, run the float op, quantize.
			if err := fallback(n, i, outName, outShape); err != nil {
				return nil, err
			}
		}
	}
	if p.whole[net.OutputName] {
		return nil, fmt.Errorf("intengine: graph output %q does not keep the batch as its first axis: %w", net.OutputName, ErrUnsupported)
	}
	if p.outLayer == nil {
		b, ok := p.valBuf[net.OutputName]
		if !ok {
			return nil, fmt.Errorf("intengine: graph output %q is not computed by the integer program: %w", net.OutputName, ErrUnsupported)
		}
		p.outBuf = b
		p.outShape = p.shapes[net.OutputName]
	}
	p.liveness()
	p.chooseLayouts()
	p.micro = p.microBatch()
	return p, nil
}

// microBytes bounds the memory one pass of a micro-batched run touches
// per step: about the L2 share of one core.
const microBytes = 1 << 20

// microBatch returns how many samples one pass of a full run takes: as
// many as keep every tensor of the pass and the largest patch matrix
// within microBytes, when that is at least 2; 0 (the whole batch) when a
// sample alone is larger, so that large models keep their GEMMs over the
// batch, and for serial plans. Every step computes each sample from that
// sample alone, so the codes do not depend on it.
func (p *plan) microBatch() int {
	if p.serial {
		return 0
	}
	per, cols := 0, 0
	for _, b := range p.bufs {
		per += b.size
	}
	for _, st := range p.steps {
		if s, ok := st.(*layerStep); ok && s.conv && !s.pointwise && s.groups == 1 {
			cols = max(cols, s.rows*s.k)
		}
	}
	if k := microBytes / max(1, per+cols); k >= 2 {
		return k
	}
	return 0
}

// act is an activation fused into (or applied after) a requantization:
// outputs are clamped to [lo, hi] in real terms.
type act struct{ lo, hi float64 }

// activation reads the bounds of a Relu or Clip node.
func activation(n *onnx.Node, i int, opset int64, constOf func(string) *tensor.Tensor) (act, error) {
	a := act{lo: math.Inf(-1), hi: math.Inf(1)}
	if n.OpType == "Relu" {
		a.lo = 0
		return a, nil
	}
	if opset < 11 {
		if at, ok := n.Attrs["min"]; ok {
			a.lo = float64(at.F)
		}
		if at, ok := n.Attrs["max"]; ok {
			a.hi = float64(at.F)
		}
		return a, nil
	}
	for j, dst := range []*float64{&a.lo, &a.hi} {
		if j+1 >= len(n.Inputs) || n.Inputs[j+1] == "" {
			continue
		}
		t := constOf(n.Inputs[j+1])
		if t == nil || t.Size() != 1 {
			return a, unsupported(n, i, "bound %q must be a constant scalar", n.Inputs[j+1])
		}
		*dst = t.Data[0]
	}
	if a.lo > a.hi {
		return a, unsupported(n, i, "empty clip range [%g, %g]", a.lo, a.hi)
	}
	return a, nil
}

// window holds the resolved geometry of a 2-D window (Conv or pooling).
type window struct {
	kh, kw, sh, sw, dh, dw int
	pt, pl, pb, pr         int
}

func attrInts(n *onnx.Node, name string) []int {
	a, ok := n.Attrs[name]
	if !ok {
		return nil
	}
	out := make([]int, len(a.Ints))
	for i, v := range a.Ints {
		out[i] = int(v)
	}
	return out
}

func attrInt(n *onnx.Node, name string, def int64) int64 {
	if a, ok := n.Attrs[name]; ok {
		return a.I
	}
	return def
}

// parseWindow resolves strides, dilations, pads and auto_pad of a 2-D window
// of kh x kw over an h x w input whose output is oh x ow (taken from the
// float engine, which also handles ceil_mode).
func parseWindow(n *onnx.Node, i, kh, kw, h, w, oh, ow int) (window, error) {
	win := window{kh: kh, kw: kw, sh: 1, sw: 1, dh: 1, dw: 1}
	if s := attrInts(n, "strides"); s != nil {
		if len(s) != 2 {
			return win, unsupported(n, i, "strides %v: only 2-D windows are supported", s)
		}
		win.sh, win.sw = s[0], s[1]
	}
	if d := attrInts(n, "dilations"); d != nil {
		if len(d) != 2 {
			return win, unsupported(n, i, "dilations %v: only 2-D windows are supported", d)
		}
		win.dh, win.dw = d[0], d[1]
	}
	if p := attrInts(n, "pads"); p != nil {
		if len(p) != 4 {
			return win, unsupported(n, i, "pads %v: only 2-D windows are supported", p)
		}
		win.pt, win.pl, win.pb, win.pr = p[0], p[1], p[2], p[3]
	}
	autoPad := "NOTSET"
	if a, ok := n.Attrs["auto_pad"]; ok && a.S != "" {
		autoPad = a.S
	}
	same := func(in, out, k, s, d int) (b, e int) {
		total := max(0, (out-1)*s+(k-1)*d+1-in)
		if autoPad == "SAME_UPPER" {
			return total / 2, total - total/2
		}
		return total - total/2, total / 2
	}
	switch autoPad {
	case "NOTSET":
	case "VALID":
		win.pt, win.pl, win.pb, win.pr = 0, 0, 0, 0
	case "SAME_UPPER", "SAME_LOWER":
		win.pt, win.pb = same(h, oh, kh, win.sh, win.dh)
		win.pl, win.pr = same(w, ow, kw, win.sw, win.dw)
	default:
		return win, unsupported(n, i, "auto_pad %q", autoPad)
	}
	if win.sh < 1 || win.sw < 1 || win.dh < 1 || win.dw < 1 || win.pt < 0 || win.pl < 0 || win.pb < 0 || win.pr < 0 {
		return win, unsupported(n, i, "invalid window %+v", win)
	}
	return win, nil
}

func (w window) convShape(c, h, wd int) kernels.ConvShape {
	return kernels.ConvShape{C: c, H: h, W: wd, KH: w.kh, KW: w.kw, StrideH: w.sh, StrideW: w.sw,
		DilationH: w.dh, DilationW: w.dw, PadTop: w.pt, PadLeft: w.pl, PadBottom: w.pb, PadRight: w.pr}
}
