//go:build !amd64 || purego

package kernels

func quantizeBytesAsm(dst []uint8, src []float64, s float64, zp int) int { return 0 }

func fakeQuantizeAsm(dst, src []float64, s float64, zp int) int { return 0 }

var useQuantAVX512 bool
