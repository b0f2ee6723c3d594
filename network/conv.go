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
// It runs as im2col + GEMM. The columns of the whole batch form one
// [C*kh*kw, N*OH*OW] matrix (row (c,i,j), column (n,oh,ow)), so each group
// is a single matrix product over the batch; the columns are the Forward
// state, reused by the backward pass. Outputs and output gradients move
// between NCHW and that channel-major layout with block copies of OH*OW.
//
// Tangents treat the K directions of X as a batch of K*N samples; the
// weight directions of all K make one product [K*M/group, C/group*kh*kw]
// against the saved columns.
type conv struct {
	node  *onnx.Node
	group int
	win   windowSpec
}

// convState is conv's Forward state.
type convState struct {
	geo  window2d
	cols []float64 // [C*kh*kw, N*OH*OW]
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

// sizes of a conv pass: batch, in/out channels and per-group counts.
type convSizes struct {
	n, c, m, g   int
	cg, mg, ckk  int // channels per group, output channels per group, Cg*kh*kw
	p, np, ckAll int // OH*OW, N*P, C*kh*kw
}

func (c *conv) sizes(in []*tensor.Tensor, geo *window2d) convSizes {
	x, w := in[0], in[1]
	s := convSizes{n: x.Shape[0], c: x.Shape[1], m: w.Shape[0], g: c.group}
	s.cg, s.mg = s.c/s.g, s.m/s.g
	s.ckk = s.cg * geo.kh * geo.kw
	s.ckAll = s.c * geo.kh * geo.kw
	s.p = geo.oh * geo.ow
	s.np = s.n * s.p
	return s
}

func (c *conv) Forward(in []*tensor.Tensor) (*tensor.Tensor, any, error) {
	geo, err := c.dims(in)
	if err != nil {
		return nil, nil, err
	}
	s := c.sizes(in, &geo)
	cols := make([]float64, s.ckAll*s.np)
	im2col(in[0].Data, s.n, s.c, &geo, cols)
	out := tensor.New(geo.outShape(s.n, s.m, in[0].Rank())...)
	cm := out.Data
	if s.n > 1 {
		cm = getScratch(s.m * s.np)
		defer putScratch(cm)
	}
	w := in[1].Data
	for g := 0; g < s.g; g++ {
		gemm(false, false, s.mg, s.np, s.ckk, 1, w[g*s.mg*s.ckk:], s.ckk, cols[g*s.ckk*s.np:], s.np, 0, cm[g*s.mg*s.np:], s.np)
	}
	if s.n > 1 {
		addFromChannelMajor(out.Data, cm, 0, s.m, s.m, s.n, s.p)
	}
	if b := bias(in); b != nil {
		addChannelBias(out.Data, b.Data, s.n, s.m, s.p)
	}
	return out, &convState{geo: geo, cols: cols}, nil
}

func (c *conv) Backward(in []*tensor.Tensor, out *tensor.Tensor, state any, gout *tensor.Tensor, need []bool) []*tensor.Tensor {
	st := state.(*convState)
	s := c.sizes(in, &st.geo)
	gcm := toChannelMajor(gout.Data, s.n, s.m, s.p)
	defer releaseChannelMajor(gcm, gout.Data)
	return c.grads(in, st, s, gcm, need)
}

// grads computes the input gradients from gcm, the output gradient in
// channel-major layout [M, N*P].
func (c *conv) grads(in []*tensor.Tensor, st *convState, s convSizes, gcm []float64, need []bool) []*tensor.Tensor {
	gin := make([]*tensor.Tensor, len(in))
	w := in[1]
	if need[0] {
		dcols := getScratch(s.ckAll * s.np)
		for g := 0; g < s.g; g++ {
			gemm(true, false, s.ckk, s.np, s.mg, 1, w.Data[g*s.mg*s.ckk:], s.ckk, gcm[g*s.mg*s.np:], s.np, 0, dcols[g*s.ckk*s.np:], s.np)
		}
		gin[0] = tensor.New(in[0].Shape...)
		col2im(dcols, s.n, s.c, &st.geo, gin[0].Data)
		putScratch(dcols)
	}
	if need[1] {
		gin[1] = tensor.New(w.Shape...)
		for g := 0; g < s.g; g++ {
			gemm(false, true, s.mg, s.ckk, s.np, 1, gcm[g*s.mg*s.np:], s.np, st.cols[g*s.ckk*s.np:], s.np, 0, gin[1].Data[g*s.mg*s.ckk:], s.ckk)
		}
	}
	if len(in) > 2 && in[2] != nil && need[2] {
		gin[2] = tensor.New(in[2].Shape...)
		rowSums(gin[2].Data, gcm, s.m, s.np)
	}
	return gin
}

func (c *conv) Tangent(in, tin []*tensor.Tensor, out *tensor.Tensor, state any) *tensor.Tensor {
	st := state.(*convState)
	s := c.sizes(in, &st.geo)
	rx, rw, rb := tin[0], tin[1], tangentAt(tin, 2)
	k := tangentCount(tin)
	if k == 0 {
		return nil
	}
	ry := tensor.New(append([]int{k}, out.Shape...)...)
	w := in[1].Data
	if rx != nil {
		// conv(Rx_k, W): the K directions are a batch of K*N samples.
		knp := k * s.np
		rcols := getScratch(s.ckAll * knp)
		im2col(rx.Data, k*s.n, s.c, &st.geo, rcols)
		cm := getScratch(s.m * knp)
		for g := 0; g < s.g; g++ {
			gemm(false, false, s.mg, knp, s.ckk, 1, w[g*s.mg*s.ckk:], s.ckk, rcols[g*s.ckk*knp:], knp, 0, cm[g*s.mg*knp:], knp)
		}
		addFromChannelMajor(ry.Data, cm, 0, s.m, s.m, k*s.n, s.p)
		putScratch(rcols)
		putScratch(cm)
	}
	if rw != nil {
		// conv(X, RW_k) for all k: one product [K*Mg, Cg*kh*kw] x columns
		// per group.
		var packed []float64
		if s.g > 1 {
			packed = make([]float64, k*s.mg*s.ckk)
		}
		tmp := getScratch(k * s.mg * s.np)
		defer putScratch(tmp)
		for g := 0; g < s.g; g++ {
			a := rw.Data
			if s.g > 1 {
				for kk := 0; kk < k; kk++ {
					copy(packed[kk*s.mg*s.ckk:(kk+1)*s.mg*s.ckk], rw.Data[(kk*s.m+g*s.mg)*s.ckk:])
				}
				a = packed
			}
			gemm(false, false, k*s.mg, s.np, s.ckk, 1, a, s.ckk, st.cols[g*s.ckk*s.np:], s.np, 0, tmp, s.np)
			for kk := 0; kk < k; kk++ {
				addFromChannelMajor(ry.Data[kk*out.Size():], tmp[kk*s.mg*s.np:], g*s.mg, s.mg, s.m, s.n, s.p)
			}
		}
	}
	if rb != nil {
		for kk := 0; kk < k; kk++ {
			addChannelBias(ry.Data[kk*out.Size():], rb.Data[kk*s.m:], s.n, s.m, s.p)
		}
	}
	return ry
}

func (c *conv) BackwardTangent(in, tin []*tensor.Tensor, out, tout *tensor.Tensor, state any, gout, tgout *tensor.Tensor, need []bool) (gin, tgin []*tensor.Tensor) {
	st := state.(*convState)
	s := c.sizes(in, &st.geo)
	gcm := toChannelMajor(gout.Data, s.n, s.m, s.p)
	defer releaseChannelMajor(gcm, gout.Data)
	gin = c.grads(in, st, s, gcm, need)
	tgin = make([]*tensor.Tensor, len(in))
	rx, rw := tin[0], tin[1]
	k := tangentCount(append(tin[:len(tin):len(tin)], tgout))
	if k == 0 {
		return gin, tgin
	}
	knp := k * s.np
	var rgcm []float64 // tgout channel-major: [M, K*N*P]
	if tgout != nil {
		rgcm = toChannelMajor(tgout.Data, k*s.n, s.m, s.p)
		defer releaseChannelMajor(rgcm, tgout.Data)
	}
	w := in[1].Data
	// R(dX) = convT(R gout, W) + convT(gout, RW).
	if need[0] && (rgcm != nil || rw != nil) {
		dcols := getScratch(s.ckAll * knp)
		for g := 0; g < s.g; g++ {
			dg := dcols[g*s.ckk*knp:]
			beta := 0.0
			if rgcm != nil {
				gemm(true, false, s.ckk, knp, s.mg, 1, w[g*s.mg*s.ckk:], s.ckk, rgcm[g*s.mg*knp:], knp, 0, dg, knp)
				beta = 1
			}
			if rw != nil {
				for kk := 0; kk < k; kk++ {
					gemm(true, false, s.ckk, s.np, s.mg, 1, rw.Data[(kk*s.m+g*s.mg)*s.ckk:], s.ckk, gcm[g*s.mg*s.np:], s.np, beta, dg[kk*s.np:], knp)
				}
			}
		}
		tgin[0] = tensor.New(append([]int{k}, in[0].Shape...)...)
		col2im(dcols, k*s.n, s.c, &st.geo, tgin[0].Data)
		putScratch(dcols)
	}
	// R(dW) = R gout x cols^T + gout x Rcols^T.
	if need[1] && (rgcm != nil || rx != nil) {
		var rcols []float64
		if rx != nil {
			rcols = getScratch(s.ckAll * knp)
			im2col(rx.Data, k*s.n, s.c, &st.geo, rcols)
			defer putScratch(rcols)
		}
		tgin[1] = tensor.New(append([]int{k}, in[1].Shape...)...)
		wsize := in[1].Size()
		for kk := 0; kk < k; kk++ {
			for g := 0; g < s.g; g++ {
				dst := tgin[1].Data[kk*wsize+g*s.mg*s.ckk:]
				beta := 0.0
				if rgcm != nil {
					gemm(false, true, s.mg, s.ckk, s.np, 1, rgcm[g*s.mg*knp+kk*s.np:], knp, st.cols[g*s.ckk*s.np:], s.np, 0, dst, s.ckk)
					beta = 1
				}
				if rcols != nil {
					gemm(false, true, s.mg, s.ckk, s.np, 1, gcm[g*s.mg*s.np:], s.np, rcols[g*s.ckk*knp+kk*s.np:], knp, beta, dst, s.ckk)
				}
			}
		}
	}
	// R(dB) = row sums of R gout.
	if len(in) > 2 && in[2] != nil && need[2] && rgcm != nil {
		tgin[2] = tensor.New(k, s.m)
		for kk := 0; kk < k; kk++ {
			for i := 0; i < s.m; i++ {
				sum := 0.0
				for _, v := range rgcm[i*knp+kk*s.np : i*knp+(kk+1)*s.np] {
					sum += v
				}
				tgin[2].Data[kk*s.m+i] = sum
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

// toChannelMajor returns x [nb, m, p] in layout [m, nb*p]: x itself when
// nb == 1, else a scratch buffer to hand back with releaseChannelMajor.
func toChannelMajor(x []float64, nb, m, p int) []float64 {
	if nb == 1 {
		return x
	}
	cm := getScratch(len(x))
	for b := 0; b < nb; b++ {
		for i := 0; i < m; i++ {
			copy(cm[(i*nb+b)*p:(i*nb+b+1)*p], x[(b*m+i)*p:(b*m+i+1)*p])
		}
	}
	return cm
}

// releaseChannelMajor returns cm = toChannelMajor(x, ...) to the scratch
// pool unless it is x itself.
func releaseChannelMajor(cm, x []float64) {
	if len(cm) > 0 && &cm[0] != &x[0] {
		putScratch(cm)
	}
}

// addFromChannelMajor adds src, rows channels of layout [rows, nb*p], into
// channels off..off+rows of dst [nb, m, p].
func addFromChannelMajor(dst, src []float64, off, rows, m, nb, p int) {
	for i := 0; i < rows; i++ {
		for b := 0; b < nb; b++ {
			d := dst[(b*m+off+i)*p : (b*m+off+i+1)*p]
			s := src[(i*nb+b)*p : (i*nb+b+1)*p]
			for j, v := range s {
				d[j] += v
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

// rowSums sets dst[i] to the sum of row i of the m×n matrix a.
func rowSums(dst, a []float64, m, n int) {
	for i := 0; i < m; i++ {
		sum := 0.0
		for _, v := range a[i*n : (i+1)*n] {
			sum += v
		}
		dst[i] = sum
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
						clear(d[:lo])
						clear(d[hi:])
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
