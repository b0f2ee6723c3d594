//go:build amd64 && !purego

package kernels

//go:noescape
func maxBytesAVX2(dst, src *uint8, n int)

// maxBytesAsm handles the whole 32-byte blocks of dst and returns how
// many bytes it did.
func maxBytesAsm(dst, src []uint8) int {
	n := len(dst) &^ 31
	if !useAVX2 || n == 0 {
		return 0
	}
	maxBytesAVX2(&dst[0], &src[0], n)
	return n
}
