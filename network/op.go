package network

import (
	"fmt"
	"sort"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

// Op is the computation of one ONNX node with one output, differentiable to
// second order along directions.
//
// Every input is a float64 tensor: graph activations and initializers alike
// (weights are ordinary inputs, so their gradients are input gradients).
// Inputs that the constructor consumed as constants (Reshape's shape, Pad's
// pads, Clip's bounds, Squeeze's axes...) are listed by ConstInputs and are
// never differentiated; the executor still passes them in in[i].
//
// Tangents (directional derivatives) come in batches of K directions: the
// tangent of a value of shape S has shape [K]+S, direction k in the k-th
// contiguous block. A nil tangent means zero for every direction. Ops must
// handle any K >= 1 and should do the K directions as one matrix-matrix
// product where they can.
//
// The R-operator (Pearlmutter 1994) of the whole network is built from
// Tangent (forward pass on tangents) and BackwardTangent (backward pass on
// tangents); Hessian-vector products follow exactly.
type Op interface {
	// Forward computes the output. state is anything the op wants to keep
	// for the other methods of the same pass (im2col columns, argmax
	// indices, ...); it is passed back unchanged and must not be mutated
	// by them.
	Forward(in []*tensor.Tensor) (out *tensor.Tensor, state any, err error)

	// Backward returns, for each input i with need[i], the gradient of the
	// loss with respect to in[i] given gout = dL/dout (same shape as out).
	// Entries with !need[i] are nil.
	Backward(in []*tensor.Tensor, out *tensor.Tensor, state any, gout *tensor.Tensor, need []bool) []*tensor.Tensor

	// Tangent returns the tangent of out ([K]+out.Shape) given the tangents
	// tin of the inputs (nil = zero). It returns nil if every tin is nil.
	Tangent(in, tin []*tensor.Tensor, out *tensor.Tensor, state any) *tensor.Tensor

	// BackwardTangent returns Backward's gradients gin (as Backward would)
	// and their tangents tgin ([K]+in[i].Shape; nil when zero), given the
	// input tangents tin, the output tangent tout (as Tangent returned it),
	// gout, and gout's tangent tgout ([K]+out.Shape, nil = zero).
	BackwardTangent(in, tin []*tensor.Tensor, out, tout *tensor.Tensor, state any, gout, tgout *tensor.Tensor, need []bool) (gin, tgin []*tensor.Tensor)
}

// ConstInputs is implemented by ops some of whose inputs must be constants
// (initializers or Constant outputs) read at build time. Their indices are
// returned; they get no gradient.
type ConstInputs interface {
	ConstInputs() []int
}

// Builder makes an Op from an ONNX node. consts maps every value name known
// to be constant at build time (initializers, Constant outputs, folded
// values) to its tensor; opset is the model's default-domain opset. Errors
// name the node and what is wrong with it.
type Builder func(n *onnx.Node, consts map[string]*tensor.Tensor, opset int64) (Op, error)

var builders = map[string]Builder{}

// register adds an op builder; called from init functions of the op files.
func register(opType string, b Builder) {
	if _, dup := builders[opType]; dup {
		panic("network: duplicate op " + opType)
	}
	if _, dup := multiBuilders[opType]; dup {
		panic("network: duplicate op " + opType)
	}
	builders[opType] = b
}

// SupportedOps lists the ONNX operators the engine runs, sorted.
func SupportedOps() []string {
	ops := make([]string, 0, len(builders)+len(multiBuilders))
	for k := range builders {
		ops = append(ops, k)
	}
	for k := range multiBuilders {
		ops = append(ops, k)
	}
	sort.Strings(ops)
	return ops
}

// nodeErr formats an error about node n; %w in format wraps as in
// fmt.Errorf.
func nodeErr(n *onnx.Node, format string, args ...any) error {
	return fmt.Errorf("node %q (%s): "+format, append([]any{n.Name, n.OpType}, args...)...)
}

// MultiOp is the computation of a node with several outputs (Split). It
// follows Op's contract output by output: outs, gouts, touts and tgouts
// have one entry per node output, and a nil gradient or tangent of an
// output means zero. BackwardMulti is called when at least one output has
// a gradient.
type MultiOp interface {
	ForwardMulti(in []*tensor.Tensor) (outs []*tensor.Tensor, state any, err error)
	BackwardMulti(in, outs []*tensor.Tensor, state any, gouts []*tensor.Tensor, need []bool) []*tensor.Tensor
	TangentMulti(in, tin, outs []*tensor.Tensor, state any) []*tensor.Tensor
	BackwardTangentMulti(in, tin, outs, touts []*tensor.Tensor, state any, gouts, tgouts []*tensor.Tensor, need []bool) (gin, tgin []*tensor.Tensor)
}

// MultiBuilder makes a MultiOp from an ONNX node, as Builder does.
type MultiBuilder func(n *onnx.Node, consts map[string]*tensor.Tensor, opset int64) (MultiOp, error)

var multiBuilders = map[string]MultiBuilder{}

// registerMulti adds a builder of a multi-output op.
func registerMulti(opType string, b MultiBuilder) {
	if _, dup := builders[opType]; dup {
		panic("network: duplicate op " + opType)
	}
	if _, dup := multiBuilders[opType]; dup {
		panic("network: duplicate op " + opType)
	}
	multiBuilders[opType] = b
}

// NonDiffInputs is implemented by ops some of whose run-time inputs get no
// gradient: indices, conditions, integer tensors, or tensors of which only
// the shape is read (Shape's input). Like constant inputs, they are not
// differentiated and not passed through forward hooks.
type NonDiffInputs interface {
	NonDiffInputs() []int
}

// singleOp runs an Op as a MultiOp with one output.
type singleOp struct{ op Op }

func (s singleOp) ForwardMulti(in []*tensor.Tensor) ([]*tensor.Tensor, any, error) {
	out, st, err := s.op.Forward(in)
	return []*tensor.Tensor{out}, st, err
}

func (s singleOp) BackwardMulti(in, outs []*tensor.Tensor, st any, gouts []*tensor.Tensor, need []bool) []*tensor.Tensor {
	if gouts[0] == nil {
		return make([]*tensor.Tensor, len(in))
	}
	return s.op.Backward(in, outs[0], st, gouts[0], need)
}

func (s singleOp) TangentMulti(in, tin, outs []*tensor.Tensor, st any) []*tensor.Tensor {
	return []*tensor.Tensor{s.op.Tangent(in, tin, outs[0], st)}
}

func (s singleOp) BackwardTangentMulti(in, tin, outs, touts []*tensor.Tensor, st any, gouts, tgouts []*tensor.Tensor, need []bool) (gin, tgin []*tensor.Tensor) {
	if gouts[0] == nil {
		return make([]*tensor.Tensor, len(in)), make([]*tensor.Tensor, len(in))
	}
	return s.op.BackwardTangent(in, tin, outs[0], touts[0], st, gouts[0], tgouts[0], need)
}

// noGrad implements the differentiation methods of an op none of whose
// outputs depends differentiably on its inputs (Shape, Equal, Range...):
// every gradient and tangent is zero (nil).
type noGrad struct{}

func (noGrad) Backward(in []*tensor.Tensor, _ *tensor.Tensor, _ any, _ *tensor.Tensor, _ []bool) []*tensor.Tensor {
	return make([]*tensor.Tensor, len(in))
}

func (noGrad) Tangent(_, _ []*tensor.Tensor, _ *tensor.Tensor, _ any) *tensor.Tensor { return nil }

func (noGrad) BackwardTangent(in, _ []*tensor.Tensor, _, _ *tensor.Tensor, _ any, _, _ *tensor.Tensor, _ []bool) (gin, tgin []*tensor.Tensor) {
	return make([]*tensor.Tensor, len(in)), make([]*tensor.Tensor, len(in))
}

// allInputs lists 0..n-1 (every input is non-differentiable).
func allInputs(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}
