package pipeline

import (
	"context"
	"fmt"

	"mpsearch/dataset"
	"mpsearch/intengine"
	"mpsearch/network"
	"mpsearch/quant"
	"mpsearch/tensor"
)

// NetVerifier measures configurations on the real network: weights
// fake-quantized per layer, every layer's input activation quantized to
// uint8 with ranges observed on calibration data, and the mean KL
// divergence from the float model's outputs over held-out data.
//
// KL to the float model rather than cross-entropy with labels: the
// held-out data usually comes from the training set, on which the labelled
// loss rewards configurations that drift from the float model in ways
// that do not carry over to test data. On the fixture LeNet at the
// uniform-3-bit size, labelled loss preferred [8,4,3,2,8] (87.51% test
// accuracy) to uniform 3-bit (88.59%), while KL ranked them correctly.
type NetVerifier struct {
	net     *network.Network
	hook    network.Hook
	batches []*tensor.Tensor
	losses  []network.Loss
	targets [][]int        // per batch: labels, or the float model's top-1 without labels
	calib0  *tensor.Tensor // the first calibration batch (for the integer engine's plan)
	Acts    map[string]quant.ActQuant
	// Weights is the source of the quantized weights (the one the search's
	// sensitivities and the export use); nil rounds to nearest.
	Weights quant.WeightCodes
}

// NewNetVerifier prepares a verifier on held-out data, with activation
// ranges observed on calib (minmax).
func NewNetVerifier(ctx context.Context, net *network.Network, calib, heldOut *dataset.Dataset, batch int) (*NetVerifier, error) {
	return NewNetVerifierCalib(ctx, net, calib, heldOut, batch, quant.ActCalib{}, nil)
}

// NewNetVerifierCalib is NewNetVerifier with the activation ranges chosen
// by ac (--act-calib; the accuracies and the export use them too: Acts)
// and progress (nil: none), counted in samples: the calibration samples'
// ranges (one float pass), then the held-out samples' float outputs batch
// by batch.
func NewNetVerifierCalib(ctx context.Context, net *network.Network, calib, heldOut *dataset.Dataset, batch int, ac quant.ActCalib, progress func(done, total int, detail string)) (*NetVerifier, error) {
	total := calib.Len() + heldOut.Len()
	report := func(done int, detail string) {
		if progress != nil {
			progress(done, total, detail)
		}
	}
	if batch <= 0 {
		batch = 256
	}
	var cb []*tensor.Tensor
	for b := 0; b < calib.NumBatches(batch); b++ {
		x, _ := calib.Batch(b, batch)
		cb = append(cb, x)
	}
	report(0, fmt.Sprintf("activation ranges on %d calibration samples", calib.Len()))
	ranges, err := quant.ObserveRangesCalib(ctx, net, cb, ac)
	if err != nil {
		return nil, err
	}
	done := calib.Len()
	report(done, fmt.Sprintf("the float model's outputs on %d held-out samples", heldOut.Len()))
	v := &NetVerifier{net: net, Acts: ranges.ActQuantizers(), calib0: cb[0]}
	v.hook = quant.ActHook(v.Acts)
	n := heldOut.Len()
	if n == 0 {
		return nil, fmt.Errorf("verify: no held-out samples")
	}
	for b := 0; b < heldOut.NumBatches(batch); b++ {
		x, y := heldOut.Batch(b, batch)
		v.batches = append(v.batches, x)
		z, err := net.Infer(ctx, x)
		if err != nil {
			return nil, err
		}
		v.losses = append(v.losses, network.SoftTarget{Probs: network.Softmax(z), Denom: float64(n)})
		if y == nil {
			y = argmaxRows(z)
		}
		v.targets = append(v.targets, y)
		done += x.Shape[0]
		report(done, fmt.Sprintf("the float model's outputs on %d held-out samples", heldOut.Len()))
	}
	return v, nil
}

// Loss implements Verifier. The network's weights are restored afterwards.
func (v *NetVerifier) Loss(ctx context.Context, bits []int) (float64, error) {
	ws := quant.NewWeightSetterCodes(v.net, v.Weights)
	defer ws.Restore()
	if err := ws.SetAll(bits); err != nil {
		return 0, err
	}
	total := 0.0
	for i, x := range v.batches {
		z, err := v.net.InferHook(ctx, x, v.hook) // Forward's outputs bit for bit, without keeping the activations
		if err != nil {
			return 0, err
		}
		l, _, err := v.losses[i].Eval(z)
		if err != nil {
			return 0, err
		}
		total += l
	}
	return total, nil
}

// intRanges observes the integer engine's ranges on the first calibration
// batch (enough to plan and compile the engine, as the report's list of
// float nodes needs).
func (v *NetVerifier) intRanges(ctx context.Context) (intengine.Ranges, error) {
	return intengine.ObserveRanges(ctx, v.net, []*tensor.Tensor{v.calib0})
}

// Hook returns the activation-quantization hook (for simulated accuracy).
func (v *NetVerifier) Hook() network.Hook { return v.hook }

// SimulatedAccuracy evaluates ds with weights at bits and activations
// quantized as the verifier does.
func (v *NetVerifier) SimulatedAccuracy(ctx context.Context, ds *dataset.Dataset, bits []int) (*EvalResult, error) {
	ws := quant.NewWeightSetterCodes(v.net, v.Weights)
	defer ws.Restore()
	if bits != nil {
		if err := ws.SetAll(bits); err != nil {
			return nil, err
		}
	}
	return Evaluate(ctx, v.net, ds, EvalOptions{Hook: v.hook})
}

// Accuracy is the top-1 accuracy of the quantized model on the held-out
// data against its labels, or, without labels, its agreement with the
// float model's predictions (the RL agent's accuracy reward).
func (v *NetVerifier) Accuracy(ctx context.Context, bits []int) (float64, error) {
	ws := quant.NewWeightSetterCodes(v.net, v.Weights)
	defer ws.Restore()
	if err := ws.SetAll(bits); err != nil {
		return 0, err
	}
	correct, total := 0, 0
	for i, x := range v.batches {
		z, err := v.net.InferHook(ctx, x, v.hook)
		if err != nil {
			return 0, err
		}
		correct += countCorrect(z, v.targets[i])
		total += len(v.targets[i])
	}
	return float64(correct) / float64(total), nil
}

// argmaxRows returns the index of each row's largest value.
func argmaxRows(z *tensor.Tensor) []int {
	n, c := z.Shape[0], z.Shape[1]
	out := make([]int, n)
	for i := 0; i < n; i++ {
		best := 0
		for j := 1; j < c; j++ {
			if z.Data[i*c+j] > z.Data[i*c+best] {
				best = j
			}
		}
		out[i] = best
	}
	return out
}
