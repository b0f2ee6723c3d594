package network

import (
	"fmt"
	"math"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

func init() {
	register("Resize", buildResize)
	register("Upsample", buildUpsample)
}

// resizeOp is Resize (and the deprecated Upsample): a linear map of X that
// is separable over the axes. Along each resized axis, output index o reads
// a few input indices ("taps") with fixed weights: one for nearest, two for
// linear, four for cubic (so 2-D linear is bilinear, and so on). The taps
// depend only on the shapes, so Forward, the adjoint (Backward) and the
// tangents all apply the same per-axis tap tables.
//
// Output sizes come from the scales or sizes input (or, for opset 10 and
// Upsample, scales only), read at build time when constant, else at each
// Forward; they are never differentiated. A source coordinate is computed per
// coordinate_transformation_mode and then, for nearest, rounded per
// nearest_mode; taps outside the input take the edge value (the ONNX
// reference's edge padding), or are dropped and the rest renormalised
// under exclude_outside. Opset 10 and Upsample use asymmetric coordinates
// and onnxruntime's rule for nearest: truncation when upsampling, ceiling
// when downsampling. tf_crop_and_resize, antialias and
// keep_aspect_ratio_policy other than stretch are not supported.
type resizeOp struct {
	mode    string // nearest, linear or cubic
	coord   string
	nearest string // round_prefer_floor, round_prefer_ceil, floor, ceil, or "legacy" (opset 10)
	cubicA  float64
	exclude bool
	scales  []float64 // per axis of axes (or of X when axes is nil); nil when sizes is used
	sizes   []int
	axes    []int64 // opset 18 axes; nil = every axis
	consts  []int
}

// axisTapTable maps one axis: output index o reads input indices
// idx[o·nt : (o+1)·nt] with weights w[...].
type axisTapTable struct {
	axis, in, out, nt int
	idx               []int
	w                 []float64
}

func buildResize(n *onnx.Node, consts map[string]*tensor.Tensor, opset int64) (Op, error) {
	op := &resizeOp{mode: "nearest", coord: "half_pixel", nearest: "round_prefer_floor", cubicA: -0.75}
	if opset < 11 {
		return op.legacy(n, consts, opset)
	}
	if err := wantInputs(n, 1, 4); err != nil {
		return nil, err
	}
	var err error
	for _, a := range []struct {
		name string
		dst  *string
	}{{"mode", &op.mode}, {"coordinate_transformation_mode", &op.coord}, {"nearest_mode", &op.nearest}} {
		if *a.dst, err = layerString(n, a.name, *a.dst); err != nil {
			return nil, err
		}
	}
	if op.cubicA, err = layerFloat(n, "cubic_coeff_a", op.cubicA); err != nil {
		return nil, err
	}
	ex, err := layerInt(n, "exclude_outside", 0)
	if err != nil {
		return nil, err
	}
	op.exclude = ex != 0
	if aa, _ := layerInt(n, "antialias", 0); aa != 0 {
		return nil, nodeErrWrap(n, ErrUnsupported, "antialias=1 is not supported")
	}
	if p, _ := layerString(n, "keep_aspect_ratio_policy", "stretch"); p != "stretch" {
		return nil, nodeErrWrap(n, ErrUnsupported, "keep_aspect_ratio_policy %q is not supported (only stretch)", p)
	}
	if axes, ok := attrInts(n, "axes"); ok {
		op.axes = axes
	}
	if err := op.check(n); err != nil {
		return nil, err
	}
	// Inputs: X, roi (used by tf_crop_and_resize only), scales, sizes:
	// never differentiated; read now when constant, else at each Forward.
	for i := 1; i < len(n.Inputs); i++ {
		if n.Inputs[i] == "" {
			continue
		}
		op.consts = append(op.consts, i)
		if t, ok := consts[n.Inputs[i]]; ok && i >= 2 {
			if err := op.setSizes(i, t); err != nil {
				return nil, fmt.Errorf("%w: %w", nodeErr(n, "%s", n.Inputs[i]), err)
			}
		}
	}
	return op, nil
}

// setSizes records the scales (input 2) or sizes (input 3) given by t; an
// empty tensor means absent.
func (op *resizeOp) setSizes(i int, t *tensor.Tensor) error {
	if t == nil || t.Size() == 0 {
		return nil
	}
	if i == 2 {
		op.scales = append([]float64(nil), t.Data...)
		return nil
	}
	op.sizes = op.sizes[:0]
	for _, v := range t.Data {
		if v != math.Trunc(v) || v < 1 {
			return fmt.Errorf("sizes value %g is not a positive integer: %w", v, ErrShape)
		}
		op.sizes = append(op.sizes, int(v))
	}
	return nil
}

// resolved returns the op with its scales or sizes read from the inputs
// when they were not constants at build time.
func (op *resizeOp) resolved(in []*tensor.Tensor) (*resizeOp, error) {
	if op.scales != nil || op.sizes != nil {
		return op, nil
	}
	cp := *op
	if cp.nearest == "legacy" {
		if len(in) > 1 && in[1] != nil {
			cp.scales = append([]float64(nil), in[1].Data...)
		}
	} else {
		for i := 2; i < min(len(in), 4); i++ {
			if err := cp.setSizes(i, in[i]); err != nil {
				return nil, err
			}
		}
	}
	if (cp.scales == nil) == (cp.sizes == nil) {
		return nil, fmt.Errorf("Resize needs exactly one of scales and sizes (non-empty): %w", ErrShape)
	}
	return &cp, nil
}

// legacy reads Resize-10 (X, scales) and Upsample (scales as input from
// opset 9, as attribute before).
func (op *resizeOp) legacy(n *onnx.Node, consts map[string]*tensor.Tensor, opset int64) (Op, error) {
	op.coord, op.nearest = "asymmetric", "legacy"
	var err error
	if op.mode, err = layerString(n, "mode", "nearest"); err != nil {
		return nil, err
	}
	if op.mode == "bilinear" { // Upsample-7's name for it
		op.mode = "linear"
	}
	if err := op.check(n); err != nil {
		return nil, err
	}
	if n.OpType == "Upsample" && opset < 9 {
		if err := wantInputs(n, 1, 1); err != nil {
			return nil, err
		}
		a, ok := n.Attrs["scales"]
		if !ok {
			return nil, nodeErr(n, "attribute scales is missing")
		}
		for _, f := range a.Floats {
			op.scales = append(op.scales, float64(f))
		}
		return op, nil
	}
	if err := wantInputs(n, 2, 2); err != nil {
		return nil, err
	}
	if t, ok := consts[n.Inputs[1]]; ok {
		op.scales = append([]float64(nil), t.Data...)
	}
	op.consts = []int{1}
	return op, nil
}

func buildUpsample(n *onnx.Node, consts map[string]*tensor.Tensor, opset int64) (Op, error) {
	op := &resizeOp{mode: "nearest", cubicA: -0.75}
	return op.legacy(n, consts, opset)
}

// check validates the mode attributes.
func (op *resizeOp) check(n *onnx.Node) error {
	switch op.mode {
	case "nearest", "linear", "cubic":
	default:
		return nodeErrWrap(n, ErrUnsupported, "mode %q; want nearest, linear or cubic", op.mode)
	}
	switch op.coord {
	case "half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn":
	case "tf_crop_and_resize":
		return nodeErrWrap(n, ErrUnsupported, "coordinate_transformation_mode tf_crop_and_resize is not supported")
	default:
		return nodeErrWrap(n, ErrUnsupported, "coordinate_transformation_mode %q is not supported", op.coord)
	}
	switch op.nearest {
	case "round_prefer_floor", "round_prefer_ceil", "floor", "ceil", "legacy":
	default:
		return nodeErrWrap(n, ErrUnsupported, "nearest_mode %q is not supported", op.nearest)
	}
	return nil
}

// ConstInputs lists roi, scales and sizes.
func (op *resizeOp) ConstInputs() []int { return op.consts }

// tables returns the tap tables of the axes that change (or that do not
// map identically) for input shape x, and the output shape.
func (op *resizeOp) tables(x []int) ([]axisTapTable, []int, error) {
	r := len(x)
	axes := make([]int, r)
	for i := range axes {
		axes[i] = i
	}
	if op.axes != nil {
		ax, err := normAxes(op.axes, r)
		if err != nil {
			return nil, nil, err
		}
		axes = ax
	}
	count := len(op.scales) + len(op.sizes)
	if count != len(axes) {
		return nil, nil, fmt.Errorf("Resize has %d scales or sizes for %d axes of input %v: %w", count, len(axes), x, ErrShape)
	}
	out := append([]int(nil), x...)
	var tabs []axisTapTable
	for i, a := range axes {
		var scale float64
		if op.sizes != nil {
			out[a] = op.sizes[i]
			scale = float64(out[a]) / float64(x[a])
		} else {
			scale = op.scales[i]
			if !(scale > 0) {
				return nil, nil, fmt.Errorf("Resize scale %g for axis %d; want > 0: %w", scale, a, ErrShape)
			}
			out[a] = int(math.Floor(float64(x[a]) * scale))
		}
		if out[a] < 1 || x[a] < 1 {
			return nil, nil, fmt.Errorf("Resize of axis %d from %d to %d elements: %w", a, x[a], out[a], ErrShape)
		}
		t := op.axisTaps(x[a], out[a], scale)
		if t.identity() {
			continue
		}
		t.axis = a
		tabs = append(tabs, t)
	}
	return tabs, out, nil
}

// source returns the input coordinate of output index o.
func (op *resizeOp) source(o, in, out int, scale float64) float64 {
	x := float64(o)
	switch op.coord {
	case "half_pixel":
		return (x+0.5)/scale - 0.5
	case "half_pixel_symmetric":
		adj := float64(out) / (scale * float64(in))
		center := float64(in) / 2
		return center*(1-adj) + (x+0.5)/scale - 0.5
	case "pytorch_half_pixel":
		if out > 1 {
			return (x+0.5)/scale - 0.5
		}
		return 0
	case "align_corners":
		if out == 1 {
			return 0
		}
		return x * float64(in-1) / float64(out-1)
	case "tf_half_pixel_for_nn":
		return (x + 0.5) / scale
	}
	return x / scale // asymmetric
}

// axisTaps builds the tap table of an axis resized from in to out.
func (op *resizeOp) axisTaps(in, out int, scale float64) axisTapTable {
	nt := map[string]int{"nearest": 1, "linear": 2, "cubic": 4}[op.mode]
	t := axisTapTable{in: in, out: out, nt: nt, idx: make([]int, out*nt), w: make([]float64, out*nt)}
	clamp := func(i int) int { return min(max(i, 0), in-1) }
	for o := 0; o < out; o++ {
		x := op.source(o, in, out, scale)
		idx, w := t.idx[o*nt:(o+1)*nt], t.w[o*nt:(o+1)*nt]
		if op.mode == "nearest" {
			idx[0], w[0] = clamp(op.round(x, scale)), 1
			continue
		}
		f := math.Floor(x)
		r := x - f
		if op.mode == "linear" {
			idx[0], idx[1] = int(f), int(f)+1
			w[0], w[1] = 1-r, r
		} else {
			for j := range 4 {
				idx[j] = int(f) - 1 + j
			}
			cubicCoeffs(w, r, op.cubicA)
		}
		sum := 0.0
		for j := range idx {
			if op.exclude && (idx[j] < 0 || idx[j] >= in) {
				w[j] = 0
			}
			idx[j] = clamp(idx[j])
			sum += w[j]
		}
		if op.exclude && sum != 0 {
			for j := range w {
				w[j] /= sum
			}
		}
	}
	return t
}

// round maps a source coordinate to an index per nearest_mode.
func (op *resizeOp) round(x, scale float64) int {
	switch op.nearest {
	case "round_prefer_ceil":
		return int(math.Floor(x + 0.5))
	case "floor":
		return int(math.Floor(x))
	case "ceil":
		return int(math.Ceil(x))
	case "legacy":
		if scale < 1 {
			return int(math.Ceil(x))
		}
		return int(x)
	}
	return int(math.Ceil(x - 0.5)) // round_prefer_floor
}

// cubicCoeffs sets w to the weights of the taps at floor-1 .. floor+2 for
// fractional position r (Keys' cubic convolution with parameter a, as the
// ONNX reference writes it).
func cubicCoeffs(w []float64, r, a float64) {
	p, q := r+1, 2-r
	w[0] = ((a*p-5*a)*p+8*a)*p - 4*a
	w[1] = ((a+2)*r-(a+3))*r*r + 1
	w[2] = ((a+2)*(1-r)-(a+3))*(1-r)*(1-r) + 1
	w[3] = ((a*q-5*a)*q+8*a)*q - 4*a
}

// identity reports whether the table maps every index to itself.
func (t *axisTapTable) identity() bool {
	if t.in != t.out {
		return false
	}
	for o := 0; o < t.out; o++ {
		for j := 0; j < t.nt; j++ {
			i, w := t.idx[o*t.nt+j], t.w[o*t.nt+j]
			if (i == o && w != 1) || (i != o && w != 0) {
				return false
			}
		}
	}
	return true
}

// apply maps src [pre, t.in, post] to dst [pre, t.out, post] (adjoint:
// adds dst-shaped src into src-shaped dst, i.e. from [pre, out, post] to
// [pre, in, post]).
func (t *axisTapTable) apply(dst, src []float64, pre, post int, adjoint bool) {
	for p := 0; p < pre; p++ {
		for o := 0; o < t.out; o++ {
			for j := 0; j < t.nt; j++ {
				w := t.w[o*t.nt+j]
				if w == 0 {
					continue
				}
				i := t.idx[o*t.nt+j]
				if adjoint {
					d, s := dst[(p*t.in+i)*post:(p*t.in+i+1)*post], src[(p*t.out+o)*post:(p*t.out+o+1)*post]
					for k, v := range s {
						d[k] += w * v
					}
				} else {
					d, s := dst[(p*t.out+o)*post:(p*t.out+o+1)*post], src[(p*t.in+i)*post:(p*t.in+i+1)*post]
					for k, v := range s {
						d[k] += w * v
					}
				}
			}
		}
	}
}

// resizeState is the Forward state: the tables and the input shape.
type resizeState struct {
	tabs    []axisTapTable
	inShape []int
}

// run applies the tables to k stacked copies of data of the input shape
// (adjoint: in reverse, from k stacked outputs back to inputs).
func (st *resizeState) run(src []float64, k int, adjoint bool) []float64 {
	shape := append([]int(nil), st.inShape...)
	shapes := [][]int{append([]int(nil), shape...)}
	for _, t := range st.tabs {
		shape[t.axis] = t.out
		shapes = append(shapes, append([]int(nil), shape...))
	}
	cur := src
	for s := range st.tabs {
		i := s
		if adjoint {
			i = len(st.tabs) - 1 - s
		}
		t := &st.tabs[i]
		from, to := shapes[i], shapes[i+1]
		if adjoint {
			from, to = to, from
		}
		pre := k * tensor.Size(from[:t.axis])
		post := tensor.Size(from[t.axis+1:])
		next := make([]float64, k*tensor.Size(to))
		t.apply(next, cur, pre, post, adjoint)
		cur = next
	}
	if len(st.tabs) == 0 {
		cur = append([]float64(nil), src...)
	}
	return cur
}

func (op *resizeOp) Forward(in []*tensor.Tensor) (*tensor.Tensor, any, error) {
	if len(in) < 1 || in[0] == nil {
		return nil, nil, fmt.Errorf("missing input")
	}
	rop, err := op.resolved(in)
	if err != nil {
		return nil, nil, err
	}
	tabs, outShape, err := rop.tables(in[0].Shape)
	if err != nil {
		return nil, nil, err
	}
	st := &resizeState{tabs: tabs, inShape: in[0].Shape}
	return tensor.FromData(st.run(in[0].Data, 1, false), outShape...), st, nil
}

// Backward applies the adjoint map to gout.
func (op *resizeOp) Backward(in []*tensor.Tensor, _ *tensor.Tensor, state any, gout *tensor.Tensor, need []bool) []*tensor.Tensor {
	gin := make([]*tensor.Tensor, len(in))
	if need[0] {
		gin[0] = tensor.FromData(state.(*resizeState).run(gout.Data, 1, true), in[0].Shape...)
	}
	return gin
}

// Tangent maps every direction of the input tangent.
func (op *resizeOp) Tangent(in, tin []*tensor.Tensor, out *tensor.Tensor, state any) *tensor.Tensor {
	k := directions(tin[0], in[0].Size())
	if k == 0 {
		return nil
	}
	return tensor.FromData(state.(*resizeState).run(tin[0].Data, k, false), withK(k, out.Shape)...)
}

// BackwardTangent maps gout and every direction of tgout back (the op is
// linear: the input tangent does not move the gradient).
func (op *resizeOp) BackwardTangent(in, _ []*tensor.Tensor, out, _ *tensor.Tensor, state any, gout, tgout *tensor.Tensor, need []bool) (gin, tgin []*tensor.Tensor) {
	gin = op.Backward(in, out, state, gout, need)
	tgin = make([]*tensor.Tensor, len(in))
	if k := directions(tgout, out.Size()); need[0] && k > 0 {
		tgin[0] = tensor.FromData(state.(*resizeState).run(tgout.Data, k, true), withK(k, in[0].Shape)...)
	}
	return gin, tgin
}
