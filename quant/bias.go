package quant

import (
	"context"
	"fmt"

	"mpsearch/network"
	"mpsearch/tensor"
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

// BiasShifter is implemented by weight sources with bias correction:
// BiasShift(li, bits) is the value added to each output channel's bias of
// layer li when its weights are at bits (nil for a layer without a bias
// parameter, which is left as it is). Consumers that take a source's
// codes add it (WeightSetter, the QDQ export).
type BiasShifter interface {
	BiasShift(li, bits int) ([]float64, error)
}

// biasCorrected is a weight source with bias correction.
type biasCorrected struct {
	WeightCodes
	net   *network.Network
	w     map[int][]float64 // weight parameter -> float weights
	means []*LayerHessian   // per layer, for Mean
}

// WithBiasCorrection returns c with bias correction (Nagel et al. 2019):
// its codes are c's, and BiasShift gives (W - Ŵ)·E[x] for each layer with
// a bias parameter, E[x] the mean input vector of the layer in one pass of
// the float network (as it is now) over the batches. Method is c's.
func WithBiasCorrection(ctx context.Context, c WeightCodes, net *network.Network, batches []*tensor.Tensor) (WeightCodes, error) {
	return WithBiasCorrectionOptions(ctx, c, net, batches, BiasOptions{})
}

// BiasOptions configures WithBiasCorrectionOptions.
type BiasOptions struct {
	// Means, if not nil, are every layer's input sums from a pass of the
	// same float network over the same batches (InputMeans of a GPTQ
	// source made from them: its Hessian pass sums the same vectors in
	// the same order, so they are bit for bit the means-only pass's),
	// and the pass is skipped.
	Means []*LayerHessian
	// Progress, if not nil, is called after each batch of the means pass.
	Progress func(done, total int, detail string)
}

// WithBiasCorrectionOptions is WithBiasCorrection with options: the means
// of an earlier pass, progress. A ctx that ends stops the pass between
// the network's operators.
func WithBiasCorrectionOptions(ctx context.Context, c WeightCodes, net *network.Network, batches []*tensor.Tensor, opt BiasOptions) (WeightCodes, error) {
	layers := net.Layers()
	if opt.Means != nil {
		if len(opt.Means) != len(layers) {
			return nil, fmt.Errorf("quant: bias correction: input means of %d layers for a network of %d", len(opt.Means), len(layers))
		}
		for i, m := range opt.Means {
			if m == nil || m.Node != layers[i].Node {
				return nil, fmt.Errorf("quant: bias correction: no input means of layer %q", layers[i].Node)
			}
		}
		return &biasCorrected{WeightCodes: c, net: net, w: floatWeights(net), means: opt.Means}, nil
	}
	all := make([]int, len(layers))
	for i := range all {
		all[i] = i
	}
	batch := 0
	hs, err := accumulate(ctx, net, batches, all, nil, true, func() {
		batch++
		if opt.Progress != nil {
			opt.Progress(batch, len(batches), fmt.Sprintf("mean inputs of %d layers (bias correction), batch %d of %d", len(layers), batch, len(batches)))
		}
	})
	if err != nil {
		return nil, err
	}
	return &biasCorrected{WeightCodes: c, net: net, w: floatWeights(net), means: hs}, nil
}

// InputMeans returns the per-layer input sums (LayerHessian.Mean) that
// the making of c accumulated over its calibration batches, in layer
// order: a GPTQ source's Hessian pass keeps them. nil when c has none
// (round to nearest, sources in groups).
func InputMeans(c WeightCodes) []*LayerHessian {
	if g, ok := c.(*gptqCodes); ok {
		return g.means
	}
	return nil
}

func (b *biasCorrected) BiasShift(li, bits int) ([]float64, error) {
	l := b.net.Layers()[li]
	if l.Bias < 0 {
		return nil, nil
	}
	wq, err := b.Codes(li, bits)
	if err != nil {
		return nil, err
	}
	shape := b.net.Params()[l.Weight].Value.Shape
	q := make([]float64, len(wq.Q))
	wq.Dequantize(q, shape)
	return BiasShift(b.w[l.Weight], q, shape, l.ChannelAxis, b.means[li])
}
