package intengine

import (
	"context"
	"fmt"
	"strconv"

	"mpsearch/kernels"
	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/tensor"
)

// FloatNode names an ONNX node that the integer program runs in float
// between quantized tensors (see floatStep).
type FloatNode struct {
	Node, Op string
}

// FloatNodes lists, in execution order, the nodes without an integer
// implementation that the Model runs as float fallback steps: their uint8
// inputs are dequantized, the float engine's own operator runs in float64,
// and the result is quantized with the node output's calibrated quantizer.
// It is empty when the whole program is integer.
func (m *Model) FloatNodes() []FloatNode {
	var out []FloatNode
	for _, st := range m.plan.steps {
		if s, ok := st.(*floatStep); ok {
			out = append(out, FloatNode{Node: s.node, Op: s.opType})
		}
	}
	return out
}

// floatStep runs one ONNX node in float between quantized tensors:
// x_j = (q_j - z_j)·S_j for every data input, y = op(x...) by the float
// engine's operator (a one-node network built from the same node and its
// constant inputs), then q_y = Quantize(y) with the output's own quantizer.
// Reference hands the node the same dequantized values and quantizes its
// output the same way, so both programs compute identical codes.
type floatStep struct {
	node, opType string
	ins          []int // buffer of each data input of the one-node network
	inShapes     [][]int
	inWhole      []bool // input j has no batch axis (a serial plan's whole value)
	outWhole     bool
	out          int
	net          *network.Network
	perSample    int
	outShape     []int
	// elementwise: the operator maps each output element from the
	// elements at the same position of its one or two data inputs, all of
	// the output's shape, with no constant input; setup then tabulates it.
	elementwise bool
	lut         []uint8 // output code per input code (a) or pair a<<8|b
	// chanMul: a Mul of a [C, H, W] input (ins[xIn]) by a [C, 1, 1] one
	// (squeeze-excitation's gate), computed by runChanMul without the
	// one-node network: the same float64 product of the two dequantized
	// values, quantized by the same Quantize. The [C, H, W] input and the
	// output may be channels-last (layout.go ties them).
	chanMul bool
	xIn     int
	// composed: a two-input table where input 1-compIn is written by a
	// one-input tabulated step from input compIn (SiLU: x·Sigmoid(x)), so
	// the output code is a function of that input's code alone.
	composed *[256]uint8
	compIn   int
}

// elementwiseOps are the float engine's operators that compute every
// output element from the input elements at the same position alone (no
// attribute-dependent mixing across positions), so a table of the output
// code per input code reproduces them exactly.
var elementwiseOps = map[string]bool{
	"Sigmoid": true, "Tanh": true, "HardSigmoid": true, "HardSwish": true, "Erf": true, "Gelu": true,
	"Softplus": true, "Exp": true, "Log": true, "Sqrt": true, "Abs": true, "Neg": true, "LeakyRelu": true,
	"Elu": true, "Relu": true, "Mul": true, "Add": true, "Sub": true, "Div": true, "Min": true, "Max": true,
}

func (s *floatStep) describe() (string, string) { return s.node, s.opType + " (float)" }

// setup tabulates an elementwise step: the one-node network runs once on
// every input code (or pair of codes), dequantized exactly as run would,
// and the outputs are quantized as run would.
func (s *floatStep) setup(m *Model) error {
	s.perSample = m.plan.bufs[s.out].size
	if !s.elementwise {
		return nil
	}
	n := 1 << (8 * len(s.ins))
	xs := make([]*tensor.Tensor, len(s.ins))
	for j, b := range s.ins {
		q := m.quant[b]
		x := tensor.New(n)
		for k := range x.Data {
			c := k >> (8 * (len(s.ins) - 1 - j)) & 255
			x.Data[k] = float64(int64(c)-int64(q.ZeroPoint)) * q.Scale // as run and Reference's encode
		}
		xs[j] = x
	}
	pass, err := s.net.ForwardAll(context.Background(), xs, nil)
	if err != nil {
		return fmt.Errorf("intengine: %s %q: tabulating the float fallback: %w", s.opType, s.node, err)
	}
	y := pass.Output()
	if len(y.Data) != n {
		return fmt.Errorf("intengine: %s %q: tabulating the float fallback gave %v values; want %d", s.opType, s.node, y.Shape, n)
	}
	q := m.quant[s.out]
	s.lut = make([]uint8, n)
	for k, v := range y.Data {
		s.lut[k] = q.Quantize(v)
	}
	s.compose(m)
	return nil
}

// compose sets s.composed when one input of a two-input table is the
// output of an earlier one-input tabulated step f of the other input x:
// that input then holds f.lut[x] wherever x holds x (every buffer is
// written by one step), so the output code is composed[x].
func (s *floatStep) compose(m *Model) {
	s.composed = nil
	if len(s.ins) != 2 {
		return
	}
	for j := 0; j < 2; j++ {
		w := m.plan.writer[s.ins[j]]
		f, ok := m.plan.steps[max(w, 0)].(*floatStep)
		if w < 0 || !ok || f.lut == nil || len(f.ins) != 1 || f.ins[0] != s.ins[1-j] {
			continue
		}
		s.composed, s.compIn = new([256]uint8), 1-j
		for x := range 256 {
			g := int(f.lut[x])
			if j == 1 {
				s.composed[x] = s.lut[x<<8|g]
			} else {
				s.composed[x] = s.lut[g<<8|x]
			}
		}
		return
	}
}

// newFloatStep builds the one-node network of node n: data inputs become
// graph inputs (bufs gives their buffers), constant inputs become
// initializers.
func newFloatStep(n *onnx.Node, i int, g *onnx.Graph, opset int64, dynamic map[string]bool, p *plan, outName string, outShape []int, constOf func(string) *tensor.Tensor) (*floatStep, error) {
	s := &floatStep{node: n.Name, opType: n.OpType, outShape: outShape, outWhole: p.whole[outName]}
	sub := &onnx.Graph{Name: "fallback " + n.Name, Initializers: map[string]*tensor.Tensor{}, InitTypes: map[string]onnx.DataType{}}
	nd := onnx.Node{Name: n.Name, OpType: n.OpType, Domain: n.Domain, Attrs: n.Attrs, Inputs: make([]string, len(n.Inputs)), Outputs: []string{"y"}}
	seen := map[string]string{}
	for j, in := range n.Inputs {
		if in == "" {
			continue
		}
		if local, ok := seen[in]; ok {
			nd.Inputs[j] = local
			continue
		}
		local := "in" + strconv.Itoa(j)
		seen[in], nd.Inputs[j] = local, local
		if dynamic[in] {
			b, ok := p.valBuf[in]
			if !ok {
				return nil, unsupported(n, i, "input %q is not a uint8 tensor of the integer program (an int32 accumulator can only be the graph output)", in)
			}
			s.ins = append(s.ins, b)
			s.inShapes = append(s.inShapes, p.shapes[in])
			s.inWhole = append(s.inWhole, p.whole[in])
			sub.Inputs = append(sub.Inputs, onnx.ValueInfo{Name: local, ElemType: onnx.Float})
			continue
		}
		t := constOf(in)
		if t == nil {
			return nil, unsupported(n, i, "input %q is neither data nor a constant", in)
		}
		sub.Initializers[local] = t
		sub.InitTypes[local] = onnx.Undefined
		if dt, ok := g.InitTypes[in]; ok {
			sub.InitTypes[local] = dt
		}
		sub.InitOrder = append(sub.InitOrder, local)
	}
	if len(s.ins) == 0 {
		return nil, unsupported(n, i, "no data input")
	}
	s.elementwise = elementwiseOps[n.OpType] && len(s.ins) <= 2 && len(sub.Initializers) == 0 && n.Domain == ""
	for j, sh := range s.inShapes {
		s.elementwise = s.elementwise && tensor.SameShape(sh, outShape) && s.inWhole[j] == s.outWhole
	}
	if n.OpType == "Mul" && n.Domain == "" && len(s.ins) == 2 && len(sub.Initializers) == 0 && !s.outWhole && len(outShape) == 3 {
		gate := []int{outShape[0], 1, 1}
		for j := 0; j < 2 && !s.elementwise; j++ {
			if !s.inWhole[0] && !s.inWhole[1] && tensor.SameShape(s.inShapes[j], outShape) && tensor.SameShape(s.inShapes[1-j], gate) {
				s.chanMul, s.xIn = true, j
			}
		}
	}
	sub.Nodes = []onnx.Node{nd}
	sub.Outputs = []onnx.ValueInfo{{Name: "y", ElemType: onnx.Float}}
	net, err := network.Build(&onnx.Model{IRVersion: 8, Opset: opset, Graph: sub}, network.Options{NoFold: true})
	if err != nil {
		return nil, unsupported(n, i, "float fallback: %v", err)
	}
	s.net = net
	return s, nil
}

func (s *floatStep) run(ws *workspace, n int) error {
	m := ws.m
	if s.lut != nil {
		size := n * s.perSample
		dst, a := ws.bufs[s.out][:size], ws.bufs[s.ins[0]][:size]
		if len(s.ins) == 1 {
			kernels.LookupBytes(dst, a, (*[256]uint8)(s.lut))
			return nil
		}
		if s.composed != nil {
			kernels.LookupBytes(dst, ws.bufs[s.ins[s.compIn]][:size], s.composed)
			return nil
		}
		lut := (*[1 << 16]uint8)(s.lut)
		b := ws.bufs[s.ins[1]][:size]
		b = b[:len(dst)]
		for k := range dst {
			dst[k] = lut[uint16(a[k])<<8|uint16(b[k])]
		}
		return nil
	}
	if s.chanMul {
		s.runChanMul(ws, n)
		return nil
	}
	xs := make([]*tensor.Tensor, len(s.ins))
	for j, b := range s.ins {
		q := m.quant[b]
		shape := append([]int{n}, s.inShapes[j]...)
		if s.inWhole[j] { // a serial plan: n is 1 and the value has no batch axis
			shape = s.inShapes[j]
		}
		x := tensor.New(shape...)
		for k, c := range ws.bufs[b][:len(x.Data)] {
			x.Data[k] = float64(int64(c)-int64(q.ZeroPoint)) * q.Scale // as Reference's encode
		}
		xs[j] = x
	}
	y, err := s.net.InferAll(context.Background(), xs) // ForwardAll's output, in recycled memory
	if err != nil {
		return err
	}
	if len(y.Data) != n*s.perSample {
		return fmt.Errorf("float fallback gave %v; want [%d %v]", y.Shape, n, s.outShape)
	}
	q := m.quant[s.out]
	kernels.QuantizeBytes(ws.bufs[s.out][:len(y.Data)], y.Data, q.Scale, q.ZeroPoint) // q.Quantize of each
	return nil
}

// chanMulTable is the spatial size from which runChanMul tabulates a
// channel (256 Quantize calls) instead of quantizing each element.
const chanMulTable = 256

// runChanMul computes y = Quantize(x·g[c]) for the [C, H, W] input x and
// the [C, 1, 1] gate g, both dequantized as run dequantizes every float
// step's input (x·g and g·x are the same float64 product). A channel of
// more than chanMulTable positions is tabulated: the 256 possible codes of
// x give the same results as the elements would.
func (s *floatStep) runChanMul(ws *workspace, n int) {
	m := ws.m
	xb, gb := s.ins[s.xIn], s.ins[1-s.xIn]
	qx, qg, qy := m.quant[xb], m.quant[gb], m.quant[s.out]
	c := s.outShape[0]
	hw := s.perSample / c
	nhwc := m.plan.nhwc[s.out]
	ws.gate = growF(ws.gate, c)
	ws.prod = growF(ws.prod, max(c, hw, 256))
	prod := ws.prod
	// quantize sets out[k] = qy.Quantize(prod[k]) (kernels.QuantizeBytes:
	// the same codes, 8 at a time).
	quantize := func(out []uint8) { kernels.QuantizeBytes(out, prod[:len(out)], qy.Scale, qy.ZeroPoint) }
	var deq [256]float64
	for q := range deq {
		deq[q] = float64(int64(q)-int64(qx.ZeroPoint)) * qx.Scale
	}
	tab := hw > chanMulTable
	var tabs [][256]uint8
	if tab {
		if cap(ws.tab) < c {
			ws.tab = make([][256]uint8, c)
		}
		tabs = ws.tab[:c]
	}
	for i := 0; i < n; i++ {
		x := ws.bufs[xb][i*s.perSample : (i+1)*s.perSample]
		y := ws.bufs[s.out][i*s.perSample : (i+1)*s.perSample]
		for ch, q := range ws.bufs[gb][i*c : (i+1)*c] {
			g := float64(int64(q)-int64(qg.ZeroPoint)) * qg.Scale
			ws.gate[ch] = g
			if tab {
				for v, d := range deq {
					prod[v] = d * g
				}
				quantize(tabs[ch][:])
			}
		}
		switch {
		case tab && nhwc:
			for p := 0; p < hw; p++ {
				xp, yp := x[p*c:(p+1)*c], y[p*c:(p+1)*c]
				yp = yp[:len(xp)]
				for ch, v := range xp {
					yp[ch] = tabs[ch][v]
				}
			}
		case tab:
			for ch := 0; ch < c; ch++ {
				kernels.LookupBytes(y[ch*hw:(ch+1)*hw], x[ch*hw:(ch+1)*hw], &tabs[ch])
			}
		case nhwc:
			for p := 0; p < hw; p++ {
				xp := x[p*c : (p+1)*c]
				for ch, v := range xp {
					prod[ch] = deq[v] * ws.gate[ch]
				}
				quantize(y[p*c : (p+1)*c])
			}
		default:
			for ch := 0; ch < c; ch++ {
				g := ws.gate[ch]
				for k, v := range x[ch*hw : (ch+1)*hw] {
					prod[k] = deq[v] * g
				}
				quantize(y[ch*hw : (ch+1)*hw])
			}
		}
	}
}

func growF(b []float64, n int) []float64 {
	if cap(b) < n {
		return make([]float64, n)
	}
	return b[:n]
}

// concatStep concatenates uint8 tensors into one with its own quantizer:
// every input is rescaled to the output scale with a dyadic multiplier,
// all sharing one shift c (as Add):
//
//	y = clamp(z_y + round(m_j·(q - z_j) / 2^c), 0, 255),  m_j·2^-c ≈ S_j/S_y
type concatStep struct {
	node, outName string
	ins           []int
	out           int
	outer         int   // per sample: product of the dimensions before the axis
	chunks        []int // per input: product of its dimensions from the axis on

	// Filled by setup.
	mult  []int64
	zs    []int64
	shift int
	zy    int32
	total int // output chunk per outer index
}

func (s *concatStep) describe() (string, string) { return s.node, "Concat" }

// newConcatStep checks a Concat of data tensors along a non-batch axis.
func newConcatStep(n *onnx.Node, i int, inShapes [][]int, outShape []int) (*concatStep, error) {
	rank := len(outShape) + 1 // with the batch axis
	axis := int(attrInt(n, "axis", 1))
	if axis < 0 {
		axis += rank
	}
	if axis < 1 || axis >= rank {
		return nil, unsupported(n, i, "axis %d: only non-batch axes of a rank-%d tensor are supported", attrInt(n, "axis", 1), rank)
	}
	a := axis - 1 // in per-sample shapes
	s := &concatStep{node: n.Name, outName: n.Outputs[0], outer: tensor.Size(outShape[:a])}
	for _, sh := range inShapes {
		if len(sh) != len(outShape) || tensor.Size(sh[:a]) != s.outer {
			return nil, unsupported(n, i, "input of shape %v does not fit output %v", sh, outShape)
		}
		s.chunks = append(s.chunks, tensor.Size(sh[a:]))
	}
	return s, nil
}

func (s *concatStep) setup(m *Model) error {
	qy := m.quant[s.out]
	ratios := make([]float64, len(s.ins))
	s.zs = make([]int64, len(s.ins))
	for j, b := range s.ins {
		ratios[j] = m.quant[b].Scale / qy.Scale
		s.zs[j] = int64(m.quant[b].ZeroPoint)
	}
	var err error
	if s.mult, s.shift, err = sharedMultipliers(ratios); err != nil {
		return fmt.Errorf("intengine: Concat %q: %w: %w", s.node, err, ErrConfig)
	}
	s.zy = int32(qy.ZeroPoint)
	s.total = 0
	for _, c := range s.chunks {
		s.total += c
	}
	return nil
}

func (s *concatStep) run(ws *workspace, n int) error {
	dst := ws.bufs[s.out]
	off := 0
	for j, b := range s.ins {
		src := ws.bufs[b]
		c, mj, zj := s.chunks[j], s.mult[j], s.zs[j]
		for o := 0; o < n*s.outer; o++ {
			in := src[o*c : (o+1)*c]
			y := dst[o*s.total+off : o*s.total+off+c]
			for k, q := range in {
				y[k] = kernels.Requantize(mj*(int64(q)-zj), 1, s.shift, s.zy, 0, 255)
			}
		}
		off += c
	}
	return nil
}

func (s *floatStep) buffers() ([]int, int)  { return s.ins, s.out }
func (s *concatStep) buffers() ([]int, int) { return s.ins, s.out }
