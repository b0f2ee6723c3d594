//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

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

// useVBMI selects the VPERMT2B table lookup of LookupBytes (tests switch
// it off to run the Go loop).
var useVBMI = cpu.X86.HasAVX512VBMI && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512F

//go:noescape
func lookupBytesVBMI(dst, src *uint8, n int, tab *[256]uint8)

// lookupBytesAsm handles the whole 64-byte blocks of dst and returns how
// many bytes it did.
func lookupBytesAsm(dst, src []uint8, tab *[256]uint8) int {
	n := len(dst) &^ 63
	if !useVBMI || n == 0 {
		return 0
	}
	lookupBytesVBMI(&dst[0], &src[0], n, tab)
	return n
}
