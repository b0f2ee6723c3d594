package network

import (
	"fmt"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

func init() {
	register("ConvTranspose", buildConvTranspose)
}

// convTranspose is a 1-D or 2-D transposed convolution: X [N, C, H, W], W
// [C, M/group, kh, kw], optional B [M]; output Y [N, M, OH, OW] with
// Y[oy·s - pad + i·d] += X[oy]·W[i] along each spatial axis.
//
// It is the adjoint (input gradient) of a convolution from Y's shape to
// X's shape whose weight is W, so it reuses conv.go's machinery with the
// roles swapped: the conv view's input is Y (channels M) and its output X
// (channels C). Forward is convPass.backwardData, the input gradient is
// convPass.forward (a convolution of gY with W), the weight gradient is
// convPass.backwardWeight with X as the "output gradient" and gY as the
// source of the columns.
type convTranspose struct {
	node      *onnx.Node
	group     int
	win       windowSpec
	outPad    [2]int // output_padding along H, W
	outSize   []int  // output_shape (spatial, 2-D layout), nil when absent
	autoPad   string
	prec      Precision
	hasKernel bool
}

func buildConvTranspose(n *onnx.Node, _ map[string]*tensor.Tensor, _ int64) (Op, error) {
	if err := wantInputs(n, 2, 3); err != nil {
		return nil, err
	}
	group, err := layerInt(n, "group", 1)
	if err != nil {
		return nil, err
	}
	if group < 1 {
		return nil, nodeErr(n, "group = %d; want >= 1", group)
	}
	win, err := parseWindow(n, false)
	if err != nil {
		return nil, err
	}
	op := &convTranspose{node: n, group: int(group), win: win, autoPad: win.autoPad}
	for _, name := range []string{"output_padding", "output_shape"} {
		v, err := layerInts(n, name)
		if err != nil {
			return nil, err
		}
		if v == nil {
			continue
		}
		if len(v) > 2 {
			v = v[2:] // output_shape given with N and C
		}
		two := []int{0, 0}
		switch len(v) {
		case 1:
			two[1] = v[0]
			if name == "output_shape" {
				two[0] = 1
			}
		case 2:
			two[0], two[1] = v[0], v[1]
		default:
			return nil, nodeErrWrap(n, ErrUnsupported, "%s %v: only 1-D and 2-D transposed convolutions are supported", name, v)
		}
		if name == "output_padding" {
			op.outPad = [2]int{two[0], two[1]}
		} else {
			op.outSize = two
		}
	}
	return op, nil
}

// convTState is the Forward state: the geometry of the conv view.
func (op *convTranspose) setPrecision(p Precision) { op.prec = p }

type convTState struct{ geo window2d }

// axis resolves one spatial axis: the output size and the begin pad, from
// the input size, kernel, stride, dilation, output padding and explicit
// pads, or from output_shape / auto_pad (see split).
func (op *convTranspose) axis(in, k, s, d, adj, pb, pe, out int) (size, begin int, err error) {
	natural := (in-1)*s + adj + (k-1)*d + 1
	switch {
	case out > 0:
		total := max(0, natural-out)
		return out, op.split(total), nil
	case op.autoPad == "SAME_UPPER" || op.autoPad == "SAME_LOWER":
		total := max(0, natural-in*s)
		return natural - total, op.split(total), nil
	case op.autoPad == "VALID":
		pb, pe = 0, 0
	}
	size = natural - pb - pe
	if size < 1 {
		return 0, 0, fmt.Errorf("output size %d (input %d, pads %d+%d) is not positive", size, in, pb, pe)
	}
	return size, pb, nil
}

// split returns the begin pad of a total padding computed from
// output_shape or auto_pad SAME_*: the ONNX spec's rule, which onnxruntime
// 1.30 follows (checked on models with odd totals): total/2 for SAME_UPPER,
// the larger half otherwise.
func (op *convTranspose) split(total int) int {
	if op.autoPad == "SAME_UPPER" {
		return total / 2
	}
	return total - total/2
}

// dims checks the shapes and returns the conv view's geometry: h×w is
// Y's plane, oh×ow X's.
func (op *convTranspose) dims(in []*tensor.Tensor) (geo window2d, err error) {
	x, w := in[0], in[1]
	fail := func(format string, args ...any) (window2d, error) {
		return geo, fmt.Errorf("%w: %w", nodeErr(op.node, format, args...), ErrShape)
	}
	if _, err := op.win.spatial(x.Rank()); err != nil {
		return geo, fmt.Errorf("%w: %w", nodeErr(op.node, "input %v", x.Shape), err)
	}
	if w.Rank() != x.Rank() || w.Shape[0] != x.Shape[1] || w.Shape[0]%op.group != 0 {
		return fail("input %v and weight %v do not fit group %d (want W.shape[0] = C, divisible by group)", x.Shape, w.Shape, op.group)
	}
	m := w.Shape[1] * op.group
	if b := bias(in); b != nil && b.Size() != m {
		return fail("bias %v; want %d values", b.Shape, m)
	}
	ih, iw := hw(x.Shape)
	kh, kw := hw(w.Shape)
	if s := op.win.kernel; s != nil && (s[0] != kh || s[1] != kw) {
		return fail("kernel_shape %v disagrees with the %dx%d weight", s, kh, kw)
	}
	geo = window2d{oh: ih, ow: iw, kh: kh, kw: kw, sh: op.win.strides[0], sw: op.win.strides[1], dh: op.win.dilations[0], dw: op.win.dilations[1]}
	out := [2]int{}
	if op.outSize != nil {
		out = [2]int{op.outSize[0], op.outSize[1]}
	}
	pads := op.win.pads
	if geo.h, geo.pt, err = op.axis(ih, kh, geo.sh, geo.dh, op.outPad[0], pads[0], pads[2], out[0]); err != nil {
		return fail("height: %v", err)
	}
	if geo.w, geo.pl, err = op.axis(iw, kw, geo.sw, geo.dw, op.outPad[1], pads[1], pads[3], out[1]); err != nil {
		return fail("width: %v", err)
	}
	// The conv view's end pads make its output exactly X's plane (they are
	// negative with output padding; only pointwise() reads them).
	geo.pb = (ih-1)*geo.sh + (kh-1)*geo.dh + 1 - geo.h - geo.pt
	geo.pr = (iw-1)*geo.sw + (kw-1)*geo.dw + 1 - geo.w - geo.pl
	return geo, nil
}

// pass returns the sizes of the conv view for a batch of n samples.
func (op *convTranspose) pass(in []*tensor.Tensor, geo *window2d) *convPass {
	x, w := in[0], in[1]
	p := &convPass{geo: geo, n: x.Shape[0], c: w.Shape[1] * op.group, m: x.Shape[1], g: op.group}
	p.cg, p.mg = p.c/p.g, p.m/p.g
	p.ckk = p.cg * geo.kh * geo.kw
	p.ckAll = p.c * geo.kh * geo.kw
	p.p = geo.oh * geo.ow
	p.np = p.n * p.p
	p.chw = p.c * geo.h * geo.w
	p.mp = p.m * p.p
	p.gm = newGemmer(op.prec)
	p.gm.keep(w.Data)
	return p
}

// outShape returns Y's shape.
func (op *convTranspose) outShape(p *convPass, rank int) []int {
	if rank == 3 {
		return []int{p.n, p.c, p.geo.w}
	}
	return []int{p.n, p.c, p.geo.h, p.geo.w}
}

func (op *convTranspose) Forward(in []*tensor.Tensor) (*tensor.Tensor, any, error) {
	if len(in) < 2 || in[0] == nil || in[1] == nil {
		return nil, nil, fmt.Errorf("missing input")
	}
	geo, err := op.dims(in)
	if err != nil {
		return nil, nil, err
	}
	st := &convTState{geo: geo}
	p := op.pass(in, &st.geo)
	out := tensor.New(op.outShape(p, in[0].Rank())...)
	p.backwardData(out.Data, p.n, dataTerm{in[0].Data, in[1].Data})
	if b := bias(in); b != nil {
		addChannelBias(out.Data, b.Data, p.n, p.c, geo.h*geo.w)
	}
	return out, st, nil
}

// channelSums sets db[i] to the sum of channel i of y [nb, c, hw].
func channelSums(db, y []float64, nb, c, hw int) {
	clear(db)
	for b := 0; b < nb; b++ {
		for i := range db {
			db[i] += rowSum(y[(b*c+i)*hw : (b*c+i+1)*hw])
		}
	}
}

func (op *convTranspose) Backward(in []*tensor.Tensor, out *tensor.Tensor, state any, gout *tensor.Tensor, need []bool) []*tensor.Tensor {
	gin, _ := op.BackwardTangent(in, make([]*tensor.Tensor, len(in)), out, nil, state, gout, nil, need)
	return gin
}

// Tangent returns T(tX, W) + T(X, tW) + tB for each direction.
func (op *convTranspose) Tangent(in, tin []*tensor.Tensor, out *tensor.Tensor, state any) *tensor.Tensor {
	st := state.(*convTState)
	p := op.pass(in, &st.geo)
	k := tangentCount(tin)
	if k == 0 {
		return nil
	}
	tx, tw, tb := tin[0], tin[1], tangentAt(tin, 2)
	ys, ws := out.Size(), in[1].Size()
	ty := tensor.New(withK(k, out.Shape)...)
	if tx != nil {
		p.backwardData(ty.Data, k*p.n, dataTerm{tx.Data, in[1].Data})
	}
	for kk := 0; kk < k; kk++ {
		if tw != nil {
			p.backwardData(ty.Data[kk*ys:], p.n, dataTerm{in[0].Data, tw.Data[kk*ws:]})
		}
		if tb != nil {
			addChannelBias(ty.Data[kk*ys:], tb.Data[kk*p.c:], p.n, p.c, st.geo.h*st.geo.w)
		}
	}
	return ty
}

// BackwardTangent returns the gradients gX = conv(gY, W),
// gW = X ⊗ cols(gY), gB = channel sums of gY, and their tangents
// conv(tgY, W) + conv(gY, tW), tX ⊗ cols(gY) + X ⊗ cols(tgY) and channel
// sums of tgY.
func (op *convTranspose) BackwardTangent(in, tin []*tensor.Tensor, out, _ *tensor.Tensor, state any, gout, tgout *tensor.Tensor, need []bool) (gin, tgin []*tensor.Tensor) {
	st := state.(*convTState)
	p := op.pass(in, &st.geo)
	k := tangentCount(append(tin[:len(tin):len(tin)], tgout))
	gin = make([]*tensor.Tensor, len(in))
	tgin = make([]*tensor.Tensor, len(in))
	tx, tw := tin[0], tin[1]
	xs, ws, ys := in[0].Size(), in[1].Size(), out.Size()
	gy := colSource{x: gout.Data}
	if need[0] {
		gin[0] = tensor.New(in[0].Shape...)
		p.forward(gin[0].Data, gy, p.n, in[1].Data, 1, nil)
		if k > 0 && (tgout != nil || tw != nil) {
			tgin[0] = tensor.New(withK(k, in[0].Shape)...)
			if tgout != nil {
				p.forward(tgin[0].Data, colSource{x: tgout.Data}, k*p.n, in[1].Data, 1, nil)
			}
			if tw != nil {
				p.forward(tgin[0].Data, gy, p.n, tw.Data, k, nil)
			}
		}
	}
	if need[1] {
		gin[1] = tensor.New(in[1].Shape...)
		terms := []weightTerm{{gin[1].Data, in[0].Data, gy}}
		if k > 0 && (tgout != nil || tx != nil) {
			tgin[1] = tensor.New(withK(k, in[1].Shape)...)
			for kk := 0; kk < k && tx != nil; kk++ {
				terms = append(terms, weightTerm{tgin[1].Data[kk*ws:], tx.Data[kk*xs:], gy})
			}
			for kk := 0; kk < k && tgout != nil; kk++ {
				terms = append(terms, weightTerm{tgin[1].Data[kk*ws:], in[0].Data, colSource{x: tgout.Data[kk*ys : (kk+1)*ys]}})
			}
		}
		p.backwardWeight(p.n, terms...)
	}
	if b := bias(in); b != nil && need[2] {
		plane := st.geo.h * st.geo.w
		gin[2] = tensor.New(b.Shape...)
		channelSums(gin[2].Data, gout.Data, p.n, p.c, plane)
		if k > 0 && tgout != nil {
			tgin[2] = tensor.New(withK(k, b.Shape)...)
			for kk := 0; kk < k; kk++ {
				channelSums(tgin[2].Data[kk*p.c:(kk+1)*p.c], tgout.Data[kk*ys:], p.n, p.c, plane)
			}
		}
	}
	return gin, tgin
}
