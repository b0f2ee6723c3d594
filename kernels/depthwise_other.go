//go:build !amd64 || purego

package kernels

func dwTap(acc []int32, x []uint8, w []int32, n, xstride, c int, z int32) {
	dwTapGo(acc, x, w, n, xstride, c, z)
}
