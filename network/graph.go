package network

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

// ErrUnsupported is wrapped by errors about operators or graph features the
// engine does not run.
var ErrUnsupported = errors.New("unsupported")

// ErrShape is wrapped by errors about data whose shape does not fit the model.
var ErrShape = errors.New("shape mismatch")

// Param is a differentiable initializer of the network (a weight, a bias,
// a PRelu slope...). Value is the network's own copy: changing its Data
// changes the network (this is how quantized weights are simulated).
type Param struct {
	Name  string
	Value *tensor.Tensor
	// Node and Input say where the parameter is consumed first: node name
	// and input index (for Conv/Gemm/MatMul, 1 is the weight, 2 the bias).
	Node  string
	Input int
}

// Layer is a quantizable node: a Conv, Gemm or MatMul whose weight is a
// parameter.
type Layer struct {
	Node   string // ONNX node name
	Op     string
	Weight int // index into Params
	Bias   int // index into Params, or -1
	// Shapes known after Build (batch 1).
	InShape, OutShape []int
	// MACs is the number of multiply-accumulates per sample.
	MACs int64
	// TransB is true for a Gemm whose weight is stored [out, in].
	TransB bool
	// ChannelAxis is the weight axis of the output channels: 0 for Conv
	// and Gemm with transB, the last axis for MatMul and Gemm without.
	ChannelAxis int

	node int // index into Network.nodes
}

// Network is a float64 executable graph built from an ONNX model.
// A Network is not safe for concurrent passes that change parameters;
// concurrent Forward calls on unchanged parameters are safe.
type Network struct {
	Model     *onnx.Model // the model after import rewrites (BatchNorm folding)
	InputName string      // the first graph input: the data
	// InputNames lists every non-initializer graph input; models with more
	// than one run only through ForwardAll.
	InputNames []string
	OutputName string
	// SampleShape is the input shape without the batch axis.
	SampleShape []int

	nodes   []*node
	nvals   int
	valIdx  map[string]int
	valName []string
	params  []*Param
	pvals   []int // value index of each param
	inVal   int   // the first (main) input
	inVals  []int // every data input
	outVal  int
	layers  []Layer
	consts  map[int]*tensor.Tensor // value index -> constant (non-param)
	release [][]int                // per node, the values Infer drops after it (infer.go)
	arenas  sync.Pool              // *arena: the arrays of finished Infer passes (infer.go)
	silu    []int                  // per node, the Mul Infer runs with it as one SiLU loop, or -1 (infer.go)
	prec    Precision              // of the matrix products
	// valuesPerSample is the number of values the nodes compute for one
	// sample (ValuesPerSample), from the build's probe; 0 without one.
	valuesPerSample int64
}

// Precision returns the arithmetic of the network's matrix products.
func (net *Network) Precision() Precision { return net.prec }

// run computes nd's outputs from vals (hook applied to its non-constant
// inputs), reusing *ins as the input slice; errors name the node. Forward
// and Infer share it.
func (nd *node) run(vals []*tensor.Tensor, hook Hook, ins *[]*tensor.Tensor) ([]*tensor.Tensor, any, error) {
	nd.inputs(vals, hook, ins)
	outs, st, err := nd.op.ForwardMulti(*ins)
	if err == nil && len(outs) < len(nd.outs) {
		err = fmt.Errorf("has %d outputs; the operator computes %d", len(nd.outs), len(outs))
	}
	if err != nil {
		return nil, nil, nd.wrap(err)
	}
	return outs, st, nil
}

// inputs sets *ins to nd's inputs from vals, the hook applied to its
// non-constant ones.
func (nd *node) inputs(vals []*tensor.Tensor, hook Hook, ins *[]*tensor.Tensor) {
	*ins = (*ins)[:0]
	for j, v := range nd.in {
		var t *tensor.Tensor
		if v >= 0 {
			t = vals[v]
			if hook != nil && !nd.constIn[j] {
				t = hook(nd.name, j, t)
			}
		}
		*ins = append(*ins, t)
	}
}

// wrap names the node in an op's error unless the op did.
func (nd *node) wrap(err error) error {
	if strings.HasPrefix(err.Error(), "node ") {
		return err
	}
	return fmt.Errorf("node %q (%s): %w", nd.name, nd.opType, err)
}

type node struct {
	name, opType string
	op           MultiOp
	single       Op    // op when it is a plain one-output Op, else nil
	in           []int // value indices, -1 for omitted
	outs         []int // value index per output, -1 for omitted
	out          int   // outs[0]
	// constIn marks the inputs that get no gradient and no hook: build-time
	// constants and non-differentiable inputs (indices, shapes, masks).
	constIn []bool
}

// Options controls Build.
type Options struct {
	// NoFold keeps BatchNormalization nodes instead of folding them into
	// the preceding Conv/Gemm.
	NoFold bool
	// InputShapes gives the full shape of graph inputs by name, batch axis
	// included (its value is ignored). It resolves dynamic dimensions and
	// must agree with the static ones.
	InputShapes map[string][]int
	// Precision is the arithmetic of matrix products (F64, the zero
	// value, or F32).
	Precision Precision
}

// Build makes a Network from an imported ONNX model. The model is not
// modified; the Network holds its own copies of the parameters.
func Build(m *onnx.Model, opt Options) (*Network, error) {
	if m == nil || m.Graph == nil {
		return nil, errors.New("network: model has no graph")
	}
	g := m.Graph.Clone()
	if !opt.NoFold {
		foldBatchNorms(g)
	}
	net := &Network{Model: &onnx.Model{IRVersion: m.IRVersion, Opset: m.Opset, ProducerName: m.ProducerName, Graph: g}, valIdx: map[string]int{}, consts: map[int]*tensor.Tensor{}}
	if len(g.Inputs) < 1 {
		return nil, errors.New("network: model has no graph input besides initializers")
	}
	if len(g.Outputs) < 1 {
		return nil, errors.New("network: model has no graph output")
	}
	in := g.Inputs[0]
	net.InputName = in.Name
	net.OutputName = g.Outputs[0].Name
	if err := checkInputShapeNames(g, opt.InputShapes); err != nil {
		return nil, err
	}
	given, has := opt.InputShapes[in.Name]
	full, err := resolveInputShape(in, given, has)
	if err != nil {
		return nil, err
	}
	if len(full) > 0 {
		net.SampleShape = append([]int{}, full[1:]...)
	}
	val := func(name string) int {
		if i, ok := net.valIdx[name]; ok {
			return i
		}
		net.valIdx[name] = net.nvals
		net.valName = append(net.valName, name)
		net.nvals++
		return net.nvals - 1
	}
	for _, vi := range g.Inputs {
		net.inVals = append(net.inVals, val(vi.Name))
		net.InputNames = append(net.InputNames, vi.Name)
	}
	net.inVal = net.inVals[0]
	sw := newSweep(g, m.Opset)
	sw.prec = opt.Precision
	net.prec = opt.Precision
	if len(full) > 0 && len(g.Inputs) == 1 {
		sw.startProbes(in.Name, full)
	}
	var built []*pending
	for i := range g.Nodes {
		n := &g.Nodes[i]
		if err := checkNode(g, n, sw.consts, net.valIdx); err != nil {
			return nil, err
		}
		p, err := sw.step(i, n)
		if err != nil {
			return nil, err
		}
		if p == nil {
			continue // folded
		}
		for _, inName := range n.Inputs {
			if inName != "" {
				val(inName)
			}
		}
		for _, o := range n.Outputs[:p.nout] {
			if o != "" {
				val(o)
			}
		}
		built = append(built, p)
	}
	paramOf := net.collectParams(g, built)
	for _, o := range g.Outputs {
		if _, ok := sw.consts[o.Name]; ok {
			val(o.Name) // a graph output folded to a constant
		}
	}
	for name, t := range sw.consts {
		if i, ok := net.valIdx[name]; ok {
			if _, isParam := paramOf[name]; !isParam {
				net.consts[i] = t
			}
		}
	}
	for _, p := range built {
		net.nodes = append(net.nodes, net.newNode(p, paramOf))
	}
	o, ok := net.valIdx[net.OutputName]
	if !ok {
		return nil, fmt.Errorf("network: graph output %q is not computed from the input", net.OutputName)
	}
	net.outVal = o
	for _, p := range net.params {
		for _, v := range p.Value.Data {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("network: initializer %q holds NaN or Inf values; re-export the model from a healthy checkpoint", p.Name)
			}
		}
	}
	if sw.probe[0] != nil {
		net.inferLayers(sw.shapes)
		net.countValues(sw.shapes)
	}
	net.release = net.releasePlan()
	net.silu = net.siluPlan()
	return net, nil
}

// collectParams makes the parameters: float initializers that kept nodes
// use differentiably, in file order. It returns each one's index by name.
func (net *Network) collectParams(g *onnx.Graph, built []*pending) map[string]int {
	diffUse := map[string]bool{}
	for _, p := range built {
		for j, inName := range p.n.Inputs {
			if _, isInit := g.Initializers[inName]; isInit && !p.constIn[j] && isFloatType(g.InitTypes[inName]) {
				diffUse[inName] = true
			}
		}
	}
	paramOf := map[string]int{}
	for _, name := range g.InitOrder {
		if diffUse[name] {
			paramOf[name] = len(net.params)
			net.params = append(net.params, &Param{Name: name, Value: g.Initializers[name].Clone(), Input: -1})
			net.pvals = append(net.pvals, net.valIdx[name])
		}
	}
	return paramOf
}

// checkNode checks that n's operator is supported and that its inputs are
// known.
func checkNode(g *onnx.Graph, n *onnx.Node, consts map[string]*tensor.Tensor, known map[string]int) error {
	if n.Domain != "" && n.Domain != "ai.onnx" {
		return fmt.Errorf("node %q: operator %s of domain %q: %w; mpsearch runs the default ONNX domain only", n.Name, n.OpType, n.Domain, ErrUnsupported)
	}
	_, ok := builders[n.OpType]
	if _, multi := multiBuilders[n.OpType]; !ok && !multi {
		return fmt.Errorf("node %q: operator %s: %w; supported operators: %s", n.Name, n.OpType, ErrUnsupported, strings.Join(SupportedOps(), ", "))
	}
	for _, inName := range n.Inputs {
		if inName == "" {
			continue
		}
		if _, ok := consts[inName]; !ok {
			if _, ok := known[inName]; !ok {
				return fmt.Errorf("node %q (%s): input %q is not produced by any earlier node, initializer or graph input (is the graph in topological order?)", n.Name, n.OpType, inName)
			}
		}
	}
	return nil
}

// newNode makes the executed node of p, recording where each parameter is
// first consumed.
func (net *Network) newNode(p *pending, paramOf map[string]int) *node {
	nd := &node{name: p.n.Name, opType: p.n.OpType, op: p.op, single: p.single, constIn: p.constIn}
	for _, o := range p.n.Outputs[:p.nout] {
		v := -1
		if o != "" {
			v = net.valIdx[o]
		}
		nd.outs = append(nd.outs, v)
	}
	nd.out = -1
	if len(nd.outs) > 0 {
		nd.out = nd.outs[0]
	}
	nd.in = make([]int, len(p.n.Inputs))
	for j, inName := range p.n.Inputs {
		nd.in[j] = -1
		if inName == "" {
			continue
		}
		nd.in[j] = net.valIdx[inName]
		if k, ok := paramOf[inName]; ok && net.params[k].Input < 0 {
			net.params[k].Node = p.n.Name
			net.params[k].Input = j
		}
	}
	return nd
}

func anyDiff(n *onnx.Node, g *onnx.Graph, isConst []bool) bool {
	for j, inName := range n.Inputs {
		if inName == "" || isConst[j] {
			continue
		}
		if _, isInit := g.Initializers[inName]; isInit && isFloatType(g.InitTypes[inName]) {
			return true
		}
	}
	return false
}

func isFloatType(t onnx.DataType) bool {
	switch t {
	case onnx.Float, onnx.Double, onnx.Float16, onnx.Bfloat16, onnx.Undefined:
		return true
	}
	return false
}

func usedLater(g *onnx.Graph, i int, name string) bool {
	for _, n := range g.Nodes[i+1:] {
		for _, in := range n.Inputs {
			if in == name {
				return true
			}
		}
	}
	for _, o := range g.Outputs {
		if o.Name == name {
			return true
		}
	}
	return false
}

func dimsString(ds []onnx.Dim) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		if d.Value > 0 {
			parts[i] = fmt.Sprint(d.Value)
		} else if d.Param != "" {
			parts[i] = d.Param
		} else {
			parts[i] = "?"
		}
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// inferLayers records the quantizable layers with their MACs, from the
// batch-1 shapes of the build's probe pass.
func (net *Network) inferLayers(shapes map[string][]int) {
	widx := map[int]int{}
	for i, v := range net.pvals {
		widx[v] = i
	}
	for ni, nd := range net.nodes {
		switch nd.opType {
		case "Conv", "Gemm", "MatMul":
		default:
			continue
		}
		if len(nd.in) < 2 || nd.in[1] < 0 {
			continue
		}
		wi, ok := widx[nd.in[1]]
		if !ok {
			continue
		}
		l := Layer{Node: nd.name, Op: nd.opType, Weight: wi, Bias: -1, node: ni}
		if len(nd.in) > 2 && nd.in[2] >= 0 {
			if bi, ok := widx[nd.in[2]]; ok {
				l.Bias = bi
			}
		}
		l.InShape = append([]int(nil), shapes[net.valName[nd.in[0]]]...)
		l.OutShape = append([]int(nil), shapes[net.valName[nd.out]]...)
		outSize := int64(tensor.Size(l.OutShape))
		w := net.params[wi].Value
		switch nd.opType {
		case "Conv":
			// Each output element costs (Cin/group)*kh*kw MACs.
			l.MACs = outSize * int64(w.Size()/w.Shape[0])
		case "Gemm":
			l.TransB = gemmTransB(net.Model.Graph, nd.name)
			l.MACs = outSize * int64(w.Size()/outFeatures(w, l.TransB))
			if !l.TransB {
				l.ChannelAxis = w.Rank() - 1
			}
		case "MatMul":
			if w.Rank() != 2 {
				continue // batched weights are not a quantizable layer
			}
			l.MACs = outSize * int64(w.Shape[0])
			l.ChannelAxis = 1
		}
		net.layers = append(net.layers, l)
	}
}

func outFeatures(w *tensor.Tensor, transB bool) int {
	if transB {
		return w.Shape[0]
	}
	return w.Shape[len(w.Shape)-1]
}

func gemmTransB(g *onnx.Graph, name string) bool {
	for i := range g.Nodes {
		if g.Nodes[i].Name == name {
			if a, ok := g.Nodes[i].Attrs["transB"]; ok {
				return a.I != 0
			}
		}
	}
	return false
}

// Params returns the differentiable parameters in the model file's order.
func (net *Network) Params() []*Param { return net.params }

// Layers returns the quantizable layers (Conv, Gemm, MatMul with a weight
// parameter) in execution order.
func (net *Network) Layers() []Layer { return net.layers }

// NodeCount is the number of executed nodes (after constant folding).
func (net *Network) NodeCount() int { return len(net.nodes) }

// Pass holds every value of one forward pass, for backward and tangent
// passes on the same batch.
type Pass struct {
	net    *Network
	vals   []*tensor.Tensor
	states []any
	// ctx is the context of the Forward call: the passes run on this one
	// (Backward, HVP, Tangents) stop early when it is done.
	ctx context.Context
}

// stopped reports whether the pass's context is done (checked per node by
// the backward and tangent passes).
func (p *Pass) stopped() bool { return p.ctx != nil && p.ctx.Err() != nil }

// Output returns the network output of the pass.
func (p *Pass) Output() *tensor.Tensor { return p.vals[p.net.outVal] }

// Value returns a named intermediate value of the pass, or nil.
func (p *Pass) Value(name string) *tensor.Tensor {
	if i, ok := p.net.valIdx[name]; ok {
		return p.vals[i]
	}
	return nil
}

// Hook, when set on Forward through ForwardHook, may replace the input
// values of a node before it runs (simulated activation quantization).
type Hook func(node string, inputIndex int, v *tensor.Tensor) *tensor.Tensor

// Forward runs the network on a batch x of shape [N]+SampleShape.
func (net *Network) Forward(ctx context.Context, x *tensor.Tensor) (*Pass, error) {
	return net.ForwardHook(ctx, x, nil)
}

// ForwardHook is Forward with a hook on node inputs (see Hook).
func (net *Network) ForwardHook(ctx context.Context, x *tensor.Tensor, hook Hook) (*Pass, error) {
	if err := net.CheckInput(x); err != nil {
		return nil, err
	}
	if len(net.inVals) != 1 {
		return nil, fmt.Errorf("network: the model has %d data inputs %v; mpsearch runs models with exactly one: %w", len(net.inVals), net.InputNames, ErrUnsupported)
	}
	return net.ForwardAll(ctx, []*tensor.Tensor{x}, hook)
}

// ForwardAll runs the network with one tensor for each of InputNames.
func (net *Network) ForwardAll(ctx context.Context, xs []*tensor.Tensor, hook Hook) (*Pass, error) {
	if len(xs) != len(net.inVals) {
		return nil, fmt.Errorf("network: got %d inputs; the model has %d %v: %w", len(xs), len(net.inVals), net.InputNames, ErrShape)
	}
	p := &Pass{net: net, vals: make([]*tensor.Tensor, net.nvals), states: make([]any, len(net.nodes)), ctx: ctx}
	for i, t := range net.consts {
		p.vals[i] = t
	}
	for i, v := range net.pvals {
		p.vals[v] = net.params[i].Value
	}
	for i, v := range net.inVals {
		p.vals[v] = xs[i]
	}
	ins := make([]*tensor.Tensor, 0, 4)
	for k, nd := range net.nodes {
		if k%8 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		outs, st, err := nd.run(p.vals, hook, &ins)
		if err != nil {
			return nil, err
		}
		for j, v := range nd.outs {
			if v >= 0 {
				p.vals[v] = outs[j]
			}
		}
		p.states[k] = st
	}
	return p, nil
}

// CheckInput reports whether x fits the model's input.
func (net *Network) CheckInput(x *tensor.Tensor) error {
	if x == nil || x.Rank() < 1 || x.Shape[0] < 1 {
		return fmt.Errorf("input %q: empty batch: %w", net.InputName, ErrShape)
	}
	if net.SampleShape != nil && !tensor.SameShape(x.Shape[1:], net.SampleShape) {
		return fmt.Errorf("input %q: got samples of shape %v; the model wants %v: %w", net.InputName, x.Shape[1:], net.SampleShape, ErrShape)
	}
	return nil
}

// Grads holds the gradients of one backward pass.
type Grads struct {
	Params []*tensor.Tensor // aligned with Network.Params()
	Input  *tensor.Tensor   // nil unless asked for
}

// Backward propagates gout = dL/d(output) back through the pass and returns
// the gradients of every parameter and, if wantInput, of the input. When
// the context given to Forward is done, it stops early and its result is
// meaningless: callers check the context.
func (p *Pass) Backward(gout *tensor.Tensor, wantInput bool) *Grads {
	net := p.net
	grad := p.backwardAll(gout, net.needGrad(wantInput))
	out := &Grads{Params: net.paramValues(grad, 0)}
	if wantInput {
		out.Input = grad[net.inVal]
		if out.Input == nil {
			out.Input = tensor.New(p.vals[net.inVal].Shape...)
		}
	}
	return out
}

// needGrad marks the values that depend on a parameter (or on the input,
// if wantInput), i.e. whose gradient is needed.
func (net *Network) needGrad(wantInput bool) []bool {
	need := make([]bool, net.nvals)
	for _, v := range net.pvals {
		need[v] = true
	}
	if wantInput {
		need[net.inVal] = true
	}
	for _, nd := range net.nodes {
		for j, v := range nd.in {
			if v >= 0 && need[v] && !nd.constIn[j] {
				for _, o := range nd.outs {
					if o >= 0 {
						need[o] = true
					}
				}
			}
		}
	}
	return need
}

// accumulate returns acc+g. *owned says whether acc's storage belongs to
// the accumulator: an op's output (which may alias an input or another
// value) is never written; the first sum is a fresh copy, marked owned,
// and later sums add into it in place.
func accumulate(acc, g *tensor.Tensor, owned *bool) *tensor.Tensor {
	if acc == nil {
		return g
	}
	if !*owned {
		acc = acc.Clone()
		*owned = true
	}
	for i, v := range g.Data {
		acc.Data[i] += v
	}
	return acc
}

// HVP computes, on the batch of this pass and for the loss, the gradient of
// the loss with respect to every parameter and the products of the loss
// Hessian with K directions. dirs[i] is the tangent of parameter i with
// shape [K]+shape (nil = zero). The returned hv[i] has the same layout
// (never nil). Pearlmutter's R-operator: a forward tangent pass, then a
// backward pass carrying gradients and their tangents.
func (p *Pass) HVP(loss Loss, dirs []*tensor.Tensor, k int) (grads *Grads, hv []*tensor.Tensor, err error) {
	net := p.net
	tang, err := p.tangents(dirs, k)
	if err != nil {
		return nil, nil, err
	}
	out := p.vals[net.outVal]
	_, gout, err := loss.Eval(out)
	if err != nil {
		return nil, nil, err
	}
	tgout := loss.GradTangent(out, tang[net.outVal], k)
	grad, tgrad := p.backward(gout, tgout, tang, net.needGrad(false))
	if p.stopped() {
		return nil, nil, p.ctx.Err()
	}
	return &Grads{Params: net.paramValues(grad, 0)}, net.paramValues(tgrad, k), nil
}

// Tangents returns the tangent of the network output along K parameter
// directions (dirs as for HVP): [K]+output shape, zero if every direction
// is nil. It is the Jacobian-vector product of the forward pass.
func (p *Pass) Tangents(dirs []*tensor.Tensor, k int) (*tensor.Tensor, error) {
	tang, err := p.tangents(dirs, k)
	if err != nil {
		return nil, err
	}
	t := tang[p.net.outVal]
	if t == nil {
		t = tensor.New(append([]int{k}, p.Output().Shape...)...)
	}
	return t, nil
}

// tangents runs the forward tangent pass and returns every value's tangent.
func (p *Pass) tangents(dirs []*tensor.Tensor, k int) ([]*tensor.Tensor, error) {
	net := p.net
	if len(dirs) != len(net.params) {
		return nil, fmt.Errorf("network: got %d directions for %d parameters", len(dirs), len(net.params))
	}
	tang := make([]*tensor.Tensor, net.nvals)
	for i, v := range net.pvals {
		if dirs[i] != nil {
			if dirs[i].Size() != k*net.params[i].Value.Size() {
				return nil, fmt.Errorf("network: direction for %q has %d values; want %d×%v", net.params[i].Name, dirs[i].Size(), k, net.params[i].Value.Shape)
			}
			tang[v] = dirs[i]
		}
	}
	ins := make([]*tensor.Tensor, 0, 4)
	tins := make([]*tensor.Tensor, 0, 4)
	for n, nd := range net.nodes {
		if p.stopped() {
			return nil, p.ctx.Err()
		}
		ins, tins = ins[:0], tins[:0]
		any := false
		for j, v := range nd.in {
			if v < 0 {
				ins, tins = append(ins, nil), append(tins, nil)
				continue
			}
			ins = append(ins, p.vals[v])
			var t *tensor.Tensor
			if !nd.constIn[j] {
				t = tang[v]
			}
			tins = append(tins, t)
			any = any || t != nil
		}
		if any {
			touts := nd.op.TangentMulti(ins, tins, p.outVals(nd, p.vals), p.states[n])
			for j, v := range nd.outs {
				if v >= 0 && j < len(touts) {
					tang[v] = touts[j]
				}
			}
		}
	}
	return tang, nil
}

// backwardAll propagates gout and returns the gradient of every value
// marked in need (nil for values that get none).
func (p *Pass) backwardAll(gout *tensor.Tensor, need []bool) []*tensor.Tensor {
	grad, _ := p.backward(gout, nil, nil, need)
	return grad
}

// backward propagates gout through the pass and returns the gradient of
// every value marked in need. With tang (the forward tangents of every
// value, from tangents) it also propagates tgout, the tangent of gout, and
// returns the gradients' tangents: the backward half of the R-operator.
func (p *Pass) backward(gout, tgout *tensor.Tensor, tang []*tensor.Tensor, need []bool) (grad, tgrad []*tensor.Tensor) {
	net := p.net
	grad = make([]*tensor.Tensor, net.nvals)
	owned := make([]bool, 2*net.nvals) // of grad, then of tgrad (see accumulate)
	grad[net.outVal] = gout
	if tang != nil {
		tgrad = make([]*tensor.Tensor, net.nvals)
		tgrad[net.outVal] = tgout
	}
	ins := make([]*tensor.Tensor, 0, 4)
	tins := make([]*tensor.Tensor, 0, 4)
	for n := len(net.nodes) - 1; n >= 0 && !p.stopped(); n-- {
		nd := net.nodes[n]
		gouts := p.outVals(nd, grad)
		anyGrad := false
		for _, g := range gouts {
			anyGrad = anyGrad || g != nil
		}
		if !anyGrad {
			continue
		}
		ins, tins = ins[:0], tins[:0]
		nin := make([]bool, len(nd.in))
		anyNeed := false
		for j, v := range nd.in {
			if v < 0 {
				ins, tins = append(ins, nil), append(tins, nil)
				continue
			}
			ins = append(ins, p.vals[v])
			var t *tensor.Tensor
			if tang != nil && !nd.constIn[j] {
				t = tang[v]
			}
			tins = append(tins, t)
			nin[j] = need[v] && !nd.constIn[j]
			anyNeed = anyNeed || nin[j]
		}
		if !anyNeed {
			continue
		}
		var gin, tgin []*tensor.Tensor
		outs := p.outVals(nd, p.vals)
		if tang == nil {
			gin = nd.op.BackwardMulti(ins, outs, p.states[n], gouts, nin)
		} else {
			gin, tgin = nd.op.BackwardTangentMulti(ins, tins, outs, p.outVals(nd, tang), p.states[n], gouts, p.outVals(nd, tgrad), nin)
		}
		for j, v := range nd.in {
			if !nin[j] {
				continue
			}
			if gin[j] != nil {
				grad[v] = accumulate(grad[v], gin[j], &owned[v])
			}
			if tgin != nil && tgin[j] != nil {
				tgrad[v] = accumulate(tgrad[v], tgin[j], &owned[net.nvals+v])
			}
		}
	}
	return grad, tgrad
}

// outVals picks the entries of per-value tensors (values, gradients or
// tangents) for each output of nd, nil for omitted outputs.
func (p *Pass) outVals(nd *node, vals []*tensor.Tensor) []*tensor.Tensor {
	out := make([]*tensor.Tensor, len(nd.outs))
	for j, v := range nd.outs {
		if v >= 0 {
			out[j] = vals[v]
		}
	}
	return out
}

// paramValues picks each parameter's entry of per-value tensors, with
// zeros ([k]+shape when k > 0) where a parameter got none.
func (net *Network) paramValues(vals []*tensor.Tensor, k int) []*tensor.Tensor {
	out := make([]*tensor.Tensor, len(net.params))
	for i, v := range net.pvals {
		out[i] = vals[v]
		if out[i] == nil {
			shape := net.params[i].Value.Shape
			if k > 0 {
				shape = append([]int{k}, shape...)
			}
			out[i] = tensor.New(shape...)
		}
	}
	return out
}

// Bytes returns the memory held by the pass's values (not counting the
// parameters and constants, which the network owns).
func (p *Pass) Bytes() int64 {
	var n int64
	seen := map[*float64]bool{}
	for _, v := range p.net.pvals {
		if d := p.vals[v].Data; len(d) > 0 {
			seen[&d[0]] = true
		}
	}
	for i, v := range p.vals {
		if v == nil || len(v.Data) == 0 || i == p.net.inVal {
			continue
		}
		if _, isConst := p.net.consts[i]; isConst {
			continue
		}
		if seen[&v.Data[0]] {
			continue
		}
		seen[&v.Data[0]] = true
		n += int64(len(v.Data)) * 8
	}
	return n
}
