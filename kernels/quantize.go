package kernels

import "math"

// QuantizeBytes sets dst[i] to the uint8 code of src[i] under scale s and
// zero point zp, for every i < len(dst) (src at least as long):
//
//	q := math.RoundToEven(src[i]/s) + float64(zp)
//	if q < 0 { q = 0 } else if q > 255 { q = 255 }
//	dst[i] = uint8(q)
//
// bit for bit what quant.ActQuant.Quantize computes (a NaN gets code 0,
// as the conversion of NaN does on amd64 and the vector maximum does).
// On amd64 with AVX-512 (F and VL) it runs 8 values at a time; the tail
// and other CPUs take the loop above.
func QuantizeBytes(dst []uint8, src []float64, s float64, zp int) {
	src = src[:len(dst)]
	i := quantizeBytesAsm(dst, src, s, zp)
	zpf := float64(zp)
	for ; i < len(dst); i++ {
		dst[i] = quantizeCode(src[i], s, zpf)
	}
}

// FakeQuantize sets dst[i] = float64(int(code)-zp)*s with code
// QuantizeBytes' code of src[i]: the value uint8 activations simulate
// (quant.ActQuant.Fake), bit for bit, for every i < len(dst) (src at least
// as long; dst may be src).
func FakeQuantize(dst, src []float64, s float64, zp int) {
	src = src[:len(dst)]
	i := fakeQuantizeAsm(dst, src, s, zp)
	zpf := float64(zp)
	for ; i < len(dst); i++ {
		dst[i] = float64(int(quantizeCode(src[i], s, zpf))-zp) * s
	}
}

// quantizeCode is QuantizeBytes' formula for one value. The comparisons
// select bits instead of branching on the data; NaN fails both and is
// converted to 0 explicitly, which is what uint8(NaN) gives on amd64 (the
// conversion of a NaN is implementation-defined in Go).
func quantizeCode(x, s, zpf float64) uint8 {
	q := math.RoundToEven(x/s) + zpf
	if q < 0 || q != q {
		q = 0
	}
	if q > 255 {
		q = 255
	}
	return uint8(q)
}
