package intengine

import (
	"context"
	"fmt"
	"math"
	"math/bits"

	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/quant"
	"mpsearch/tensor"
)

// meanTieTol decides when a float average is a rounding tie: a mean of
// integers over d taps is a multiple of 1/d, so a value that is not a
// half-integer lies at least 1/(2d) from one, while float64 averaging errs
// by about 1e-16 relative. 1e-9 separates the two for any d below 10^8.
const meanTieTol = 1e-9

// Reference is the simulated quantization of a compiled Model in float64:
// the float engine (package network) runs the model's graph with the
// Model's integer weights and biases stored as float64 values, and network
// hooks requantize every tensor with the Model's scales. Its arithmetic is
// independent of package kernels: convolutions and products are the float
// engine's (exact, since every operand and partial sum is an integer far
// below 2^53), pooling and ReLU are the float ops on dequantized values, and
// the dyadic requantization y = clamp(z + round(acc·m / 2^c), lo, hi) (ties
// away from zero) is evaluated on exact 128-bit products (math/bits), not
// with kernels.Requantize.
type Reference struct {
	m    *Model
	net  *network.Network
	dom  map[string]domain     // value name -> how its float values encode codes
	enc  map[string][]encoding // node name -> per input
	outL *layerStep            // the layer producing int32 logits, or nil
	ins  map[string][]string   // node name -> input names
}

// domainKind says how a value of the reference pass holds uint8 codes.
type domainKind int

const (
	domInput domainKind = iota // the float model input: code = Quantize(x)
	domReal                    // dequantized values (q - z)·S
	domAcc                     // a layer's integer accumulators, before requantization
	domSum                     // an Add's integer sum m_a(a - z_a) + m_b(b - z_b), or a Concat of m_j(q - z_j)
	domMean                    // an average pool's mean of (q - z)
)

type domain struct {
	kind  domainKind
	buf   int        // buffer whose quantizer holds the codes
	layer *layerStep // domAcc
	shift int        // domSum: the shared shift of the multipliers
}

// encoding is what a consumer input receives: dequantized values, integers
// q - z (layers, average pools) or the Add's rescaled m·(q - z).
type encoding struct {
	centred bool
	mult    int64 // 0: not an Add input
}

// NewReference builds the simulated-quantization reference of m.
func NewReference(m *Model) (*Reference, error) {
	net := m.net
	g := net.Model.Graph
	r := &Reference{m: m, dom: map[string]domain{}, enc: map[string][]encoding{}, ins: map[string][]string{}, outL: m.plan.outLayer}
	r.dom[net.InputName] = domain{kind: domInput, buf: m.plan.valBuf[net.InputName]}
	for _, st := range m.plan.steps {
		switch s := st.(type) {
		case *layerStep:
			r.dom[s.outName] = domain{kind: domAcc, buf: s.out, layer: s}
		case *addStep:
			r.dom[s.outName] = domain{kind: domSum, buf: s.out, shift: s.shift}
		case *concatStep:
			r.dom[s.outName] = domain{kind: domSum, buf: s.out, shift: s.shift}
		case *poolStep:
			if s.avg {
				r.dom[m.plan.bufs[s.out].name] = domain{kind: domMean, buf: s.out}
			}
		}
	}
	for name, b := range m.plan.valBuf {
		if _, ok := r.dom[name]; !ok {
			r.dom[name] = domain{kind: domReal, buf: b}
		}
	}
	// Encodings of every node input that carries codes.
	// Inputs rescaled by a multiplier: Add and integer Concat.
	mults := map[string][]int64{}
	for _, st := range m.plan.steps {
		switch s := st.(type) {
		case *addStep:
			mults[s.node] = []int64{s.ma, s.mb}
		case *concatStep:
			mults[s.node] = s.mult
		}
	}
	isLayer := map[string]bool{}
	for _, l := range net.Layers() {
		isLayer[l.Node] = true
	}
	for i := range g.Nodes {
		n := &g.Nodes[i]
		dyn := false
		for _, in := range n.Inputs {
			if _, ok := r.dom[in]; ok {
				dyn = true
			}
		}
		if !dyn {
			continue
		}
		if _, dup := r.enc[n.Name]; dup || n.Name == "" {
			return nil, fmt.Errorf("intengine: reference: %s: node names must be unique and non-empty: %w", nodeRef(n, i), ErrUnsupported)
		}
		enc := make([]encoding, len(n.Inputs))
		for j := range n.Inputs {
			switch {
			case isLayer[n.Name] && j == 0, n.OpType == "AveragePool" || n.OpType == "GlobalAveragePool":
				enc[j].centred = true
			case mults[n.Name] != nil:
				enc[j].centred = true
				enc[j].mult = mults[n.Name][j]
			}
		}
		r.enc[n.Name] = enc
		r.ins[n.Name] = n.Inputs
	}
	// The float network with integer weights and biases. Each layer reads
	// its own new initializers (named after the node): a weight or bias
	// the model shares between layers, or a bias that is a folded constant
	// (an Identity of a shared initializer), gets per-layer integer values.
	gi := *g
	gi.Initializers = make(map[string]*tensor.Tensor, len(g.Initializers))
	gi.InitTypes = make(map[string]onnx.DataType, len(g.InitTypes))
	for k, v := range g.Initializers {
		gi.Initializers[k] = v
	}
	for k, v := range g.InitTypes {
		gi.InitTypes[k] = v
	}
	gi.InitOrder = append([]string(nil), g.InitOrder...)
	gi.Nodes = append([]onnx.Node(nil), g.Nodes...)
	nodeIdx := map[string]int{}
	for i := range gi.Nodes {
		nodeIdx[gi.Nodes[i].Name] = i
	}
	addInit := func(name string, t *tensor.Tensor) error {
		if _, clash := gi.Initializers[name]; clash {
			return fmt.Errorf("intengine: reference: initializer %q already exists: %w", name, ErrUnsupported)
		}
		gi.Initializers[name] = t
		gi.InitTypes[name] = onnx.Float
		gi.InitOrder = append(gi.InitOrder, name)
		return nil
	}
	for _, st := range m.plan.steps {
		s, ok := st.(*layerStep)
		if !ok {
			continue
		}
		ni, ok := nodeIdx[s.node]
		if !ok {
			return nil, fmt.Errorf("intengine: reference: layer %q is not a node of the rewritten model", s.node)
		}
		nd := &gi.Nodes[ni]
		w := tensor.New(net.Params()[net.Layers()[s.li].Weight].Value.Shape...)
		for i, q := range s.wq.Q {
			w.Data[i] = float64(q)
		}
		b := tensor.New(len(s.bias))
		for i, q := range s.bias {
			b.Data[i] = float64(q)
		}
		wName, bName := s.node+"#intengine_weight", s.node+"#intengine_bias"
		if err := addInit(wName, w); err != nil {
			return nil, err
		}
		nd.Inputs = []string{nd.Inputs[0], wName}
		if s.opType == "MatMul" { // no bias input; its bias is zero
			continue
		}
		if err := addInit(bName, b); err != nil {
			return nil, err
		}
		nd.Inputs = append(nd.Inputs, bName)
	}
	mi := *net.Model
	mi.Graph = &gi
	var err error
	if r.net, err = network.Build(&mi, network.Options{}); err != nil {
		return nil, fmt.Errorf("intengine: reference network: %w", err)
	}
	return r, nil
}

// requantRef is y = clamp(z + round(acc·mult / 2^shift), lo, hi), rounding
// half away from zero, evaluated on the exact 128-bit product: the magnitude
// is floor(|p| / 2^shift) plus one when bit shift-1 of |p| is set (the
// fraction is at least one half). shift must be below 64.
func requantRef(acc, mult int64, shift int, z int, lo, hi uint8) uint8 {
	abs := func(v int64) uint64 {
		if v < 0 {
			return uint64(-v)
		}
		return uint64(v)
	}
	neg := (acc < 0) != (mult < 0)
	ph, pl := bits.Mul64(abs(acc), abs(mult))
	q, up := pl, false
	if shift > 0 {
		q = pl>>shift | ph<<(64-shift)
		up = pl>>(shift-1)&1 == 1
		ph >>= shift
	}
	if up {
		q++
	}
	if ph != 0 || q > math.MaxInt32 { // far outside [0, 255] whatever z is
		if neg {
			return lo
		}
		return hi
	}
	v := int64(q)
	if neg {
		v = -v
	}
	v += int64(z)
	return uint8(min(max(v, int64(lo)), int64(hi)))
}

// integer converts an integer-valued float64 to int64, or reports it is not
// one (which would mean the float engine lost exactness).
func integer(v float64) (int64, error) {
	if v != math.Trunc(v) || math.Abs(v) > 1<<53 {
		return 0, fmt.Errorf("intengine: reference: accumulator %v is not an exact integer", v)
	}
	return int64(v), nil
}

// roundMean rounds a float average of integers half away from zero,
// treating values within meanTieTol of a half-integer as ties.
func roundMean(v float64) int {
	f := math.Floor(v)
	if math.Abs(v-f-0.5) < meanTieTol {
		if v > 0 {
			return int(f) + 1
		}
		return int(f)
	}
	return int(math.Round(v))
}

// refChannel returns the output channel of element i of a layer output of
// the given shape (batch included): axis 1 for a convolution (NCHW), the
// last axis for Gemm and MatMul.
func refChannel(shape []int, conv bool, i int) int {
	if conv {
		return (i / tensor.Size(shape[2:])) % shape[1]
	}
	return i % shape[len(shape)-1]
}

// decode returns the uint8 codes a value of the reference pass holds.
func (r *Reference) decode(d domain, v *tensor.Tensor) ([]uint8, error) {
	q := r.m.quant[d.buf]
	out := make([]uint8, len(v.Data))
	for i, x := range v.Data {
		switch d.kind {
		case domInput, domReal:
			out[i] = q.Quantize(x)
		case domAcc:
			a, err := integer(x)
			if err != nil {
				return nil, err
			}
			c := refChannel(v.Shape, d.layer.conv, i)
			out[i] = requantRef(a, int64(d.layer.mult[c]), d.layer.shift[c], q.ZeroPoint, 0, 255)
		case domSum:
			a, err := integer(x)
			if err != nil {
				return nil, err
			}
			out[i] = requantRef(a, 1, d.shift, q.ZeroPoint, 0, 255)
		case domMean:
			out[i] = uint8(min(max(q.ZeroPoint+roundMean(x), 0), 255))
		}
	}
	return out, nil
}

func encode(codes []uint8, q quant.ActQuant, e encoding, shape []int) *tensor.Tensor {
	t := tensor.New(shape...)
	for i, c := range codes {
		d := int64(c) - int64(q.ZeroPoint)
		switch {
		case e.mult != 0:
			t.Data[i] = float64(e.mult * d)
		case e.centred:
			t.Data[i] = float64(d)
		default:
			t.Data[i] = float64(d) * q.Scale
		}
	}
	return t
}

// RunInt runs the simulated quantization on x and returns the same integer
// tensors as Model.RunInt.
func (r *Reference) RunInt(ctx context.Context, x *tensor.Tensor) (*IntResult, error) {
	if err := r.m.check(x); err != nil {
		return nil, err
	}
	if n := x.Shape[0]; r.m.plan.serial && n > 1 {
		// A serial Model's constants are those of batch 1: one pass per
		// sample, the results joined batch-major.
		per := x.Size() / n
		var res *IntResult
		for k := 0; k < n; k++ {
			rk, err := r.runInt(ctx, tensor.FromData(x.Data[k*per:(k+1)*per], append([]int{1}, x.Shape[1:]...)...))
			if err != nil {
				return nil, err
			}
			res = joinResults(res, rk)
		}
		return res, nil
	}
	return r.runInt(ctx, x)
}

// joinResults appends the one-sample result b to a (nil for none).
func joinResults(a, b *IntResult) *IntResult {
	if a == nil {
		return b
	}
	a.Batch += b.Batch
	for i := range a.Tensors {
		a.Tensors[i].Codes = append(a.Tensors[i].Codes, b.Tensors[i].Codes...)
	}
	a.Acc = append(a.Acc, b.Acc...)
	out := tensor.New(append([]int{a.Batch}, a.Output.Shape[1:]...)...)
	copy(out.Data, a.Output.Data)
	copy(out.Data[len(a.Output.Data):], b.Output.Data)
	a.Output = out
	return a
}

// runInt is RunInt on a batch that one float pass computes.
func (r *Reference) runInt(ctx context.Context, x *tensor.Tensor) (*IntResult, error) {
	var hookErr error
	hook := func(node string, j int, v *tensor.Tensor) *tensor.Tensor {
		ins, ok := r.ins[node]
		if !ok || j >= len(ins) {
			return v
		}
		d, ok := r.dom[ins[j]]
		if !ok {
			return v // a weight, bias or other constant
		}
		codes, err := r.decode(d, v)
		if err != nil {
			hookErr = fmt.Errorf("node %q input %d: %w", node, j, err)
			return v
		}
		return encode(codes, r.m.quant[d.buf], r.enc[node][j], v.Shape)
	}
	pass, err := r.net.ForwardHook(ctx, x, hook)
	if err != nil {
		return nil, err
	}
	if hookErr != nil {
		return nil, hookErr
	}
	n := x.Shape[0]
	res := &IntResult{Batch: n, Output: tensor.New(append([]int{n}, r.m.plan.outShape...)...)}
	for _, b := range r.m.plan.bufs {
		v := pass.Value(b.name)
		if v == nil {
			return nil, fmt.Errorf("intengine: reference: no value %q", b.name)
		}
		codes, err := r.decode(r.dom[b.name], v)
		if err != nil {
			return nil, err
		}
		res.Tensors = append(res.Tensors, IntTensor{Name: b.name, Shape: append([]int(nil), r.m.plan.shapes[b.name]...), Codes: codes})
	}
	out := pass.Output()
	if l := r.outL; l != nil {
		res.AccShape = append([]int(nil), r.m.plan.outShape...)
		res.Acc = make([]int32, len(out.Data))
		for i, v := range out.Data {
			a, err := integer(v)
			if err != nil {
				return nil, err
			}
			if a < math.MinInt32 || a > math.MaxInt32 {
				return nil, fmt.Errorf("intengine: reference: accumulator %d overflows int32", a)
			}
			res.Acc[i] = int32(a)
			res.Output.Data[i] = float64(a) * (l.sx * l.wq.Scales[refChannel(out.Shape, l.conv, i)])
		}
		return res, nil
	}
	d := r.dom[r.m.net.OutputName]
	codes, err := r.decode(d, out)
	if err != nil {
		return nil, err
	}
	q := r.m.quant[d.buf]
	for i, c := range codes {
		res.Output.Data[i] = float64(int(c)-q.ZeroPoint) * q.Scale
	}
	return res, nil
}
