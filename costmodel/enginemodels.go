package costmodel

import (
	"mpsearch/intengine"
	"mpsearch/kernels"
)

// The models of the convolution paths the integer engine added to
// im2col + GEMM + transpose (intengine layerStep.runConv): the channels-last
// patch matrix (kernels.Im2ColNHWC), the depthwise kernel
// (kernels.DepthwiseNHWC), and the composition of a layer's step.

// Im2ColNHWCModel is the time model of kernels.Im2ColNHWC on one image and
// group (see im2colNHWCFeatures).
type Im2ColNHWCModel struct {
	CallNs     float64 `yaml:"call_ns"`
	NsPerPixel float64 `yaml:"ns_per_pixel"` // per output pixel (patch row)
	// NsPerSegment is per kernel row of a patch row (KH per pixel).
	NsPerSegment float64 `yaml:"ns_per_segment"`
	// NsPerCopy is per call of copy (runs longer than 16 bytes) and
	// NsPerCopiedByte per byte they move.
	NsPerCopy       float64 `yaml:"ns_per_copy"`
	NsPerCopiedByte float64 `yaml:"ns_per_copied_byte"`
	// NsPerByte is per byte of the byte loops (runs of up to 16 bytes,
	// padding).
	NsPerByte float64 `yaml:"ns_per_byte"`
	Fit       *Fit    `yaml:"fit,omitempty"`
}

// nNHWCFeatures is the number of terms of Im2ColNHWCModel.
const nNHWCFeatures = 6

func (m *Im2ColNHWCModel) coef() []float64 {
	return []float64{m.CallNs, m.NsPerPixel, m.NsPerSegment, m.NsPerCopy, m.NsPerCopiedByte, m.NsPerByte}
}

// copyCall is the longest run kernels' copySmall moves with a byte loop.
const copyCall = 16

// im2colNHWCFeatures counts the terms of Im2ColNHWCModel for one image of
// geometry g (g.C the channels of one group) whose pixels hold ld bytes,
// by walking the loops of kernels.Im2ColNHWC: a constant, patch rows,
// kernel-row segments, copy calls and the bytes they move, and bytes
// written by byte loops.
func im2colNHWCFeatures(g kernels.ConvShape, ld int) []float64 {
	g = normConv(g)
	oh, ow, err := g.Out()
	if err != nil {
		return make([]float64, nNHWCFeatures)
	}
	c, kw := g.C, g.KW
	seg := kw * c
	whole := ld == c && g.DilationW == 1
	var calls, moved, loop float64
	run := func(n int) {
		if n > copyCall {
			calls++
			moved += float64(n)
		} else {
			loop += float64(n)
		}
	}
	for ox := 0; ox < ow; ox++ {
		x0 := ox*g.StrideW - g.PadLeft
		inside := x0 >= 0 && x0+(kw-1)*g.DilationW < g.W
		var rowCalls, rowMoved, rowLoop float64
		c0, m0, l0 := calls, moved, loop
		for kx := 0; kx < kw && !(whole && inside); kx++ {
			if x := x0 + kx*g.DilationW; x >= 0 && x < g.W {
				run(c)
			} else {
				loop += float64(c)
			}
		}
		if whole && inside {
			run(seg)
		}
		rowCalls, rowMoved, rowLoop = calls-c0, moved-m0, loop-l0
		calls, moved, loop = c0, m0, l0
		// The same column pattern repeats for every output row and
		// kernel row inside the image; rows outside are filled.
		for oy := 0; oy < oh; oy++ {
			for ky := 0; ky < g.KH; ky++ {
				y := oy*g.StrideH - g.PadTop + ky*g.DilationH
				if y < 0 || y >= g.H {
					loop += float64(seg)
					continue
				}
				calls += rowCalls
				moved += rowMoved
				loop += rowLoop
			}
		}
	}
	return []float64{1, float64(oh * ow), float64(oh * ow * g.KH), calls, moved, loop}
}

// DepthwiseModel is the time model of kernels.DepthwiseNHWC on one image
// (see depthwiseFeatures).
type DepthwiseModel struct {
	CallNs float64 `yaml:"call_ns"`
	// NsPerRow is per output row (clearing and requantizing its
	// accumulators' setup).
	NsPerRow float64 `yaml:"ns_per_row"`
	// NsPerTap is per call of the tap kernel (one kernel tap over the
	// output pixels of a row whose tap is inside the image).
	NsPerTap float64 `yaml:"ns_per_tap"`
	// NsPerLane is per pixel and channel (channels padded to 16) a tap
	// kernel multiplies and adds.
	NsPerLane float64 `yaml:"ns_per_lane"`
	// NsPerOutput is per output value (accumulator clear and
	// requantization).
	NsPerOutput float64 `yaml:"ns_per_output"`
	Fit         *Fit    `yaml:"fit,omitempty"`
}

func (m *DepthwiseModel) coef() []float64 {
	return []float64{m.CallNs, m.NsPerRow, m.NsPerTap, m.NsPerLane, m.NsPerOutput}
}

// depthwiseFeatures counts the terms of DepthwiseModel for one image of
// geometry g (g.C all channels) by walking kernels.DepthwiseNHWC's loops.
func depthwiseFeatures(g kernels.ConvShape) []float64 {
	g = normConv(g)
	oh, ow, err := g.Out()
	if err != nil {
		return make([]float64, 5)
	}
	cpad := (g.C + 15) &^ 15
	// Pixels per kernel column: the same for every output row.
	var colTaps, colPix float64
	for kx := 0; kx < g.KW; kx++ {
		off := kx*g.DilationW - g.PadLeft
		lo := max(0, (-off+g.StrideW-1)/g.StrideW)
		hi := min(ow, (g.W-1-off)/g.StrideW+1)
		if g.W-1-off < 0 {
			hi = 0
		}
		if lo < hi {
			colTaps++
			colPix += float64(hi - lo)
		}
	}
	var taps, lanes float64
	for oy := 0; oy < oh; oy++ {
		for ky := 0; ky < g.KH; ky++ {
			if y := oy*g.StrideH - g.PadTop + ky*g.DilationH; y >= 0 && y < g.H {
				taps += colTaps
				lanes += colPix * float64(cpad)
			}
		}
	}
	return []float64{1, float64(oh), taps, lanes, float64(oh * ow * g.C)}
}

// normConv sets strides and dilations below 1 to 1, as the kernels do.
func normConv(g kernels.ConvShape) kernels.ConvShape {
	g.StrideH, g.StrideW = max(g.StrideH, 1), max(g.StrideW, 1)
	g.DilationH, g.DilationW = max(g.DilationH, 1), max(g.DilationW, 1)
	return g
}

func dotS(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// convNs predicts the engine's step of convolution s (not depthwise) at
// kernel width kb for a batch, following intengine's runConv: per group,
// chunks of images whose patch matrices fit intengine.ImageChunkBytes
// (all of them on the direct path), the patch matrix of each image
// (channels-last from a channels-last input with more than one channel,
// else channels-first), one GEMMRequant per chunk, and the move of each
// image's rows to the output: none for a channels-last output of one
// group, a copy of each pixel's channels for a group of a channels-last
// output, a transpose for a channels-first one (and for the int32 logits,
// whose bias pass writes channels-first).
func (p *Profile) convNs(s LayerShape, kb, batch int) (float64, error) {
	c := *s.Conv
	g := max(s.Groups, 1)
	rows := s.M
	chunk := max(1, min(batch, intengine.ImageChunkBytes/max(1, rows*s.K)))
	if s.Direct {
		chunk = batch
	}
	full, rest := batch/chunk, batch%chunk
	gemm, err := p.gemmNs(kb, chunk*rows, s.K, s.N)
	if err != nil {
		return 0, err
	}
	t := float64(full) * gemm
	if rest > 0 {
		r, err := p.gemmNs(kb, rest*rows, s.K, s.N)
		if err != nil {
			return 0, err
		}
		t += r
	}
	per := 0.0 // per image and group
	if !s.Direct {
		if s.InNHWC && c.C*g > 1 {
			per += dotS(p.Im2ColNHWC.coef(), im2colNHWCFeatures(c, c.C*g))
		} else {
			per += dot5(p.Im2Col.coef(), im2colFeatures(c))
		}
	}
	switch {
	case s.OutNHWC && g == 1 && !s.Logits:
	case s.OutNHWC && !s.Logits:
		per += p.Transpose.CallNs + p.Transpose.NsPerRow*float64(rows) + p.Transpose.NsPerElement*float64(rows*s.N)
	default:
		per += dot5(p.Transpose.coef(), transposeFeatures(rows, s.N, p.CPU.L1D))
	}
	return float64(g) * (t + float64(batch)*per), nil
}
