package network

// The operators of this set through which the logits stay piecewise linear
// in any single layer's weights (see piecewiseLinearOps): selections
// (Max, Min, ReduceMax, ReduceMin), the clipped ramp HardSigmoid, and maps
// linear in their data input (ConvTranspose, Resize, Upsample). HardSwish,
// Gelu, Erf, the normalisations, Pow, Sqrt, Exp, Log, Reciprocal and
// Softplus are curved and stay out.
func init() {
	for _, op := range []string{"Max", "Min", "ReduceMax", "ReduceMin", "HardSigmoid", "ConvTranspose", "Resize", "Upsample"} {
		piecewiseLinearOps[op] = true
	}
}
