package network

import (
	"fmt"
	"math"

	"mpsearch/kernels"
	"mpsearch/onnx"
	"mpsearch/tensor"
)

// unaryFunc is a scalar function applied elementwise, with its first two
// derivatives, working on slices so the loops stay tight.
type unaryFunc interface {
	// eval sets y[i] = f(x[i]) for every i, whatever y held before (Infer
	// gives it unzeroed memory: fillOp).
	eval(y, x []float64)
	// deriv sets d1[i] = f'(x[i]) and, when d2 is not nil, d2[i] = f2(x[i])
	// (the second derivative);
	// y[i] = f(x[i]) is given for reuse.
	deriv(d1, d2, x, y []float64)
	// linear reports whether the second derivative is zero everywhere (piecewise linear f).
	linear() bool
}

// piecewiseFunc is a unaryFunc that is piecewise linear with two slopes
// (ReLU, LeakyRelu, Clip). Its Forward records, for every element, which
// slope applies, so the other passes read one byte per element instead of
// recomputing (and branching on) the derivative.
type piecewiseFunc interface {
	unaryFunc
	// evalSlope sets y[i] = f(x[i]) and s[i] to the index in slopes of
	// f'(x[i]) (the value deriv would give).
	evalSlope(y []float64, s []uint8, x []float64)
	// slopes returns the two values f' takes.
	slopes() [2]float64
}

// slopeState is the Forward state of a unaryOp on a piecewiseFunc: the
// slope index of every element.
type slopeState struct{ s []uint8 }

// unaryOp applies a unaryFunc elementwise.
type unaryOp struct{ f unaryFunc }

// derivs sets d[i] = f'(x[lo+i]) for i < len(d): from the Forward state's
// slope indices when there are some, else by unaryFunc.deriv (with d2 as
// there).
func (op *unaryOp) derivs(d, d2 []float64, lo int, x, y []float64, state any) {
	if st, ok := state.(*slopeState); ok && d2 == nil {
		tab := op.f.(piecewiseFunc).slopes()
		for i, s := range st.s[lo : lo+len(d)] {
			d[i] = tab[s&1]
		}
		return
	}
	op.f.deriv(d, d2, x[lo:lo+len(d)], y[lo:lo+len(d)])
}

// unaryChunk is the number of elements whose derivatives are computed at once.
const unaryChunk = 512

// Forward computes f(x).
func (op *unaryOp) Forward(in []*tensor.Tensor) (*tensor.Tensor, any, error) {
	if len(in) < 1 || in[0] == nil {
		return nil, nil, fmt.Errorf("missing input")
	}
	out := tensor.New(in[0].Shape...)
	if pw, ok := op.f.(piecewiseFunc); ok {
		st := &slopeState{s: make([]uint8, len(out.Data))}
		pw.evalSlope(out.Data, st.s, in[0].Data)
		return out, st, nil
	}
	op.f.eval(out.Data, in[0].Data)
	return out, nil, nil
}

// inPlaceInputs: f(x) can overwrite x (every eval reads x[i] before
// writing y[i]).
func (op *unaryOp) inPlaceInputs(in []*tensor.Tensor) []int {
	if len(in) < 1 || in[0] == nil {
		return nil
	}
	return []int{0}
}

// forwardInPlace is Forward's output written over x, without the slope
// state (eval and evalSlope give the same values).
func (op *unaryOp) forwardInPlace(in []*tensor.Tensor, i int) (*tensor.Tensor, error) {
	x := in[0]
	op.f.eval(x.Data, x.Data)
	return tensor.FromData(x.Data, x.Shape...), nil
}

// inferAlloc is Forward for Infer when x cannot be overwritten: f(x) in
// memory from alloc, without the slope state (eval and evalSlope give the
// same values). A SiLU's Sigmoid, whose input the Mul still reads, then
// writes into memory the pass already touched instead of fresh pages.
func (op *unaryOp) inferAlloc(in []*tensor.Tensor, alloc func(n int) []float64) (*tensor.Tensor, error) {
	if len(in) < 1 || in[0] == nil {
		return nil, fmt.Errorf("missing input")
	}
	out := tensor.FromData(alloc(len(in[0].Data)), in[0].Shape...)
	op.f.eval(out.Data, in[0].Data)
	return out, nil
}

// fills: every eval writes all of y.
func (op *unaryOp) fills() {}

// Backward returns g·f'(x).
func (op *unaryOp) Backward(in []*tensor.Tensor, out *tensor.Tensor, state any, gout *tensor.Tensor, need []bool) []*tensor.Tensor {
	gin := make([]*tensor.Tensor, len(in))
	if !need[0] {
		return gin
	}
	gx := tensor.New(in[0].Shape...)
	x, y, g := in[0].Data, out.Data, gout.Data
	d1 := make([]float64, min(unaryChunk, len(x)))
	for lo := 0; lo < len(x); lo += unaryChunk {
		hi := min(lo+unaryChunk, len(x))
		d := d1[:hi-lo]
		op.derivs(d, nil, lo, x, y, state)
		gl, gxl := g[lo:hi], gx.Data[lo:hi]
		for i, v := range d {
			gxl[i] = gl[i] * v
		}
	}
	gin[0] = gx
	return gin
}

// Tangent returns f'(x)·tx for each direction.
func (op *unaryOp) Tangent(in, tin []*tensor.Tensor, out *tensor.Tensor, state any) *tensor.Tensor {
	x, y := in[0].Data, out.Data
	n := len(x)
	K := directions(tin[0], n)
	if K == 0 {
		return nil
	}
	tout := tensor.New(withK(K, out.Shape)...)
	tx, t := tin[0].Data, tout.Data
	d1 := make([]float64, min(unaryChunk, n))
	for lo := 0; lo < n; lo += unaryChunk {
		hi := min(lo+unaryChunk, n)
		d := d1[:hi-lo]
		op.derivs(d, nil, lo, x, y, state)
		for k := 0; k < K; k++ {
			tk, txk := t[k*n+lo:k*n+hi], tx[k*n+lo:k*n+hi]
			for i, v := range d {
				tk[i] = v * txk[i]
			}
		}
	}
	return tout
}

// BackwardTangent returns g·f'(x) and its tangents tg·f'(x) + g·f2(x)·tx, f2 the second derivative.
func (op *unaryOp) BackwardTangent(in, tin []*tensor.Tensor, out, _ *tensor.Tensor, state any, gout, tgout *tensor.Tensor, need []bool) (gin, tgin []*tensor.Tensor) {
	gin = make([]*tensor.Tensor, len(in))
	tgin = make([]*tensor.Tensor, len(in))
	if !need[0] {
		return gin, tgin
	}
	x, y, g := in[0].Data, out.Data, gout.Data
	n := len(x)
	tx, tg := dataOf(tin[0]), dataOf(tgout)
	if op.f.linear() {
		tx = nil // zero second derivative: the input tangent does not move the gradient
	}
	K := max(directions(tgout, n), directions(tin[0], n))
	if tx == nil {
		K = directions(tgout, n)
	}
	gx := tensor.New(in[0].Shape...)
	var tgx []float64
	if K > 0 {
		tgin[0] = tensor.New(withK(K, in[0].Shape)...)
		tgx = tgin[0].Data
	}
	m := min(unaryChunk, n)
	d1 := make([]float64, m)
	var d2 []float64
	if tx != nil {
		d2 = make([]float64, m)
	}
	for lo := 0; lo < n; lo += unaryChunk {
		hi := min(lo+unaryChunk, n)
		a := d1[:hi-lo]
		var b []float64
		if d2 != nil {
			b = d2[:hi-lo]
		}
		op.derivs(a, b, lo, x, y, state)
		gl := g[lo:hi]
		for i, v := range a {
			gx.Data[lo+i] = gl[i] * v
		}
		for k := 0; k < K; k++ {
			dst := tgx[k*n+lo : k*n+hi]
			if tg != nil {
				tgk := tg[k*n+lo : k*n+hi]
				for i, v := range a {
					dst[i] = tgk[i] * v
				}
			}
			if tx != nil {
				txk := tx[k*n+lo : k*n+hi]
				for i, v := range b {
					dst[i] += gl[i] * v * txk[i]
				}
			}
		}
	}
	gin[0] = gx
	return gin, tgin
}

// reluFunc is max(x, 0); f'(0) is taken as 0 (as PyTorch does).
type reluFunc struct{}

func (reluFunc) linear() bool { return true }
func (reluFunc) eval(y, x []float64) {
	y = y[:len(x)]
	for i, v := range x {
		// Branch-free (the sign of activations is a coin flip for the
		// predictor): the bits of v, or of +0 when v < 0.
		b := math.Float64bits(v)
		if v < 0 {
			b = 0
		}
		y[i] = math.Float64frombits(b)
	}
}
func (reluFunc) slopes() [2]float64 { return [2]float64{0, 1} }
func (reluFunc) evalSlope(y []float64, s []uint8, x []float64) {
	y, s = y[:len(x)], s[:len(x)]
	for i, v := range x {
		// Branch-free: neg is all ones when v < 0 (then y = +0), else 0.
		neg := uint64(0)
		if v < 0 {
			neg = 1
		}
		y[i] = math.Float64frombits(math.Float64bits(v) &^ -neg)
		s[i] = b2u8(v > 0)
	}
}
func (reluFunc) deriv(d1, _, x, _ []float64) {
	for i, v := range x {
		d1[i] = 0
		if v > 0 {
			d1[i] = 1
		}
	}
}

// leakyFunc is x for x > 0, alpha·x otherwise.
type leakyFunc struct{ alpha float64 }

func (leakyFunc) linear() bool { return true }
func (f leakyFunc) eval(y, x []float64) {
	for i, v := range x {
		if v < 0 {
			v *= f.alpha
		}
		y[i] = v
	}
}
func (f leakyFunc) slopes() [2]float64 { return [2]float64{f.alpha, 1} }
func (f leakyFunc) evalSlope(y []float64, s []uint8, x []float64) {
	y, s = y[:len(x)], s[:len(x)]
	tab := [2]float64{f.alpha, 1}
	for i, v := range x {
		neg := b2u8(v < 0)
		y[i] = v * tab[neg^1]
		s[i] = b2u8(v > 0)
	}
}
func (f leakyFunc) deriv(d1, _, x, _ []float64) {
	for i, v := range x {
		d1[i] = f.alpha
		if v > 0 {
			d1[i] = 1
		}
	}
}

// clipFunc is min(max(x, lo), hi) (numpy's clip, so hi wins when lo > hi);
// f' is 1 on [lo, hi] including the bounds (as PyTorch's clamp), else 0.
type clipFunc struct{ lo, hi float64 }

func (clipFunc) linear() bool { return true }
func (f clipFunc) eval(y, x []float64) {
	// Selecting bits (conditional moves) rather than floats (branches):
	// the same values, including NaN and signed zeros, about 7× faster on
	// activations of random sign.
	lo, hi := math.Float64bits(f.lo), math.Float64bits(f.hi)
	y = y[:len(x)]
	for i, v := range x {
		b := math.Float64bits(v)
		if v < f.lo {
			b = lo
		}
		if math.Float64frombits(b) > f.hi {
			b = hi
		}
		y[i] = math.Float64frombits(b)
	}
}
func (clipFunc) slopes() [2]float64 { return [2]float64{0, 1} }
func (f clipFunc) evalSlope(y []float64, s []uint8, x []float64) {
	f.eval(y, x)
	s = s[:len(x)]
	for i, v := range x {
		s[i] = b2u8(v >= f.lo) & b2u8(v <= f.hi)
	}
}
func (f clipFunc) deriv(d1, _, x, _ []float64) {
	for i, v := range x {
		d1[i] = 0
		if v >= f.lo && v <= f.hi {
			d1[i] = 1
		}
	}
}

// b2u8 is 1 for true and 0 for false (compiled without a branch).
func b2u8(b bool) uint8 {
	var u uint8
	if b {
		u = 1
	}
	return u
}

// negFunc is -x.
type negFunc struct{}

func (negFunc) linear() bool { return true }
func (negFunc) eval(y, x []float64) {
	for i, v := range x {
		y[i] = -v
	}
}
func (negFunc) deriv(d1, _, _, _ []float64) {
	for i := range d1 {
		d1[i] = -1
	}
}

// vecExp selects kernels.Exp for the exponentials of whole blocks (the
// same bits as math.Exp); tests and benchmarks switch it off to run the
// math.Exp loops it replaced.
var vecExp = true

// expBlock is the length of the stack blocks that hold exponentials.
const expBlock = 256

// expSlice sets dst[i] = math.Exp(src[i]) for every i < len(dst); dst may
// be src.
func expSlice(dst, src []float64) {
	if vecExp {
		kernels.Exp(dst, src)
		return
	}
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] = math.Exp(v)
	}
}

// expNegAbs sets e[i] = exp(-|x[i]|) for every i < len(e).
func expNegAbs(e, x []float64) {
	x = x[:len(e)]
	for i, v := range x {
		e[i] = -math.Abs(v)
	}
	expSlice(e, e)
}

// sigmoidFunc is 1/(1+exp(-x)). Both sigmoid(x) and 1-sigmoid(x) are
// computed from exp(-|x|), so f' = s(1-s) keeps full relative precision in
// the tails.
type sigmoidFunc struct{}

func (sigmoidFunc) linear() bool { return false }
func (sigmoidFunc) eval(y, x []float64) {
	if vecExp {
		kernels.Sigmoid(y[:len(x)], x) // the loop below on vectors
		return
	}
	// sigmoidPair's s with one division and no branch: the numerator is 1
	// (x >= 0) or e, selected as bits; the same operations give the same
	// bits. The exponentials of a block come first (one expSlice), then
	// its divisions, which then overlap instead of each waiting on its
	// exponential.
	const one = 0x3FF0000000000000 // math.Float64bits(1)
	var eb [expBlock]float64
	y = y[:len(x)]
	for lo := 0; lo < len(x); lo += len(eb) {
		xs := x[lo:min(lo+len(eb), len(x))]
		ys, es := y[lo:lo+len(xs)], eb[:len(xs)]
		expNegAbs(es, xs)
		for i, v := range xs {
			e := es[i]
			num := math.Float64bits(e)
			if v >= 0 {
				num = one
			}
			ys[i] = math.Float64frombits(num) / (1 + e)
		}
	}
}
func (sigmoidFunc) deriv(d1, d2, x, _ []float64) {
	var sb, cb [expBlock]float64
	for lo := 0; lo < len(x); lo += len(sb) {
		xs := x[lo:min(lo+len(sb), len(x))]
		ss, cs := sb[:len(xs)], cb[:len(xs)]
		sigmoidPairs(ss, cs, xs) // c = 1 - s
		for i, s := range ss {
			c := cs[i]
			d1[lo+i] = s * c
			if d2 != nil {
				d2[lo+i] = s * c * (c - s)
			}
		}
	}
}

// sigmoidPairs sets s[i], c[i] = sigmoidPair(x[i]) for every i < len(s).
func sigmoidPairs(s, c, x []float64) {
	if vecExp {
		kernels.SigmoidPair(s, c, x)
		return
	}
	x = x[:len(s)]
	for i, v := range x {
		s[i], c[i] = sigmoidPair(v)
	}
}

// sigmoidPair returns sigmoid(x) and 1-sigmoid(x) = sigmoid(-x).
func sigmoidPair(x float64) (s, c float64) {
	return sigmoidPairExp(x, math.Exp(-math.Abs(x)))
}

// sigmoidPairExp is sigmoidPair given e = exp(-|x|).
func sigmoidPairExp(x, e float64) (s, c float64) {
	p, q := 1/(1+e), e/(1+e)
	if x >= 0 {
		return p, q
	}
	return q, p
}

// tanhFunc is tanh(x); f' = 1-tanh² = 4e/(1+e)² with e = exp(-2|x|),
// accurate in the tails.
type tanhFunc struct{}

func (tanhFunc) linear() bool { return false }
func (tanhFunc) eval(y, x []float64) {
	for i, v := range x {
		y[i] = math.Tanh(v)
	}
}
func (tanhFunc) deriv(d1, d2, x, y []float64) {
	var eb [expBlock]float64
	for lo := 0; lo < len(x); lo += len(eb) {
		xs := x[lo:min(lo+len(eb), len(x))]
		es := eb[:len(xs)]
		for i, v := range xs {
			es[i] = -2 * math.Abs(v)
		}
		expSlice(es, es)
		for i, e := range es {
			d := 4 * e / ((1 + e) * (1 + e))
			d1[lo+i] = d
			if d2 != nil {
				d2[lo+i] = -2 * y[lo+i] * d
			}
		}
	}
}

func init() {
	register("Relu", func(n *onnx.Node, _ map[string]*tensor.Tensor, _ int64) (Op, error) {
		if err := wantInputs(n, 1, 1); err != nil {
			return nil, err
		}
		return &unaryOp{f: reluFunc{}}, nil
	})
	register("LeakyRelu", func(n *onnx.Node, _ map[string]*tensor.Tensor, _ int64) (Op, error) {
		if err := wantInputs(n, 1, 1); err != nil {
			return nil, err
		}
		return &unaryOp{f: leakyFunc{alpha: attrFloat(n, "alpha", 0.01)}}, nil
	})
	register("Sigmoid", func(n *onnx.Node, _ map[string]*tensor.Tensor, _ int64) (Op, error) {
		if err := wantInputs(n, 1, 1); err != nil {
			return nil, err
		}
		return &unaryOp{f: sigmoidFunc{}}, nil
	})
	register("Tanh", func(n *onnx.Node, _ map[string]*tensor.Tensor, _ int64) (Op, error) {
		if err := wantInputs(n, 1, 1); err != nil {
			return nil, err
		}
		return &unaryOp{f: tanhFunc{}}, nil
	})
	register("Clip", buildClip)
	register("PRelu", buildPRelu)
	register("Softmax", buildSoftmax)
}

// clipOp is Clip: a unaryOp whose bounds may come from constant inputs.
type clipOp struct {
	unaryOp
	consts []int
}

func (op *clipOp) ConstInputs() []int { return op.consts }

// buildClip reads the bounds from the min/max attributes (opset < 11) or
// from the optional constant inputs 1 and 2 (opset >= 11); a missing bound
// is unbounded.
func buildClip(n *onnx.Node, consts map[string]*tensor.Tensor, opset int64) (Op, error) {
	lo, hi := math.Inf(-1), math.Inf(1)
	op := &clipOp{}
	if opset < 11 {
		if err := wantInputs(n, 1, 1); err != nil {
			return nil, err
		}
		lo = attrFloat(n, "min", lo)
		hi = attrFloat(n, "max", hi)
	} else {
		if err := wantInputs(n, 1, 3); err != nil {
			return nil, err
		}
		for i, bound := range []*float64{&lo, &hi} {
			t, ok, err := constInput(n, consts, i+1)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			if t.Size() != 1 {
				return nil, nodeErr(n, "bound input %d has %d values; want a scalar", i+1, t.Size())
			}
			*bound = t.Data[0]
			op.consts = append(op.consts, i+1)
		}
	}
	if math.IsNaN(lo) || math.IsNaN(hi) {
		return nil, nodeErr(n, "clip bounds [%g, %g] contain NaN", lo, hi)
	}
	op.f = clipFunc{lo: lo, hi: hi}
	return op, nil
}

// buildPRelu makes PRelu(X, slope) = X for X > 0, slope·X otherwise, with
// slope broadcast to X's shape (unidirectional; slope is differentiable).
// Before opset 7 a size-1 slope is shared and a 1-D slope whose length is
// X's channel count (axis 1) is per channel.
func buildPRelu(n *onnx.Node, _ map[string]*tensor.Tensor, opset int64) (Op, error) {
	if err := wantInputs(n, 2, 2); err != nil {
		return nil, err
	}
	op := &binaryOp{kind: binPRelu, uni: true}
	if opset < 7 {
		op.bShape = func(x, s []int) ([]int, error) {
			if tensor.Size(s) == 1 {
				return nil, nil // shared slope
			}
			if len(s) == 1 && len(x) >= 2 && s[0] == x[1] {
				return legacyAxisShape(x, s, 1, true) // per channel
			}
			return s, nil
		}
	}
	return op, nil
}

// softmaxOp is Softmax over a block of length L with stride inner, for each
// of outer blocks: opset < 13 flattens the input to 2-D at axis (L is the
// product of the dimensions from axis on); opset >= 13 normalises along the
// single axis.
type softmaxOp struct {
	axis    int
	flatten bool // opset < 13 semantics
}

func buildSoftmax(n *onnx.Node, _ map[string]*tensor.Tensor, opset int64) (Op, error) {
	if err := wantInputs(n, 1, 1); err != nil {
		return nil, err
	}
	if opset < 13 {
		return &softmaxOp{axis: int(attrInt(n, "axis", 1)), flatten: true}, nil
	}
	return &softmaxOp{axis: int(attrInt(n, "axis", -1))}, nil
}

// layout returns (outer, L, inner) for shape.
func (op *softmaxOp) layout(shape []int) (outer, l, inner int, err error) {
	r := len(shape)
	axis := op.axis
	if axis < 0 {
		axis += r
	}
	hi := r - 1
	if op.flatten {
		hi = r // coercion to 2-D allows axis == rank
	}
	if axis < 0 || axis > hi {
		return 0, 0, 0, fmt.Errorf("softmax axis %d is out of range for an input of shape %v: %w", op.axis, shape, ErrShape)
	}
	outer = tensor.Size(shape[:axis])
	if op.flatten {
		return outer, tensor.Size(shape[axis:]), 1, nil
	}
	return outer, shape[axis], tensor.Size(shape[axis+1:]), nil
}

// Forward computes exp(x - max) / sum along each block.
func (op *softmaxOp) Forward(in []*tensor.Tensor) (*tensor.Tensor, any, error) {
	if len(in) < 1 || in[0] == nil {
		return nil, nil, fmt.Errorf("missing input")
	}
	outer, l, inner, err := op.layout(in[0].Shape)
	if err != nil {
		return nil, nil, err
	}
	out := tensor.New(in[0].Shape...)
	softmax(out.Data, in[0].Data, outer, l, inner)
	return out, [3]int{outer, l, inner}, nil
}

// inferAlloc is Forward for Infer, the output in memory from alloc.
func (op *softmaxOp) inferAlloc(in []*tensor.Tensor, alloc func(n int) []float64) (*tensor.Tensor, error) {
	if len(in) < 1 || in[0] == nil {
		return nil, fmt.Errorf("missing input")
	}
	outer, l, inner, err := op.layout(in[0].Shape)
	if err != nil {
		return nil, err
	}
	out := tensor.FromData(alloc(in[0].Size()), in[0].Shape...)
	softmax(out.Data, in[0].Data, outer, l, inner)
	return out, nil
}

// fills: softmax writes every value of y.
func (op *softmaxOp) fills() {}

// softmax sets y = exp(x - max) / sum along each block of l values
// inner apart (y may be x). Per block the maximum, the sum (in the order
// of j) and the quotients are those of the loop over one block at a time;
// the blocks of an outer index are processed together, a row of inner
// values at a time, so that the exponentials come in contiguous runs.
func softmax(y, x []float64, outer, l, inner int) {
	if inner == 1 {
		for o := 0; o < outer; o++ {
			softmaxRow(y[o*l:(o+1)*l], x[o*l:(o+1)*l])
		}
		return
	}
	ms := make([]float64, 2*inner)
	ms, ss := ms[:inner], ms[inner:]
	for o := 0; o < outer; o++ {
		xo, yo := x[o*l*inner:(o+1)*l*inner], y[o*l*inner:(o+1)*l*inner]
		for i := range ms {
			ms[i], ss[i] = math.Inf(-1), 0
		}
		for j := 0; j < l; j++ {
			for i, v := range xo[j*inner : (j+1)*inner] {
				ms[i] = math.Max(ms[i], v)
			}
		}
		for j := 0; j < l; j++ {
			xr, yr := xo[j*inner:(j+1)*inner], yo[j*inner:(j+1)*inner]
			for i, v := range xr {
				yr[i] = v - ms[i]
			}
			expSlice(yr, yr)
			for i, e := range yr {
				ss[i] += e
			}
		}
		for j := 0; j < l; j++ {
			for i := range yo[j*inner : (j+1)*inner] {
				yo[j*inner+i] /= ss[i]
			}
		}
	}
}

// softmaxRow sets y = exp(x - max) / sum over one contiguous block (y may
// be x) and returns the maximum and the sum.
func softmaxRow(y, x []float64) (m, s float64) {
	m = math.Inf(-1)
	for _, v := range x {
		m = math.Max(m, v)
	}
	y = y[:len(x)]
	for j, v := range x {
		y[j] = v - m
	}
	expSlice(y, y)
	for _, e := range y {
		s += e
	}
	for j := range y {
		y[j] /= s
	}
	return m, s
}

// jvp sets dst = y ⊙ (v - <y, v>) blockwise (the softmax Jacobian, which is
// symmetric, applied to v), adding into dst when add.
func softmaxJVP(dst, y, v []float64, outer, l, inner int, add bool) {
	for o := 0; o < outer; o++ {
		for i := 0; i < inner; i++ {
			base := o*l*inner + i
			s := 0.0
			for j := 0; j < l; j++ {
				s += y[base+j*inner] * v[base+j*inner]
			}
			for j := 0; j < l; j++ {
				p := base + j*inner
				if add {
					dst[p] += y[p] * (v[p] - s)
				} else {
					dst[p] = y[p] * (v[p] - s)
				}
			}
		}
	}
}

// Backward returns y ⊙ (g - <y, g>).
func (op *softmaxOp) Backward(in []*tensor.Tensor, out *tensor.Tensor, state any, gout *tensor.Tensor, need []bool) []*tensor.Tensor {
	gin := make([]*tensor.Tensor, len(in))
	if need[0] {
		d := state.([3]int)
		gin[0] = tensor.New(in[0].Shape...)
		softmaxJVP(gin[0].Data, out.Data, gout.Data, d[0], d[1], d[2], false)
	}
	return gin
}

// Tangent returns y ⊙ (tx - <y, tx>) for each direction.
func (op *softmaxOp) Tangent(in, tin []*tensor.Tensor, out *tensor.Tensor, state any) *tensor.Tensor {
	n := out.Size()
	K := directions(tin[0], n)
	if K == 0 {
		return nil
	}
	d := state.([3]int)
	tout := tensor.New(withK(K, out.Shape)...)
	for k := 0; k < K; k++ {
		softmaxJVP(tout.Data[k*n:(k+1)*n], out.Data, tin[0].Data[k*n:(k+1)*n], d[0], d[1], d[2], false)
	}
	return tout
}

// BackwardTangent differentiates gx = y ⊙ (g - s), s = <y, g>, exactly:
// d gx = ty ⊙ (g - s) + y ⊙ (tg - <ty, g> - <y, tg>).
func (op *softmaxOp) BackwardTangent(in, tin []*tensor.Tensor, out, tout *tensor.Tensor, state any, gout, tgout *tensor.Tensor, need []bool) (gin, tgin []*tensor.Tensor) {
	gin = op.Backward(in, out, state, gout, need)
	tgin = make([]*tensor.Tensor, len(in))
	if !need[0] {
		return gin, tgin
	}
	n := out.Size()
	if tout == nil && tin[0] != nil {
		tout = op.Tangent(in, tin, out, state)
	}
	K := max(directions(tout, n), directions(tgout, n))
	if K == 0 {
		return gin, tgin
	}
	d := state.([3]int)
	outer, l, inner := d[0], d[1], d[2]
	y, g := out.Data, gout.Data
	ty, tg := dataOf(tout), dataOf(tgout)
	tgin[0] = tensor.New(withK(K, in[0].Shape)...)
	for k := 0; k < K; k++ {
		dst := tgin[0].Data[k*n : (k+1)*n]
		if tg != nil {
			softmaxJVP(dst, y, tg[k*n:(k+1)*n], outer, l, inner, false)
		}
		if ty == nil {
			continue
		}
		tyk := ty[k*n : (k+1)*n]
		for o := 0; o < outer; o++ {
			for i := 0; i < inner; i++ {
				base := o*l*inner + i
				s, ts := 0.0, 0.0
				for j := 0; j < l; j++ {
					p := base + j*inner
					s += y[p] * g[p]
					ts += tyk[p] * g[p]
				}
				for j := 0; j < l; j++ {
					p := base + j*inner
					dst[p] += tyk[p]*(g[p]-s) - y[p]*ts
				}
			}
		}
	}
	return gin, tgin
}
