package network

import (
	"fmt"
	"math"
	"sync"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

func init() {
	register("MaxPool", buildMaxPool)
	register("AveragePool", buildAveragePool)
	register("GlobalAveragePool", buildGlobalAveragePool)
}

// axisTaps describes the windows along one spatial axis: window o covers
// input positions start[o] + i*dil for taps i in [lo[o], hi[o]) inside
// the input; padded[o] counts its taps inside the padded input (what
// count_include_pad divides by).
type axisTaps struct {
	start, lo, hi, padded []int
	dil                   int
}

func newAxisTaps(out, in, k, stride, dil, pb, pe int) axisTaps {
	a := axisTaps{start: make([]int, out), lo: make([]int, out), hi: make([]int, out), padded: make([]int, out), dil: dil}
	for o := 0; o < out; o++ {
		s := o*stride - pb
		a.start[o] = s
		inside := func(pos, from, to int) bool { return pos >= from && pos < to }
		lo, hi, plo, phi := k, 0, k, 0
		for i := 0; i < k; i++ {
			p := s + i*dil
			if inside(p, 0, in) {
				lo, hi = min(lo, i), i+1
			}
			if inside(p, -pb, in+pe) {
				plo, phi = min(plo, i), i+1
			}
		}
		if hi < lo {
			hi = lo
		}
		a.lo[o], a.hi[o] = lo, hi
		a.padded[o] = max(0, phi-plo)
	}
	return a
}

// poolPlan is the resolved window of a pooling pass.
type poolPlan struct {
	geo    window2d
	planes int // N*C
	rank   int // of the input: 3 (1-D) or 4 (2-D)
	ty, tx axisTaps
}

// pool holds what MaxPool and AveragePool share.
type pool struct {
	node *onnx.Node
	win  windowSpec
}

func newPool(n *onnx.Node) (pool, error) {
	if len(n.Inputs) < 1 || n.Inputs[0] == "" {
		return pool{}, nodeErr(n, "needs input X")
	}
	win, err := parseWindow(n, true)
	if err != nil {
		return pool{}, err
	}
	return pool{node: n, win: win}, nil
}

func (p *pool) plan(x *tensor.Tensor) (*poolPlan, error) {
	if _, err := p.win.spatial(x.Rank()); err != nil {
		return nil, fmt.Errorf("%w: %w", nodeErr(p.node, "input %v", x.Shape), err)
	}
	h, w := hw(x.Shape)
	geo, err := p.win.geometry(h, w, p.win.kernel[0], p.win.kernel[1])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", nodeErr(p.node, "input %v: %v", x.Shape, err), ErrShape)
	}
	pl := &poolPlan{geo: geo, planes: x.Shape[0] * x.Shape[1], rank: x.Rank(),
		ty: newAxisTaps(geo.oh, geo.h, geo.kh, geo.sh, geo.dh, geo.pt, geo.pb),
		tx: newAxisTaps(geo.ow, geo.w, geo.kw, geo.sw, geo.dw, geo.pl, geo.pr)}
	for _, a := range []axisTaps{pl.ty, pl.tx} {
		for o := range a.lo {
			if a.lo[o] == a.hi[o] {
				return nil, fmt.Errorf("%w: %w", nodeErr(p.node, "input %v: a pooling window lies entirely in the padding (pads %v too large for the kernel)", x.Shape, p.win.pads), ErrShape)
			}
		}
	}
	return pl, nil
}

func (pl *poolPlan) outShape(x *tensor.Tensor) []int {
	return pl.geo.outShape(x.Shape[0], x.Shape[1], pl.rank)
}

// maxPool is ONNX MaxPool (1-D or 2-D, without the Indices output). The Forward
// state is the argmax of every window; the op is piecewise linear, so its
// tangents and their gradients route through the same argmax.
type maxPool struct{ pool }

func buildMaxPool(n *onnx.Node, consts map[string]*tensor.Tensor, opset int64) (Op, error) {
	if len(n.Outputs) > 1 && n.Outputs[1] != "" {
		return nil, fmt.Errorf("%w: %w", nodeErr(n, "the Indices output is not supported"), ErrUnsupported)
	}
	p, err := newPool(n)
	if err != nil {
		return nil, err
	}
	return &maxPool{p}, nil
}

// maxPoolState holds the input index (into X's data) of every output's
// maximum.
type maxPoolState struct {
	argmax []int
	inSize int
}

func (op *maxPool) Forward(in []*tensor.Tensor) (*tensor.Tensor, any, error) {
	x := in[0]
	pl, err := op.plan(x)
	if err != nil {
		return nil, nil, err
	}
	y := tensor.New(pl.outShape(x)...)
	arg := make([]int, y.Size())
	maxPoolInto(pl, x.Data, y.Data, arg)
	return y, &maxPoolState{argmax: arg, inSize: x.Size()}, nil
}

// inferAlloc is Forward for Infer: the output in memory from alloc (every
// value written: fillOp), the argmax, which only Backward reads, in a
// recycled buffer.
func (op *maxPool) inferAlloc(in []*tensor.Tensor, alloc func(n int) []float64) (*tensor.Tensor, error) {
	x := in[0]
	pl, err := op.plan(x)
	if err != nil {
		return nil, err
	}
	shape := pl.outShape(x)
	y := tensor.FromData(alloc(tensor.Size(shape)), shape...)
	arg := getIntScratch(y.Size())
	maxPoolInto(pl, x.Data, y.Data, arg)
	putIntScratch(arg)
	return y, nil
}

// fills: maxPoolInto writes every output value.
func (op *maxPool) fills() {}

// intScratch recycles maxPool's argmax buffers in Infer.
var intScratch sync.Pool // of *[]int

func getIntScratch(n int) []int {
	if p, ok := intScratch.Get().(*[]int); ok && cap(*p) >= n {
		return (*p)[:n]
	}
	return make([]int, n)
}

func putIntScratch(b []int) { intScratch.Put(&b) }

// maxPoolInto sets every value of y to its window's maximum (the first
// one when several are equal) and arg to that value's index in x.
func maxPoolInto(pl *poolPlan, x, y []float64, arg []int) {
	g := &pl.geo
	hw, ohw := g.h*g.w, g.oh*g.ow
	if pl.inside() {
		maxPoolInside(g, pl.planes, x, y, arg)
		return
	}
	for p := 0; p < pl.planes; p++ {
		src := x[p*hw : (p+1)*hw]
		for oy := 0; oy < g.oh; oy++ {
			for ox := 0; ox < g.ow; ox++ {
				// The first tap inside the input starts; a later one
				// wins only when strictly greater (first maximum).
				x0 := pl.tx.start[ox]
				bi := (pl.ty.start[oy]+pl.ty.lo[oy]*g.dh)*g.w + x0 + pl.tx.lo[ox]*g.dw
				best := src[bi]
				for i := pl.ty.lo[oy]; i < pl.ty.hi[oy]; i++ {
					row := (pl.ty.start[oy]+i*g.dh)*g.w + x0
					for j := pl.tx.lo[ox]; j < pl.tx.hi[ox]; j++ {
						idx := row + j*g.dw
						best, bi = maxSelect(best, bi, src[idx], idx)
					}
				}
				o := p*ohw + oy*g.ow + ox
				y[o], arg[o] = best, p*hw+bi
			}
		}
	}
}

// inside reports whether every window lies entirely inside the input
// (no tap in the padding).
func (pl *poolPlan) inside() bool {
	g := &pl.geo
	return g.oh > 0 && g.ow > 0 &&
		pl.ty.start[0] >= 0 && pl.ty.start[g.oh-1]+(g.kh-1)*g.dh < g.h &&
		pl.tx.start[0] >= 0 && pl.tx.start[g.ow-1]+(g.kw-1)*g.dw < g.w
}

// maxPoolInside is MaxPool's forward for windows entirely inside the input:
// y and arg (as in maxPoolState) for planes planes of x.
func maxPoolInside(g *window2d, planes int, x, y []float64, arg []int) {
	hw, ohw := g.h*g.w, g.oh*g.ow
	y0 := -g.pt // start row of the first window (>= 0 here)
	x0 := -g.pl
	for p := 0; p < planes; p++ {
		base := p * hw
		src := x[base : base+hw]
		yo, ao := y[p*ohw:(p+1)*ohw], arg[p*ohw:(p+1)*ohw]
		for oy := 0; oy < g.oh; oy++ {
			top := (y0 + oy*g.sh) * g.w
			yr, ar := yo[oy*g.ow:(oy+1)*g.ow], ao[oy*g.ow:(oy+1)*g.ow]
			if g.kh == 2 && g.kw == 2 && g.dh == 1 && g.dw == 1 {
				for ox := range yr {
					i := top + x0 + ox*g.sw
					r0, r1 := src[i:i+2], src[i+g.w:i+g.w+2]
					best, bi := r0[0], i
					best, bi = maxSelect(best, bi, r0[1], i+1)
					best, bi = maxSelect(best, bi, r1[0], i+g.w)
					best, bi = maxSelect(best, bi, r1[1], i+g.w+1)
					yr[ox], ar[ox] = best, base+bi
				}
				continue
			}
			for ox := range yr {
				first := top + x0 + ox*g.sw
				best, bi := src[first], first
				for i := 0; i < g.kh; i++ {
					row := first + i*g.dh*g.w
					for j := 0; j < g.kw; j++ {
						best, bi = maxSelect(best, bi, src[row+j*g.dw], row+j*g.dw)
					}
				}
				yr[ox], ar[ox] = best, base+bi
			}
		}
	}
}

// maxSelect returns (v, idx) when v > best, else (best, bi), without a
// branch (random data would mispredict half of them).
func maxSelect(best float64, bi int, v float64, idx int) (float64, int) {
	m := -int(b2u8(v > best)) // all ones when v wins
	bi ^= (bi ^ idx) & m
	bb := math.Float64bits(best)
	bb ^= (bb ^ math.Float64bits(v)) & uint64(m)
	return math.Float64frombits(bb), bi
}

// gather returns t [nb]+outShape with t[b, o] = src[b, argmax[o]].
func (st *maxPoolState) gather(src []float64, shape []int) *tensor.Tensor {
	t := tensor.New(shape...)
	n := len(st.argmax)
	for b := 0; b < len(t.Data)/n; b++ {
		d, s := t.Data[b*n:(b+1)*n], src[b*st.inSize:(b+1)*st.inSize]
		for o, a := range st.argmax {
			d[o] = s[a]
		}
	}
	return t
}

// scatter returns t (shape) with t[b, argmax[o]] += g[b, o].
func (st *maxPoolState) scatter(g []float64, shape []int) *tensor.Tensor {
	t := tensor.New(shape...)
	n := len(st.argmax)
	for b := 0; b < len(g)/n; b++ {
		d, s := t.Data[b*st.inSize:(b+1)*st.inSize], g[b*n:(b+1)*n]
		for o, a := range st.argmax {
			d[a] += s[o]
		}
	}
	return t
}

func (op *maxPool) Backward(in []*tensor.Tensor, out *tensor.Tensor, state any, gout *tensor.Tensor, need []bool) []*tensor.Tensor {
	gin := make([]*tensor.Tensor, len(in))
	if need[0] {
		gin[0] = state.(*maxPoolState).scatter(gout.Data, in[0].Shape)
	}
	return gin
}

func (op *maxPool) Tangent(in, tin []*tensor.Tensor, out *tensor.Tensor, state any) *tensor.Tensor {
	if tin[0] == nil {
		return nil
	}
	return state.(*maxPoolState).gather(tin[0].Data, append([]int{tin[0].Shape[0]}, out.Shape...))
}

func (op *maxPool) BackwardTangent(in, tin []*tensor.Tensor, out, tout *tensor.Tensor, state any, gout, tgout *tensor.Tensor, need []bool) (gin, tgin []*tensor.Tensor) {
	gin = op.Backward(in, out, state, gout, need)
	tgin = make([]*tensor.Tensor, len(in))
	if need[0] && tgout != nil {
		tgin[0] = state.(*maxPoolState).scatter(tgout.Data, append([]int{tgout.Shape[0]}, in[0].Shape...))
	}
	return gin, tgin
}

// avgPool is ONNX AveragePool (1-D or 2-D): the mean over each window of the
// input elements (count_include_pad=0) or of the padded input
// (count_include_pad=1). It is linear in X.
type avgPool struct {
	pool
	includePad bool
}

func buildAveragePool(n *onnx.Node, consts map[string]*tensor.Tensor, opset int64) (Op, error) {
	p, err := newPool(n)
	if err != nil {
		return nil, err
	}
	inc, err := layerInt(n, "count_include_pad", 0)
	if err != nil {
		return nil, err
	}
	return &avgPool{pool: p, includePad: inc != 0}, nil
}

// apply computes the average pooling of nb*planes planes of src into dst
// (adjoint false), or its adjoint: dst planes of the input size receive
// src's output values spread over their windows (adjoint true).
func (op *avgPool) apply(pl *poolPlan, src, dst []float64, planes int, adjoint bool) {
	g := &pl.geo
	hw, ohw := g.h*g.w, g.oh*g.ow
	for p := 0; p < planes; p++ {
		for oy := 0; oy < g.oh; oy++ {
			for ox := 0; ox < g.ow; ox++ {
				var div int
				if op.includePad {
					div = pl.ty.padded[oy] * pl.tx.padded[ox]
				} else {
					div = (pl.ty.hi[oy] - pl.ty.lo[oy]) * (pl.tx.hi[ox] - pl.tx.lo[ox])
				}
				inv := 1 / float64(div)
				o := p*ohw + oy*g.ow + ox
				var sum, share float64
				if adjoint {
					share = src[o] * inv
				}
				for i := pl.ty.lo[oy]; i < pl.ty.hi[oy]; i++ {
					row := p*hw + (pl.ty.start[oy]+i*g.dh)*g.w + pl.tx.start[ox]
					for j := pl.tx.lo[ox]; j < pl.tx.hi[ox]; j++ {
						if adjoint {
							dst[row+j*g.dw] += share
						} else {
							sum += src[row+j*g.dw]
						}
					}
				}
				if !adjoint {
					dst[o] = sum * inv
				}
			}
		}
	}
}

// avgPoolState is avgPool's Forward state.
type avgPoolState struct{ plan *poolPlan }

func (op *avgPool) Forward(in []*tensor.Tensor) (*tensor.Tensor, any, error) {
	x := in[0]
	pl, err := op.plan(x)
	if err != nil {
		return nil, nil, err
	}
	y := tensor.New(pl.outShape(x)...)
	op.apply(pl, x.Data, y.Data, pl.planes, false)
	return y, &avgPoolState{plan: pl}, nil
}

func (op *avgPool) Backward(in []*tensor.Tensor, out *tensor.Tensor, state any, gout *tensor.Tensor, need []bool) []*tensor.Tensor {
	gin := make([]*tensor.Tensor, len(in))
	if need[0] {
		pl := state.(*avgPoolState).plan
		gin[0] = tensor.New(in[0].Shape...)
		op.apply(pl, gout.Data, gin[0].Data, pl.planes, true)
	}
	return gin
}

func (op *avgPool) Tangent(in, tin []*tensor.Tensor, out *tensor.Tensor, state any) *tensor.Tensor {
	if tin[0] == nil {
		return nil
	}
	pl := state.(*avgPoolState).plan
	k := tin[0].Shape[0]
	t := tensor.New(append([]int{k}, out.Shape...)...)
	op.apply(pl, tin[0].Data, t.Data, k*pl.planes, false)
	return t
}

func (op *avgPool) BackwardTangent(in, tin []*tensor.Tensor, out, tout *tensor.Tensor, state any, gout, tgout *tensor.Tensor, need []bool) (gin, tgin []*tensor.Tensor) {
	gin = op.Backward(in, out, state, gout, need)
	tgin = make([]*tensor.Tensor, len(in))
	if need[0] && tgout != nil {
		pl := state.(*avgPoolState).plan
		k := tgout.Shape[0]
		tgin[0] = tensor.New(append([]int{k}, in[0].Shape...)...)
		op.apply(pl, tgout.Data, tgin[0].Data, k*pl.planes, true)
	}
	return gin, tgin
}

// globalAvgPool is ONNX GlobalAveragePool: the mean over all spatial
// dimensions of an [N, C, ...] input, output [N, C, 1, ...]. Linear.
type globalAvgPool struct{ node *onnx.Node }

func buildGlobalAveragePool(n *onnx.Node, consts map[string]*tensor.Tensor, opset int64) (Op, error) {
	if len(n.Inputs) < 1 || n.Inputs[0] == "" {
		return nil, nodeErr(n, "needs input X")
	}
	return &globalAvgPool{node: n}, nil
}

// planeMean sets dst[p] to the mean of plane p (size s) of src, for
// len(dst) planes; planeSpread is its adjoint (dst planes += src[p]/s).
func planeMean(dst, src []float64, s int) {
	inv := 1 / float64(s)
	for p := range dst {
		sum := 0.0
		for _, v := range src[p*s : (p+1)*s] {
			sum += v
		}
		dst[p] = sum * inv
	}
}

func planeSpread(dst, src []float64, s int) {
	inv := 1 / float64(s)
	for p, v := range src {
		share := v * inv
		row := dst[p*s : (p+1)*s]
		for i := range row {
			row[i] += share
		}
	}
}

func (op *globalAvgPool) Forward(in []*tensor.Tensor) (*tensor.Tensor, any, error) {
	x := in[0]
	if x.Rank() < 3 {
		return nil, nil, fmt.Errorf("%w: %w", nodeErr(op.node, "input %v; want [N, C, spatial...]", x.Shape), ErrShape)
	}
	shape := []int{x.Shape[0], x.Shape[1]}
	for range x.Shape[2:] {
		shape = append(shape, 1)
	}
	y := tensor.New(shape...)
	if y.Size() > 0 && x.Size() > 0 {
		planeMean(y.Data, x.Data, x.Size()/y.Size())
	}
	return y, nil, nil
}

func (op *globalAvgPool) Backward(in []*tensor.Tensor, out *tensor.Tensor, state any, gout *tensor.Tensor, need []bool) []*tensor.Tensor {
	gin := make([]*tensor.Tensor, len(in))
	if need[0] {
		gin[0] = tensor.New(in[0].Shape...)
		planeSpread(gin[0].Data, gout.Data, in[0].Size()/max(1, out.Size()))
	}
	return gin
}

func (op *globalAvgPool) Tangent(in, tin []*tensor.Tensor, out *tensor.Tensor, state any) *tensor.Tensor {
	if tin[0] == nil {
		return nil
	}
	t := tensor.New(append([]int{tin[0].Shape[0]}, out.Shape...)...)
	planeMean(t.Data, tin[0].Data, in[0].Size()/max(1, out.Size()))
	return t
}

func (op *globalAvgPool) BackwardTangent(in, tin []*tensor.Tensor, out, tout *tensor.Tensor, state any, gout, tgout *tensor.Tensor, need []bool) (gin, tgin []*tensor.Tensor) {
	gin = op.Backward(in, out, state, gout, need)
	tgin = make([]*tensor.Tensor, len(in))
	if need[0] && tgout != nil {
		tgin[0] = tensor.New(append([]int{tgout.Shape[0]}, in[0].Shape...)...)
		planeSpread(tgin[0].Data, tgout.Data, in[0].Size()/max(1, out.Size()))
	}
	return gin, tgin
}
