package quant

import (
	"fmt"
)

// Bias correction (Nagel et al. 2019, "Data-Free Quantization"; the
// empirical form of Finkelstein et al. 2019): quantizing a layer's weights
// W to Ŵ moves the mean of its output by (Ŵ - W)·E[x] per output channel,
// E[x] the mean input vector of the layer over the calibration data (for a
// Conv the mean im2col column, padding zeros included, so the shift is
// the one averaged over output positions). Adding the negated shift,
// (W - Ŵ)·E[x], to the layer's bias makes the quantized layer's mean
// output equal the float layer's on that data.

// BiasShift returns, per output channel, (W - Ŵ)·E[x] for the float
// weights w and quantized weights q (both in the weight's layout: shape,
// channel axis axis) of the layer h was accumulated for (h.Mean: E[x] of
// the layer's inputs): the value to add to the channel's bias.
func BiasShift(w, q []float64, shape []int, axis int, h *LayerHessian) ([]float64, error) {
	if len(w) != len(q) {
		return nil, fmt.Errorf("quant: layer %q: %d float and %d quantized weights", h.Node, len(w), len(q))
	}
	d := make([]float64, len(w))
	for i := range w {
		d[i] = w[i] - q[i]
	}
	m, rows, cols := ToMatrix(d, shape, axis)
	if cols != h.Cols || rows%h.Groups != 0 {
		return nil, fmt.Errorf("quant: layer %q: weight %v has a %d×%d matrix view; the inputs have %d columns in %d groups", h.Node, shape, rows, cols, h.Cols, h.Groups)
	}
	rg := rows / h.Groups
	out := make([]float64, rows)
	for g := 0; g < h.Groups; g++ {
		mean := h.Mean(g)
		for r := g * rg; r < (g+1)*rg; r++ {
			s := 0.0
			for j, v := range m[r*cols : (r+1)*cols] {
				s += v * mean[j]
			}
			out[r] = s
		}
	}
	return out, nil
}
