//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

// useAVX2 selects the assembly micro-kernels. Tests set it to false to run
// the pure-Go twins on the same inputs.
var useAVX2 = cpu.X86.HasAVX2

// useVNNI selects the AVX-512 VNNI micro-kernels (VPDPBUSD on 512-bit
// registers) for every weight bit width, and the quad layout for 8-bit
// weights packed while it is set. The cpu package folds in the OS check for
// the AVX-512 register state. Tests set it to false to run the AVX2 kernels
// and the Go twins.
var useVNNI = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VNNI

// tile16AVX2 computes, for a 6 x 16 tile and kp >= 1 pairs,
//
//	for r := 0; r < 6; r++ {
//		for n := 0; n < 16; n++ {
//			var s int32
//			for p := 0; p < kp; p++ {
//				s += int32(a[p*12+r*2])*int32(w[p*32+n*2]) + int32(a[p*12+r*2+1])*int32(w[p*32+n*2+1])
//			}
//			c[r*16+n] = s // c[r*16+n] += s if acc
//		}
//	}
//
// with one VPMADDWD + VPADDD per 8 outputs and pair. See tile16Go.
//
//go:noescape
func tile16AVX2(a, w *int16, c *int32, kp int, acc bool)

// tile8AVX2 computes, for a 6 x 16 tile and kq >= 1 quads,
//
//	for r := 0; r < 6; r++ {
//		for n := 0; n < 16; n++ {
//			var s int32
//			for q := 0; q < kq; q++ {
//				for j := 0; j < 4; j++ {
//					s += int32(a[q*24+r*4+j]) * int32(w[q*64+n*4+j])
//				}
//			}
//			c[r*16+n] = s // c[r*16+n] += s if acc
//		}
//	}
//
// accumulating VPMADDUBSW pair sums in int16 for group quads at a time (from
// weightRange, which bounds them below 32768) before widening to int32. See
// tile8Go for the lane-exact description.
//
//go:noescape
func tile8AVX2(a *uint8, w *int8, c *int32, kq, group int, acc bool)

func tile16(a, w []int16, c *tile, kp int, acc bool) {
	if useAVX2 && kp > 0 {
		_ = a[kp*2*tileM-1]
		_ = w[kp*2*tileN-1]
		tile16AVX2(&a[0], &w[0], &c[0], kp, acc)
		return
	}
	tile16Go(a, w, c, kp, acc)
}

func tile8(a []uint8, w []int8, c *tile, kq, g int, acc bool) {
	if useAVX2 && kq > 0 && g > 0 {
		_ = a[kq*4*tileM-1]
		_ = w[kq*4*tileN-1]
		tile8AVX2(&a[0], &w[0], &c[0], kq, g, acc)
		return
	}
	tile8Go(a, w, c, kq, g, acc)
}

// tileVNNI64 computes four 6 x 16 tiles at once: for j < 4 (the panels at
// w + j*wstride bytes), r < 6, n < 16,
//
//	s := sum_{q<kq} sum_{i<4} int32(a[q*24+r*4+i]) * int32(w[j*wstride+q*64+n*4+i])
//	init := c[j*96+r*16+n] // start[j*16+n] if start != nil
//	out[(j*pstride+r*rstride)/4+n] = init + s
//
// with VPDPBUSD (strides in bytes; out = c, pstride = 384, rstride = 64
// updates the tiles in place). See tileDotGo.
//
//go:noescape
func tileVNNI64(a *uint8, w *int8, wstride int, c *int32, kq int, start *int32, out *int32, pstride, rstride int)

// tileVNNI16 is tileVNNI64 for a single panel (j == 0).
//
//go:noescape
func tileVNNI16(a *uint8, w *int8, c *int32, kq int, start *int32)

// quadGroup is the number of 16-channel panels the quad kernels take per
// call: four for tileVNNI64.
const quadGroup = 4

// tilesQuad computes into c[j] (j < len(c) <= quadGroup) the product of the
// activation tile a (kq quads) with the panel at w[j*wstride:], added to the
// current c[j], or, when start is not nil, to rows all equal to
// start[j*16:(j+1)*16]. With VNNI it runs tileVNNI64 for four panels and
// tileVNNI16 otherwise; without it the AVX2 low-bit kernel (g > 0) or the Go
// twins.
func tilesQuad(a []uint8, w []int8, wstride int, c []tile, kq, g int, start []int32) {
	if kq < 1 || len(c) == 0 {
		return
	}
	_ = a[kq*4*tileM-1]
	_ = w[(len(c)-1)*wstride+kq*4*tileN-1]
	var ip *int32
	if start != nil {
		_ = start[len(c)*tileN-1]
		ip = &start[0]
	}
	switch {
	case useVNNI && len(c) == quadGroup:
		tileVNNI64(&a[0], &w[0], wstride, &c[0][0], kq, ip, &c[0][0], 4*tileM*tileN, 4*tileN)
	case useVNNI:
		for j := range c {
			if ip != nil {
				ip = &start[j*tileN]
			}
			tileVNNI16(&a[0], &w[j*wstride], &c[j][0], kq, ip)
		}
	case useAVX2 && g > 0:
		setRows(c, start)
		for j := range c {
			tile8AVX2(&a[0], &w[j*wstride], &c[j][0], kq, g, true)
		}
	default:
		tilesQuadGo(a, w, wstride, c, kq, g, start)
	}
}

// tilesQuadOut is tilesQuad for the last steps of four full panels
// (len(c) == quadGroup), writing the results to the 6 x 64
// block of the row-major dst (row stride ldd) instead of c: dst[r*ldd +
// j*16 + n] gets the value tilesQuad would leave in c[j][r*16+n]. c is read
// (when start is nil) and may be left modified. With VNNI the micro-kernel
// stores its accumulators straight into dst; otherwise it runs tilesQuad and
// copies.
func tilesQuadOut(a []uint8, w []int8, wstride int, c []tile, kq, g int, start []int32, dst []int32, ldd int) {
	_ = c[quadGroup-1]
	_ = dst[(tileM-1)*ldd+quadGroup*tileN-1]
	if !useVNNI || kq < 1 {
		tilesQuad(a, w, wstride, c, kq, g, start)
		copyTilesOut(dst, ldd, c)
		return
	}
	_ = a[kq*4*tileM-1]
	_ = w[(quadGroup-1)*wstride+kq*4*tileN-1]
	var ip *int32
	if start != nil {
		_ = start[quadGroup*tileN-1]
		ip = &start[0]
	}
	tileVNNI64(&a[0], &w[0], wstride, &c[0][0], kq, ip, &dst[0], 4*tileN, 4*ldd)
}

// packA8AVX2 is the vector form of packA8's inner loop for a full tile: for
// b < blocks, r < 6, j < 16,
//
//	dst[96*b + (j/4)*24 + r*4 + j%4] = src[r*k + 16*b + j]
//
//go:noescape
func packA8AVX2(dst, src *uint8, k, blocks int)

// packA16AVX2 is the vector form of packA16's inner loop for a full tile:
// for b < blocks, r < 6, j < 8,
//
//	dst[48*b + (j/2)*12 + r*2 + j%2] = int16(src[r*k + 8*b + j]) - int16(z)
//
//go:noescape
func packA16AVX2(dst *int16, src *uint8, k, blocks, z int)

// packA8Full packs the leading 16-column blocks of the full 6-row tile at
// row r0 and returns how many columns it packed.
func packA8Full(dst, a []uint8, k, r0 int) int {
	blocks := k / 16
	if !useAVX2 || blocks == 0 {
		return 0
	}
	_ = a[(r0+tileM)*k-1]
	_ = dst[blocks*96-1]
	packA8AVX2(&dst[0], &a[r0*k], k, blocks)
	return blocks * 16
}

// packA16Full packs the leading 8-column blocks of the full 6-row tile at
// row r0 and returns how many columns it packed.
func packA16Full(dst []int16, a []uint8, k, r0 int, z uint8) int {
	blocks := k / 8
	if !useAVX2 || blocks == 0 {
		return 0
	}
	_ = a[(r0+tileM)*k-1]
	_ = dst[blocks*48-1]
	packA16AVX2(&dst[0], &a[r0*k], k, blocks, int(z))
	return blocks * 8
}

// requantTileAVX2 is requantTileGo for full 16-channel rows (cols == 16),
// 1 <= rows <= 6: four channels per step in int64 lanes (VPMULDQ, VPSRLVQ,
// with the arithmetic shift built from XOR with the sign mask).
//
//go:noescape
func requantTileAVX2(dst *uint8, ldd int, c *int32, rows int, prm *rqParams)

// requantTileAVX512 is requantTileAVX2 with eight channels per step
// (VPSRAVQ, VPMAXSQ, VPMINSQ, VPMOVQB); it runs when useVNNI is set, which
// implies AVX-512F.
//
//go:noescape
func requantTileAVX512(dst *uint8, ldd int, c *int32, rows int, prm *rqParams)

func requantTile(dst []uint8, ldd int, c *tile, rows, cols int, prm *rqParams) {
	if useVNNI && cols == tileN && rows > 0 {
		_ = dst[(rows-1)*ldd+tileN-1]
		requantTileAVX512(&dst[0], ldd, &c[0], rows, prm)
		return
	}
	if useAVX2 && cols == tileN && rows > 0 {
		_ = dst[(rows-1)*ldd+tileN-1]
		requantTileAVX2(&dst[0], ldd, &c[0], rows, prm)
		return
	}
	requantTileGo(dst, ldd, c, rows, cols, prm)
}
