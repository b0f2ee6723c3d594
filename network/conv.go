package network

import (
	"fmt"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

func init() {
	register("Conv", buildConv)
}

// conv is a 2-D convolution over NCHW data: inputs X [N,C,H,W], W
// [M, C/group, kh, kw] and optional B [M]; output [N, M, OH, OW]. A 1-D
// convolution ([N,C,L]) runs as a 2-D one of height 1.
//
// It runs as im2col + GEMM. Columns of nb samples form a
// [C*kh*kw, nb*OH*OW] matrix (row (c,i,j), column (sample,oh,ow)), so each
// group is one matrix product per block of samples. Layers with enough
// output positions (see perSampleMinP) run one product per sample, straight
// between the NCHW layouts of X, W and the output, on columns made in a
// cache-sized buffer (a 1x1, stride-1, unpadded convolution uses X itself
// as its columns). Smaller layers batch chunks of samples of about
// colsChunk column values into one product and move output gradients to
// the matching channel-major layout [M, nb*OH*OW] by block copies. In that
// chunked mode the Forward state keeps X's columns when they hold at most
// colsKeepLimit values; otherwise they are recomputed when needed.
//
// Tangents treat the K directions of X as a batch of K*N samples, and the
// K weight directions share the columns of X.
type conv struct {
	node  *onnx.Node
	group int
	win   windowSpec
	prec  Precision
}

func (c *conv) setPrecision(p Precision) { c.prec = p }

// Memory policy of conv (variables so that tests can exercise the
// recomputing, per-sample and multi-chunk paths on small layers).
var (
	// colsKeepLimit is the largest number of values (64 MiB) of X's
	// columns (kh*kw times X's size) the Forward state keeps.
	colsKeepLimit = 1 << 23
	// colsChunk is the target number of values (8 MiB) of one chunk of
	// columns.
	colsChunk = 1 << 20
	// perSampleMinP is the smallest number of output positions (OH*OW)
	// for which products run per sample. Below 4*perSampleMinP positions
	// the weights must also have at most perSampleMaxW values (256 KiB):
	// each per-sample product reads W (and the weight gradient's products
	// read and write dW), which must stay cheap next to the product.
	perSampleMinP = 64
	perSampleMaxW = 1 << 15
)

// convState is conv's Forward state.
type convState struct {
	geo  window2d
	cols []float64 // X's columns [C*kh*kw, N*OH*OW], or nil
}

func buildConv(n *onnx.Node, consts map[string]*tensor.Tensor, opset int64) (Op, error) {
	if len(n.Inputs) < 2 || n.Inputs[0] == "" || n.Inputs[1] == "" {
		return nil, nodeErr(n, "needs inputs X and W; got %d inputs", len(n.Inputs))
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
	if w, ok := consts[n.Inputs[1]]; ok {
		if _, err := win.spatial(w.Rank()); err != nil {
			return nil, fmt.Errorf("%w: %w", nodeErr(n, "weight %v", w.Shape), err)
		}
	}
	return &conv{node: n, group: int(group), win: win}, nil
}

// dims checks the input shapes and returns the geometry.
func (c *conv) dims(in []*tensor.Tensor) (geo window2d, err error) {
	x, w := in[0], in[1]
	if _, err := c.win.spatial(x.Rank()); err != nil {
		return geo, fmt.Errorf("%w: %w", nodeErr(c.node, "input %v", x.Shape), err)
	}
	if w.Rank() != x.Rank() {
		return geo, fmt.Errorf("%w: %w", nodeErr(c.node, "input %v and weight %v differ in rank", x.Shape, w.Shape), ErrShape)
	}
	m, cg := w.Shape[0], w.Shape[1]
	if x.Shape[1] != cg*c.group || m%c.group != 0 {
		return geo, fmt.Errorf("%w: %w", nodeErr(c.node, "input %v and weight %v do not fit group %d (want C = group*W.shape[1] and M divisible by group)", x.Shape, w.Shape, c.group), ErrShape)
	}
	if b := bias(in); b != nil && b.Size() != m {
		return geo, fmt.Errorf("%w: %w", nodeErr(c.node, "bias %v; want %d values", b.Shape, m), ErrShape)
	}
	h, wd := hw(x.Shape)
	kh, kw := hw(w.Shape)
	geo, err = c.win.geometry(h, wd, kh, kw)
	if err != nil {
		return geo, fmt.Errorf("%w: %w", nodeErr(c.node, "input %v, weight %v: %v", x.Shape, w.Shape, err), ErrShape)
	}
	return geo, nil
}

// bias returns the optional third input, or nil.
func bias(in []*tensor.Tensor) *tensor.Tensor {
	if len(in) > 2 {
		return in[2]
	}
	return nil
}

// convPass holds the sizes of one conv pass.
type convPass struct {
	geo          *window2d
	n, c, m, g   int
	cg, mg, ckk  int // channels per group, output channels per group, Cg*kh*kw
	p, np, ckAll int // OH*OW, N*P, C*kh*kw
	chw, mp      int // sample sizes of X and of the output
	gm           *gemmer
	// fresh: forward's dst holds unspecified values (Infer's arena,
	// fillOp), so forward sets each sample or plane of dst to its bias,
	// or zeros, or its first product, as added to zeros, instead of
	// adding to a whole dst cleared beforehand.
	fresh bool
}

func (c *conv) pass(in []*tensor.Tensor, geo *window2d) *convPass {
	x, w := in[0], in[1]
	p := &convPass{geo: geo, n: x.Shape[0], c: x.Shape[1], m: w.Shape[0], g: c.group}
	p.cg, p.mg = p.c/p.g, p.m/p.g
	p.ckk = p.cg * geo.kh * geo.kw
	p.ckAll = p.c * geo.kh * geo.kw
	p.p = geo.oh * geo.ow
	p.np = p.n * p.p
	p.chw = p.c * geo.h * geo.w
	p.mp = p.m * p.p
	p.gm = newGemmer(c.prec)
	p.gm.keep(w.Data)
	return p
}

// perSample reports whether products run one sample at a time (see
// perSampleMinP).
func (p *convPass) perSample() bool {
	return p.p >= perSampleMinP && (p.p >= 4*perSampleMinP || p.m*p.ckk <= perSampleMaxW)
}

// pointwise reports whether a sample's columns are the sample itself
// (1x1 kernel, stride 1, no padding).
func (p *convPass) pointwise() bool {
	g := p.geo
	return g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.pt == 0 && g.pl == 0 && g.pb == 0 && g.pr == 0
}

// keepCols reports whether Forward keeps X's columns in its state.
func (p *convPass) keepCols() bool {
	return !p.perSample() && !p.depthwise() && p.ckAll*p.np <= colsKeepLimit
}

// chunk returns the number of samples per chunk, at most nb.
func (p *convPass) chunk(nb int) int {
	if p.perSample() {
		return 1
	}
	return max(1, min(nb, colsChunk/max(1, p.ckAll*p.p)))
}

// colSource is what columns are made of: samples x [B, C, H, W] and, when
// kept, their columns [C*kh*kw, B*P].
type colSource struct {
	x, cols []float64
}

// same reports whether s and t are the same samples.
func (s colSource) same(t colSource) bool {
	first := func(a []float64) *float64 {
		if len(a) == 0 {
			return nil
		}
		return &a[0]
	}
	return first(s.x) == first(t.x) && len(s.x) == len(t.x) && first(s.cols) == first(t.cols)
}

// colsBuf returns a scratch buffer for the columns of one chunk of src, or
// nil when none is needed (kept or pointwise columns).
func (p *convPass) colsBuf(src colSource, ch int) []float64 {
	if src.cols != nil || (ch == 1 && p.pointwise()) {
		return nil
	}
	return getScratch(p.ckAll * ch * p.p)
}

// columns returns the columns of samples [b0, b0+nb) of src and their
// leading dimension, made in buf (C*kh*kw*nb*P values) unless kept or
// pointwise.
func (p *convPass) columns(src colSource, b0, nb int, buf []float64) ([]float64, int) {
	if src.cols != nil {
		return src.cols[b0*p.p:], len(src.cols) / p.ckAll
	}
	if nb == 1 && p.pointwise() {
		return src.x[b0*p.chw:], p.p
	}
	im2col(src.x[b0*p.chw:], nb, p.c, p.geo, buf)
	return buf, nb * p.p
}

// forward adds conv(x_b, w_k) + bias_k to dst[k, b] for every sample
// b < nb of src and each of kw weight sets w [kw, M, Cg*kh*kw] with biases
// bias [kw, M] (nil: none); dst is [kw, nb, M, P]. In chunked mode the kw
// weight sets make one product per group and chunk.
func (p *convPass) forward(dst []float64, src colSource, nb int, w []float64, kw int, bias []float64) {
	if p.depthwise() {
		p.forwardDepthwise(dst, src.x, nb, w, kw, bias)
		return
	}
	ch := p.chunk(nb)
	if buf := p.colsBuf(src, ch); buf != nil {
		defer putScratch(buf)
		p.forwardChunks(dst, src, nb, w, kw, bias, ch, buf)
		return
	}
	p.forwardChunks(dst, src, nb, w, kw, bias, ch, nil)
}

func (p *convPass) forwardChunks(dst []float64, src colSource, nb int, w []float64, kw int, bias []float64, ch int, buf []float64) {
	if ch == 1 {
		for b := 0; b < nb; b++ {
			cols, ld := p.columns(src, b, 1, buf)
			for k := 0; k < kw; k++ {
				d := dst[(k*nb+b)*p.mp : (k*nb+b+1)*p.mp]
				switch {
				case p.fresh && bias != nil:
					setChannelBias(d, bias[k*p.m:(k+1)*p.m], 1, p.m, p.p)
				case p.fresh:
					clear(d)
				case bias != nil:
					addChannelBias(d, bias[k*p.m:(k+1)*p.m], 1, p.m, p.p)
				}
				for g := 0; g < p.g; g++ {
					p.gm.gemm(false, false, p.mg, p.p, p.ckk, 1, w[(k*p.m+g*p.mg)*p.ckk:], p.ckk, cols[g*p.ckk*ld:], ld, 1, d[g*p.mg*p.p:], p.p)
				}
			}
		}
		return
	}
	var packed []float64
	if kw > 1 && p.g > 1 {
		packed = getScratch(kw * p.mg * p.ckk)
		defer putScratch(packed)
	}
	tmp := getScratch(kw * p.mg * ch * p.p)
	defer putScratch(tmp)
	for b0 := 0; b0 < nb; b0 += ch {
		n := min(ch, nb-b0)
		np := n * p.p
		cols, ld := p.columns(src, b0, n, buf)
		for g := 0; g < p.g; g++ {
			a := w[g*p.mg*p.ckk:]
			if packed != nil {
				for k := 0; k < kw; k++ {
					copy(packed[k*p.mg*p.ckk:(k+1)*p.mg*p.ckk], w[(k*p.m+g*p.mg)*p.ckk:])
				}
				a = packed
			}
			p.gm.gemm(false, false, kw*p.mg, np, p.ckk, 1, a, p.ckk, cols[g*p.ckk*ld:], ld, 0, tmp, np)
			for k := 0; k < kw; k++ {
				// The groups write disjoint channels: when fresh, each
				// value of the chunk is set once, as added to zero.
				addFromChannelMajor(dst[(k*nb+b0)*p.mp:], tmp[k*p.mg*np:], g*p.mg, p.mg, p.m, n, p.p, p.fresh)
			}
		}
	}
	if bias != nil {
		for k := 0; k < kw; k++ {
			addChannelBias(dst[k*nb*p.mp:], bias[k*p.m:(k+1)*p.m], nb, p.m, p.p)
		}
	}
}

// dataTerm is one product of backwardData: an output gradient g
// [nb, M, P] and weights w [M, Cg*kh*kw].
type dataTerm struct{ g, w []float64 }

// backwardData adds to dx [nb, C, H, W] the sum over terms of the
// transposed convolution of g with w (the gradient with respect to X).
func (p *convPass) backwardData(dx []float64, nb int, terms ...dataTerm) {
	if p.depthwise() {
		p.backwardDataDepthwise(dx, nb, terms)
		return
	}
	ch := p.chunk(nb)
	if ch == 1 && p.pointwise() {
		// The columns' gradient is dx itself.
		for b := 0; b < nb; b++ {
			for _, term := range terms {
				for g := 0; g < p.g; g++ {
					p.gm.gemm(true, false, p.ckk, p.p, p.mg, 1, term.w[g*p.mg*p.ckk:], p.ckk, term.g[b*p.mp+g*p.mg*p.p:], p.p, 1, dx[b*p.chw+g*p.ckk*p.p:], p.p)
				}
			}
		}
		return
	}
	dcols := getScratch(p.ckAll * ch * p.p)
	defer putScratch(dcols)
	var gcm []float64
	if ch > 1 {
		gcm = getScratch(p.m * ch * p.p)
		defer putScratch(gcm)
	}
	for b0 := 0; b0 < nb; b0 += ch {
		n := min(ch, nb-b0)
		np := n * p.p
		for t, term := range terms {
			cm := channelMajor(gcm, term.g[b0*p.mp:], n, p.m, p.p)
			beta := 1.0
			if t == 0 {
				beta = 0
			}
			for g := 0; g < p.g; g++ {
				p.gm.gemm(true, false, p.ckk, np, p.mg, 1, term.w[g*p.mg*p.ckk:], p.ckk, cm[g*p.mg*np:], np, beta, dcols[g*p.ckk*np:], np)
			}
		}
		col2im(dcols, n, p.c, p.geo, dx[b0*p.chw:])
	}
}

// weightTerm is one product of backwardWeight: dw [M, Cg*kh*kw] receives
// the output gradient g [nb, M, P] times the columns of src.
type weightTerm struct {
	dw, g []float64
	src   colSource
}

// backwardWeight adds to each term's dw the sum over samples of
// g x columns(src)^T (a gradient with respect to W). Terms with the same
// src next to each other share its columns.
func (p *convPass) backwardWeight(nb int, terms ...weightTerm) {
	if p.depthwise() {
		p.backwardWeightDepthwise(nb, terms)
		return
	}
	ch := p.chunk(nb)
	var buf []float64
	for _, t := range terms {
		if buf == nil {
			if buf = p.colsBuf(t.src, ch); buf != nil {
				defer putScratch(buf)
			}
		}
	}
	if ch == 1 {
		for lo := 0; lo < len(terms); {
			hi := lo + 1
			for hi < len(terms) && terms[hi].src.same(terms[lo].src) {
				hi++
			}
			p.weightRun(nb, terms[lo:hi], buf)
			lo = hi
		}
		return
	}
	gcm := getScratch(p.m * ch * p.p)
	defer putScratch(gcm)
	for b0 := 0; b0 < nb; b0 += ch {
		n := min(ch, nb-b0)
		np := n * p.p
		var cols []float64
		var ld int
		for t, term := range terms {
			if t == 0 || !term.src.same(terms[t-1].src) {
				cols, ld = p.columns(term.src, b0, n, buf)
			}
			cm := channelMajor(gcm, term.g[b0*p.mp:], n, p.m, p.p)
			for g := 0; g < p.g; g++ {
				p.gm.gemm(false, true, p.mg, p.ckk, np, 1, cm[g*p.mg*np:], np, cols[g*p.ckk*ld:], ld, 1, term.dw[g*p.mg*p.ckk:], p.ckk)
			}
		}
	}
}

// weightRun is backwardWeight one sample at a time for terms that share
// their source. The r terms make one product per sample and group: their
// gradients are stacked [r*mg, P], and the product is formed as columns x
// stack^T ([Cg*kh*kw, r*mg], transposed into the dw at the end) when
// Cg*kh*kw > r*mg, a shape that suits BLAS better than a short, wide
// result.
func (p *convPass) weightRun(nb int, run []weightTerm, buf []float64) {
	r := len(run)
	rows := r * p.mg
	trans := p.ckk > rows
	if r == 1 && !trans {
		t := run[0]
		for b := 0; b < nb; b++ {
			cols, ld := p.columns(t.src, b, 1, buf)
			for g := 0; g < p.g; g++ {
				p.gm.gemm(false, true, p.mg, p.ckk, p.p, 1, t.g[b*p.mp+g*p.mg*p.p:], p.p, cols[g*p.ckk*ld:], ld, 1, t.dw[g*p.mg*p.ckk:], p.ckk)
			}
		}
		return
	}
	var gst []float64
	if r > 1 {
		gst = getScratch(rows * p.p)
		defer putScratch(gst)
	}
	acc := getScratch(p.g * rows * p.ckk)
	defer putScratch(acc)
	clear(acc)
	for b := 0; b < nb; b++ {
		cols, ld := p.columns(run[0].src, b, 1, buf)
		for g := 0; g < p.g; g++ {
			gm := run[0].g[b*p.mp+g*p.mg*p.p:]
			if r > 1 {
				for t, term := range run {
					copy(gst[t*p.mg*p.p:(t+1)*p.mg*p.p], term.g[b*p.mp+g*p.mg*p.p:])
				}
				gm = gst
			}
			a := acc[g*rows*p.ckk:]
			if trans {
				p.gm.gemm(false, true, p.ckk, rows, p.p, 1, cols[g*p.ckk*ld:], ld, gm, p.p, 1, a, rows)
			} else {
				p.gm.gemm(false, true, rows, p.ckk, p.p, 1, gm, p.p, cols[g*p.ckk*ld:], ld, 1, a, p.ckk)
			}
		}
	}
	for g := 0; g < p.g; g++ {
		a := acc[g*rows*p.ckk : (g+1)*rows*p.ckk]
		for t, term := range run {
			for i := 0; i < p.mg; i++ {
				dw := term.dw[(g*p.mg+i)*p.ckk : (g*p.mg+i+1)*p.ckk]
				row := t*p.mg + i
				if trans {
					for j := range dw {
						dw[j] += a[j*rows+row]
					}
				} else {
					for j, v := range a[row*p.ckk : (row+1)*p.ckk] {
						dw[j] += v
					}
				}
			}
		}
	}
}

// biasGrad sets db[i] to the sum of channel i of g [nb, M, P].
func (p *convPass) biasGrad(db, g []float64, nb int) {
	clear(db)
	for b := 0; b < nb; b++ {
		for i := range db {
			db[i] += rowSum(g[(b*p.m+i)*p.p : (b*p.m+i+1)*p.p])
		}
	}
}

// rowSum returns the sum of x, with four independent partial sums so that
// long rows are not bound by the latency of one addition chain.
func rowSum(x []float64) float64 {
	var s0, s1, s2, s3 float64
	for len(x) >= 4 {
		s0 += x[0]
		s1 += x[1]
		s2 += x[2]
		s3 += x[3]
		x = x[4:]
	}
	for _, v := range x {
		s0 += v
	}
	return (s0 + s1) + (s2 + s3)
}

func (c *conv) Forward(in []*tensor.Tensor) (*tensor.Tensor, any, error) {
	geo, err := c.dims(in)
	if err != nil {
		return nil, nil, err
	}
	p := c.pass(in, &geo)
	st := &convState{geo: geo}
	if p.keepCols() {
		st.cols = make([]float64, p.ckAll*p.np)
		im2col(in[0].Data, p.n, p.c, &geo, st.cols)
	}
	out := tensor.New(geo.outShape(p.n, p.m, in[0].Rank())...)
	var b []float64
	if bt := bias(in); bt != nil {
		b = bt.Data
	}
	p.forward(out.Data, colSource{x: in[0].Data, cols: st.cols}, p.n, in[1].Data, 1, b)
	return out, st, nil
}

// inferAlloc is Forward for Infer: no state (columns are made per chunk
// in scratch buffers, never kept), the output in memory from alloc, which
// forward clears piece by piece (convPass.fresh) before adding to it.
func (c *conv) inferAlloc(in []*tensor.Tensor, alloc func(n int) []float64) (*tensor.Tensor, error) {
	geo, err := c.dims(in)
	if err != nil {
		return nil, err
	}
	p := c.pass(in, &geo)
	p.fresh = convClearsPieces
	shape := geo.outShape(p.n, p.m, in[0].Rank())
	out := tensor.FromData(alloc(tensor.Size(shape)), shape...)
	if !p.fresh {
		clear(out.Data)
	}
	var b []float64
	if bt := bias(in); bt != nil {
		b = bt.Data
	}
	p.forward(out.Data, colSource{x: in[0].Data}, p.n, in[1].Data, 1, b)
	return out, nil
}

// convClearsPieces is a benchmark switch: when off, inferAlloc clears its
// whole output before forward adds to it (the Infer of before fresh).
var convClearsPieces = true

// fills: forward clears every sample or plane of its output (fresh)
// before adding to it.
func (c *conv) fills() {}

func (c *conv) Backward(in []*tensor.Tensor, out *tensor.Tensor, state any, gout *tensor.Tensor, need []bool) []*tensor.Tensor {
	st := state.(*convState)
	p := c.pass(in, &st.geo)
	gin := make([]*tensor.Tensor, len(in))
	if need[0] {
		gin[0] = tensor.New(in[0].Shape...)
		p.backwardData(gin[0].Data, p.n, dataTerm{gout.Data, in[1].Data})
	}
	if need[1] {
		gin[1] = tensor.New(in[1].Shape...)
		p.backwardWeight(p.n, weightTerm{gin[1].Data, gout.Data, colSource{x: in[0].Data, cols: st.cols}})
	}
	if b := bias(in); b != nil && need[2] {
		gin[2] = tensor.New(b.Shape...)
		p.biasGrad(gin[2].Data, gout.Data, p.n)
	}
	return gin
}

func (c *conv) Tangent(in, tin []*tensor.Tensor, out *tensor.Tensor, state any) *tensor.Tensor {
	st := state.(*convState)
	p := c.pass(in, &st.geo)
	k := tangentCount(tin)
	if k == 0 {
		return nil
	}
	rx, rw, rb := tin[0], tin[1], tangentAt(tin, 2)
	// Ry_k = conv(Rx_k, W) + conv(X, RW_k) + RB_k.
	ry := tensor.New(append([]int{k}, out.Shape...)...)
	if rx != nil {
		p.forward(ry.Data, colSource{x: rx.Data}, k*p.n, in[1].Data, 1, nil)
	}
	if rw != nil {
		var b []float64
		if rb != nil {
			b, rb = rb.Data, nil
		}
		p.forward(ry.Data, colSource{x: in[0].Data, cols: st.cols}, p.n, rw.Data, k, b)
	}
	if rb != nil {
		for kk := 0; kk < k; kk++ {
			addChannelBias(ry.Data[kk*out.Size():], rb.Data[kk*p.m:], p.n, p.m, p.p)
		}
	}
	return ry
}

func (c *conv) BackwardTangent(in, tin []*tensor.Tensor, out, tout *tensor.Tensor, state any, gout, tgout *tensor.Tensor, need []bool) (gin, tgin []*tensor.Tensor) {
	st := state.(*convState)
	p := c.pass(in, &st.geo)
	k := tangentCount(append(tin[:len(tin):len(tin)], tgout))
	if k == 0 {
		return c.Backward(in, out, state, gout, need), make([]*tensor.Tensor, len(in))
	}
	gin = make([]*tensor.Tensor, len(in))
	tgin = make([]*tensor.Tensor, len(in))
	rx, rw := tin[0], tin[1]
	xs, ws, ys := in[0].Size(), in[1].Size(), out.Size()
	// dX = convT(gout, W); R(dX)_k = convT(R gout_k, W) + convT(gout, RW_k).
	if need[0] {
		gin[0] = tensor.New(in[0].Shape...)
		p.backwardData(gin[0].Data, p.n, dataTerm{gout.Data, in[1].Data})
		if tgout != nil || rw != nil {
			tgin[0] = tensor.New(append([]int{k}, in[0].Shape...)...)
			for kk := 0; kk < k; kk++ {
				var terms []dataTerm
				if tgout != nil {
					terms = append(terms, dataTerm{tgout.Data[kk*ys:], in[1].Data})
				}
				if rw != nil {
					terms = append(terms, dataTerm{gout.Data, rw.Data[kk*ws:]})
				}
				p.backwardData(tgin[0].Data[kk*xs:], p.n, terms...)
			}
		}
	}
	// dW = gout x cols(X)^T; R(dW)_k = R gout_k x cols(X)^T + gout x
	// cols(RX_k)^T. The terms on X come first, to share its columns.
	if need[1] {
		x := colSource{x: in[0].Data, cols: st.cols}
		gin[1] = tensor.New(in[1].Shape...)
		terms := []weightTerm{{gin[1].Data, gout.Data, x}}
		if tgout != nil || rx != nil {
			tgin[1] = tensor.New(append([]int{k}, in[1].Shape...)...)
			if tgout != nil {
				for kk := 0; kk < k; kk++ {
					terms = append(terms, weightTerm{tgin[1].Data[kk*ws:], tgout.Data[kk*ys:], x})
				}
			}
			if rx != nil {
				for kk := 0; kk < k; kk++ {
					terms = append(terms, weightTerm{tgin[1].Data[kk*ws:], gout.Data, colSource{x: rx.Data[kk*xs : (kk+1)*xs]}})
				}
			}
		}
		p.backwardWeight(p.n, terms...)
	}
	// dB = channel sums of gout; R(dB)_k = channel sums of R gout_k.
	if b := bias(in); b != nil && need[2] {
		gin[2] = tensor.New(b.Shape...)
		p.biasGrad(gin[2].Data, gout.Data, p.n)
		if tgout != nil {
			tgin[2] = tensor.New(append([]int{k}, b.Shape...)...)
			for kk := 0; kk < k; kk++ {
				p.biasGrad(tgin[2].Data[kk*p.m:(kk+1)*p.m], tgout.Data[kk*ys:], p.n)
			}
		}
	}
	return gin, tgin
}

// tangentAt returns t[i], or nil when t is shorter.
func tangentAt(t []*tensor.Tensor, i int) *tensor.Tensor {
	if i < len(t) {
		return t[i]
	}
	return nil
}

// tangentCount returns K, the number of directions of the non-nil
// tangents (their leading dimension), or 0 when all are nil.
func tangentCount(t []*tensor.Tensor) int {
	for _, x := range t {
		if x != nil && x.Rank() > 0 {
			return x.Shape[0]
		}
	}
	return 0
}

// channelMajor returns x [nb, m, p] in layout [m, nb*p]: x itself when
// nb == 1, else a copy made in buf.
func channelMajor(buf, x []float64, nb, m, p int) []float64 {
	if nb == 1 {
		return x
	}
	for b := 0; b < nb; b++ {
		for i := 0; i < m; i++ {
			copy(buf[(i*nb+b)*p:(i*nb+b+1)*p], x[(b*m+i)*p:(b*m+i+1)*p])
		}
	}
	return buf[:nb*m*p]
}

// addFromChannelMajor adds src, rows channels of layout [rows, nb*p], into
// channels off..off+rows of dst [nb, m, p]; with set, dst's values are
// taken as zeros (0 + v: -0 becomes +0, as added to a zero) without
// reading them.
func addFromChannelMajor(dst, src []float64, off, rows, m, nb, p int, set bool) {
	for i := 0; i < rows; i++ {
		for b := 0; b < nb; b++ {
			d := dst[(b*m+off+i)*p : (b*m+off+i+1)*p]
			s := src[(i*nb+b)*p : (i*nb+b+1)*p]
			if set {
				for j, v := range s {
					d[j] = 0 + v
				}
				continue
			}
			for j, v := range s {
				d[j] += v
			}
		}
	}
}

// setChannelBias is addChannelBias on an x of zeros without reading x:
// every value of channel i becomes 0 + b[i] (-0 becomes +0, as added to a
// zero).
func setChannelBias(x, b []float64, nb, m, p int) {
	for n := 0; n < nb; n++ {
		for i := 0; i < m; i++ {
			bi := 0 + b[i]
			row := x[(n*m+i)*p : (n*m+i+1)*p]
			for j := range row {
				row[j] = bi
			}
		}
	}
}

// addChannelBias adds b[i] to every value of channel i of x [nb, m, p].
func addChannelBias(x, b []float64, nb, m, p int) {
	for n := 0; n < nb; n++ {
		for i := 0; i < m; i++ {
			bi := b[i]
			row := x[(n*m+i)*p : (n*m+i+1)*p]
			for j := range row {
				row[j] += bi
			}
		}
	}
}

// windowSpec holds the sliding-window attributes shared by Conv and the
// pooling ops: kernel_shape (optional for Conv, which takes it from W),
// strides, dilations, pads, auto_pad and ceil_mode. Windows are 2-D or
// 1-D; a 1-D window is held as a 2-D one of height 1.
type windowSpec struct {
	rank      int    // spatial rank the attributes imply: 1, 2, or 0 when none does
	kernel    []int  // [kh, kw]; nil when absent
	strides   [2]int // along H, W
	dilations [2]int
	pads      [4]int // H begin, W begin, H end, W end (ONNX order)
	autoPad   string // NOTSET, SAME_UPPER, SAME_LOWER or VALID
	ceil      bool
}

// parseWindow reads the window attributes of n; needKernel makes
// kernel_shape mandatory (pooling).
func parseWindow(n *onnx.Node, needKernel bool) (windowSpec, error) {
	s := windowSpec{strides: [2]int{1, 1}, dilations: [2]int{1, 1}}
	kernel := []int{1, 1}
	for _, a := range []struct {
		name string
		dst  []int // 2-D layout
		per  int   // values per spatial axis
		min  int
	}{{"kernel_shape", kernel, 1, 1}, {"strides", s.strides[:], 1, 1}, {"dilations", s.dilations[:], 1, 1}, {"pads", s.pads[:], 2, 0}} {
		v, err := layerInts(n, a.name)
		if err != nil {
			return s, err
		}
		if v == nil {
			if a.name == "kernel_shape" && needKernel {
				return s, nodeErr(n, "attribute kernel_shape is missing")
			}
			continue
		}
		r := len(v) / a.per
		if (r != 1 && r != 2) || len(v)%a.per != 0 {
			return s, fmt.Errorf("%w: %w", nodeErr(n, "%s %v: only 1-D and 2-D windows are supported", a.name, v), ErrUnsupported)
		}
		if s.rank != 0 && r != s.rank {
			return s, nodeErr(n, "%s %v is for %d spatial axes, other attributes for %d", a.name, v, r, s.rank)
		}
		s.rank = r
		for i, x := range v {
			if x < a.min {
				return s, nodeErr(n, "%s %v: want values >= %d", a.name, v, a.min)
			}
			if r == 1 {
				a.dst[2*i+1] = x // 1-D: the W slot(s)
			} else {
				a.dst[i] = x
			}
		}
		if a.name == "kernel_shape" {
			s.kernel = kernel
		}
	}
	var err error
	s.autoPad, err = layerString(n, "auto_pad", "NOTSET")
	if err != nil {
		return s, err
	}
	switch s.autoPad {
	case "NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER":
	default:
		return s, nodeErr(n, "auto_pad %q; want NOTSET, SAME_UPPER, SAME_LOWER or VALID", s.autoPad)
	}
	ceil, err := layerInt(n, "ceil_mode", 0)
	if err != nil {
		return s, err
	}
	s.ceil = ceil != 0
	return s, nil
}

// spatial checks that an input of the given rank ([N, C, spatial...]) has
// 1 or 2 spatial axes, agreeing with the attributes; it returns them.
func (s *windowSpec) spatial(rank int) (int, error) {
	r := rank - 2
	if r != 1 && r != 2 {
		return 0, fmt.Errorf("rank-%d input: only 1-D and 2-D windows ([N, C, L] or [N, C, H, W]) are supported: %w", rank, ErrUnsupported)
	}
	if s.rank != 0 && s.rank != r {
		return 0, fmt.Errorf("rank-%d input but %d-D window attributes: %w", rank, s.rank, ErrShape)
	}
	return r, nil
}

// hw returns the height and width of the spatial dims of shape [N, C, ...]
// (height 1 for 1-D).
func hw(shape []int) (h, w int) {
	if len(shape) == 3 {
		return 1, shape[2]
	}
	return shape[2], shape[3]
}

// outShape returns [n, c] followed by the output spatial dims for an
// input of the given rank.
func (g *window2d) outShape(n, c, rank int) []int {
	if rank == 3 {
		return []int{n, c, g.ow}
	}
	return []int{n, c, g.oh, g.ow}
}

// window2d is the resolved geometry of a 2-D window over an H×W input.
type window2d struct {
	h, w, oh, ow   int
	kh, kw         int
	sh, sw, dh, dw int
	pt, pl, pb, pr int // pads: top, left, bottom, right
}

// geometry resolves the window for an h×w input and a kh×kw kernel (the
// kernel_shape attribute, when present, must agree).
func (s *windowSpec) geometry(h, w, kh, kw int) (window2d, error) {
	if s.kernel != nil && (s.kernel[0] != kh || s.kernel[1] != kw) {
		return window2d{}, fmt.Errorf("kernel_shape %v disagrees with the %dx%d kernel", s.kernel, kh, kw)
	}
	g := window2d{h: h, w: w, kh: kh, kw: kw, sh: s.strides[0], sw: s.strides[1], dh: s.dilations[0], dw: s.dilations[1]}
	var err error
	if g.oh, g.pt, g.pb, err = s.axis(h, kh, g.sh, g.dh, s.pads[0], s.pads[2]); err != nil {
		return g, fmt.Errorf("height: %w", err)
	}
	if g.ow, g.pl, g.pr, err = s.axis(w, kw, g.sw, g.dw, s.pads[1], s.pads[3]); err != nil {
		return g, fmt.Errorf("width: %w", err)
	}
	return g, nil
}

// axis resolves one spatial axis: output size and begin/end pads.
func (s *windowSpec) axis(in, k, stride, dil, pb, pe int) (out, b, e int, err error) {
	keff := (k-1)*dil + 1
	switch s.autoPad {
	case "VALID":
		pb, pe = 0, 0
	case "SAME_UPPER", "SAME_LOWER":
		out = (in + stride - 1) / stride
		total := max(0, (out-1)*stride+keff-in)
		if s.autoPad == "SAME_UPPER" {
			pb = total / 2
		} else {
			pb = total - total/2
		}
		return out, pb, total - pb, nil
	}
	span := in + pb + pe - keff
	if in < 1 || span < 0 {
		return 0, 0, 0, fmt.Errorf("input size %d with pads %d+%d is smaller than the window extent %d", in, pb, pe, keff)
	}
	out = span/stride + 1
	if s.ceil {
		out = (span+stride-1)/stride + 1
		// The last window must start inside the input or its begin pad
		// (PyTorch's and onnxruntime's rule).
		if (out-1)*stride >= in+pb {
			out--
		}
	}
	return out, pb, pe, nil
}

// im2col writes the columns of x [nb, c, g.h, g.w] into cols, a
// [c*kh*kw, nb*oh*ow] row-major matrix: row (ci, i, j), column (b, oy, ox)
// holds x[b, ci, oy*sh-pt+i*dh, ox*sw-pl+j*dw], zero outside the input.
func im2col(x []float64, nb, c int, g *window2d, cols []float64) {
	im2colChannels(x, nb, c, 0, c, g, cols)
}

// im2colChannels is im2col writing only the rows of channels [c0, c1)
// (columns.go splits a batch's channels between CPUs).
func im2colChannels(x []float64, nb, c, c0, c1 int, g *window2d, cols []float64) {
	p := g.oh * g.ow
	ld := nb * p
	hw := g.h * g.w
	for ci := c0; ci < c1; ci++ {
		for i := 0; i < g.kh; i++ {
			for j := 0; j < g.kw; j++ {
				row := cols[((ci*g.kh+i)*g.kw+j)*ld:]
				off := j*g.dw - g.pl
				lo, hi := g.validCols(off)
				for b := 0; b < nb; b++ {
					src := x[(b*c+ci)*hw : (b*c+ci+1)*hw]
					dst := row[b*p : (b+1)*p]
					for oy := 0; oy < g.oh; oy++ {
						d := dst[oy*g.ow : (oy+1)*g.ow]
						iy := oy*g.sh - g.pt + i*g.dh
						if iy < 0 || iy >= g.h {
							clear(d)
							continue
						}
						s := src[iy*g.w : (iy+1)*g.w]
						// The padded ends are a few values: plain loops
						// beat calls to clear.
						for ox := range d[:lo] {
							d[ox] = 0
						}
						for ox := hi; ox < len(d); ox++ {
							d[ox] = 0
						}
						if g.sw == 1 {
							copy(d[lo:hi], s[lo+off:hi+off])
							continue
						}
						for ox := lo; ox < hi; ox++ {
							d[ox] = s[ox*g.sw+off]
						}
					}
				}
			}
		}
	}
}

// col2im is im2col's adjoint: it adds every column entry back onto the
// element of dx [nb, c, g.h, g.w] it was copied from.
func col2im(cols []float64, nb, c int, g *window2d, dx []float64) {
	p := g.oh * g.ow
	ld := nb * p
	hw := g.h * g.w
	for ci := 0; ci < c; ci++ {
		for i := 0; i < g.kh; i++ {
			for j := 0; j < g.kw; j++ {
				row := cols[((ci*g.kh+i)*g.kw+j)*ld:]
				off := j*g.dw - g.pl
				lo, hi := g.validCols(off)
				for b := 0; b < nb; b++ {
					dst := dx[(b*c+ci)*hw : (b*c+ci+1)*hw]
					src := row[b*p : (b+1)*p]
					for oy := 0; oy < g.oh; oy++ {
						iy := oy*g.sh - g.pt + i*g.dh
						if iy < 0 || iy >= g.h {
							continue
						}
						s := src[oy*g.ow : (oy+1)*g.ow]
						d := dst[iy*g.w : (iy+1)*g.w]
						if g.sw == 1 {
							dd, ss := d[lo+off:hi+off], s[lo:hi]
							for ox, v := range ss {
								dd[ox] += v
							}
							continue
						}
						for ox := lo; ox < hi; ox++ {
							d[ox*g.sw+off] += s[ox]
						}
					}
				}
			}
		}
	}
}

// validCols returns the range [lo, hi) of output columns ox whose input
// column ox*sw+off lies inside [0, w).
func (g *window2d) validCols(off int) (lo, hi int) {
	// ox*sw + off >= 0  <=>  ox >= ceil(-off/sw)
	if off < 0 {
		lo = (-off + g.sw - 1) / g.sw
	}
	// ox*sw + off <= w-1  <=>  ox <= floor((w-1-off)/sw)
	if last := g.w - 1 - off; last >= 0 {
		hi = min(g.ow, last/g.sw+1)
	}
	lo = min(lo, g.ow)
	if hi < lo {
		hi = lo
	}
	return lo, hi
}

// Attribute readers for the layer ops (conv.go, pool.go, batchnorm.go,
// pad.go). A missing attribute gives the default; an attribute of the
// wrong type is an error naming the node.

func layerAttr(n *onnx.Node, name string, t onnx.AttrType) (onnx.Attribute, bool, error) {
	a, ok := n.Attrs[name]
	if !ok {
		return a, false, nil
	}
	if a.Type != t {
		return a, false, nodeErr(n, "attribute %s has type %d; want %d", name, a.Type, t)
	}
	return a, true, nil
}

func layerInt(n *onnx.Node, name string, def int64) (int64, error) {
	a, ok, err := layerAttr(n, name, onnx.AttrInt)
	if !ok {
		return def, err
	}
	return a.I, nil
}

// attrInts returns the ints attribute name as ints, nil when absent.
func layerInts(n *onnx.Node, name string) ([]int, error) {
	a, ok, err := layerAttr(n, name, onnx.AttrInts)
	if !ok {
		return nil, err
	}
	v := make([]int, len(a.Ints))
	for i, x := range a.Ints {
		v[i] = int(x)
	}
	return v, nil
}

func layerFloat(n *onnx.Node, name string, def float64) (float64, error) {
	a, ok, err := layerAttr(n, name, onnx.AttrFloat)
	if !ok {
		return def, err
	}
	return float64(a.F), nil
}

func layerString(n *onnx.Node, name, def string) (string, error) {
	a, ok, err := layerAttr(n, name, onnx.AttrString)
	if !ok {
		return def, err
	}
	return a.S, nil
}
