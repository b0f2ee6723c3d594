package pipeline

import (
	"context"
	"fmt"
	"runtime"
	"sync"

	"mpsearch/dataset"
	"mpsearch/intengine"
	"mpsearch/internal/workers"
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
	net       *network.Network
	hook      network.Hook
	allocHook network.AllocHook // hook's values in memory the pass recycles (Loss, Accuracy)
	batches   []*tensor.Tensor
	losses    []network.Loss
	targets   [][]int        // per batch: labels, or the float model's top-1 without labels
	calib0    *tensor.Tensor // the first calibration batch (for the integer engine's plan)
	Acts      map[string]quant.ActQuant
	// Weights is the source of the quantized weights (the one the search's
	// sensitivities and the export use); nil rounds to nearest.
	Weights quant.WeightCodes
	// Threads is the number of held-out batches Loss and Accuracy run at
	// once (0: the number of CPUs). Per-batch results are combined in
	// batch order, so neither depends on it.
	Threads int
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
	return NewNetVerifierThreads(ctx, net, calib, heldOut, batch, ac, 0, progress)
}

// NewNetVerifierThreads is NewNetVerifierCalib with up to threads batches
// in flight at once (0: the number of CPUs; --threads), in its setup and
// in the verifier's Loss and Accuracy (Threads). Ranges, float outputs and
// losses do not depend on threads.
func NewNetVerifierThreads(ctx context.Context, net *network.Network, calib, heldOut *dataset.Dataset, batch int, ac quant.ActCalib, threads int, progress func(done, total int, detail string)) (*NetVerifier, error) {
	return newNetVerifier(ctx, net, calib, heldOut, batch, ac, nil, threads, progress)
}

// NewNetVerifierRanges is NewNetVerifierThreads with the activation ranges
// of every layer's input on calib already observed (ranges, as
// quant.ObserveRangesThreads gives them under the same calibration; the
// sensitivity stage's sensitivity.Config.LayerRanges): it makes no pass
// over the calibration data.
func NewNetVerifierRanges(ctx context.Context, net *network.Network, calib, heldOut *dataset.Dataset, batch int, ranges quant.ActRanges, threads int, progress func(done, total int, detail string)) (*NetVerifier, error) {
	if ranges == nil {
		return nil, fmt.Errorf("verify: no activation ranges given")
	}
	return newNetVerifier(ctx, net, calib, heldOut, batch, quant.ActCalib{}, ranges, threads, progress)
}

// newNetVerifier builds the verifier, observing the ranges under ac
// unless they are given.
func newNetVerifier(ctx context.Context, net *network.Network, calib, heldOut *dataset.Dataset, batch int, ac quant.ActCalib, ranges quant.ActRanges, threads int, progress func(done, total int, detail string)) (*NetVerifier, error) {
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	total := calib.Len() + heldOut.Len()
	var mu sync.Mutex // progress may be called from the workers
	report := func(done int, detail string) {
		if progress != nil {
			mu.Lock()
			progress(done, total, detail)
			mu.Unlock()
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
	if ranges == nil {
		report(0, fmt.Sprintf("activation ranges on %d calibration samples", calib.Len()))
		var err error
		if ranges, err = quant.ObserveRangesThreads(ctx, net, cb, ac, threads); err != nil {
			return nil, err
		}
	}
	done := calib.Len()
	detail := fmt.Sprintf("the float model's outputs on %d held-out samples", heldOut.Len())
	report(done, detail)
	v := &NetVerifier{net: net, Acts: ranges.ActQuantizers(), calib0: cb[0], Threads: threads}
	v.hook = quant.ActHook(v.Acts)
	v.allocHook = quant.ActAllocHook(v.Acts)
	n := heldOut.Len()
	if n == 0 {
		return nil, fmt.Errorf("verify: no held-out samples")
	}
	nb := heldOut.NumBatches(batch)
	v.batches = make([]*tensor.Tensor, nb)
	v.losses = make([]network.Loss, nb)
	v.targets = make([][]int, nb)
	labels := make([][]int, nb)
	for b := range nb {
		v.batches[b], labels[b] = heldOut.Batch(b, batch)
	}
	err := parallelBatches(ctx, nb, threads, func(b int) error {
		z, err := net.Infer(ctx, v.batches[b])
		if err != nil {
			return err
		}
		v.losses[b] = network.SoftTarget{Probs: network.Softmax(z), Denom: float64(n)}
		if v.targets[b] = labels[b]; v.targets[b] == nil {
			v.targets[b] = argmaxRows(z)
		}
		mu.Lock()
		done += v.batches[b].Shape[0]
		d := done
		mu.Unlock()
		report(d, detail)
		return nil
	})
	if err != nil {
		return nil, err
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
	per := make([]float64, len(v.batches))
	err := parallelBatches(ctx, len(v.batches), v.threads(), func(b int) error {
		z, err := v.net.InferAllocHook(ctx, v.batches[b], v.allocHook) // Forward's outputs bit for bit, without keeping the activations
		if err != nil {
			return err
		}
		per[b], _, err = v.losses[b].Eval(z)
		return err
	})
	if err != nil {
		return 0, err
	}
	total := 0.0
	for _, l := range per { // batch order: the sum does not depend on Threads
		total += l
	}
	return total, nil
}

// threads is Threads, or the number of CPUs when it is not set.
func (v *NetVerifier) threads() int {
	if v.Threads > 0 {
		return v.Threads
	}
	return runtime.NumCPU()
}

// parallelBatches calls f(b) for every b < n on up to threads goroutines, one
// batch in flight per goroutine, and returns the error of the first batch
// that failed (in batch order). Batches after a cancelled context are not
// started.
func parallelBatches(ctx context.Context, n, threads int, f func(b int) error) error {
	return workers.ForEach(ctx, n, threads, f)
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
	correct := make([]int, len(v.batches))
	err := parallelBatches(ctx, len(v.batches), v.threads(), func(b int) error {
		z, err := v.net.InferAllocHook(ctx, v.batches[b], v.allocHook)
		if err != nil {
			return err
		}
		correct[b] = countCorrect(z, v.targets[b])
		return nil
	})
	if err != nil {
		return 0, err
	}
	right, total := 0, 0
	for b := range correct {
		right += correct[b]
		total += len(v.targets[b])
	}
	return float64(right) / float64(total), nil
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
