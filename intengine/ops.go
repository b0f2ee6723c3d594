package intengine

import (
	"fmt"
	"math"
	"slices"

	"mpsearch/kernels"
	"mpsearch/onnx"
	"mpsearch/quant"
)

// quantizeStep turns the float input into uint8 codes: the only place
// floats enter the program.
type quantizeStep struct {
	out int
	q   quant.ActQuant // filled by setup
	// nhwc: the codes are stored channels-last, c channels of hw pixels.
	nhwc  bool
	c, hw int
}

func (s *quantizeStep) describe() (string, string) { return "input", "QuantizeLinear" }

func (s *quantizeStep) setup(m *Model) error {
	s.q = m.quant[s.out]
	s.nhwc = m.plan.nhwc[s.out]
	if sh := m.plan.shapes[m.plan.bufs[s.out].name]; s.nhwc {
		s.c, s.hw = sh[0], sh[1]*sh[2]
	}
	return nil
}

func (s *quantizeStep) run(ws *workspace, n int) error {
	dst := ws.bufs[s.out][:len(ws.x)]
	if !s.nhwc {
		s.quantize(dst, ws.x, 1)
		return nil
	}
	for i := 0; i < len(ws.x); i += s.c * s.hw {
		for c := 0; c < s.c; c++ {
			s.quantize(dst[i+c:], ws.x[i+c*s.hw:i+(c+1)*s.hw], s.c)
		}
	}
	return nil
}

// quantize writes the codes of x to dst[0], dst[stride], ...
func (s *quantizeStep) quantize(dst []uint8, x []float64, stride int) {
	scale, zp := s.q.Scale, float64(s.q.ZeroPoint)
	for i, v := range x {
		// quant.ActQuant.Quantize with the clamp inlined (identical for
		// every finite v; NaN, which Quantize leaves undefined, gives 0).
		q := math.RoundToEven(v/scale) + zp
		switch {
		case q >= 255:
			dst[i*stride] = 255
		case q > 0:
			dst[i*stride] = uint8(q)
		default:
			dst[i*stride] = 0
		}
	}
}

// addStep adds two uint8 tensors: each input is rescaled to the output
// scale with a dyadic multiplier sharing one shift, so the sum is rounded
// once:
//
//	y = clamp(z_y + round((m_a*(a - z_a) + m_b*(b - z_b)) / 2^c), lo, hi)
//
// with m_a·2^-c ≈ S_a/S_y and m_b·2^-c ≈ S_b/S_y.
type addStep struct {
	node, fused string
	outName     string // the Add's own output value (before a fused activation)
	act         act
	a, b, out   int

	// Filled by setup.
	ma, mb    int64
	shift     int
	za, zb    int64
	zy        int32
	lo, hi    uint8
	perSample int
	// table[a<<8|b] is the output code of the input codes (a, b): the
	// formula above on every pair, computed at setup.
	table []uint8
}

func (s *addStep) describe() (string, string) {
	if s.fused != "" {
		return s.node + "+" + s.fused, "Add"
	}
	return s.node, "Add"
}

// addMultipliers expresses Ma and Mb as ma·2^-c and mb·2^-c with a common
// shift c chosen for the larger of the two (so both mantissas are below
// 2^31 and the larger keeps 31 significant bits).
func addMultipliers(Ma, Mb float64) (ma, mb int64, c int, err error) {
	m, c, err := sharedMultipliers([]float64{Ma, Mb})
	if err != nil {
		return 0, 0, 0, err
	}
	return m[0], m[1], c, nil
}

// sharedMultipliers expresses every M_j as m_j·2^-c with one shift c,
// that of the largest (quant.Dyadic), so every m_j is below 2^31. A ratio
// too small to keep a non-zero mantissa is an error.
func sharedMultipliers(Ms []float64) ([]int64, int, error) {
	_, c, err := quant.Dyadic(slices.Max(Ms))
	if err != nil {
		return nil, 0, err
	}
	scale := float64(uint64(1) << c)
	m := make([]int64, len(Ms))
	for j, M := range Ms {
		m[j] = int64(math.Round(M * scale))
		if m[j] == 0 {
			return nil, 0, fmt.Errorf("scale ratio %g is below 2^-%d next to %g: the input's range is negligible", M, c+1, slices.Max(Ms))
		}
	}
	return m, c, nil
}

func (s *addStep) setup(m *Model) error {
	qa, qb, qy := m.quant[s.a], m.quant[s.b], m.quant[s.out]
	var err error
	s.ma, s.mb, s.shift, err = addMultipliers(qa.Scale/qy.Scale, qb.Scale/qy.Scale)
	if err != nil {
		return fmt.Errorf("intengine: Add %q: %w: %w", s.node, err, ErrConfig)
	}
	s.za, s.zb, s.zy = int64(qa.ZeroPoint), int64(qb.ZeroPoint), int32(qy.ZeroPoint)
	s.lo, s.hi = qy.Quantize(s.act.lo), qy.Quantize(s.act.hi)
	s.perSample = m.plan.bufs[s.out].size
	s.table = make([]uint8, 256*256)
	for a := range 256 {
		for b := range 256 {
			s.table[a<<8|b] = s.code(uint8(a), uint8(b))
		}
	}
	return nil
}

// code is the output code of the input codes a and b.
func (s *addStep) code(a, b uint8) uint8 {
	acc := s.ma*(int64(a)-s.za) + s.mb*(int64(b)-s.zb)
	return kernels.Requantize(acc, 1, s.shift, s.zy, s.lo, s.hi)
}

// run looks every output code up in the table of the pairs of input
// codes (equal to code by construction).
func (s *addStep) run(ws *workspace, n int) error {
	size := n * s.perSample
	a, b, y := ws.bufs[s.a][:size], ws.bufs[s.b][:size], ws.bufs[s.out][:size]
	t := (*[1 << 16]uint8)(s.table)
	for i := range y {
		y[i] = t[uint16(a[i])<<8|uint16(b[i])]
	}
	return nil
}

// clampStep is a standalone ReLU or Clip on a uint8 tensor: a clamp of the
// codes to the quantized bounds, keeping the input's quantizer.
type clampStep struct {
	node, opType string
	in, out      int
	act          act
	lo, hi       uint8 // filled by setup
	perSample    int
}

func (s *clampStep) describe() (string, string) { return s.node, s.opType }

func (s *clampStep) setup(m *Model) error {
	q := m.quant[s.in]
	s.lo, s.hi = q.Quantize(s.act.lo), q.Quantize(s.act.hi)
	s.perSample = m.plan.bufs[s.out].size
	return nil
}

func (s *clampStep) run(ws *workspace, n int) error {
	size := n * s.perSample
	x, y := ws.bufs[s.in][:size], ws.bufs[s.out][:size]
	for i, v := range x {
		y[i] = min(max(v, s.lo), s.hi)
	}
	return nil
}

// taps lists, for every output position along one axis, the input taps
// inside the input ([lo, hi) of the kernel) and how many fall inside the
// padded input (what count_include_pad divides by).
type taps struct {
	start, lo, hi, padded []int
	dil                   int
}

func newTaps(out, in, k, stride, dil, pb, pe int) taps {
	t := taps{start: make([]int, out), lo: make([]int, out), hi: make([]int, out), padded: make([]int, out), dil: dil}
	for o := 0; o < out; o++ {
		s := o*stride - pb
		t.start[o] = s
		lo, hi, plo, phi := k, 0, k, 0
		for i := 0; i < k; i++ {
			p := s + i*dil
			if p >= 0 && p < in {
				lo, hi = min(lo, i), i+1
			}
			if p >= -pb && p < in+pe {
				plo, phi = min(plo, i), i+1
			}
		}
		if hi < lo {
			hi = lo
		}
		t.lo[o], t.hi[o], t.padded[o] = lo, hi, max(0, phi-plo)
	}
	return t
}

// poolStep is MaxPool, AveragePool or GlobalAveragePool on uint8 codes.
// The output keeps the input's quantizer; averages are rounded half away
// from zero around the zero point:
//
//	y = z + round(Σ(q - z) / count)
type poolStep struct {
	node, opType string
	in, out      int
	c, h, w      int
	oh, ow       int
	ty, tx       taps
	dh, dw       int
	avg          bool
	includePad   bool
	z            int     // filled by setup
	offs         []int32 // tap offsets within a plane, window after window
	first        []int32 // window o's taps are offs[first[o]:first[o+1]]
	div          []int32 // window o's divisor
	max2x2       bool    // MaxPool 2x2, stride 2, every window inside the input
	nhwc         bool    // input and output channels-last (layout.go)
}

func (s *poolStep) describe() (string, string) { return s.node, s.opType }

func newPoolStep(n *onnx.Node, i int, inShape, outShape []int) (*poolStep, error) {
	if len(inShape) != 3 || len(outShape) != 3 || outShape[0] != inShape[0] {
		return nil, unsupported(n, i, "only 2-D pooling of NCHW tensors is supported (input %v, output %v)", inShape, outShape)
	}
	s := &poolStep{node: n.Name, opType: n.OpType, c: inShape[0], h: inShape[1], w: inShape[2], oh: outShape[1], ow: outShape[2]}
	var win window
	switch n.OpType {
	case "GlobalAveragePool":
		s.avg = true
		win = window{kh: s.h, kw: s.w, sh: 1, sw: 1, dh: 1, dw: 1}
	default:
		s.avg = n.OpType == "AveragePool"
		s.includePad = attrInt(n, "count_include_pad", 0) != 0
		ks := attrInts(n, "kernel_shape")
		if len(ks) != 2 {
			return nil, unsupported(n, i, "kernel_shape %v: only 2-D pooling is supported", ks)
		}
		var err error
		if win, err = parseWindow(n, i, ks[0], ks[1], s.h, s.w, s.oh, s.ow); err != nil {
			return nil, err
		}
	}
	s.dh, s.dw = win.dh, win.dw
	s.max2x2 = !s.avg && win.kh == 2 && win.kw == 2 && win.sh == 2 && win.sw == 2 && win.dh == 1 && win.dw == 1 &&
		win.pt == 0 && win.pl == 0 && 2*s.oh <= s.h && 2*s.ow <= s.w
	s.ty = newTaps(s.oh, s.h, win.kh, win.sh, win.dh, win.pt, win.pb)
	s.tx = newTaps(s.ow, s.w, win.kw, win.sw, win.dw, win.pl, win.pr)
	for o := 0; o < s.oh; o++ {
		if s.ty.hi[o] <= s.ty.lo[o] {
			return nil, unsupported(n, i, "output row %d has a window entirely in the padding", o)
		}
	}
	for o := 0; o < s.ow; o++ {
		if s.tx.hi[o] <= s.tx.lo[o] {
			return nil, unsupported(n, i, "output column %d has a window entirely in the padding", o)
		}
	}
	return s, nil
}

func (s *poolStep) setup(m *Model) error {
	s.z = m.quant[s.in].ZeroPoint
	s.nhwc = m.plan.nhwc[s.in]
	// Flat offsets (within one plane) of every window's taps inside the
	// input, and each window's divisor.
	s.first = make([]int32, s.oh*s.ow+1)
	s.div = make([]int32, s.oh*s.ow)
	for oy := 0; oy < s.oh; oy++ {
		for ox := 0; ox < s.ow; ox++ {
			o := oy*s.ow + ox
			for i := s.ty.lo[oy]; i < s.ty.hi[oy]; i++ {
				for j := s.tx.lo[ox]; j < s.tx.hi[ox]; j++ {
					s.offs = append(s.offs, int32((s.ty.start[oy]+i*s.dh)*s.w+s.tx.start[ox]+j*s.dw))
				}
			}
			s.first[o+1] = int32(len(s.offs))
			s.div[o] = s.first[o+1] - s.first[o]
			if s.includePad {
				s.div[o] = int32(s.ty.padded[oy] * s.tx.padded[ox]) // padded taps are real zeros: q = z
			}
		}
	}
	return nil
}

func (s *poolStep) run(ws *workspace, n int) error {
	hw, ohw := s.h*s.w, s.oh*s.ow
	src, dst := ws.bufs[s.in], ws.bufs[s.out]
	if s.nhwc {
		ws.sum = grow32(ws.sum, s.c)
		if s.max2x2 {
			ws.tmp8 = grow(ws.tmp8, 2*s.ow*s.c)
		}
		for i := 0; i < n; i++ {
			d, x := dst[i*s.c*ohw:(i+1)*s.c*ohw], src[i*s.c*hw:(i+1)*s.c*hw]
			if s.max2x2 {
				s.runMax2x2NHWC(d, x, ws.tmp8)
				continue
			}
			s.runNHWC(d, x, ws.sum)
		}
		return nil
	}
	if s.max2x2 {
		s.runMax2x2(src[:n*s.c*hw], dst[:n*s.c*ohw])
		return nil
	}
	for p := 0; p < n*s.c; p++ {
		plane := src[p*hw : (p+1)*hw]
		out := dst[p*ohw : (p+1)*ohw]
		for o := range out {
			taps := s.offs[s.first[o]:s.first[o+1]]
			if !s.avg {
				var m uint8
				for _, t := range taps {
					m = max(m, plane[t])
				}
				out[o] = m
				continue
			}
			sum := 0
			for _, t := range taps {
				sum += int(plane[t])
			}
			sum -= len(taps) * s.z // Σ(q - z) over the taps inside the input
			out[o] = uint8(min(max(s.z+divRound(sum, int(s.div[o])), 0), 255))
		}
	}
	return nil
}

// runNHWC pools one channels-last image: the tap offsets are pixel
// indices, and each tap is a run of c channels. sum is scratch of c
// values.
func (s *poolStep) runNHWC(dst, src []uint8, sum []int32) {
	c := s.c
	for o := 0; o < s.oh*s.ow; o++ {
		taps := s.offs[s.first[o]:s.first[o+1]]
		out := dst[o*c : (o+1)*c]
		if !s.avg {
			copy(out, src[int(taps[0])*c:int(taps[0]+1)*c])
			for _, t := range taps[1:] {
				kernels.MaxBytes(out, src[int(t)*c:int(t+1)*c])
			}
			continue
		}
		clear(sum)
		for _, t := range taps {
			px := src[int(t)*c : int(t+1)*c]
			for j, v := range px {
				sum[j] += int32(v)
			}
		}
		off := len(taps) * s.z
		for j := range out {
			out[j] = uint8(min(max(s.z+divRound(int(sum[j])-off, int(s.div[o])), 0), 255))
		}
	}
}

// maxPairBytes is the channel count from which runMax2x2NHWC takes the
// horizontal maximum of two pixels with kernels.MaxBytes; below it a loop
// over the channels is faster than the call (LeNet's 6 channels took 66
// ns a pixel through four calls).
const maxPairBytes = 32

// runMax2x2NHWC is MaxPool with 2x2 windows, stride 2 and no padding on
// one channels-last image: for each output row the two input rows' pixels
// are combined by one kernels.MaxBytes over 2·ow·c bytes (into scratch, at
// least that long), then each pair of adjacent pixels of that row. The
// same maxima as runNHWC, in another order (max is exact).
func (s *poolStep) runMax2x2NHWC(dst, src, scratch []uint8) {
	c, w, ow := s.c, s.w, s.ow
	row := 2 * ow * c
	v := scratch[:row]
	for oy := 0; oy < s.oh; oy++ {
		copy(v, src[2*oy*w*c:2*oy*w*c+row])
		kernels.MaxBytes(v, src[(2*oy+1)*w*c:(2*oy+1)*w*c+row])
		out := dst[oy*ow*c : (oy+1)*ow*c]
		for ox := 0; ox < ow; ox++ {
			o, a, b := out[ox*c:(ox+1)*c], v[2*ox*c:(2*ox+1)*c], v[(2*ox+1)*c:(2*ox+2)*c]
			if c >= maxPairBytes {
				copy(o, a)
				kernels.MaxBytes(o, b)
				continue
			}
			for j := range o {
				o[j] = max(a[j], b[j])
			}
		}
	}
}

// runMax2x2 is MaxPool with 2x2 windows, stride 2 and no padding, the
// common case, without the tap lists.
func (s *poolStep) runMax2x2(src, dst []uint8) {
	w, ow := s.w, s.ow
	for p := 0; p < len(dst)/(s.oh*ow); p++ {
		plane := src[p*s.h*w:]
		out := dst[p*s.oh*ow : (p+1)*s.oh*ow]
		for oy := 0; oy < s.oh; oy++ {
			r0 := plane[2*oy*w : 2*oy*w+2*ow]
			r1 := plane[(2*oy+1)*w : (2*oy+1)*w+2*ow]
			o := out[oy*ow : (oy+1)*ow]
			for ox := range o {
				o[ox] = max(r0[2*ox], r0[2*ox+1], r1[2*ox], r1[2*ox+1])
			}
		}
	}
}

// divRound returns a/b rounded to the nearest integer, ties away from zero
// (b > 0).
func divRound(a, b int) int {
	if a >= 0 {
		return (2*a + b) / (2 * b)
	}
	return -((-2*a + b) / (2 * b))
}

func (s *quantizeStep) buffers() ([]int, int) { return nil, s.out }
func (s *addStep) buffers() ([]int, int)      { return []int{s.a, s.b}, s.out }
func (s *clampStep) buffers() ([]int, int)    { return []int{s.in}, s.out }
func (s *poolStep) buffers() ([]int, int)     { return []int{s.in}, s.out }
