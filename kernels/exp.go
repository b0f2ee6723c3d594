package kernels

import "math"

// Exp sets dst[i] = math.Exp(src[i]) for every i < len(dst) (src at least
// as long; dst may be src), bit for bit. On amd64 with FMA it runs
// math.Exp's own FMA path on 8 (AVX-512) or 4 (AVX2) lanes at once and
// leaves every vector with a lane off that path (NaN, ±Inf, overflow,
// denormal or zero results), and the tail, to math.Exp; see the package
// documentation for why the bits agree.
func Exp(dst, src []float64) {
	src = src[:len(dst)]
	for i := 0; i < len(dst); {
		i += expAsm(dst[i:], src[i:])
		// The vector the kernel stopped at, or the tail.
		for end := min(i+expMaxLanes, len(dst)); i < end; i++ {
			dst[i] = math.Exp(src[i])
		}
	}
}

// expMaxLanes is the widest vector of the kernels (AVX-512: 8 float64).
const expMaxLanes = 8

// Sigmoid sets dst[i] = sigmoid(src[i]), the logistic function
// 1/(1+exp(-x)) computed from e = math.Exp(-|x|) as below (so it neither
// overflows nor loses the tail), for every i < len(dst) (src at least as
// long; dst may be src), bit for bit. On amd64 with FMA it computes e as
// Exp does, then the selection and the division on the same lanes (IEEE
// operations, so the same bits), vectors with a lane whose exponential
// is off math.Exp's main path and the tail by the scalar function.
func Sigmoid(dst, src []float64) {
	src = src[:len(dst)]
	for i := 0; i < len(dst); {
		i += sigmoidAsm(dst[i:], src[i:])
		for end := min(i+expMaxLanes, len(dst)); i < end; i++ {
			dst[i] = sigmoid(src[i])
		}
	}
}

// sigmoid is num/(1+e) with e = exp(-|x|) and num = 1 if x >= 0, else e.
func sigmoid(x float64) float64 {
	e := math.Exp(-math.Abs(x))
	num := e
	if x >= 0 {
		num = 1
	}
	return num / (1 + e)
}

// SigmoidPair sets s[i] = sigmoid(src[i]) and c[i] = sigmoid(-src[i]) =
// 1 - s[i] for every i < len(s) (c and src at least as long; s or c may
// be src), both from e = math.Exp(-|x|) as sigmoidPair computes them, bit
// for bit, so that s*c keeps full relative precision in the tails. It
// runs on the lanes of Sigmoid's kernels, with both divisions and the
// selections in the vector.
func SigmoidPair(s, c, src []float64) {
	c, src = c[:len(s)], src[:len(s)]
	for i := 0; i < len(s); {
		i += sigmoidPairAsm(s[i:], c[i:], src[i:])
		for end := min(i+expMaxLanes, len(s)); i < end; i++ {
			s[i], c[i] = sigmoidPair(src[i])
		}
	}
}

// sigmoidPair is p = 1/(1+e) and q = e/(1+e) with e = exp(-|x|): (p, q)
// if x >= 0, else (q, p).
func sigmoidPair(x float64) (s, c float64) {
	e := math.Exp(-math.Abs(x))
	p, q := 1/(1+e), e/(1+e)
	if x >= 0 {
		return p, q
	}
	return q, p
}
