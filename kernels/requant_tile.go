package kernels

// rqParams holds the per-channel constants of one 16-channel panel for the
// requantization epilogue, as int64 lanes (the assembly reads them by
// offset: mult 0, bm 128, half 256, adj 384, shift 512, lo 640, hi 672,
// zero 704).
type rqParams struct {
	mult  [tileN]int64 // dyadic mantissa, 0 <= mult < 2^31
	bm    [tileN]int64 // bias * mult
	half  [tileN]int64 // 2^(shift-1), or 0 when shift == 0
	adj   [tileN]int64 // -1 when shift > 0, else 0
	shift [tileN]int64
	lo    [4]int64 // Lo, Hi and Zero broadcast
	hi    [4]int64
	zero  [4]int64
}

// set fills channel j of the panel. The branch-free form of Requantize used
// by the epilogue: for shift s > 0,
// sign(p)*floor((|p| + 2^(s-1)) / 2^s) = (p + 2^(s-1) - [p < 0]) >> s with an
// arithmetic shift, because for p < 0 it is
// ceil((p - 2^(s-1)) / 2^s) = floor((p + 2^(s-1) - 1) / 2^s). For s == 0 both
// correction terms vanish.
func (p *rqParams) set(j int, bias, mult int32, shift int) {
	p.mult[j] = int64(mult)
	p.bm[j] = int64(bias) * int64(mult)
	p.shift[j] = int64(shift)
	p.half[j], p.adj[j] = 0, 0
	if shift > 0 {
		p.half[j], p.adj[j] = 1<<(shift-1), -1
	}
}

// requantTileGo is the reference of the requantization epilogue: for
// r < rows, j < cols, with p = c[r*16+j]*mult[j] + bm[j],
//
//	dst[r*ldd+j] = clamp((p + half[j] + (p < 0 ? adj[j] : 0)) >> shift[j] + zero, lo, hi)
//
// which equals Requantize(c + bias, mult, shift, zero, lo, hi) whenever
// |c + bias| <= 2^31.
func requantTileGo(dst []uint8, ldd int, c *tile, rows, cols int, prm *rqParams) {
	lo, hi, zero := prm.lo[0], prm.hi[0], prm.zero[0]
	for r := 0; r < rows; r++ {
		d := dst[r*ldd : r*ldd+cols]
		cr := c[r*tileN : r*tileN+cols]
		for j := range d {
			p := int64(cr[j])*prm.mult[j] + prm.bm[j]
			q := (p+prm.half[j]+(p>>63)&prm.adj[j])>>uint(prm.shift[j]&63) + zero
			d[j] = uint8(min(max(q, lo), hi))
		}
	}
}

// panels returns the epilogue constants of the n channels of rq, one
// rqParams per 16-channel panel, in buf's memory when it is long enough.
func (rq *Requant) panels(buf []rqParams, n int) []rqParams {
	np := (n + tileN - 1) / tileN
	if cap(buf) < np {
		buf = make([]rqParams, np)
	}
	panels := buf[:np]
	clear(panels)
	for ch := 0; ch < n; ch++ {
		q := 0
		if len(rq.Mult) != 1 {
			q = ch
		}
		var bias int32
		if rq.Bias != nil {
			bias = rq.Bias[ch]
		}
		panels[ch/tileN].set(ch%tileN, bias, rq.Mult[q], rq.Shift[q])
	}
	for i := range panels {
		for j := 0; j < 4; j++ {
			panels[i].lo[j], panels[i].hi[j], panels[i].zero[j] = int64(rq.Lo), int64(rq.Hi), int64(rq.Zero)
		}
	}
	return panels
}
