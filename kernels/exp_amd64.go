//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

// The Exp kernels run only where math.Exp itself takes its FMA path
// (math's useFMA: cpu.X86.HasAVX && cpu.X86.HasFMA, from internal/cpu,
// which honours the same GODEBUG names as golang.org/x/sys/cpu), so that
// both compute the same operations. Tests switch them off.
var (
	mathUsesFMA   = cpu.X86.HasAVX && cpu.X86.HasFMA
	useExpAVX512  = mathUsesFMA && cpu.X86.HasAVX512F
	useExpAVX2FMA = mathUsesFMA && cpu.X86.HasAVX2
)

// expAVX512 is, for n a positive multiple of 8,
//
//	for i := 0; i < n; i += 8 {
//		if any of x[i:i+8] is off math.Exp's main path {
//			return i
//		}
//		for j := i; j < i+8; j++ {
//			dst[j] = math.Exp(src[j])
//		}
//	}
//	return n
//
// where x is off math.Exp's main path unless k = round(x*log2(e)) (as
// CVTSD2SL rounds it: nearest even, -2^31 for NaN, ±Inf and values out of
// int32) is in [-1022, 1023]; see the package documentation.
//
//go:noescape
func expAVX512(dst, src *float64, n int) int

// expAVX2 is expAVX512 on 4 lanes: n is a positive multiple of 4 and it
// stops at the first group of 4 with a lane off the main path.
//
//go:noescape
func expAVX2(dst, src *float64, n int) int

// expAsm stores math.Exp of the leading whole vectors of src whose lanes
// all take the main path and returns how many values it stored.
func expAsm(dst, src []float64) int {
	switch {
	case useExpAVX512 && len(dst) >= 8:
		return expAVX512(&dst[0], &src[0], len(dst)&^7)
	case useExpAVX2FMA && len(dst) >= 4:
		return expAVX2(&dst[0], &src[0], len(dst)&^3)
	}
	return 0
}

// sigmoidAVX512 is, for n a positive multiple of 8,
//
//	for i := 0; i < n; i += 8 {
//		if any of -|src[i:i+8]| is off math.Exp's main path {
//			return i
//		}
//		for j := i; j < i+8; j++ {
//			dst[j] = sigmoid(src[j])
//		}
//	}
//	return n
//
//go:noescape
func sigmoidAVX512(dst, src *float64, n int) int

// sigmoidAVX2 is sigmoidAVX512 on 4 lanes.
//
//go:noescape
func sigmoidAVX2(dst, src *float64, n int) int

// sigmoidAsm is expAsm for Sigmoid.
func sigmoidAsm(dst, src []float64) int {
	switch {
	case useExpAVX512 && len(dst) >= 8:
		return sigmoidAVX512(&dst[0], &src[0], len(dst)&^7)
	case useExpAVX2FMA && len(dst) >= 4:
		return sigmoidAVX2(&dst[0], &src[0], len(dst)&^3)
	}
	return 0
}

// sigmoidPairAVX512 is, for n a positive multiple of 8,
//
//	for i := 0; i < n; i += 8 {
//		if any of -|src[i:i+8]| is off math.Exp's main path {
//			return i
//		}
//		for j := i; j < i+8; j++ {
//			s[j], c[j] = sigmoidPair(src[j])
//		}
//	}
//	return n
//
//go:noescape
func sigmoidPairAVX512(s, c, src *float64, n int) int

// sigmoidPairAVX2 is sigmoidPairAVX512 on 4 lanes.
//
//go:noescape
func sigmoidPairAVX2(s, c, src *float64, n int) int

// sigmoidPairAsm is expAsm for SigmoidPair.
func sigmoidPairAsm(s, c, src []float64) int {
	switch {
	case useExpAVX512 && len(s) >= 8:
		return sigmoidPairAVX512(&s[0], &c[0], &src[0], len(s)&^7)
	case useExpAVX2FMA && len(s) >= 4:
		return sigmoidPairAVX2(&s[0], &c[0], &src[0], len(s)&^3)
	}
	return 0
}
