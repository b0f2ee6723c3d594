package pipeline

import (
	"context"
	"fmt"
	"math"
	"time"

	"mpsearch/dataset"
	"mpsearch/intengine"
	"mpsearch/network"
	"mpsearch/quant"
	"mpsearch/tensor"
)

// QuantizedEval is the evaluation of a bit configuration: simulated
// quantization (float64 with fake-quantized weights and uint8 activations)
// and the integer-only engine, with the engine's measured latency.
type QuantizedEval struct {
	Simulated *EvalResult
	Integer   *EvalResult
	// LatencyMs is the integer engine's median time for one image at batch
	// 1, one thread.
	LatencyMs float64
	// FloatNodes lists the nodes the integer engine runs in float between
	// quantized tensors (intengine.Model.FloatNodes), as "name (Op)".
	FloatNodes []string
}

// BitsFor maps a bits file onto the network's layers (names must match).
func BitsFor(net *network.Network, f *BitsFile) ([]int, error) {
	byName := map[string]int{}
	for _, l := range f.Layers {
		byName[l.Name] = l.WBits
	}
	bits := make([]int, len(net.Layers()))
	for i, l := range net.Layers() {
		b, ok := byName[l.Node]
		if !ok {
			return nil, fmt.Errorf("bits file has no layer %q (it names %d layers; was it written for another model?)", l.Node, len(f.Layers))
		}
		bits[i] = b
		delete(byName, l.Node)
	}
	for name := range byName {
		return nil, fmt.Errorf("bits file names layer %q, which the model does not have", name)
	}
	return bits, nil
}

// EvaluateQuantized measures a configuration on ds, with activation ranges
// observed on calib (held in memory) and the weights from codes (nil:
// round to nearest) in both the simulation and the integer engine. It
// reads ds one batch at a time, once for the simulated quantization and
// once for the integer engine; the latency is measured on ds's first
// sample.
func EvaluateQuantized(ctx context.Context, net *network.Network, calib *dataset.Dataset, ds dataset.Source, bits []int, codes quant.WeightCodes, batch int, progress Progress) (*QuantizedEval, error) {
	if batch <= 0 {
		batch = 256
	}
	cb := splitBatches(calib.X, batch)
	ranges, err := quant.ObserveRanges(ctx, net, cb)
	if err != nil {
		return nil, err
	}
	out := &QuantizedEval{}
	ws := quant.NewWeightSetterCodes(net, codes)
	if err := ws.SetAll(bits); err != nil {
		return nil, err
	}
	out.Simulated, err = Evaluate(ctx, net, ds, EvalOptions{Batch: batch, Hook: quant.ActHook(ranges.ActQuantizers()), Progress: progress})
	ws.Restore()
	if err != nil {
		return nil, err
	}
	ir, err := intengine.ObserveRanges(ctx, net, cb)
	if err != nil {
		return nil, err
	}
	m, err := intengine.Compile(net, intengine.Config{Bits: bits, Ranges: ir, Weights: codes})
	if err != nil {
		return nil, err
	}
	for _, f := range m.FloatNodes() {
		out.FloatNodes = append(out.FloatNodes, f.Node+" ("+f.Op+")")
	}
	res := &EvalResult{Samples: ds.Len(), Accuracy: math.NaN(), Loss: math.NaN()}
	correct := 0
	var elapsed time.Duration
	var x1 *tensor.Tensor // the first sample, for the latency
	err = eachBatch(ctx, ds, batch, func(x *tensor.Tensor, y []int, _ int) error {
		if x1 == nil {
			per := x.Size() / x.Shape[0]
			x1 = tensor.FromData(append([]float64(nil), x.Data[:per]...), append([]int{1}, x.Shape[1:]...)...)
		}
		t0 := time.Now()
		z, err := m.Run(ctx, x)
		if err != nil {
			return err
		}
		elapsed += time.Since(t0)
		if y != nil {
			correct += countCorrect(z, y)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if ds.Labeled() {
		res.Accuracy = float64(correct) / float64(ds.Len())
	}
	res.Seconds = elapsed.Seconds()
	res.ImagesPerSec = float64(ds.Len()) / res.Seconds
	out.Integer = res
	tm, err := m.Time(ctx, x1, 3, 21)
	if err != nil {
		return nil, err
	}
	out.LatencyMs = float64(tm.Median) / 1e6
	return out, nil
}

// NewWeightCodes returns the source of quantized weights of method
// (quant.MethodRTN or quant.MethodGPTQ) for net's weights as they are now:
// GPTQ's Hessians come from calib in batches of batch samples, with codes
// at each of widths, threads layers at once; progress (optional) is told
// after each weight.
func NewWeightCodes(ctx context.Context, net *network.Network, calib *dataset.Dataset, method string, widths []int, batch, threads int, progress func(done, total int, detail string)) (quant.WeightCodes, error) {
	if batch <= 0 {
		batch = 256
	}
	var batches []*tensor.Tensor
	if method == quant.MethodGPTQ {
		batches = splitBatches(calib.X, batch)
	}
	return quant.NewCodes(ctx, method, net, batches, quant.CodesOptions{Widths: widths, Threads: threads, Progress: progress})
}
