package export

import (
	"context"
	"fmt"

	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/tensor"
)

// sameSemantics lists the operators whose meaning, for the attributes and
// inputs a model of opset 6 or later can use, is the same in every opset up
// to 21: newer versions only add types or optional attributes with the old
// behaviour as default (AveragePool count_include_pad, MaxPool ceil_mode,
// Reshape allowzero...). Raising the opset leaves these nodes unchanged.
var sameSemantics = map[string]bool{
	"AveragePool": true, "Concat": true, "Constant": true, "Conv": true,
	"Flatten": true, "GlobalAveragePool": true, "Identity": true,
	"LeakyRelu": true, "MatMul": true, "MaxPool": true, "Neg": true,
	"Relu": true, "Reshape": true, "Sigmoid": true, "Tanh": true,
	"Transpose": true,
	// Checked against the operator changelog up to opset 21: versions
	// after their first only add types (HardSigmoid, Sqrt, Erf, Where,
	// ConstantOfShape, Range, Expand, Mod; Cast's saturate concerns only
	// float8), allow negative indices (Gather), or add optional attributes
	// whose default is the old behaviour (Shape start/end from 15,
	// ScatterND reduction from 16). HardSwish (14), LayerNormalization (17)
	// and Not (1) have one version up to 21.
	"HardSigmoid": true, "HardSwish": true, "Shape": true, "LayerNormalization": true,
	"Sqrt": true, "Erf": true, "Where": true, "ConstantOfShape": true, "Range": true,
	"Expand": true, "Gather": true, "Cast": true, "Mod": true, "ScatterND": true,
	"Not": true,
}

// raiseError is upgrade's refusal of a node; it wraps ErrUnsupported.
type raiseError struct {
	node, op string
	from, to int64
	why      string
}

func (e *raiseError) Error() string {
	return fmt.Sprintf("export: node %q (%s): raising the model from opset %d to %d: %s: %v; export the model at opset %d or later",
		e.node, e.op, e.from, e.to, e.why, ErrUnsupported, MinOpset)
}

func (e *raiseError) Unwrap() error { return ErrUnsupported }

// upgrade rewrites g, a graph of opset from, to opset to, converting the
// nodes whose operator changed in between (attributes that became inputs,
// legacy broadcasting, Softmax's 2-D coercion) and refusing with
// ErrUnsupported what it cannot carry over exactly. net is the network g
// comes from; it is run once on a zero sample when input ranks are needed.
func upgrade(g *onnx.Graph, from, to int64, net *network.Network) error {
	changed := func(v int64) bool { return from < v && v <= to }
	b := newBuilder(g, false)
	sh := &shapes{net: net, g: g}
	out := make([]onnx.Node, 0, len(g.Nodes))
	for _, n := range g.Nodes {
		if n.Domain != "" && n.Domain != "ai.onnx" {
			return fmt.Errorf("export: node %q: operator %s of domain %q: %w", n.Name, n.OpType, n.Domain, ErrUnsupported)
		}
		refuse := func(why string, args ...any) error {
			return &raiseError{node: n.Name, op: n.OpType, from: from, to: to, why: fmt.Sprintf(why, args...)}
		}
		switch op := n.OpType; {
		case sameSemantics[op]:
		case op == "Add" || op == "Sub" || op == "Mul" || op == "Div" || op == "Equal" || op == "Pow":
			if !changed(7) {
				break
			}
			bc := n.Int("broadcast", 0)
			axis, hasAxis := n.Attrs["axis"]
			delete(n.Attrs, "broadcast")
			delete(n.Attrs, "axis")
			if bc == 0 || !hasAxis {
				break // equal shapes, or B aligned with A's trailing axes: numpy rules agree
			}
			ra, err := sh.rank(n, 0)
			if err != nil {
				return refuse("%v", err)
			}
			rb, err := sh.rank(n, 1)
			if err != nil {
				return refuse("%v", err)
			}
			trailing := ra - int(axis.I) - rb
			if axis.I < 0 || trailing < 0 {
				return refuse("legacy broadcast axis %d does not fit operand ranks %d and %d", axis.I, ra, rb)
			}
			if trailing > 0 {
				// Append `trailing` unit axes to B so numpy alignment puts it at axis.
				u := b.unsqueeze(n.Inputs[1], rb, trailing)
				out = append(out, u)
				n.Inputs[1] = u.Outputs[0]
			}
		case op == "Gemm":
			if changed(7) {
				delete(n.Attrs, "broadcast")
			}
		case op == "PRelu":
			if !changed(7) {
				break
			}
			xs, err := sh.shape(n, 0)
			if err != nil {
				return refuse("%v", err)
			}
			ss, err := sh.shape(n, 1)
			if err != nil {
				return refuse("%v", err)
			}
			if tensor.Size(ss) != 1 && len(ss) == 1 && len(xs) > 2 && ss[0] == xs[1] {
				// Legacy per-channel slope [C]: make it [C,1,...,1].
				u := b.unsqueeze(n.Inputs[1], 1, len(xs)-2)
				out = append(out, u)
				n.Inputs[1] = u.Outputs[0]
			}
		case op == "Softmax":
			if !changed(13) {
				break
			}
			r, err := sh.rank(n, 0)
			if err != nil {
				return refuse("%v", err)
			}
			axis := n.Int("axis", 1)
			if axis < 0 {
				axis += int64(r)
			}
			if axis != int64(r-1) {
				return refuse("axis %d of a rank-%d input normalises over a flattened block before opset 13 and over one axis after", axis, r)
			}
			n.Attrs["axis"] = onnx.Attribute{Name: "axis", Type: onnx.AttrInt, I: axis}
		case op == "Clip":
			if !changed(11) {
				break
			}
			ins := []string{n.Inputs[0], "", ""}
			for j, k := range []string{"min", "max"} {
				if a, ok := n.Attrs[k]; ok {
					t := tensor.New()
					t.Data[0] = float64(a.F)
					ins[j+1] = b.init(n.Name+"_"+k, t, onnx.Float)
					delete(n.Attrs, k)
				}
			}
			n.Inputs = trimInputs(ins)
		case op == "Pad":
			if !changed(11) {
				break
			}
			pads, ok := n.Attrs["pads"]
			if !ok {
				pads, ok = n.Attrs["paddings"]
			}
			if !ok {
				return refuse("attribute pads is missing")
			}
			ins := []string{n.Inputs[0], b.init(n.Name+"_pads", intsTensor(pads.Ints), onnx.Int64)}
			if v, ok := n.Attrs["value"]; ok && v.F != 0 {
				t := tensor.New()
				t.Data[0] = float64(v.F)
				ins = append(ins, b.init(n.Name+"_value", t, onnx.Float))
			}
			delete(n.Attrs, "pads")
			delete(n.Attrs, "paddings")
			delete(n.Attrs, "value")
			n.Inputs = ins
		case op == "Squeeze" || op == "Unsqueeze" || op == "ReduceSum" || op == "ReduceMean":
			at := int64(13)
			if op == "ReduceMean" {
				at = 18
			}
			if !changed(at) {
				break
			}
			if a, ok := n.Attrs["axes"]; ok {
				n.Inputs = append(n.Inputs[:1], b.init(n.Name+"_axes", intsTensor(a.Ints), onnx.Int64))
				delete(n.Attrs, "axes")
			}
		case op == "Slice":
			if changed(10) {
				return refuse("starts and ends are attributes before opset 10 and inputs after")
			}
		case op == "Dropout":
			if changed(12) {
				// Inference: the output is the input whatever the ratio.
				delete(n.Attrs, "is_test")
				delete(n.Attrs, "ratio")
			}
		case op == "BatchNormalization":
			if !changed(9) {
				break
			}
			if a, ok := n.Attrs["spatial"]; ok && a.I != 1 {
				return refuse("spatial=%d (per-element statistics) has no equivalent from opset 9 on", a.I)
			}
			delete(n.Attrs, "spatial")
			delete(n.Attrs, "is_test")
			delete(n.Attrs, "consumed_inputs")
		default:
			return refuse("operator %s is not known to keep its meaning", op)
		}
		out = append(out, n)
	}
	g.Nodes = out
	return nil
}

// unsqueeze returns an Unsqueeze node (opset 13 form) appending count unit
// axes after the first rank axes of x.
func (b *builder) unsqueeze(x string, rank, count int) onnx.Node {
	axes := make([]int64, count)
	for i := range axes {
		axes[i] = int64(rank + i)
	}
	a := b.init(x+"_unsqueeze_axes", intsTensor(axes), onnx.Int64)
	return onnx.Node{
		Name:    b.name(x + "_Unsqueeze"),
		OpType:  "Unsqueeze",
		Inputs:  []string{x, a},
		Outputs: []string{b.name(x + "_unsqueezed")},
		Attrs:   map[string]onnx.Attribute{},
	}
}

func intsTensor(v []int64) *tensor.Tensor {
	t := tensor.New(len(v))
	for i, x := range v {
		t.Data[i] = float64(x)
	}
	return t
}

// trimInputs drops trailing omitted ("") inputs.
func trimInputs(ins []string) []string {
	for len(ins) > 0 && ins[len(ins)-1] == "" {
		ins = ins[:len(ins)-1]
	}
	return ins
}

// shapes finds the shapes of node inputs: initializers directly, other
// values from one forward pass of the network on zero inputs (batch 1 for
// dynamic dimensions).
type shapes struct {
	net  *network.Network
	g    *onnx.Graph
	pass *network.Pass
	err  error
}

func (s *shapes) rank(n onnx.Node, input int) (int, error) {
	sh, err := s.shape(n, input)
	return len(sh), err
}

func (s *shapes) shape(n onnx.Node, input int) ([]int, error) {
	if input >= len(n.Inputs) || n.Inputs[input] == "" {
		return nil, fmt.Errorf("input %d is missing", input)
	}
	name := n.Inputs[input]
	if t, ok := s.g.Initializers[name]; ok {
		return t.Shape, nil
	}
	if s.pass == nil && s.err == nil {
		s.run()
	}
	if s.err != nil {
		return nil, s.err
	}
	if v := s.pass.Value(name); v != nil {
		return v.Shape, nil
	}
	return nil, fmt.Errorf("the shape of input %q is unknown", name)
}

func (s *shapes) run() {
	xs := make([]*tensor.Tensor, len(s.net.InputNames))
	for i, name := range s.net.InputNames {
		var vi *onnx.ValueInfo
		for j := range s.g.Inputs {
			if s.g.Inputs[j].Name == name {
				vi = &s.g.Inputs[j]
			}
		}
		if vi == nil || vi.Shape == nil {
			s.err = fmt.Errorf("the model input %q has no shape to infer ranks from", name)
			return
		}
		dims := make([]int, len(vi.Shape))
		for k, d := range vi.Shape {
			dims[k] = max(1, int(d.Value))
		}
		xs[i] = tensor.New(dims...)
	}
	p, err := s.net.ForwardAll(context.Background(), xs, nil)
	if err != nil {
		s.err = fmt.Errorf("inferring shapes: %w", err)
		return
	}
	s.pass = p
}
