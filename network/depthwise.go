package network

// Depthwise convolutions (one input channel per group: MobileNet's and
// EfficientNet's 3×3 and 5×5 layers) as im2col + GEMM are one tiny product
// per channel (M/group rows, kh·kw inner size), where copying the columns
// costs more than the arithmetic. Their forward pass (Forward, Infer and
// the tangents of X and W, all through convPass.forward) runs instead as
// a direct loop: for each kernel tap, the shifted input plane times the
// tap's weight is added to the output plane, in float64 at either
// precision. The backward passes (data and weight gradients, and their
// tangents, through backwardData and backwardWeight) loop over the taps
// the same way.

// depthwise reports whether the convolution has one input channel per
// group and more than one group.
func (p *convPass) depthwise() bool { return p.cg == 1 && p.g > 1 }

// forwardDepthwise is forward for a depthwise convolution: it adds
// conv(x_b, w_k) + bias_k to dst[k, b] for every sample b < nb of x and
// each of kw weight sets w [kw, M, 1, kh, kw] with biases [kw, M] (nil:
// none); dst is [kw, nb, M, P].
func (p *convPass) forwardDepthwise(dst, x []float64, nb int, w []float64, kw int, bias []float64) {
	g := p.geo
	taps := g.kh * g.kw
	hw := g.h * g.w
	for k := 0; k < kw; k++ {
		for b := 0; b < nb; b++ {
			out := dst[(k*nb+b)*p.mp : (k*nb+b+1)*p.mp]
			for m := 0; m < p.m; m++ {
				plane := out[m*p.p : (m+1)*p.p]
				switch {
				case p.fresh && bias != nil:
					bv := 0 + bias[k*p.m+m] // -0 becomes +0, as added to a zero
					for i := range plane {
						plane[i] = bv
					}
				case p.fresh:
					clear(plane)
				case bias != nil:
					bv := bias[k*p.m+m]
					for i := range plane {
						plane[i] += bv
					}
				}
				ci := m / p.mg // the input channel of output channel m
				src := x[(b*p.c+ci)*hw : (b*p.c+ci+1)*hw]
				p.depthwisePlane(plane, src, w[(k*p.m+m)*taps:(k*p.m+m+1)*taps])
			}
		}
	}
}

// depthwisePlane adds the correlation of one input plane src [h, w] with
// one kernel wk [kh, kw] to the output plane [oh, ow]. Output rows are
// the outer loop, so that a row stays in cache while every tap adds to it;
// each output value still receives the taps in (i, j) order, so the sums
// are those of one pass over the plane per tap, bit for bit.
func (p *convPass) depthwisePlane(plane, src, wk []float64) {
	g := p.geo
	type tap struct {
		w           float64
		off, lo, hi int
	}
	var buf [16]tap // the column taps (they depend on j only)
	taps := buf[:0]
	if g.kw > len(buf) {
		taps = make([]tap, 0, g.kw)
	}
	for j := 0; j < g.kw; j++ {
		off := j*g.dw - g.pl
		lo, hi := g.validCols(off)
		taps = append(taps, tap{off: off, lo: lo, hi: hi})
	}
	// With three or five column taps (dilation 1), the output columns
	// [loAll, hiAll) that every tap reaches take them in one loop
	// (rowTaps).
	loAll, hiAll := 0, 0
	if (len(taps) == 3 || len(taps) == 5) && g.dw == 1 {
		hiAll = g.ow
		for _, t := range taps {
			loAll, hiAll = max(loAll, t.lo), min(hiAll, t.hi)
		}
	}
	for oy := 0; oy < g.oh; oy++ {
		d := plane[oy*g.ow : (oy+1)*g.ow]
		for i := 0; i < g.kh; i++ {
			iy := oy*g.sh - g.pt + i*g.dh
			if iy < 0 || iy >= g.h {
				continue
			}
			s := src[iy*g.w : (iy+1)*g.w]
			if hiAll > loAll && rowTaps(d, s, wk[i*g.kw:(i+1)*g.kw], taps[0].off, g.sw, loAll, hiAll) {
				continue
			}
			for j, t := range taps {
				wv := wk[i*g.kw+j]
				if t.lo >= t.hi || wv == 0 {
					continue
				}
				if g.sw == 1 {
					ss, dd := s[t.lo+t.off:t.hi+t.off], d[t.lo:t.hi]
					for ox, v := range ss {
						dd[ox] += wv * v
					}
					continue
				}
				for ox := t.lo; ox < t.hi; ox++ {
					d[ox] += wv * s[ox*g.sw+t.off]
				}
			}
		}
	}
}

// rowTaps adds one kernel row w (3 or 5 weights) to the output row d
// from the input row s when the row has no zero weight (which the tap loop
// skips) and every tap reaches the columns [lo, hi), with dilation 1:
// d[ox] += w[j]·s[ox·sw+off+j] for j in order, as the tap loop does, but
// in one pass with each d[ox] loaded and stored once. The columns outside
// [lo, hi) take the taps that reach them one at a time, in the same
// order. It reports false (nothing done) when it does not apply.
func rowTaps(d, s, w []float64, off, sw, lo, hi int) bool {
	for _, wv := range w {
		if wv == 0 {
			return false
		}
	}
	edge := func(ox int) {
		for j, wv := range w {
			if c := ox*sw + off + j; c >= 0 && c < len(s) {
				d[ox] += wv * s[c]
			}
		}
	}
	for ox := 0; ox < lo; ox++ {
		edge(ox)
	}
	if len(w) == 3 {
		row3(d[lo:hi], s[lo*sw+off:], w[0], w[1], w[2], sw)
	} else {
		row5(d[lo:hi], s[lo*sw+off:], w[:5], sw)
	}
	for ox := hi; ox < len(d); ox++ {
		edge(ox)
	}
	return true
}

// row3 adds w0·s[ox·sw] + w1·s[ox·sw+1] + w2·s[ox·sw+2] to each d[ox], one
// term at a time in that order.
func row3(d, s []float64, w0, w1, w2 float64, sw int) {
	if sw == 1 {
		s = s[:len(d)+2]
		for ox := range d {
			v := d[ox]
			v += w0 * s[ox]
			v += w1 * s[ox+1]
			v += w2 * s[ox+2]
			d[ox] = v
		}
		return
	}
	for ox := range d {
		c := ox * sw
		v := d[ox]
		v += w0 * s[c]
		v += w1 * s[c+1]
		v += w2 * s[c+2]
		d[ox] = v
	}
}

// row5 is row3 for five weights w.
func row5(d, s, w []float64, sw int) {
	w0, w1, w2, w3, w4 := w[0], w[1], w[2], w[3], w[4]
	for ox := range d {
		c := ox * sw
		t := s[c : c+5]
		v := d[ox]
		v += w0 * t[0]
		v += w1 * t[1]
		v += w2 * t[2]
		v += w3 * t[3]
		v += w4 * t[4]
		d[ox] = v
	}
}

// backwardDataDepthwise is backwardData for a depthwise convolution: it
// adds to dx [nb, C, H, W] the transposed convolution of each term's g
// [nb, M, P] with its w [M, 1, kh, kw].
func (p *convPass) backwardDataDepthwise(dx []float64, nb int, terms []dataTerm) {
	taps := p.geo.kh * p.geo.kw
	hw := p.geo.h * p.geo.w
	for _, t := range terms {
		for b := 0; b < nb; b++ {
			for m := 0; m < p.m; m++ {
				ci := m / p.mg
				p.depthwiseTaps(t.g[b*p.mp+m*p.p:b*p.mp+(m+1)*p.p], dx[(b*p.c+ci)*hw:(b*p.c+ci+1)*hw], func(tap int, out, in []float64, base, step int) {
					wv := t.w[m*taps+tap]
					for ox, v := range out {
						in[base+ox*step] += wv * v
					}
				})
			}
		}
	}
}

// backwardWeightDepthwise is backwardWeight for a depthwise convolution:
// each term's dw [M, 1, kh, kw] receives the sum over samples of the
// correlation of its g [nb, M, P] with the input planes of src.x.
func (p *convPass) backwardWeightDepthwise(nb int, terms []weightTerm) {
	taps := p.geo.kh * p.geo.kw
	hw := p.geo.h * p.geo.w
	for _, t := range terms {
		for b := 0; b < nb; b++ {
			for m := 0; m < p.m; m++ {
				ci := m / p.mg
				dw := t.dw[m*taps : (m+1)*taps]
				p.depthwiseTaps(t.g[b*p.mp+m*p.p:b*p.mp+(m+1)*p.p], t.src.x[(b*p.c+ci)*hw:(b*p.c+ci+1)*hw], func(tap int, out, in []float64, base, step int) {
					s := 0.0
					for ox, v := range out {
						s += v * in[base+ox*step]
					}
					dw[tap] += s
				})
			}
		}
	}
}

// depthwiseTaps calls f for every kernel tap and every output row whose
// input row is inside the plane, with the row's in-bounds output values
// out (a sub-slice of the output plane) and in, the input plane's row:
// out[ox]'s input element is in[base+ox*step].
func (p *convPass) depthwiseTaps(plane, src []float64, f func(tap int, out, in []float64, base, step int)) {
	g := p.geo
	for i := 0; i < g.kh; i++ {
		for j := 0; j < g.kw; j++ {
			off := j*g.dw - g.pl
			lo, hi := g.validCols(off)
			if lo >= hi {
				continue
			}
			for oy := 0; oy < g.oh; oy++ {
				iy := oy*g.sh - g.pt + i*g.dh
				if iy < 0 || iy >= g.h {
					continue
				}
				f(i*g.kw+j, plane[oy*g.ow+lo:oy*g.ow+hi], src[iy*g.w:(iy+1)*g.w], lo*g.sw+off, g.sw)
			}
		}
	}
}
