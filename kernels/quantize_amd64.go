//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

// useQuantAVX512 selects the AVX-512 QuantizeBytes and FakeQuantize
// (VPMOVDB on a ymm needs VL); tests switch it off to run the Go loop.
var useQuantAVX512 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL

// quantizeBytesAVX512 is, for n a positive multiple of 8,
//
//	for i := 0; i < n; i++ {
//		dst[i] = quantizeCode(src[i], s, float64(zp))
//	}
//
// with VDIVPD, VRNDSCALEPD (nearest even), VADDPD, then VMAXPD against 0
// (which returns its 0 operand for a NaN lane) and VMINPD against 255, and
// a truncating conversion of the integral result: IEEE operations on each
// lane, so the same bits as the scalar formula.
//
//go:noescape
func quantizeBytesAVX512(dst *uint8, src *float64, n int, s, zp float64)

// fakeQuantizeAVX512 is, for n a positive multiple of 8,
//
//	for i := 0; i < n; i++ {
//		dst[i] = float64(int(quantizeCode(src[i], s, float64(zp)))-zp) * s
//	}
//
// with the clamped code q kept as a float64 (an integer in [0, 255]):
// (q - zp) is then exact, as the integer difference is, and VMULPD by s
// rounds it as the scalar product does.
//
//go:noescape
func fakeQuantizeAVX512(dst, src *float64, n int, s, zp float64)

// quantizeBytesAsm quantizes the leading whole blocks of 8 and returns
// how many values it did.
func quantizeBytesAsm(dst []uint8, src []float64, s float64, zp int) int {
	n := len(dst) &^ 7
	if !useQuantAVX512 || n == 0 {
		return 0
	}
	quantizeBytesAVX512(&dst[0], &src[0], n, s, float64(zp))
	return n
}

// fakeQuantizeAsm is quantizeBytesAsm for FakeQuantize.
func fakeQuantizeAsm(dst, src []float64, s float64, zp int) int {
	n := len(dst) &^ 7
	if !useQuantAVX512 || n == 0 {
		return 0
	}
	fakeQuantizeAVX512(&dst[0], &src[0], n, s, float64(zp))
	return n
}
