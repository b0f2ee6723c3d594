package quant

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"mpsearch/network"
	"mpsearch/tensor"
)

// Weight rounding methods (mpsearch --quantizer).
const (
	MethodRTN  = "rtn"  // round to nearest (QuantizeWeights)
	MethodGPTQ = "gptq" // GPTQ from the Hessian of each layer's inputs
)

// Methods lists the weight rounding methods, the default first.
var Methods = []string{MethodRTN, MethodGPTQ}

// ErrCodes is wrapped by errors about weight codes a source cannot give
// (a layer it does not know, a width it did not prepare).
var ErrCodes = errors.New("weight codes not available")

// WeightCodes is the one source of a network's quantized weights: every
// consumer (simulated quantization, the integer engine, the QDQ export,
// the sensitivity metrics) takes layer li's codes at a bit width from it,
// so all of them quantize a layer the same way. Layers that share a weight
// parameter get the same codes at the same width (simulated quantization
// holds one value per parameter, and the export stores one initializer).
type WeightCodes interface {
	// Codes returns layer li's (index into net.Layers()) weights at bits
	// (1..8): symmetric per-channel codes and scales in the ONNX weight
	// layout (WeightQuant, channels on the layer's ChannelAxis). The
	// result is shared: callers must not modify it.
	Codes(li, bits int) (*WeightQuant, error)
	// Method names the rounding (MethodRTN or MethodGPTQ).
	Method() string
}

// floatWeights returns the weights of every parameter that is a layer
// weight, as they are now: the model's initializer itself when the
// parameter still holds its values (no copy; net.Model is never written),
// else a copy.
func floatWeights(net *network.Network) map[int][]float64 {
	out := map[int][]float64{}
	for _, l := range net.Layers() {
		if _, done := out[l.Weight]; done {
			continue
		}
		p := net.Params()[l.Weight]
		if t, ok := net.Model.Graph.Initializers[p.Name]; ok && slices.Equal(t.Data, p.Value.Data) {
			out[l.Weight] = t.Data
			continue
		}
		out[l.Weight] = slices.Clone(p.Value.Data)
	}
	return out
}

// roundToNearest is the round-to-nearest source: QuantizeWeights of the
// weights the network held when it was made.
type roundToNearest struct {
	net *network.Network
	w   map[int][]float64 // weight parameter -> float weights
}

// NewRoundToNearest returns the round-to-nearest source of net's weights
// as they are now (later changes to the network, such as a WeightSetter's,
// do not affect it): exactly QuantizeWeights, the project's convention.
func NewRoundToNearest(net *network.Network) WeightCodes {
	return &roundToNearest{net: net, w: floatWeights(net)}
}

func (r *roundToNearest) Method() string { return MethodRTN }

func (r *roundToNearest) Codes(li, bits int) (*WeightQuant, error) {
	layers := r.net.Layers()
	if li < 0 || li >= len(layers) {
		return nil, fmt.Errorf("quant: layer %d of %d: %w", li, len(layers), ErrCodes)
	}
	l := layers[li]
	wq, err := QuantizeWeights(r.w[l.Weight], r.net.Params()[l.Weight].Value.Shape, l.ChannelAxis, bits)
	if err != nil {
		return nil, fmt.Errorf("layer %q: %w", l.Node, err)
	}
	return wq, nil
}

// Fake returns layer li's weights at bits from c as floats in the weight's
// layout (codes times scales); with c nil, the round-to-nearest
// quantization of the network's current weights (FakeQuantWeights).
func Fake(c WeightCodes, net *network.Network, li, bits int) ([]float64, error) {
	l := net.Layers()[li]
	w := net.Params()[l.Weight].Value
	if c == nil {
		return FakeQuantWeights(w.Data, w.Shape, l.ChannelAxis, bits)
	}
	wq, err := c.Codes(li, bits)
	if err != nil {
		return nil, err
	}
	if len(wq.Q) != w.Size() {
		return nil, fmt.Errorf("quant: layer %q: %d codes for a %v weight: %w", l.Node, len(wq.Q), w.Shape, ErrCodes)
	}
	out := make([]float64, w.Size())
	wq.Dequantize(out, w.Shape)
	return out, nil
}

// LayerSquaredError returns ||Q_b(W) - W||² of layer li's current weights
// W, Q_b(W) from c (round to nearest when c is nil).
func LayerSquaredError(c WeightCodes, net *network.Network, li, bits int) (float64, error) {
	q, err := Fake(c, net, li, bits)
	if err != nil {
		return 0, err
	}
	w := net.Params()[net.Layers()[li].Weight].Value.Data
	s := 0.0
	for i := range w {
		d := q[i] - w[i]
		s += d * d
	}
	return s, nil
}

// NewCodes returns the source of method: NewRoundToNearest for MethodRTN
// (batches and opt unused), NewGPTQCodes for MethodGPTQ.
func NewCodes(ctx context.Context, method string, net *network.Network, batches []*tensor.Tensor, opt CodesOptions) (WeightCodes, error) {
	switch method {
	case "", MethodRTN:
		return NewRoundToNearest(net), nil
	case MethodGPTQ:
		return NewGPTQCodes(ctx, net, batches, opt)
	}
	return nil, fmt.Errorf("quant: weight rounding %q: %w (want %s or %s)", method, ErrCodes, MethodRTN, MethodGPTQ)
}

// CodesOptions configures NewGPTQCodes.
type CodesOptions struct {
	// Widths are the bit widths (1..8) whose codes are prepared for every
	// layer; Codes at another width is an error.
	Widths []int
	// Damp is GPTQ's damping (GPTQOptions.Damp; 0: DefaultDamp).
	Damp float64
	// Threads is the number of layers quantized at once (values below 1
	// mean 1). Results do not depend on it.
	Threads int
	// HessianBytes bounds the Hessians held at once (0: DefaultHessianBytes):
	// layers are taken in execution order in sets whose Hessians fit, one
	// pass over the batches per set.
	HessianBytes int64
	// Progress, if not nil, is called after each weight is quantized and,
	// for GPTQ, after each batch of each Hessian pass (total counts both:
	// on ImageNet models the passes are most of the time).
	Progress func(done, total int, detail string)
}

// DefaultHessianBytes is CodesOptions.HessianBytes's default: 1 GiB, the
// Hessians of every ResNet18 or ResNet50 layer in one pass.
const DefaultHessianBytes = 1 << 30

// gptqCodes is the GPTQ source: every layer's codes at every prepared
// width, computed once.
type gptqCodes struct {
	net    *network.Network
	widths []int
	codes  map[int]map[int]*WeightQuant // weight parameter -> bits -> codes
	means  []*LayerHessian              // per layer, its input sums only (InputMeans)
}

func (g *gptqCodes) Method() string { return MethodGPTQ }

func (g *gptqCodes) Codes(li, bits int) (*WeightQuant, error) {
	layers := g.net.Layers()
	if li < 0 || li >= len(layers) {
		return nil, fmt.Errorf("quant: layer %d of %d: %w", li, len(layers), ErrCodes)
	}
	l := layers[li]
	wq, ok := g.codes[l.Weight][bits]
	if !ok {
		return nil, fmt.Errorf("quant: layer %q: GPTQ codes at %d bits were not prepared (widths %v): %w", l.Node, bits, g.widths, ErrCodes)
	}
	return wq, nil
}
