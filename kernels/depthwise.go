package kernels

import "fmt"

// Depthwise holds the weights of a depthwise convolution (one input
// channel per output channel, ONNX group = C) for DepthwiseNHWC: C
// channels, KH x KW taps, stored tap-major as int32, w[t*cpad+c], with
// the channels padded with zeros to a multiple of 8 (cpad).
type Depthwise struct {
	C, KH, KW int
	cpad      int
	w         []int32
}

// PackDepthwise packs C x KH x KW int8 weights (the ONNX layout
// [C][1][KH][KW], row-major) for DepthwiseNHWC.
func PackDepthwise(w []int8, c, kh, kw int) (*Depthwise, error) {
	if c < 1 || kh < 1 || kw < 1 || len(w) != c*kh*kw {
		return nil, fmt.Errorf("%w: %d depthwise weights for %d channels of %dx%d taps", ErrShape, len(w), c, kh, kw)
	}
	d := &Depthwise{C: c, KH: kh, KW: kw, cpad: (c + 7) &^ 7}
	d.w = make([]int32, kh*kw*d.cpad)
	for ch := 0; ch < c; ch++ {
		for t := 0; t < kh*kw; t++ {
			d.w[t*d.cpad+ch] = int32(w[ch*kh*kw+t])
		}
	}
	return d, nil
}

// DWScratch is the working memory of DepthwiseNHWC calls made one at a
// time: one output row of int32 accumulators and the requantization
// constants. The zero value is ready; it grows to the largest call.
type DWScratch struct {
	acc    []int32
	panels []rqParams
}

// DepthwiseNHWC convolves one channels-last image src (H x W pixels of C
// channels, zero point aZero) with the depthwise weights d over the window
// of s (s.C must equal d.C; s.KH, s.KW those of d) and requantizes with rq
// (one entry per channel, or per tensor), writing the channels-last
// OH x OW x C output into dst. Each output equals
//
//	Requantize(sum_t (x_t - aZero)*w_t + Bias[c], Mult[c], Shift[c], Zero, Lo, Hi)
//
// over the taps t of the window inside the image: a tap in the padding
// holds aZero and adds nothing, so it is skipped. The sum is exact in
// int32 (|sum| <= KH*KW*255*128). It is the result GEMMRequant gives on
// the Im2Col patches of the channel, without forming them.
func DepthwiseNHWC(dst, src []uint8, s ConvShape, aZero uint8, d *Depthwise, rq *Requant, sc *DWScratch) error {
	oh, ow, err := s.Out()
	if err != nil {
		return err
	}
	s = s.norm()
	c := d.C
	switch {
	case s.C != c || s.KH != d.KH || s.KW != d.KW:
		return fmt.Errorf("%w: depthwise weights of %d channels, %dx%d taps, for a %d-channel %dx%d window", ErrShape, c, d.KH, d.KW, s.C, s.KH, s.KW)
	case len(src) != s.H*s.W*c:
		return fmt.Errorf("%w: image holds %d values; want H*W*C = %d", ErrShape, len(src), s.H*s.W*c)
	case len(dst) != oh*ow*c:
		return fmt.Errorf("%w: output holds %d values; want OH*OW*C = %d", ErrShape, len(dst), oh*ow*c)
	case c*s.KH*s.KW > MaxK:
		return fmt.Errorf("%w: %d taps exceed MaxK", ErrShape, s.KH*s.KW)
	}
	if err := rq.check(c); err != nil {
		return err
	}
	if sc == nil {
		sc = &DWScratch{}
	}
	sc.panels = rq.panels(sc.panels, c)
	sc.acc = growSlice(&sc.acc, ow*c)
	z := int32(aZero)
	for oy := 0; oy < oh; oy++ {
		acc := sc.acc
		clear(acc)
		for ky := 0; ky < s.KH; ky++ {
			y := oy*s.StrideH - s.PadTop + ky*s.DilationH
			if y < 0 || y >= s.H {
				continue
			}
			line := src[y*s.W*c : (y+1)*s.W*c]
			for kx := 0; kx < s.KW; kx++ {
				// Output columns whose tap x = ox*sw - pl + kx*dw is inside.
				off := kx*s.DilationW - s.PadLeft
				lo := max(0, (-off+s.StrideW-1)/s.StrideW)
				hi := min(ow, (s.W-1-off)/s.StrideW+1)
				if s.W-1-off < 0 {
					hi = 0
				}
				if lo >= hi {
					continue
				}
				x0 := (lo*s.StrideW + off) * c
				dwTap(acc[lo*c:hi*c], line[x0:], d.w[(ky*s.KW+kx)*d.cpad:(ky*s.KW+kx)*d.cpad+d.cpad], hi-lo, s.StrideW*c, c, z)
			}
		}
		dwRequantRow(dst[oy*ow*c:(oy+1)*ow*c], acc, ow, c, sc.panels)
	}
	return nil
}

// dwTapGo is the reference of dwTap: for p < n and ch < c,
// acc[p*c+ch] += (x[p*xstride+ch] - z) * w[ch].
func dwTapGo(acc []int32, x []uint8, w []int32, n, xstride, c int, z int32) {
	for p := 0; p < n; p++ {
		a := acc[p*c : (p+1)*c]
		xs := x[p*xstride : p*xstride+c]
		for ch := range a {
			a[ch] += (int32(xs[ch]) - z) * w[ch]
		}
	}
}

// dwRequantRow requantizes one output row of ow pixels x c channels of
// accumulators (row-major) into dst through the GEMM epilogue, in tiles of
// 6 pixels x 16 channels.
func dwRequantRow(dst []uint8, acc []int32, ow, c int, panels []rqParams) {
	var t tile
	for p0 := 0; p0 < ow; p0 += tileM {
		rows := min(tileM, ow-p0)
		for c0 := 0; c0 < c; c0 += tileN {
			cols := min(tileN, c-c0)
			for r := 0; r < rows; r++ {
				copy(t[r*tileN:r*tileN+cols], acc[(p0+r)*c+c0:(p0+r)*c+c0+cols])
			}
			requantTile(dst[p0*c+c0:], c, &t, rows, cols, &panels[c0/tileN])
		}
	}
}
