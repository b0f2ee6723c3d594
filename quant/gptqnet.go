package quant

import (
	"context"
	"fmt"

	"mpsearch/network"
	"mpsearch/tensor"
)

// GPTQNetwork quantizes the weights of net's layers by GPTQ, layer i at
// bits[i] (0 or >= 32: kept in float; opt.Bits is ignored), in execution
// order: each layer's H is accumulated over the batches with the layers
// before it already quantized and the inputs as hook gives them (nil:
// unchanged; ActHook for simulated uint8 activations), so that each layer
// compensates the error of the ones before it, as Frantar et al. do;
// blocks as for GPTQWeights. It
// costs one pass over the batches per quantized layer. It returns the
// fake-quantized weights per layer in the weight's layout (nil for float
// layers), for WeightSetter.SetValues; net's weights are left as they were.
func GPTQNetwork(ctx context.Context, net *network.Network, batches []*tensor.Tensor, bits []int, hook network.Hook, opt GPTQOptions, blocks bool) ([][]float64, error) {
	layers := net.Layers()
	if len(bits) != len(layers) {
		return nil, fmt.Errorf("quant: %d bit widths for %d layers", len(bits), len(layers))
	}
	ws := NewWeightSetter(net)
	defer ws.Restore()
	out := make([][]float64, len(layers))
	for li, b := range bits {
		if b <= 0 || b >= 32 {
			continue
		}
		hs, err := AccumulateHessians(ctx, net, batches, []int{li}, hook)
		if err != nil {
			return nil, err
		}
		l := layers[li]
		w := net.Params()[l.Weight].Value
		o := opt
		o.Bits = b
		// The float weights: ws keeps them once the layer has been set.
		orig := w.Data
		if saved, ok := ws.saved[l.Weight]; ok {
			orig = saved
		}
		fake, _, err := GPTQWeights(orig, w.Shape, l.ChannelAxis, hs[0], o, blocks)
		if err != nil {
			return nil, err
		}
		if err := ws.SetValues(li, fake); err != nil {
			return nil, err
		}
		out[li] = fake
	}
	return out, nil
}
