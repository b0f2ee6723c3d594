package kernels

import "fmt"

// Depthwise holds the weights of a depthwise convolution (one input
// channel per output channel, ONNX group = C) for DepthwiseNHWC: C
// channels, KH x KW taps, stored tap-major as int32, w[t*cpad+c], with
// the channels padded with zeros to a multiple of 16 (cpad).
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
	d := &Depthwise{C: c, KH: kh, KW: kw, cpad: (c + tileN - 1) &^ (tileN - 1)}
	d.w = make([]int32, kh*kw*d.cpad)
	for ch := 0; ch < c; ch++ {
		for t := 0; t < kh*kw; t++ {
			d.w[t*d.cpad+ch] = int32(w[ch*kh*kw+t])
		}
	}
	return d, nil
}

// DWScratch is the working memory of DepthwiseNHWC calls made one at a
// time: one output row of int32 accumulators, panel-major
// ([C/16][OW][16], the layout of the GEMM epilogue's tiles), and the
// requantization constants. The zero value is ready; it grows to the
// largest call.
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
	if sc == nil {
		sc = &DWScratch{}
	}
	panels, err := rq.epilogue(&sc.panels, c)
	if err != nil {
		return err
	}
	sc.acc = growSlice(&sc.acc, d.cpad*ow)
	z := int32(aZero)
	// Columns whose whole kernel row is inside take the taps of a row in
	// one pass (dwRow); the others one tap at a time.
	ilo, ihi := dwInterior(s, ow)
	if s.KW == 1 {
		ilo, ihi = 0, 0
	}
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
				t := ky*s.KW + kx
				wt := d.w[t*d.cpad : (t+1)*d.cpad]
				// Outside the interior only: [lo, ilo) and [ihi, hi).
				for _, r := range [2][2]int{{lo, min(hi, ilo)}, {max(lo, ihi), hi}} {
					if r[0] < r[1] {
						x0 := (r[0]*s.StrideW + off) * c
						dwTap(acc, line[x0:], wt, r[0], r[1]-r[0], ow, s.StrideW*c, c, z)
					}
				}
			}
			if ilo < ihi {
				x0 := (ilo*s.StrideW - s.PadLeft) * c
				dwRow(acc, line[x0:], d.w[ky*s.KW*d.cpad:], ilo, ihi-ilo, ow, s.StrideW*c, s.KW, s.DilationW*c, d.cpad, c, z)
			}
		}
		dwRequantRow(dst[oy*ow*c:(oy+1)*ow*c], acc, ow, c, panels)
	}
	return nil
}

// dwRowGo is the reference of dwRow: dwTap for each of the kw taps of a
// kernel row, tap t reading the pixels t*tapstride bytes further and the
// weights w[t*wstride:].
func dwRowGo(acc []int32, x []uint8, w []int32, p0, n, ow, xstride, kw, tapstride, wstride, c int, z int32) {
	for t := 0; t < kw; t++ {
		dwTap(acc, x[t*tapstride:], w[t*wstride:], p0, n, ow, xstride, c, z)
	}
}

// dwInterior returns the output columns [lo, hi) whose every tap of a
// kernel row lies inside the image (lo == hi when none does).
func dwInterior(s ConvShape, ow int) (lo, hi int) {
	lo = (s.PadLeft + s.StrideW - 1) / s.StrideW
	last := s.W - 1 + s.PadLeft - (s.KW-1)*s.DilationW // ox*sw <= last
	if last < 0 {
		return lo, lo
	}
	hi = min(ow, last/s.StrideW+1)
	return lo, max(lo, hi)
}

// dwTapGo is the reference of dwTap: for p < n and ch < c, with the
// panel-major accumulators of one output row of ow pixels,
// acc[(ch/16)*ow*16 + (p0+p)*16 + ch%16] += (x[p*xstride+ch] - z) * w[ch].
func dwTapGo(acc []int32, x []uint8, w []int32, p0, n, ow, xstride, c int, z int32) {
	dwTapChannels(acc, x, w, p0, n, ow, xstride, 0, c, z)
}

// dwTapChannels is dwTapGo for the channels [c0, c1).
func dwTapChannels(acc []int32, x []uint8, w []int32, p0, n, ow, xstride, c0, c1 int, z int32) {
	for p := 0; p < n; p++ {
		xs := x[p*xstride : p*xstride+c1]
		for ch := c0; ch < c1; ch++ {
			acc[(ch/tileN)*ow*tileN+(p0+p)*tileN+ch%tileN] += (int32(xs[ch]) - z) * w[ch]
		}
	}
}

// dwRequantRow requantizes one output row of ow pixels x c channels from
// the panel-major accumulators into dst (row-major [ow][c]) with the GEMM
// epilogue: requantRows on the ow rows of each whole panel, the formula of
// requantTileGo on the channels of a last partial panel.
func dwRequantRow(dst []uint8, acc []int32, ow, c int, panels []rqParams) {
	full := c / tileN
	for p := 0; p < full; p++ {
		requantRows(dst[p*tileN:], c, acc[p*ow*tileN:(p+1)*ow*tileN], ow, &panels[p])
	}
	if full*tileN == c {
		return
	}
	prm := &panels[full]
	lo, hi, zero := prm.lo[0], prm.hi[0], prm.zero[0]
	for r := 0; r < ow; r++ {
		a := acc[(full*ow+r)*tileN:]
		d := dst[r*c+full*tileN : (r+1)*c]
		for j := range d {
			p := int64(a[j])*prm.mult[j] + prm.bm[j]
			q := (p+prm.half[j]+(p>>63)&prm.adj[j])>>uint(prm.shift[j]&63) + zero
			d[j] = uint8(min(max(q, lo), hi))
		}
	}
}

// requantRowsGo is requantTileGo for rows of 16 accumulators, as many as
// given: dst[r*ldd+j] for r < rows, j < 16 from acc[r*16+j].
func requantRowsGo(dst []uint8, ldd int, acc []int32, rows int, prm *rqParams) {
	var t tile
	for r0 := 0; r0 < rows; r0 += tileM {
		n := min(tileM, rows-r0)
		copy(t[:n*tileN], acc[r0*tileN:(r0+n)*tileN])
		requantTileGo(dst[r0*ldd:], ldd, &t, n, tileN, prm)
	}
}
