//go:build amd64 && !purego

package kernels

// dwTapAVX2 computes, for p < n and the first 8*cblocks channels,
// acc[p*accstride+ch] += (x[p*xstride+ch] - z) * w[ch], eight channels
// per VPMOVZXBD, VPSUBD, VPMULLD, VPADDD (exact: |(x - z)*w| <= 255*128).
//
//go:noescape
func dwTapAVX2(acc *int32, x *uint8, w *int32, n, xstride, accstride, cblocks int, z int32)

// dwTap is dwTapGo: the assembly for the channels in whole blocks of 8,
// Go for the rest.
func dwTap(acc []int32, x []uint8, w []int32, n, xstride, c int, z int32) {
	if !useAVX2 || n == 0 {
		dwTapGo(acc, x, w, n, xstride, c, z)
		return
	}
	cb := c / 8
	if cb > 0 {
		// Bounds of the last pixel's accesses, checked once.
		_ = acc[(n-1)*c+cb*8-1]
		_ = x[(n-1)*xstride+cb*8-1]
		_ = w[cb*8-1]
		dwTapAVX2(&acc[0], &x[0], &w[0], n, xstride, c, cb, z)
	}
	if r := cb * 8; r < c {
		for p := 0; p < n; p++ {
			a := acc[p*c+r : (p+1)*c]
			xs := x[p*xstride+r : p*xstride+c]
			for ch := range a {
				a[ch] += (int32(xs[ch]) - z) * w[r+ch]
			}
		}
	}
}
