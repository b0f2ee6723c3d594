package network

import (
	"fmt"
	"math"
	"slices"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

// This file holds the ops that move or relabel values without arithmetic:
// Identity, Dropout (inference), Flatten, Reshape, Squeeze, Unsqueeze
// (zero-copy views), Transpose, Concat and Constant; and the attribute and
// constant-input helpers the op builders share.

func init() {
	register("Identity", func(n *onnx.Node, _ map[string]*tensor.Tensor, _ int64) (Op, error) {
		if err := wantInputs(n, 1, 1); err != nil {
			return nil, err
		}
		return &viewOp{shape: sameShape}, nil
	})
	register("Dropout", buildDropout)
	register("Flatten", buildFlatten)
	register("Reshape", buildReshape)
	register("Squeeze", buildSqueeze)
	register("Unsqueeze", buildUnsqueeze)
	register("Transpose", buildTranspose)
	register("Concat", buildConcat)
	register("Constant", buildConstant)
}

// viewOp is an op whose output is its first input with another shape (the
// same data, shared). Its gradients and tangents are views too.
type viewOp struct {
	shape  func(in []int) ([]int, error)
	consts []int // indices of constant inputs (shapes, axes, ...)
}

func sameShape(in []int) ([]int, error) { return in, nil }

// ConstInputs lists the inputs read at build time.
func (op *viewOp) ConstInputs() []int { return op.consts }

// Forward returns a view of in[0] with the op's output shape.
func (op *viewOp) Forward(in []*tensor.Tensor) (*tensor.Tensor, any, error) {
	if len(in) < 1 || in[0] == nil {
		return nil, nil, fmt.Errorf("missing input")
	}
	s, err := op.shape(in[0].Shape)
	if err != nil {
		return nil, nil, err
	}
	return in[0].Reshape(s...), nil, nil
}

// Backward returns a view of gout with the input's shape.
func (op *viewOp) Backward(in []*tensor.Tensor, _ *tensor.Tensor, _ any, gout *tensor.Tensor, need []bool) []*tensor.Tensor {
	gin := make([]*tensor.Tensor, len(in))
	if need[0] {
		gin[0] = gout.Reshape(in[0].Shape...)
	}
	return gin
}

// Tangent returns a view of the input tangent with shape [K]+out.Shape.
func (op *viewOp) Tangent(in, tin []*tensor.Tensor, out *tensor.Tensor, _ any) *tensor.Tensor {
	K := directions(tin[0], in[0].Size())
	if K == 0 {
		return nil
	}
	return tin[0].Reshape(withK(K, out.Shape)...)
}

// BackwardTangent returns views of gout and tgout with the input's shape.
func (op *viewOp) BackwardTangent(in, _ []*tensor.Tensor, out, _ *tensor.Tensor, st any, gout, tgout *tensor.Tensor, need []bool) (gin, tgin []*tensor.Tensor) {
	gin = op.Backward(in, out, st, gout, need)
	tgin = make([]*tensor.Tensor, len(in))
	if K := directions(tgout, out.Size()); need[0] && K > 0 {
		tgin[0] = tgout.Reshape(withK(K, in[0].Shape)...)
	}
	return gin, tgin
}

// buildDropout makes inference-mode Dropout: the identity. Its ratio is
// ignored; a training_mode input (opset >= 12) must be a constant false,
// or true with a constant ratio of 0.
// The mask output is refused by the graph builder when it is used.
func buildDropout(n *onnx.Node, consts map[string]*tensor.Tensor, opset int64) (Op, error) {
	if err := wantInputs(n, 1, 3); err != nil {
		return nil, err
	}
	op := &viewOp{shape: sameShape}
	for i := 1; i < len(n.Inputs); i++ {
		if n.Inputs[i] != "" {
			op.consts = append(op.consts, i)
		}
	}
	if opset >= 12 {
		t, ok, err := constInput(n, consts, 2)
		if err != nil {
			return nil, err
		}
		if ok && t.Size() > 0 && t.Data[0] != 0 {
			// Training mode with a ratio of 0 (swin_t's attention dropout
			// as torch.onnx exports it) is still the identity.
			r, hasRatio, err := constInput(n, consts, 1)
			if err != nil || !hasRatio || r.Size() != 1 || r.Data[0] != 0 {
				return nil, nodeErrWrap(n, ErrUnsupported, "training_mode is true with a nonzero or unknown ratio; export the model in eval mode")
			}
		}
	}
	return op, nil
}

// buildFlatten makes Flatten: [d0..dk..] -> [d0*..*d(axis-1), d(axis)*..].
func buildFlatten(n *onnx.Node, _ map[string]*tensor.Tensor, _ int64) (Op, error) {
	if err := wantInputs(n, 1, 1); err != nil {
		return nil, err
	}
	axis := int(attrInt(n, "axis", 1))
	return &viewOp{shape: func(in []int) ([]int, error) {
		a := axis
		if a < 0 {
			a += len(in)
		}
		if a < 0 || a > len(in) {
			return nil, fmt.Errorf("flatten axis %d is out of range for an input of shape %v: %w", axis, in, ErrShape)
		}
		return []int{tensor.Size(in[:a]), tensor.Size(in[a:])}, nil
	}}, nil
}

// buildReshape makes Reshape with the target shape from the constant input
// 1 (opset >= 5) or the shape attribute (older opsets). A 0 copies the
// input's dimension (unless allowzero=1), one -1 is inferred.
func buildReshape(n *onnx.Node, consts map[string]*tensor.Tensor, opset int64) (Op, error) {
	var target []int64
	op := &viewOp{}
	if opset < 5 {
		if err := wantInputs(n, 1, 1); err != nil {
			return nil, err
		}
		var ok bool
		if target, ok = attrInts(n, "shape"); !ok {
			return nil, nodeErr(n, "the shape attribute is missing")
		}
	} else {
		if err := wantInputs(n, 2, 2); err != nil {
			return nil, err
		}
		t, _, err := constInput(n, consts, 1)
		if err != nil {
			return nil, err
		}
		if target, err = intsOf(n, t, "shape"); err != nil {
			return nil, err
		}
		op.consts = []int{1}
	}
	allowZero := attrInt(n, "allowzero", 0) != 0
	if allowZero && slices.Contains(target, 0) && slices.Contains(target, -1) {
		return nil, nodeErr(n, "shape %v has both 0 and -1 with allowzero=1, which ONNX forbids", target)
	}
	op.shape = func(in []int) ([]int, error) { return reshapeTarget(in, target, allowZero) }
	return op, nil
}

// reshapeTarget resolves an ONNX Reshape target against the input shape.
func reshapeTarget(in []int, target []int64, allowZero bool) ([]int, error) {
	out := make([]int, len(target))
	infer, known := -1, 1
	for i, s := range target {
		switch {
		case s == -1:
			if infer >= 0 {
				return nil, fmt.Errorf("reshape target %v has more than one -1: %w", target, ErrShape)
			}
			infer = i
			continue
		case s == 0 && !allowZero:
			if i >= len(in) {
				return nil, fmt.Errorf("reshape target %v copies dimension %d of the %d-D input %v: %w", target, i, len(in), in, ErrShape)
			}
			out[i] = in[i]
		case s < 0:
			return nil, fmt.Errorf("reshape target %v has a negative dimension: %w", target, ErrShape)
		default:
			out[i] = int(s)
		}
		known *= out[i]
	}
	total := tensor.Size(in)
	if infer >= 0 {
		if known == 0 || total%known != 0 {
			return nil, fmt.Errorf("cannot reshape %v (%d values) to %v: %w", in, total, target, ErrShape)
		}
		out[infer] = total / known
	}
	if tensor.Size(out) != total {
		return nil, fmt.Errorf("cannot reshape %v (%d values) to %v (%d values): %w", in, total, out, tensor.Size(out), ErrShape)
	}
	return out, nil
}

// axesFrom reads an axes list from the attribute (opset < since) or from
// the constant input 1 (opset >= since). ok is false when there is none.
func axesFrom(n *onnx.Node, consts map[string]*tensor.Tensor, opset, since int64) (axes []int64, ok bool, constIn []int, err error) {
	if opset < since {
		axes, ok = attrInts(n, "axes")
		return axes, ok, nil, nil
	}
	t, ok, err := constInput(n, consts, 1)
	if err != nil || !ok {
		return nil, false, nil, err
	}
	axes, err = intsOf(n, t, "axes")
	return axes, true, []int{1}, err
}

// normAxes maps axes in [-r, r) to [0, r), rejecting duplicates and
// out-of-range values.
func normAxes(axes []int64, r int) ([]int, error) {
	out := make([]int, len(axes))
	for i, a := range axes {
		v := int(a)
		if v < 0 {
			v += r
		}
		if v < 0 || v >= r {
			return nil, fmt.Errorf("axis %d is out of range for rank %d: %w", a, r, ErrShape)
		}
		if slices.Contains(out[:i], v) {
			return nil, fmt.Errorf("axis %d is repeated in %v: %w", a, axes, ErrShape)
		}
		out[i] = v
	}
	return out, nil
}

// buildSqueeze makes Squeeze: removes the listed size-1 axes (attribute
// before opset 13, optional constant input after), or every size-1 axis.
func buildSqueeze(n *onnx.Node, consts map[string]*tensor.Tensor, opset int64) (Op, error) {
	if err := wantInputs(n, 1, 2); err != nil {
		return nil, err
	}
	axes, has, ci, err := axesFrom(n, consts, opset, 13)
	if err != nil {
		return nil, err
	}
	return &viewOp{consts: ci, shape: func(in []int) ([]int, error) {
		drop := make([]bool, len(in))
		if has {
			ax, err := normAxes(axes, len(in))
			if err != nil {
				return nil, err
			}
			for _, a := range ax {
				if in[a] != 1 {
					return nil, fmt.Errorf("cannot squeeze axis %d of shape %v: its size is not 1: %w", a, in, ErrShape)
				}
				drop[a] = true
			}
		} else {
			for i, d := range in {
				drop[i] = d == 1
			}
		}
		out := make([]int, 0, len(in))
		for i, d := range in {
			if !drop[i] {
				out = append(out, d)
			}
		}
		return out, nil
	}}, nil
}

// buildUnsqueeze makes Unsqueeze: inserts size-1 axes at the listed
// positions of the output (attribute before opset 13, constant input after).
func buildUnsqueeze(n *onnx.Node, consts map[string]*tensor.Tensor, opset int64) (Op, error) {
	lo := 1
	if opset >= 13 {
		lo = 2
	}
	if err := wantInputs(n, lo, lo); err != nil {
		return nil, err
	}
	axes, has, ci, err := axesFrom(n, consts, opset, 13)
	if err != nil {
		return nil, err
	}
	if !has {
		return nil, nodeErr(n, "the axes are missing")
	}
	return &viewOp{consts: ci, shape: func(in []int) ([]int, error) {
		r := len(in) + len(axes)
		ax, err := normAxes(axes, r)
		if err != nil {
			return nil, err
		}
		out := make([]int, r)
		for _, a := range ax {
			out[a] = 1
		}
		j := 0
		for i := range out {
			if slices.Contains(ax, i) {
				continue
			}
			out[i] = in[j]
			j++
		}
		return out, nil
	}}, nil
}

// transposeOp permutes axes: output axis i is input axis perm[i].
type transposeOp struct {
	perm []int // nil: reverse the axes
}

func buildTranspose(n *onnx.Node, _ map[string]*tensor.Tensor, _ int64) (Op, error) {
	if err := wantInputs(n, 1, 1); err != nil {
		return nil, err
	}
	op := &transposeOp{}
	if p, ok := attrInts(n, "perm"); ok {
		op.perm = make([]int, len(p))
		for i, v := range p {
			op.perm[i] = int(v)
		}
		seen := make([]bool, len(p))
		for _, v := range op.perm {
			if v < 0 || v >= len(p) || seen[v] {
				return nil, nodeErr(n, "perm %v is not a permutation of 0..%d", p, len(p)-1)
			}
			seen[v] = true
		}
	}
	return op, nil
}

func (op *transposeOp) permFor(r int) ([]int, error) {
	if op.perm == nil {
		p := make([]int, r)
		for i := range p {
			p[i] = r - 1 - i
		}
		return p, nil
	}
	if len(op.perm) != r {
		return nil, fmt.Errorf("perm %v does not fit an input of rank %d: %w", op.perm, r, ErrShape)
	}
	return op.perm, nil
}

// permute returns src (of shape shape) with its axes permuted by perm.
func permute(src []float64, shape, perm []int) *tensor.Tensor {
	return permuteInto(nil, src, shape, perm)
}

// permuteShape is the shape of a tensor of shape shape permuted by perm.
func permuteShape(shape, perm []int) []int {
	out := make([]int, len(shape))
	for i, p := range perm {
		out[i] = shape[p]
	}
	return out
}

// permuteInto is permute writing into mem when it is not nil (of the
// output's size), else into a new tensor.
func permuteInto(mem []float64, src []float64, shape, perm []int) *tensor.Tensor {
	r := len(shape)
	out := permuteShape(shape, perm)
	st := make([]int, r) // source strides in output axis order
	ss := tensor.Strides(shape)
	for i, p := range perm {
		st[i] = ss[p]
	}
	var dst *tensor.Tensor
	if mem == nil {
		dst = tensor.New(out...)
	} else {
		dst = tensor.FromData(mem, out...)
	}
	n := len(dst.Data)
	if n == 0 {
		return dst
	}
	if r == 0 {
		dst.Data[0] = src[0]
		return dst
	}
	inner, step := out[r-1], st[r-1]
	idx := make([]int, r-1)
	s := 0
	for o := 0; o < n; o += inner {
		row := dst.Data[o : o+inner]
		for j := range row {
			row[j] = src[s+j*step]
		}
		for d := r - 2; d >= 0; d-- {
			idx[d]++
			s += st[d]
			if idx[d] < out[d] {
				break
			}
			s -= st[d] * out[d]
			idx[d] = 0
		}
	}
	return dst
}

// batchPerm returns [0, perm+1...]: perm applied to each of the K blocks
// of a tangent.
func batchPerm(perm []int) []int {
	p := make([]int, len(perm)+1)
	for i, v := range perm {
		p[i+1] = v + 1
	}
	return p
}

func inversePerm(perm []int) []int {
	inv := make([]int, len(perm))
	for i, p := range perm {
		inv[p] = i
	}
	return inv
}

// Forward returns the transposed copy of in[0]; the state is the perm.
func (op *transposeOp) Forward(in []*tensor.Tensor) (*tensor.Tensor, any, error) {
	if len(in) < 1 || in[0] == nil {
		return nil, nil, fmt.Errorf("missing input")
	}
	perm, err := op.permFor(in[0].Rank())
	if err != nil {
		return nil, nil, err
	}
	return permute(in[0].Data, in[0].Shape, perm), perm, nil
}

// inferAlloc is Forward for Infer, the output in memory from alloc.
func (op *transposeOp) inferAlloc(in []*tensor.Tensor, alloc func(n int) []float64) (*tensor.Tensor, error) {
	if len(in) < 1 || in[0] == nil {
		return nil, fmt.Errorf("missing input")
	}
	perm, err := op.permFor(in[0].Rank())
	if err != nil {
		return nil, err
	}
	return permuteInto(alloc(in[0].Size()), in[0].Data, in[0].Shape, perm), nil
}

// fills: permuteInto writes every value of its output.
func (op *transposeOp) fills() {}

// Backward transposes gout back with the inverse permutation.
func (op *transposeOp) Backward(in []*tensor.Tensor, out *tensor.Tensor, state any, gout *tensor.Tensor, need []bool) []*tensor.Tensor {
	gin := make([]*tensor.Tensor, len(in))
	if need[0] {
		gin[0] = permute(gout.Data, out.Shape, inversePerm(state.([]int)))
	}
	return gin
}

// Tangent transposes each direction of the input tangent.
func (op *transposeOp) Tangent(in, tin []*tensor.Tensor, _ *tensor.Tensor, state any) *tensor.Tensor {
	K := directions(tin[0], in[0].Size())
	if K == 0 {
		return nil
	}
	return permute(tin[0].Data, withK(K, in[0].Shape), batchPerm(state.([]int)))
}

// BackwardTangent transposes gout and each direction of tgout back.
func (op *transposeOp) BackwardTangent(in, _ []*tensor.Tensor, out, _ *tensor.Tensor, state any, gout, tgout *tensor.Tensor, need []bool) (gin, tgin []*tensor.Tensor) {
	gin = op.Backward(in, out, state, gout, need)
	tgin = make([]*tensor.Tensor, len(in))
	if K := directions(tgout, out.Size()); need[0] && K > 0 {
		tgin[0] = permute(tgout.Data, withK(K, out.Shape), batchPerm(inversePerm(state.([]int))))
	}
	return gin, tgin
}

// concatOp joins its inputs along axis.
type concatOp struct{ axis int }

// concatPlan is the row layout of a concatenation: outer rows, each the
// concatenation of one block of inner[i] values from every input i.
type concatPlan struct {
	outer int
	inner []int
	width int // sum of inner
}

func buildConcat(n *onnx.Node, _ map[string]*tensor.Tensor, opset int64) (Op, error) {
	if len(n.Inputs) < 1 {
		return nil, nodeErr(n, "has no inputs")
	}
	for i, name := range n.Inputs {
		if name == "" {
			return nil, nodeErr(n, "input %d is empty; Concat has no optional inputs", i)
		}
	}
	if !attrHas(n, "axis") && opset >= 4 {
		return nil, nodeErr(n, "the axis attribute is missing")
	}
	return &concatOp{axis: int(attrInt(n, "axis", 1))}, nil
}

// Forward concatenates the inputs; the state is the layout.
func (op *concatOp) Forward(in []*tensor.Tensor) (*tensor.Tensor, any, error) {
	if len(in) == 0 || in[0] == nil {
		return nil, nil, fmt.Errorf("missing input")
	}
	r := in[0].Rank()
	axis := op.axis
	if axis < 0 {
		axis += r
	}
	if axis < 0 || axis >= r {
		return nil, nil, fmt.Errorf("concat axis %d is out of range for inputs of rank %d: %w", op.axis, r, ErrShape)
	}
	shape := append([]int(nil), in[0].Shape...)
	shape[axis] = 0
	p := &concatPlan{outer: tensor.Size(shape[:axis]), inner: make([]int, len(in))}
	rest := tensor.Size(in[0].Shape[axis+1:])
	for i, t := range in {
		if t == nil {
			return nil, nil, fmt.Errorf("input %d is missing", i)
		}
		ok := t.Rank() == r
		for d := 0; ok && d < r; d++ {
			ok = d == axis || t.Shape[d] == in[0].Shape[d]
		}
		if !ok {
			return nil, nil, fmt.Errorf("input %d has shape %v; it must match input 0's %v except on axis %d: %w", i, t.Shape, in[0].Shape, axis, ErrShape)
		}
		shape[axis] += t.Shape[axis]
		p.inner[i] = t.Shape[axis] * rest
		p.width += p.inner[i]
	}
	out := tensor.New(shape...)
	srcs := make([][]float64, len(in))
	for i, t := range in {
		srcs[i] = t.Data
	}
	p.join(out.Data, srcs, 1)
	return out, p, nil
}

// join writes the concatenation of srcs into dst for K stacked copies of
// the layout; nil sources are zeros (dst must be zeroed).
func (p *concatPlan) join(dst []float64, srcs [][]float64, K int) {
	off := 0
	for i, src := range srcs {
		w := p.inner[i]
		if src != nil {
			for o := 0; o < K*p.outer; o++ {
				copy(dst[o*p.width+off:o*p.width+off+w], src[o*w:(o+1)*w])
			}
		}
		off += w
	}
}

// split cuts src (K stacked copies of the output layout) into the blocks of
// the inputs with want[i], shaped [K]+shapes[i] (or shapes[i] when K = 0).
func (p *concatPlan) split(src []float64, in []*tensor.Tensor, want []bool, K int) []*tensor.Tensor {
	res := make([]*tensor.Tensor, len(in))
	rows := max(K, 1) * p.outer
	off := 0
	for i, t := range in {
		w := p.inner[i]
		if want[i] {
			if K == 0 {
				res[i] = tensor.New(t.Shape...)
			} else {
				res[i] = tensor.New(withK(K, t.Shape)...)
			}
			for o := 0; o < rows; o++ {
				copy(res[i].Data[o*w:(o+1)*w], src[o*p.width+off:o*p.width+off+w])
			}
		}
		off += w
	}
	return res
}

// Backward cuts gout into the inputs' blocks.
func (op *concatOp) Backward(in []*tensor.Tensor, _ *tensor.Tensor, state any, gout *tensor.Tensor, need []bool) []*tensor.Tensor {
	return state.(*concatPlan).split(gout.Data, in, need, 0)
}

// Tangent concatenates the input tangents (nil ones as zeros).
func (op *concatOp) Tangent(in, tin []*tensor.Tensor, out *tensor.Tensor, state any) *tensor.Tensor {
	K := 0
	srcs := make([][]float64, len(in))
	for i, t := range tin {
		K = max(K, directions(t, in[i].Size()))
		srcs[i] = dataOf(t)
	}
	if K == 0 {
		return nil
	}
	tout := tensor.New(withK(K, out.Shape)...)
	state.(*concatPlan).join(tout.Data, srcs, K)
	return tout
}

// BackwardTangent cuts gout and tgout into the inputs' blocks.
func (op *concatOp) BackwardTangent(in, _ []*tensor.Tensor, out, _ *tensor.Tensor, state any, gout, tgout *tensor.Tensor, need []bool) (gin, tgin []*tensor.Tensor) {
	gin = op.Backward(in, out, state, gout, need)
	if K := directions(tgout, out.Size()); K > 0 {
		return gin, state.(*concatPlan).split(tgout.Data, in, need, K)
	}
	return gin, make([]*tensor.Tensor, len(in))
}

// constantOp is Constant: no inputs, a fixed output.
type constantOp struct{ value *tensor.Tensor }

// buildConstant reads the value, value_float(s) or value_int(s) attribute.
func buildConstant(n *onnx.Node, _ map[string]*tensor.Tensor, _ int64) (Op, error) {
	if len(n.Inputs) != 0 {
		return nil, nodeErr(n, "has %d inputs; Constant takes none", len(n.Inputs))
	}
	var v *tensor.Tensor
	for _, name := range []string{"value", "value_float", "value_floats", "value_int", "value_ints", "sparse_value", "value_string", "value_strings"} {
		a, ok := n.Attrs[name]
		if !ok {
			continue
		}
		if v != nil {
			return nil, nodeErr(n, "has more than one value attribute")
		}
		switch {
		case name == "value" && a.T != nil:
			v = a.T
		case name == "value_float":
			v = tensor.FromData([]float64{float64(a.F)})
		case name == "value_int":
			v = tensor.FromData([]float64{float64(a.I)})
		case name == "value_floats":
			v = tensor.New(len(a.Floats))
			for i, f := range a.Floats {
				v.Data[i] = float64(f)
			}
		case name == "value_ints":
			v = tensor.New(len(a.Ints))
			for i, x := range a.Ints {
				v.Data[i] = float64(x)
			}
		default:
			return nil, nodeErrWrap(n, ErrUnsupported, "attribute %s is not supported; only numeric dense constants are", name)
		}
	}
	if v == nil {
		return nil, nodeErr(n, "has no value attribute")
	}
	return &constantOp{value: v}, nil
}

// Forward returns the constant (shared; ops never modify their inputs).
func (op *constantOp) Forward([]*tensor.Tensor) (*tensor.Tensor, any, error) {
	return op.value, nil, nil
}

// Backward has no inputs to differentiate.
func (op *constantOp) Backward(in []*tensor.Tensor, _ *tensor.Tensor, _ any, _ *tensor.Tensor, _ []bool) []*tensor.Tensor {
	return make([]*tensor.Tensor, len(in))
}

// Tangent is zero (nil).
func (op *constantOp) Tangent(_, _ []*tensor.Tensor, _ *tensor.Tensor, _ any) *tensor.Tensor {
	return nil
}

// BackwardTangent has no inputs to differentiate.
func (op *constantOp) BackwardTangent(in, _ []*tensor.Tensor, _, _ *tensor.Tensor, _ any, _, _ *tensor.Tensor, _ []bool) (gin, tgin []*tensor.Tensor) {
	return make([]*tensor.Tensor, len(in)), make([]*tensor.Tensor, len(in))
}

// Attribute and constant-input helpers.

// wantInputs checks that n has lo to hi inputs, the first lo present.
func wantInputs(n *onnx.Node, lo, hi int) error {
	if len(n.Inputs) < lo || len(n.Inputs) > hi {
		if lo == hi {
			return nodeErr(n, "has %d inputs; want %d", len(n.Inputs), lo)
		}
		return nodeErr(n, "has %d inputs; want %d to %d", len(n.Inputs), lo, hi)
	}
	for i := 0; i < lo; i++ {
		if n.Inputs[i] == "" {
			return nodeErr(n, "required input %d is empty", i)
		}
	}
	return nil
}

// attrHas reports whether n has the attribute.
func attrHas(n *onnx.Node, name string) bool {
	_, ok := n.Attrs[name]
	return ok
}

// attrInt returns an integer attribute, or def when absent.
func attrInt(n *onnx.Node, name string, def int64) int64 {
	if a, ok := n.Attrs[name]; ok {
		return a.I
	}
	return def
}

// attrFloat returns a float attribute (an int one is converted), or def.
func attrFloat(n *onnx.Node, name string, def float64) float64 {
	a, ok := n.Attrs[name]
	switch {
	case !ok:
		return def
	case a.Type == onnx.AttrInt:
		return float64(a.I)
	}
	return float64(a.F)
}

// attrInts returns an ints attribute and whether it is present.
func attrInts(n *onnx.Node, name string) ([]int64, bool) {
	a, ok := n.Attrs[name]
	return a.Ints, ok
}

// constInput returns the constant value of input i. ok is false when the
// input is absent (omitted or beyond the list); it is an error for a
// present input not to be a build-time constant.
func constInput(n *onnx.Node, consts map[string]*tensor.Tensor, i int) (t *tensor.Tensor, ok bool, err error) {
	if i >= len(n.Inputs) || n.Inputs[i] == "" {
		return nil, false, nil
	}
	t, ok = consts[n.Inputs[i]]
	if !ok {
		return nil, false, &notConstError{input: i, err: nodeErrWrap(n, ErrUnsupported, "input %d (%q) must be a constant (an initializer, or computed from initializers and from shapes that do not depend on the batch size)", i, n.Inputs[i])}
	}
	return t, true, nil
}

// notConstError is constInput's error: input is not a build-time
// constant. Build then reads that input at run time instead (deferredOp).
type notConstError struct {
	input int
	err   error
}

func (e *notConstError) Error() string { return e.err.Error() }
func (e *notConstError) Unwrap() error { return e.err }

// nodeErrWrap is nodeErr for an error that wraps sentinel (ErrShape,
// ErrUnsupported), which errors.Is then finds.
func nodeErrWrap(n *onnx.Node, sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w (%w)", nodeErr(n, format, args...), sentinel)
}

// intsOf converts a constant tensor of integers (stored as float64) to
// int64s, rejecting fractional values.
func intsOf(n *onnx.Node, t *tensor.Tensor, what string) ([]int64, error) {
	out := make([]int64, len(t.Data))
	for i, v := range t.Data {
		if v != math.Trunc(v) || math.IsInf(v, 0) {
			return nil, nodeErr(n, "%s value %g is not an integer", what, v)
		}
		switch {
		case v >= math.MaxInt64: // INT64_MAX ends (Slice) round up to 2^63 in float64
			out[i] = math.MaxInt64
		case v <= math.MinInt64:
			out[i] = math.MinInt64
		default:
			out[i] = int64(v)
		}
	}
	return out, nil
}
