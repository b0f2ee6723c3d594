//go:build !amd64 || purego

package kernels

func maxBytesAsm(dst, src []uint8) int { return 0 }

func lookupBytesAsm(dst, src []uint8, tab *[256]uint8) int { return 0 }

var useVBMI bool
