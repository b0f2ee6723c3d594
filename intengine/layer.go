package intengine

import (
	"fmt"
	"math"

	"mpsearch/kernels"
	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/quant"
	"mpsearch/tensor"
)

// colsBytes bounds the im2col buffer of one convolution call: images are
// processed in chunks whose patch matrices fit in it.
const colsBytes = 4 << 20

// layerStep is a Conv, Gemm or MatMul on the integer kernels, with its
// requantization (and fused ReLU/Clip) or, for the last layer, int32
// accumulators.
type layerStep struct {
	node, opType string
	li           int    // index in network.Layers()
	fused        string // fused activation node, "" for none
	act          act    // fused bounds (±Inf when none)
	in, out      int    // buffers; out == -1: int32 accumulator output
	outName      string // the layer's own output value (before a fused activation)

	n, k   int // output channels and reduction length per group
	groups int
	rows   int // GEMM rows per sample (Gemm 1, MatMul the leading dims; Conv OH*OW)
	conv   bool
	cs     kernels.ConvShape // per group (C = input channels of a group)
	cin    int               // input channels (all groups)
	oh, ow int
	// pointwise: a 1x1 convolution with stride 1 and no padding.
	pointwise bool
	// inNHWC and outNHWC: the input and output buffers are channels-last
	// (layout.go); the weights are then packed in [N][KH][KW][C] order.
	inNHWC, outNHWC bool
	// dw: a depthwise convolution (one input channel per output channel)
	// between NHWC tensors, run by kernels.DepthwiseNHWC with dwW and
	// dwRQ (every channel) and dwShape (C = all channels).
	dw      *kernels.Depthwise
	dwRQ    kernels.Requant
	dwShape kernels.ConvShape

	// Filled by setup.
	bits, kbits int
	wq          *quant.WeightQuant // in the ONNX weight layout
	nk          []int8             // N_total x K row-major (kernel layout)
	w           []*kernels.Weights // one per group
	st          []*kernels.Stream  // one per group when rows <= streamMaxRows(kbits), else nil
	sx          float64
	zx          uint8
	bias        []int32 // one per output channel, at scale S_x*S_w[c]
	mult        []int32
	shift       []int
	zy          int32
	lo, hi      uint8
	rq          []kernels.Requant // one per group
	outScale    []float64         // S_x*S_w[c] for the int32 output

	// constBias holds a bias that is a constant of the graph rather than a
	// parameter (torch.onnx shares identical folded BatchNorm biases
	// through Identity nodes); nil when the bias is a parameter or absent.
	constBias []float64
}

func (s *layerStep) describe() (string, string) {
	if s.fused != "" {
		return s.node + "+" + s.fused, s.opType
	}
	return s.node, s.opType
}

// newLayerStep checks a Conv/Gemm/MatMul node and records its geometry.
func newLayerStep(net *network.Network, li int, n *onnx.Node, i int, inShape, outShape []int, constOf func(string) *tensor.Tensor) (*layerStep, error) {
	l := net.Layers()[li]
	w := net.Params()[l.Weight].Value
	s := &layerStep{node: n.Name, opType: n.OpType, li: li, groups: 1, act: act{lo: math.Inf(-1), hi: math.Inf(1)}}
	if l.Bias < 0 && len(n.Inputs) > 2 && n.Inputs[2] != "" {
		// Not a parameter: a constant the float engine folded (an Identity
		// of a shared initializer, a Constant node).
		b := constOf(n.Inputs[2])
		if b == nil {
			return nil, unsupported(n, i, "the bias %q is computed from the data; only constant biases are supported", n.Inputs[2])
		}
		s.constBias = append([]float64(nil), b.Data...)
	}
	switch n.OpType {
	case "Conv":
		if len(inShape) != 3 || w.Rank() != 4 || len(outShape) != 3 {
			return nil, unsupported(n, i, "only 2-D convolutions (NCHW input, 4-D weight) are supported; input %v, weight %v", inShape, w.Shape)
		}
		s.conv = true
		s.groups = int(attrInt(n, "group", 1))
		s.cin = inShape[0]
		if s.groups < 1 || s.cin%s.groups != 0 || w.Shape[0]%s.groups != 0 || w.Shape[1]*s.groups != s.cin {
			return nil, unsupported(n, i, "group %d does not fit %d input channels and weight %v", s.groups, s.cin, w.Shape)
		}
		s.n = w.Shape[0] / s.groups
		s.k = w.Shape[1] * w.Shape[2] * w.Shape[3]
		s.oh, s.ow = outShape[1], outShape[2]
		win, err := parseWindow(n, i, w.Shape[2], w.Shape[3], inShape[1], inShape[2], s.oh, s.ow)
		if err != nil {
			return nil, err
		}
		s.cs = win.convShape(w.Shape[1], inShape[1], inShape[2])
		oh, ow, err := s.cs.Out()
		if err != nil || oh != s.oh || ow != s.ow {
			return nil, unsupported(n, i, "output %dx%d disagrees with the float engine's %dx%d (%v)", oh, ow, s.oh, s.ow, err)
		}
		s.rows = s.oh * s.ow
		c := s.cs // parseWindow gives strides and dilations of at least 1
		s.pointwise = c.KH == 1 && c.KW == 1 && c.StrideH == 1 && c.StrideW == 1 && c.PadTop == 0 && c.PadLeft == 0 && c.PadBottom == 0 && c.PadRight == 0
	case "Gemm":
		if attrInt(n, "transA", 0) != 0 {
			return nil, unsupported(n, i, "transA=1")
		}
		for _, name := range []string{"alpha", "beta"} {
			if a, ok := n.Attrs[name]; ok && a.F != 1 {
				return nil, unsupported(n, i, "%s=%g (only 1 is supported)", name, a.F)
			}
		}
		if len(inShape) < 1 || w.Rank() != 2 {
			return nil, unsupported(n, i, "input %v and weight %v: want [N, K] and a matrix", inShape, w.Shape)
		}
		// 1 per sample, or in a serial plan a whole [M, K] input (the
		// batch folded into the rows) read as M rows of one sample.
		s.rows = tensor.Size(inShape[:len(inShape)-1])
		if l.TransB {
			s.n, s.k = w.Shape[0], w.Shape[1]
		} else {
			s.k, s.n = w.Shape[0], w.Shape[1]
		}
	case "MatMul":
		if len(inShape) < 1 || w.Rank() != 2 {
			return nil, unsupported(n, i, "input %v and weight %v", inShape, w.Shape)
		}
		s.k, s.n = w.Shape[0], w.Shape[1]
		s.rows = tensor.Size(inShape[:len(inShape)-1])
	}
	if !s.conv && inShape[len(inShape)-1] != s.k {
		return nil, unsupported(n, i, "input %v does not have %d features", inShape, s.k)
	}
	if s.k > kernels.MaxK {
		return nil, unsupported(n, i, "reduction length %d exceeds the kernels' %d", s.k, kernels.MaxK)
	}
	if l.Bias >= 0 {
		if b := net.Params()[l.Bias].Value; b.Size() != s.n*s.groups {
			return nil, unsupported(n, i, "bias of shape %v: want one value per output channel (%d)", b.Shape, s.n*s.groups)
		}
	}
	if s.constBias != nil && len(s.constBias) != s.n*s.groups {
		return nil, unsupported(n, i, "bias %q of %d values: want one value per output channel (%d)", n.Inputs[2], len(s.constBias), s.n*s.groups)
	}
	return s, nil
}

// kernelBits maps a quantizer bit width to the kernel that holds it: the
// narrowest packed format whose range contains [-qmax, qmax].
func kernelBits(bits int) int {
	switch {
	case bits == 1:
		return 1
	case bits == 2:
		return kernels.Ternary // symmetric 2-bit codes are {-1, 0, 1}
	case bits <= 4:
		return 4
	}
	return 8
}

// setup quantizes and packs the weights and derives the requantization.
// correctedBias returns the float bias b of layer li at bits plus the
// weight source's bias correction (quant.BiasShifter), as package quant's
// simulation and the QDQ export apply it to layers with a bias parameter;
// b itself when the source has none.
func correctedBias(codes quant.WeightCodes, li, bits int, b []float64) ([]float64, error) {
	bs, ok := codes.(quant.BiasShifter)
	if !ok {
		return b, nil
	}
	shift, err := bs.BiasShift(li, bits)
	if err != nil || shift == nil {
		return b, err
	}
	if len(shift) != len(b) {
		return nil, fmt.Errorf("bias correction of %d channels for a bias of %d: %w", len(shift), len(b), ErrConfig)
	}
	out := make([]float64, len(b))
	for c := range b {
		out[c] = b[c] + shift[c]
	}
	return out, nil
}

func (s *layerStep) setup(m *Model) error {
	net := m.net
	l := net.Layers()[s.li]
	s.bits = m.bits[s.li]
	s.kbits = kernelBits(s.bits)
	w := net.Params()[l.Weight].Value
	wq, err := m.codes.Codes(s.li, s.bits)
	if err != nil {
		return fmt.Errorf("intengine: layer %q: %w: %w", s.node, err, ErrConfig)
	}
	if wq.Axis != l.ChannelAxis || len(wq.Q) != w.Size() || len(wq.Scales) != s.n*s.groups {
		return fmt.Errorf("intengine: layer %q: weight codes of %d values with %d scales on axis %d for a %v weight with channels on axis %d: %w", s.node, len(wq.Q), len(wq.Scales), wq.Axis, w.Shape, l.ChannelAxis, ErrConfig)
	}
	s.wq = wq
	ntot := s.n * s.groups
	if l.ChannelAxis == 0 {
		s.nk = wq.Q
	} else { // [K, N] -> [N, K]
		s.nk = make([]int8, ntot*s.k)
		for kk := 0; kk < s.k; kk++ {
			for c := 0; c < ntot; c++ {
				s.nk[c*s.k+kk] = wq.Q[kk*ntot+c]
			}
		}
	}
	s.inNHWC = s.conv && m.plan.nhwc[s.in]
	s.outNHWC = s.conv && s.out >= 0 && m.plan.nhwc[s.out]
	s.dw = nil
	depthwise := s.conv && s.groups > 1 && s.groups == s.cin && s.n == 1 && s.inNHWC && s.outNHWC
	if depthwise {
		if s.dw, err = kernels.PackDepthwise(s.nk, s.groups, s.cs.KH, s.cs.KW); err != nil {
			return fmt.Errorf("intengine: layer %q: %w", s.node, err)
		}
		s.dwShape = s.cs
		s.dwShape.C = s.cin
	}
	s.w = make([]*kernels.Weights, s.groups)
	s.st = nil
	if !depthwise && s.rows <= streamMaxRows(s.kbits) {
		s.st = make([]*kernels.Stream, s.groups)
	}
	for g := range s.w {
		if depthwise {
			break // DepthwiseNHWC reads s.dw
		}
		rows := s.nk[g*s.n*s.k : (g+1)*s.n*s.k]
		if s.inNHWC {
			rows = kernels.PermuteHWC(rows, s.n, s.cs.C, s.cs.KH, s.cs.KW)
		}
		if s.kbits == kernels.Ternary {
			s.w[g], err = kernels.PackTernary(rows, s.n, s.k)
		} else {
			s.w[g], err = kernels.PackWeights(rows, s.n, s.k, s.kbits)
		}
		if err != nil {
			return fmt.Errorf("intengine: layer %q: %w", s.node, err)
		}
		if s.st != nil {
			if s.st[g], err = kernels.PackStream(rows, s.n, s.k, s.kbits); err != nil {
				return fmt.Errorf("intengine: layer %q: %w", s.node, err)
			}
		}
	}
	qx := m.quant[s.in]
	s.sx, s.zx = qx.Scale, uint8(qx.ZeroPoint)
	s.bias = make([]int32, ntot)
	b := s.constBias
	if l.Bias >= 0 {
		b = net.Params()[l.Bias].Value.Data
		if b, err = correctedBias(m.codes, s.li, s.bits, b); err != nil {
			return fmt.Errorf("intengine: layer %q: %w", s.node, err)
		}
	}
	for c := 0; c < ntot; c++ {
		var worst int64 // 255 * sum_k |W[c][k]| bounds |sum (x - z) W|
		for _, q := range s.nk[c*s.k : (c+1)*s.k] {
			worst += 255 * max(int64(q), -int64(q))
		}
		if b != nil {
			bq := math.Round(b[c] / (s.sx * wq.Scales[c]))
			if math.Abs(bq)+float64(worst) > math.MaxInt32 {
				return fmt.Errorf("intengine: layer %q channel %d: bias %g is %g at scale S_x*S_w = %g, beyond int32 (the layer's input range, scale %g, is negligible next to its bias: calibrate on data whose activations do not vanish): %w", s.node, c, b[c], bq, s.sx*wq.Scales[c], s.sx, ErrConfig)
			}
			s.bias[c] = int32(bq)
		}
	}
	if s.out < 0 {
		s.outScale = make([]float64, ntot)
		for c := range s.outScale {
			s.outScale[c] = s.sx * wq.Scales[c]
		}
		return nil
	}
	qy := m.quant[s.out]
	s.zy = int32(qy.ZeroPoint)
	s.lo, s.hi = qy.Quantize(s.act.lo), qy.Quantize(s.act.hi)
	s.mult, s.shift = make([]int32, ntot), make([]int, ntot)
	for c := 0; c < ntot; c++ {
		M := s.sx * wq.Scales[c] / qy.Scale
		if s.mult[c], s.shift[c], err = quant.Dyadic(M); err != nil {
			return fmt.Errorf("intengine: layer %q channel %d: %w: %w", s.node, c, err, ErrConfig)
		}
	}
	// The requantizations are frozen (kernels.Requant.Freeze): their
	// epilogue constants are computed here once instead of on every call,
	// which at batch 1 costs as much as a third of a 1024 x 1024 product.
	// Nothing changes bias, mult or shift afterwards.
	s.rq = make([]kernels.Requant, s.groups)
	for g := range s.rq {
		r := g * s.n
		s.rq[g] = kernels.Requant{Bias: s.bias[r : r+s.n], Mult: s.mult[r : r+s.n], Shift: s.shift[r : r+s.n], Zero: s.zy, Lo: s.lo, Hi: s.hi}
		if err := s.rq[g].Freeze(s.n); err != nil {
			return fmt.Errorf("intengine: layer %q group %d: %w", s.node, g, err)
		}
	}
	s.dwRQ = kernels.Requant{Bias: s.bias, Mult: s.mult, Shift: s.shift, Zero: s.zy, Lo: s.lo, Hi: s.hi}
	if err := s.dwRQ.Freeze(ntot); err != nil {
		return fmt.Errorf("intengine: layer %q: %w", s.node, err)
	}
	return nil
}

func (s *layerStep) run(ws *workspace, nb int) error {
	m := ws.m
	src := ws.bufs[s.in][:nb*m.plan.bufs[s.in].size]
	ntot := s.n * s.groups
	if !s.conv {
		mrows := nb * s.rows
		if s.out >= 0 {
			return s.gemmRequant(ws, ws.bufs[s.out][:mrows*ntot], src, mrows, 0)
		}
		acc := ws.acc[:mrows*ntot]
		if err := s.gemm(ws, acc, src, mrows, 0); err != nil {
			return err
		}
		for r := 0; r < mrows; r++ {
			row := acc[r*ntot : (r+1)*ntot]
			for c := range row {
				row[c] += s.bias[c]
			}
		}
		return nil
	}
	if s.dw != nil {
		inSize, outSize := s.cin*s.cs.H*s.cs.W, ntot*s.rows
		dst := ws.bufs[s.out]
		for i := 0; i < nb; i++ {
			if err := kernels.DepthwiseNHWC(dst[i*outSize:(i+1)*outSize], src[i*inSize:(i+1)*inSize], s.dwShape, s.zx, s.dw, &s.dwRQ, &ws.dw); err != nil {
				return err
			}
		}
		return nil
	}
	return s.runConv(ws, nb, src)
}

// runConv runs a convolution on a chunk of images at a time, per group:
// the patch matrix (Im2Col from NCHW, Im2ColNHWC from NHWC, or the input
// itself for a 1x1 convolution with stride 1 on NHWC), one GEMM, and the
// move of its [image][position][channel] rows to the output: none when
// the output is NHWC and the GEMM wrote it in place, a copy of each row's
// channels for a group of an NHWC output, a transpose for NCHW.
func (s *layerStep) runConv(ws *workspace, nb int, src []uint8) error {
	inSize := s.cin * s.cs.H * s.cs.W
	gSize := s.cs.C * s.cs.H * s.cs.W
	p := s.rows
	ntot := s.n * s.groups
	outSize := ntot * p
	direct := s.inNHWC && s.groups == 1 && s.pointwise
	toOut := s.out >= 0 && s.outNHWC && s.groups == 1
	chunk := max(1, min(nb, colsBytes/max(1, p*s.k)))
	if direct {
		chunk = nb
	} else {
		ws.cols = grow(ws.cols, chunk*p*s.k)
	}
	switch {
	case s.out < 0:
		ws.tmp32 = grow32(ws.tmp32, chunk*p*s.n)
	case !toOut:
		ws.tmp8 = grow(ws.tmp8, chunk*p*s.n)
	}
	for g := 0; g < s.groups; g++ {
		for i0 := 0; i0 < nb; i0 += chunk {
			ni := min(chunk, nb-i0)
			var cols []uint8
			if direct {
				cols = src[i0*inSize : (i0+ni)*inSize]
			} else {
				cols = ws.cols[:ni*p*s.k]
				for j := 0; j < ni; j++ {
					c := cols[j*p*s.k : (j+1)*p*s.k]
					var err error
					// One channel: both layouts hold the same bytes and
					// order the patch columns alike; Im2Col's word copies
					// suit such short kernel rows.
					if s.inNHWC && s.cin > 1 {
						err = kernels.Im2ColNHWC(c, src[(i0+j)*inSize:(i0+j+1)*inSize], s.cs, s.cin, g*s.cs.C, s.zx)
					} else {
						err = kernels.Im2Col(c, src[(i0+j)*inSize+g*gSize:(i0+j)*inSize+(g+1)*gSize], s.cs, s.zx)
					}
					if err != nil {
						return err
					}
				}
			}
			if s.out < 0 {
				if err := s.accConv(ws, cols, i0, ni, g); err != nil {
					return err
				}
				continue
			}
			dst := ws.bufs[s.out]
			if toOut {
				if err := s.gemmRequant(ws, dst[i0*outSize:(i0+ni)*outSize], cols, ni*p, 0); err != nil {
					return err
				}
				continue
			}
			tmp := ws.tmp8[:ni*p*s.n]
			if err := s.gemmRequant(ws, tmp, cols, ni*p, g); err != nil {
				return err
			}
			for j := 0; j < ni; j++ {
				t := tmp[j*p*s.n : (j+1)*p*s.n]
				if s.outNHWC {
					o := dst[(i0+j)*outSize : (i0+j+1)*outSize]
					for q := 0; q < p; q++ {
						copy(o[q*ntot+g*s.n:q*ntot+(g+1)*s.n], t[q*s.n:(q+1)*s.n])
					}
					continue
				}
				kernels.Transpose(dst[(i0+j)*outSize+g*s.n*p:(i0+j)*outSize+(g+1)*s.n*p], t, p, s.n)
			}
		}
	}
	return nil
}

// accConv computes group g of a convolution producing the int32 logits
// (NCHW) for images [i0, i0+ni) from their patch matrix.
func (s *layerStep) accConv(ws *workspace, cols []uint8, i0, ni, g int) error {
	p := s.rows
	outSize := s.n * s.groups * p
	tmp := ws.tmp32[:ni*p*s.n]
	if err := s.gemm(ws, tmp, cols, ni*p, g); err != nil {
		return err
	}
	for j := 0; j < ni; j++ {
		o := ws.acc[(i0+j)*outSize+g*s.n*p:]
		t := tmp[j*p*s.n:]
		for q := 0; q < p; q++ {
			for c := 0; c < s.n; c++ {
				o[c*p+q] = t[q*s.n+c] + s.bias[g*s.n+c]
			}
		}
	}
	return nil
}

// streamMaxRows is the most GEMM rows (for a batch) with which a layer's
// product runs on the stream kernels (weights packed at their width,
// kernels.GEMMStream) rather than the tile GEMM: 2 for 8-bit weights, 4
// for narrower ones. Measured with kernels' BenchmarkStreamCrossover (one
// thread, AVX-512 VNNI, K x N = 1024² and 4096²): at 8 bits the stream
// kernels take 0.77-0.83x the tile GEMM's time at one row and 0.92-0.94x at
// two, and tie at four; at 4, 2 and 1 bits 0.30-0.61x at one row,
// 0.39-0.70x at two, 0.61-0.93x at four, and from six rows (one full
// 6-row tile) the tile GEMM is as fast or faster on the smaller shape.
func streamMaxRows(kbits int) int {
	if kbits == 8 {
		return 2
	}
	return 4
}

// gemmRequant computes group g's requantized product of m rows of a into
// dst: on the stream kernels when the layer has them and m is at most
// streamMaxRows, else on the tile GEMM. Both give the same codes.
func (s *layerStep) gemmRequant(ws *workspace, dst, a []uint8, m, g int) error {
	if s.st != nil && m <= streamMaxRows(s.kbits) {
		return kernels.GEMMStreamRequant(dst, a, m, s.k, s.zx, s.st[g], &s.rq[g], ws.opt)
	}
	return kernels.GEMMRequant(dst, a, m, s.k, s.zx, s.w[g], &s.rq[g], ws.opt)
}

// gemm is gemmRequant's int32 twin (bias not added).
func (s *layerStep) gemm(ws *workspace, dst []int32, a []uint8, m, g int) error {
	if s.st != nil && m <= streamMaxRows(s.kbits) {
		return kernels.GEMMStream(dst, a, m, s.k, s.zx, s.st[g], ws.opt)
	}
	return kernels.GEMM(dst, a, m, s.k, s.zx, s.w[g], ws.opt)
}

// channel returns the output channel of flat element i of one sample of
// the layer's output.
func (s *layerStep) channel(i int) int {
	if s.conv {
		return (i / s.rows) % (s.n * s.groups)
	}
	return i % s.n
}

func grow(b []uint8, n int) []uint8 {
	if cap(b) < n {
		return make([]uint8, n)
	}
	return b[:n]
}

func grow32(b []int32, n int) []int32 {
	if cap(b) < n {
		return make([]int32, n)
	}
	return b[:n]
}

func (s *layerStep) buffers() ([]int, int) { return []int{s.in}, s.out }
