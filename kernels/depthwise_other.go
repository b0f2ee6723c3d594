//go:build !amd64 || purego

package kernels

func dwTap(acc []int32, x []uint8, w []int32, p0, n, ow, xstride, c int, z int32) {
	dwTapGo(acc, x, w, p0, n, ow, xstride, c, z)
}

func requantRows(dst []uint8, ldd int, acc []int32, rows int, prm *rqParams) {
	requantRowsGo(dst, ldd, acc, rows, prm)
}

func dwRow(acc []int32, x []uint8, w []int32, p0, n, ow, xstride, kw, tapstride, wstride, c int, z int32) {
	dwRowGo(acc, x, w, p0, n, ow, xstride, kw, tapstride, wstride, c, z)
}
