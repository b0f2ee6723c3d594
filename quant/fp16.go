package quant

import "math"

// fp16Max is the largest finite IEEE 754 half-precision value.
const fp16Max = 65504

// RoundFP16 rounds a positive scale to the nearest IEEE 754 half-precision
// value (ties to even; subnormals below 2^-14 in steps of 2^-24), the
// value a FLOAT16 tensor stores: group scales are stored that way (2
// bytes each). A value that would round to 0 becomes the smallest
// subnormal, 2^-24, and one above the largest half, 65504, becomes 65504,
// so a scale stays positive and finite. The result is exactly
// representable in FLOAT16, and float32(q·s) is exact for |q| ≤ 127
// (7 + 11 significant bits).
func RoundFP16(x float64) float64 {
	if x <= 0 || math.IsNaN(x) {
		return x
	}
	if x >= fp16Max {
		return fp16Max
	}
	_, e := math.Frexp(x) // x = f·2^e, f in [0.5, 1): the leading bit is 2^(e-1)
	exp := max(e-1, -14)  // subnormals share the quantum of the smallest normal binade
	q := math.Ldexp(1, exp-10)
	r := math.RoundToEven(x/q) * q
	if r == 0 {
		return math.Ldexp(1, -24)
	}
	return min(r, fp16Max)
}
