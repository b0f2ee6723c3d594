package pipeline

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
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
	// IntegerNote says why the integer engine did not run (a layer in
	// groups: CheckPerChannel); Integer is nil then.
	IntegerNote string
}

// BitsFor maps a bits file onto the network's layers (names must match):
// each layer's option code (quant.OptionCode of w_bits and group_size).
func BitsFor(net *network.Network, f *BitsFile) ([]int, error) {
	byName := map[string]int{}
	for _, l := range f.Layers {
		if l.GroupSize < 0 {
			return nil, fmt.Errorf("bits file: layer %q has group_size %d; want 0 (per channel) or a number of inputs per scale", l.Name, l.GroupSize)
		}
		byName[l.Name] = quant.OptionCode(l.WBits, l.GroupSize)
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
// sample. A configuration with layers in groups is simulated only
// (IntegerNote says why). The activation ranges are minmax.
func EvaluateQuantized(ctx context.Context, net *network.Network, calib *dataset.Dataset, ds dataset.Source, bits []int, codes quant.WeightCodes, batch int, progress Progress) (*QuantizedEval, error) {
	return EvaluateQuantizedCalib(ctx, net, calib, ds, bits, codes, batch, quant.ActCalib{}, progress)
}

// EvaluateQuantizedCalib is EvaluateQuantized with the activation ranges
// of both the simulation and the integer engine chosen by ac (--act-calib;
// the same quant.ActStats code at each one's quantization points).
func EvaluateQuantizedCalib(ctx context.Context, net *network.Network, calib *dataset.Dataset, ds dataset.Source, bits []int, codes quant.WeightCodes, batch int, ac quant.ActCalib, progress Progress) (*QuantizedEval, error) {
	if batch <= 0 {
		batch = 256
	}
	cb := splitBatches(calib.X, batch)
	ranges, err := quant.ObserveRangesCalib(ctx, net, cb, ac)
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
	if err := CheckPerChannel(net, bits, "the integer-only accuracy"); err != nil {
		out.IntegerNote = err.Error()
		return out, nil
	}
	ir, err := intengine.ObserveRangesCalib(ctx, net, cb, 1, ac)
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

// WeightSpec is how the job quantizes weights: the rounding (--quantizer)
// and bias correction (--bias-correction). The option codes' group sizes
// (--group-size) are in the codes themselves (quant.OptionCode).
type WeightSpec struct {
	Method         string
	BiasCorrection bool
}

// NewWeightCodes returns the source of quantized weights of method
// (quant.MethodRTN or quant.MethodGPTQ) for net's weights as they are now:
// GPTQ's Hessians come from calib in batches of batch samples, with codes
// at each of widths, threads layers at once; progress (optional) is told
// after each weight. It is NewWeightSource without bias correction.
func NewWeightCodes(ctx context.Context, net *network.Network, calib *dataset.Dataset, method string, widths []int, batch, threads int, progress func(done, total int, detail string)) (quant.WeightCodes, error) {
	return NewWeightSource(ctx, net, calib, WeightSpec{Method: method}, widths, batch, threads, progress)
}

// NewWeightSource returns the job's one weight source: spec.Method's codes
// at every option of codes (quant.OptionCode): per-channel options from
// quant.NewCodes, options in groups of G from quant.NewBlockCodes with
// blocks of G (GPTQ with the blocks as static groups, or round to nearest
// per block; float16 scales, as exported), and with spec.BiasCorrection
// the biases corrected (quant.WithBiasCorrection, E[x] from calib).
func NewWeightSource(ctx context.Context, net *network.Network, calib *dataset.Dataset, spec WeightSpec, codes []int, batch, threads int, progress func(done, total int, detail string)) (quant.WeightCodes, error) {
	if batch <= 0 {
		batch = 256
	}
	var batches []*tensor.Tensor
	if spec.Method == quant.MethodGPTQ || spec.BiasCorrection || quant.AnyGrouped(codes) {
		batches = splitBatches(calib.X, batch)
	}
	widths := map[int][]int{} // group size (0: per channel) -> widths
	for _, c := range codes {
		b, g := quant.SplitOption(c)
		widths[g] = append(widths[g], b)
	}
	var src quant.WeightCodes
	var err error
	if len(widths[0]) > 0 || len(widths) == 0 {
		if src, err = quant.NewCodes(ctx, spec.Method, net, batches, quant.CodesOptions{Widths: widths[0], Threads: threads, Progress: progress}); err != nil {
			return nil, err
		}
	}
	groups := map[int]quant.WeightCodes{}
	for _, g := range slices.Sorted(maps.Keys(widths)) {
		if g == 0 {
			continue
		}
		if groups[g], err = quant.NewBlockCodes(ctx, spec.Method, net, batches, quant.BlockCodesOptions{CodesOptions: quant.CodesOptions{Widths: widths[g], Threads: threads}, Block: g}); err != nil {
			return nil, fmt.Errorf("%w; choose a --group-size that divides the layer's input channels (or 0)", err)
		}
	}
	var means []*quant.LayerHessian
	if len(groups) == 0 {
		// GPTQ's Hessian pass went over the same batches of the same
		// float network: its input sums are the means-only pass's.
		means = quant.InputMeans(src)
	}
	src = quant.WithGroups(src, groups)
	if spec.BiasCorrection {
		return quant.WithBiasCorrectionOptions(ctx, src, net, batches, quant.BiasOptions{Means: means, Progress: progress})
	}
	return src, nil
}

// ErrGroups is wrapped by errors about configurations with per-group
// scales where only per-channel ones can go (the integer engine).
var ErrGroups = errors.New("per-group scales are not supported here")

// CheckPerChannel returns nil when every layer of bits is per channel
// (quant.Grouped is false), else one line naming the first layer in
// groups, wrapping ErrGroups: the integer engine (latency measurements and
// budgets, mpsearch run --bits, the integer-only accuracy) takes one
// scale per output channel. what says what needs it.
func CheckPerChannel(net *network.Network, bits []int, what string) error {
	for i, b := range bits {
		if quant.Grouped(b) && i < len(net.Layers()) {
			_, g := quant.SplitOption(b)
			return fmt.Errorf("layer %q has weights in groups of %d (%s): %s needs one scale per output channel (the integer engine's); search without --group-size (or --group-size 0) for it: %w", net.Layers()[i].Node, g, quant.FormatOption(b), what, ErrGroups)
		}
	}
	return nil
}
