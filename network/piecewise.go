package network

// The operators of this set through which the logits stay piecewise linear
// in any single layer's weights (see piecewiseLinearOps): selections
// (Max, Min, ReduceMax, ReduceMin, GlobalMaxPool), the ramps HardSigmoid,
// Abs and ThresholdedRelu, and maps linear in their data inputs
// (ConvTranspose, Resize, Upsample, Sum, Mean). HardSwish, Gelu, Erf, Elu,
// Selu, Celu, Mish, Softsign, LogSoftmax, the normalisations, Pow, Sqrt,
// Exp, Log, Reciprocal and Softplus are curved and stay out.
func init() {
	for _, op := range []string{"Max", "Min", "ReduceMax", "ReduceMin", "HardSigmoid", "ConvTranspose", "Resize", "Upsample", "Abs", "ThresholdedRelu", "Sum", "Mean", "GlobalMaxPool"} {
		piecewiseLinearOps[op] = true
	}
}
