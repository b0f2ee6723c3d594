//go:build amd64 && !purego

package kernels

// dwPanelAVX2 computes, for p < n and j < 16,
// acc[p*16+j] += (x[p*xstride+j] - z) * w[j]: one 16-channel panel of n
// pixels, the weights held in two registers, eight channels per
// VPMOVZXBD, VPSUBD, VPMULLD, VPADDD (exact: |(x - z)*w| <= 255*128).
//
//go:noescape
func dwPanelAVX2(acc *int32, x *uint8, w *int32, n, xstride int, z int32)

// dwRowAVX512 computes, for p < n and j < 16,
// acc[p*16+j] += sum_{t<kw} (x[p*xstride+t*tapstride+j] - z) * w[t*wstride+j]:
// one 16-channel panel of n pixels against the kw taps of a kernel row,
// summed in a register (VPMOVZXBD, VPSUBD, VPMULLD, VPADDD on sixteen
// channels; exact as dwPanelAVX2), the accumulators loaded and stored once.
//
//go:noescape
func dwRowAVX512(acc *int32, x *uint8, w *int32, n, xstride, kw, tapstride, wstride int, z int32)

// dwRow is dwRowGo, on dwRowAVX512 for the whole panels when the AVX-512
// kernels are on.
func dwRow(acc []int32, x []uint8, w []int32, p0, n, ow, xstride, kw, tapstride, wstride, c int, z int32) {
	if !useVNNI || n == 0 {
		dwRowGo(acc, x, w, p0, n, ow, xstride, kw, tapstride, wstride, c, z)
		return
	}
	full := c / tileN
	if full > 0 {
		_ = x[(n-1)*xstride+(kw-1)*tapstride+full*tileN-1]
		_ = w[(kw-1)*wstride+full*tileN-1]
	}
	for p := 0; p < full; p++ {
		a := acc[(p*ow+p0)*tileN : (p*ow+p0+n)*tileN]
		dwRowAVX512(&a[0], &x[p*tileN], &w[p*tileN], n, xstride, kw, tapstride, wstride, z)
	}
	if full*tileN < c {
		for t := 0; t < kw; t++ {
			dwTapChannels(acc, x[t*tapstride:], w[t*wstride:], p0, n, ow, xstride, full*tileN, c, z)
		}
	}
}

// dwTap is dwTapGo: the assembly for the whole 16-channel panels, Go for
// the channels of a last partial one.
func dwTap(acc []int32, x []uint8, w []int32, p0, n, ow, xstride, c int, z int32) {
	if !useAVX2 || n == 0 {
		dwTapGo(acc, x, w, p0, n, ow, xstride, c, z)
		return
	}
	full := c / tileN
	if full > 0 {
		// Bounds of the last pixel's accesses, checked once.
		_ = x[(n-1)*xstride+full*tileN-1]
		_ = w[full*tileN-1]
	}
	for p := 0; p < full; p++ {
		a := acc[(p*ow+p0)*tileN : (p*ow+p0+n)*tileN]
		dwPanelAVX2(&a[0], &x[p*tileN], &w[p*tileN], n, xstride, z)
	}
	if full*tileN < c {
		dwTapChannels(acc, x, w, p0, n, ow, xstride, full*tileN, c, z)
	}
}

// requantRows requantizes rows of 16 accumulators (acc[r*16+j]) into
// dst[r*ldd+j] with the GEMM epilogue's assembly, which takes any number
// of rows.
func requantRows(dst []uint8, ldd int, acc []int32, rows int, prm *rqParams) {
	if rows == 0 {
		return
	}
	_ = acc[rows*tileN-1]
	_ = dst[(rows-1)*ldd+tileN-1]
	switch {
	case useVNNI:
		requantTileAVX512(&dst[0], ldd, &acc[0], rows, prm)
	case useAVX2:
		requantTileAVX2(&dst[0], ldd, &acc[0], rows, prm)
	default:
		requantRowsGo(dst, ldd, acc, rows, prm)
	}
}
