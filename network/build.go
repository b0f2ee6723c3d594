package network

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

// This file holds Build's walk over the graph: input shape resolution, the
// two probe passes that infer every intermediate shape and fold shape
// subgraphs (see doc.go), element types, and deferred ops (nodes whose
// build-time constant inputs are only known per pass).

// probeBatches are the batch sizes of the two probe passes.
var probeBatches = [2]int{1, 2}

// resolveInputShape returns the full shape of graph input vi (batch axis 1)
// from the model's declaration and the user's shape (given, ok), or nil
// when neither gives one.
func resolveInputShape(vi onnx.ValueInfo, given []int, ok bool) ([]int, error) {
	if vi.Shape == nil {
		if !ok {
			return nil, nil
		}
		if len(given) == 0 {
			return []int{}, nil
		}
		for _, d := range given[1:] {
			if d <= 0 {
				return nil, fmt.Errorf("network: input %q: shape %v has a non-positive dimension: %w", vi.Name, given, ErrShape)
			}
		}
		return append([]int{1}, given[1:]...), nil
	}
	if ok {
		if len(given) != len(vi.Shape) {
			return nil, fmt.Errorf("network: input %q: given shape %v has rank %d; the model declares %v: %w", vi.Name, given, len(given), dimsString(vi.Shape), ErrShape)
		}
		for i := 1; i < len(given); i++ {
			if given[i] <= 0 || (vi.Shape[i].Value > 0 && int64(given[i]) != vi.Shape[i].Value) {
				return nil, fmt.Errorf("network: input %q: given shape %v contradicts the model's %v: %w", vi.Name, given, dimsString(vi.Shape), ErrShape)
			}
		}
	}
	shape := make([]int, len(vi.Shape))
	for i, d := range vi.Shape {
		switch {
		case i == 0:
			shape[i] = 1
		case ok:
			shape[i] = given[i]
		case d.Value > 0:
			shape[i] = int(d.Value)
		default:
			return nil, fmt.Errorf("network: input %q has a dynamic dimension other than the batch axis (%v): %w; pass --input-shape %s=%s", vi.Name, dimsString(vi.Shape), ErrUnsupported, vi.Name, exampleShape(vi.Shape))
		}
	}
	return shape, nil
}

// checkInputShapeNames rejects shapes given for names that are not data
// inputs of the graph, and checks those of the other inputs.
func checkInputShapeNames(g *onnx.Graph, shapes map[string][]int) error {
	var names []string
	for _, vi := range g.Inputs {
		names = append(names, vi.Name)
	}
	for name, sh := range shapes {
		i := slices.Index(names, name)
		if i < 0 {
			return fmt.Errorf("network: --input-shape names %q, which is not an input of the model (its inputs: %s): %w", name, strings.Join(names, ", "), ErrShape)
		}
		if _, err := resolveInputShape(g.Inputs[i], sh, true); err != nil {
			return err
		}
	}
	return nil
}

// exampleShape writes a declared shape as --input-shape wants it, with
// <name> for the dynamic dimensions after the batch axis.
func exampleShape(ds []onnx.Dim) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		switch {
		case i == 0:
			parts[i] = "1"
		case d.Value > 0:
			parts[i] = fmt.Sprint(d.Value)
		case d.Param != "":
			parts[i] = "<" + d.Param + ">"
		default:
			parts[i] = fmt.Sprintf("<dim%d>", i)
		}
	}
	return strings.Join(parts, "x")
}

// pending is a node kept for execution.
type pending struct {
	n       *onnx.Node
	op      MultiOp
	single  Op     // op itself when it has one output and is not deferred
	constIn []bool // constant or non-differentiable inputs
	nout    int    // outputs the op computes (Dropout's mask is not)
}

// sweep is the state of Build's walk over the nodes.
type sweep struct {
	g      *onnx.Graph
	opset  int64
	consts map[string]*tensor.Tensor
	types  map[string]onnx.DataType
	// probe[k] holds the values of the probe pass at batch probeBatches[k]
	// that later nodes still need; nil when not probing.
	probe   [2]map[string]*tensor.Tensor
	shapes  map[string][]int // batch-1 shape of every probed value
	land    map[string]bool  // values computed from shapes only
	lastUse map[string]int   // index of the last node reading a value
	// shapeAnc marks the nodes whose outputs Shape or Size read, directly
	// or through other nodes: only they (and shape values) need the
	// second probe pass.
	shapeAnc []bool
	prec     Precision // given to the ops that run matrix products
}

func newSweep(g *onnx.Graph, opset int64) *sweep {
	s := &sweep{g: g, opset: opset, consts: map[string]*tensor.Tensor{}, types: map[string]onnx.DataType{},
		shapes: map[string][]int{}, land: map[string]bool{}, lastUse: map[string]int{}}
	for _, name := range g.InitOrder {
		s.consts[name] = g.Initializers[name]
		s.types[name] = g.InitTypes[name]
	}
	for _, vi := range g.Inputs {
		if _, isInit := g.Initializers[vi.Name]; !isInit {
			s.types[vi.Name] = vi.ElemType
		}
	}
	for i, n := range g.Nodes {
		for _, in := range n.Inputs {
			s.lastUse[in] = i
		}
	}
	for _, o := range g.Outputs {
		s.lastUse[o.Name] = len(g.Nodes)
	}
	s.shapeAnc = make([]bool, len(g.Nodes))
	wanted := map[string]bool{}
	for i := len(g.Nodes) - 1; i >= 0; i-- {
		n := &g.Nodes[i]
		anc := n.OpType == "Shape" || n.OpType == "Size"
		for _, o := range n.Outputs {
			anc = anc || wanted[o]
		}
		if anc {
			s.shapeAnc[i] = true
			for _, in := range n.Inputs {
				wanted[in] = true
			}
		}
	}
	return s
}

// startProbes seeds the probe passes with zero data of the given full
// input shape (batch axis replaced by each probe batch).
func (s *sweep) startProbes(input string, shape []int) {
	for k, b := range probeBatches {
		s.probe[k] = map[string]*tensor.Tensor{}
		sh := append([]int{b}, shape[1:]...)
		s.probe[k][input] = tensor.New(sh...)
	}
	s.shapes[input] = append([]int(nil), shape...)
}

// opMaker returns the function that builds n's op from constants, with the
// indices of its constant and non-differentiable inputs.
func (s *sweep) opMaker(n *onnx.Node) func(consts map[string]*tensor.Tensor) (MultiOp, Op, []bool, error) {
	b, single := builders[n.OpType]
	mb := multiBuilders[n.OpType]
	intDiv := n.OpType == "Div" && len(n.Inputs) == 2 && isIntType(s.types[n.Inputs[0]]) && isIntType(s.types[n.Inputs[1]])
	opset, prec := s.opset, s.prec
	return func(consts map[string]*tensor.Tensor) (MultiOp, Op, []bool, error) {
		var raw any
		var mop MultiOp
		var sop Op
		var err error
		switch {
		case intDiv:
			sop, err = buildIntDiv(n, consts, opset)
			raw, mop = sop, singleOp{sop}
		case single:
			sop, err = b(n, consts, opset)
			raw, mop = sop, singleOp{sop}
		default:
			mop, err = mb(n, consts, opset)
			raw = mop
		}
		if err != nil {
			return nil, nil, nil, err
		}
		if po, ok := raw.(precisioned); ok {
			po.setPrecision(prec)
		}
		flags := make([]bool, len(n.Inputs))
		var idx []int
		if ci, ok := raw.(ConstInputs); ok {
			idx = append(idx, ci.ConstInputs()...)
		}
		if nd, ok := raw.(NonDiffInputs); ok {
			idx = append(idx, nd.NonDiffInputs()...)
		}
		for _, j := range idx {
			if j >= 0 && j < len(flags) {
				flags[j] = true
			}
		}
		return mop, sop, flags, nil
	}
}

// makeOp builds n's op; constant inputs that are not build-time constants
// are read per pass by a deferredOp.
func (s *sweep) makeOp(n *onnx.Node) (*pending, error) {
	mk := s.opMaker(n)
	mop, sop, flags, err := mk(s.consts)
	var nc *notConstError
	if !errors.As(err, &nc) {
		if err != nil {
			return nil, err
		}
		return &pending{n: n, op: mop, single: sop, constIn: flags}, nil
	}
	base := map[string]*tensor.Tensor{}
	for _, name := range n.Inputs {
		if t, ok := s.consts[name]; ok {
			base[name] = t
		}
	}
	d := &deferredOp{n: n, mk: mk, consts: base}
	trial := map[string]*tensor.Tensor{}
	for k, v := range base {
		trial[k] = v
	}
	if s.probe[0] == nil {
		return s.deferBlind(n, d), nil
	}
	for range n.Inputs {
		// Only shape values and integer tensors are read per pass: a
		// constant input computed from float data would silently get no
		// gradient.
		name := n.Inputs[nc.input]
		v := s.probe[0][name]
		if v == nil || (!s.land[name] && isFloatType(s.types[name])) {
			return nil, err
		}
		trial[name] = v
		d.late = append(d.late, nc.input)
		if _, _, flags, err = mk(trial); !errors.As(err, &nc) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	for _, j := range d.late {
		flags[j] = true
	}
	return &pending{n: n, op: d, constIn: flags}, nil
}

// deferBlind defers a node without probe values (graphs with several data
// inputs): every run-time input is offered to the builder as a constant
// per pass, and the non-float ones get no gradient.
func (s *sweep) deferBlind(n *onnx.Node, d *deferredOp) *pending {
	d.late = d.late[:0]
	flags := make([]bool, len(n.Inputs))
	for j, name := range n.Inputs {
		if _, ok := s.consts[name]; name != "" && !ok {
			d.late = append(d.late, j)
			flags[j] = !isFloatType(s.types[name])
		}
	}
	return &pending{n: n, op: d, constIn: flags}
}

// step processes node i: it is folded into a constant (nil result) or kept.
func (s *sweep) step(i int, n *onnx.Node) (*pending, error) {
	p, err := s.makeOp(n)
	if err != nil {
		return nil, err
	}
	p.nout = len(n.Outputs)
	if _, multi := multiBuilders[n.OpType]; !multi {
		p.nout = min(p.nout, 1)
	}
	for j, o := range n.Outputs[p.nout:] {
		if _, used := s.lastUse[o]; o != "" && used {
			return nil, fmt.Errorf("node %q (%s): output %d (%q) is used, but mpsearch computes only the first output of this operator: %w", n.Name, n.OpType, p.nout+j, o, ErrUnsupported)
		}
	}
	s.inferTypes(n)
	allConst := true
	for _, in := range n.Inputs {
		if _, ok := s.consts[in]; in != "" && !ok {
			allConst = false
		}
	}
	if allConst && !anyDiff(n, s.g, p.constIn) && len(n.Outputs) > 0 {
		outs, err := s.run(p, n, -1, true)
		if err != nil {
			return nil, err
		}
		for j, o := range n.Outputs[:p.nout] {
			if o != "" {
				s.consts[o] = outs[j]
			}
		}
		return nil, nil
	}
	if s.probe[0] == nil {
		return p, nil
	}
	// A shape value: computed from shapes and constants only, consuming no
	// parameter (a parameter expanded to a constant shape stays a node).
	land := n.OpType == "Shape" || n.OpType == "Size"
	if !land && !anyDiff(n, s.g, p.constIn) {
		land = true
		for _, in := range n.Inputs {
			if _, ok := s.consts[in]; in != "" && !ok && !s.land[in] {
				land = false
			}
		}
	}
	var outs [2][]*tensor.Tensor
	for k := range outs {
		if k == 1 && !land && !s.shapeAnc[i] {
			break
		}
		if outs[k], err = s.run(p, n, k, land); err != nil {
			return nil, err
		}
	}
	fold := land
	for j := range outs[0] {
		fold = fold && sameTensor(outs[0][j], outs[1][j])
	}
	for j, o := range n.Outputs[:p.nout] {
		if o == "" {
			continue
		}
		if fold {
			s.consts[o] = outs[0][j]
			continue
		}
		s.land[o] = land
		s.shapes[o] = append([]int(nil), outs[0][j].Shape...)
		if _, used := s.lastUse[o]; used {
			s.probe[0][o] = outs[0][j]
			if outs[1] != nil {
				s.probe[1][o] = outs[1][j]
			}
		}
	}
	for _, in := range n.Inputs {
		if s.lastUse[in] == i {
			delete(s.probe[0], in)
			delete(s.probe[1], in)
		}
	}
	if fold {
		return nil, nil
	}
	return p, nil
}

// run evaluates p on constants (k < 0) or on probe pass k's values. A data
// node (!land) of the second pass may give zeros of the right shape.
func (s *sweep) run(p *pending, n *onnx.Node, k int, land bool) ([]*tensor.Tensor, error) {
	ins := make([]*tensor.Tensor, len(n.Inputs))
	for j, name := range n.Inputs {
		if name == "" {
			continue
		}
		if t, ok := s.consts[name]; ok {
			ins[j] = t
		} else if k >= 0 {
			ins[j] = s.probe[k][name]
		}
		if ins[j] == nil {
			return nil, nodeErr(n, "input %q has no value at build (internal error)", name)
		}
	}
	var outs []*tensor.Tensor
	var err error
	if so, ok := p.single.(shapeOnly); ok && k == 1 && !land {
		var shape []int
		if shape, err = so.probeShape(ins); err == nil {
			outs = []*tensor.Tensor{tensor.New(shape...)}
		}
	} else {
		outs, _, err = p.op.ForwardMulti(ins)
	}
	if err != nil {
		if k >= 0 {
			return nil, nodeErr(n, "at build, with a batch of %d: %w", probeBatches[k], err)
		}
		return nil, nodeErr(n, "%w", err)
	}
	if len(outs) < p.nout {
		return nil, nodeErr(n, "has %d outputs; the operator computes %d", p.nout, len(outs))
	}
	return outs, nil
}

func sameTensor(a, b *tensor.Tensor) bool {
	return tensor.SameShape(a.Shape, b.Shape) && slices.Equal(a.Data, b.Data)
}

// inferTypes records the element type of n's outputs.
func (s *sweep) inferTypes(n *onnx.Node) {
	t := onnx.Undefined
	switch n.OpType {
	case "Shape", "Size", "ArgMax", "ArgMin", "NonZero":
		t = onnx.Int64
	case "Cast":
		t = onnx.DataType(attrInt(n, "to", 0))
	case "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or", "Xor", "IsNaN", "IsInf":
		t = onnx.Bool
	case "Constant", "ConstantOfShape":
		t = onnx.Float
		for name, a := range n.Attrs {
			switch {
			case name == "value" && a.T != nil:
				t = a.TType
			case name == "value_int" || name == "value_ints":
				t = onnx.Int64
			}
		}
	case "Where":
		if len(n.Inputs) > 1 {
			t = s.types[n.Inputs[1]]
		}
	default:
		for _, in := range n.Inputs {
			if tt, ok := s.types[in]; ok && in != "" {
				t = tt
				break
			}
		}
	}
	for _, o := range n.Outputs {
		s.types[o] = t
	}
}

func isIntType(t onnx.DataType) bool {
	switch t {
	case onnx.Int8, onnx.Int16, onnx.Int32, onnx.Int64, onnx.Uint8, onnx.Uint16, onnx.Uint32, onnx.Uint64, onnx.Int4, onnx.Uint4:
		return true
	}
	return false
}

// deferredOp runs a node whose builder needs constant inputs that are only
// known per pass (shapes that depend on the batch size, or graph inputs):
// each Forward builds the op with those inputs' values and runs it.
type deferredOp struct {
	n      *onnx.Node
	mk     func(map[string]*tensor.Tensor) (MultiOp, Op, []bool, error)
	consts map[string]*tensor.Tensor // the node's build-time constants
	late   []int                     // inputs read as constants per pass
}

type deferredState struct {
	op MultiOp
	st any
}

func (d *deferredOp) ForwardMulti(in []*tensor.Tensor) ([]*tensor.Tensor, any, error) {
	c := make(map[string]*tensor.Tensor, len(d.consts)+len(d.late))
	for k, v := range d.consts {
		c[k] = v
	}
	for _, j := range d.late {
		c[d.n.Inputs[j]] = in[j]
	}
	op, _, _, err := d.mk(c)
	if err != nil {
		return nil, nil, err
	}
	outs, st, err := op.ForwardMulti(in)
	return outs, &deferredState{op, st}, err
}

func (d *deferredOp) BackwardMulti(in, outs []*tensor.Tensor, state any, gouts []*tensor.Tensor, need []bool) []*tensor.Tensor {
	s := state.(*deferredState)
	return s.op.BackwardMulti(in, outs, s.st, gouts, need)
}

func (d *deferredOp) TangentMulti(in, tin, outs []*tensor.Tensor, state any) []*tensor.Tensor {
	s := state.(*deferredState)
	return s.op.TangentMulti(in, tin, outs, s.st)
}

func (d *deferredOp) BackwardTangentMulti(in, tin, outs, touts []*tensor.Tensor, state any, gouts, tgouts []*tensor.Tensor, need []bool) (gin, tgin []*tensor.Tensor) {
	s := state.(*deferredState)
	return s.op.BackwardTangentMulti(in, tin, outs, touts, s.st, gouts, tgouts, need)
}
