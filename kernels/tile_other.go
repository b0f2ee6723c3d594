//go:build !amd64 || purego

package kernels

// useAVX2 is always false without the assembly; it exists so tests can set it.
var useAVX2 = false

// useVNNI is always false without the assembly; it exists so tests can set it.
var useVNNI = false

// quadGroup is the number of 16-channel panels a quad-kernel call takes.
const quadGroup = 4

func tile16(a, w []int16, c *tile, kp int, acc bool) { tile16Go(a, w, c, kp, acc) }

func tile8(a []uint8, w []int8, c *tile, kq, g int, acc bool) { tile8Go(a, w, c, kq, g, acc) }

func tilesQuad(a []uint8, w []int8, wstride int, c []tile, kq, g int, start []int32) {
	tilesQuadGo(a, w, wstride, c, kq, g, start)
}

func tilesQuadOut(a []uint8, w []int8, wstride int, c []tile, kq, g int, start []int32, dst []int32, ldd int) {
	tilesQuadGo(a, w, wstride, c, kq, g, start)
	copyTilesOut(dst, ldd, c)
}

func packA8Full(dst, a []uint8, k, r0 int) int { return 0 }

func packA16Full(dst []int16, a []uint8, k, r0 int, z uint8) int { return 0 }

func requantTile(dst []uint8, ldd int, c *tile, rows, cols int, prm *rqParams) {
	requantTileGo(dst, ldd, c, rows, cols, prm)
}

func lutRow(dst, row []uint8, kq int) int32 { return lutRowGo(dst, row, 0, kq) }

func lutTile(t, w []uint8, c, start, rsum []int32, kq int) {
	lutTileGo(t, w, c, start, rsum, kq)
}

func lutPanels(t, w []uint8, c []tile, start, rsum []int32, kq int) {
	lutPanelsGo(t, w, c, start, rsum, kq)
}
