package quant

import (
	"context"
	"fmt"
	"sync"

	"mpsearch/kernels"
	"mpsearch/network"
	"mpsearch/tensor"
)

// ActRanges maps a layer's node name to the observed range of its input
// activations (the first input of each Conv/Gemm/MatMul layer).
type ActRanges map[string][2]float64

// ObserveRanges runs the float network over the batches and records the
// minimum and maximum of every layer's input (minmax calibration).
func ObserveRanges(ctx context.Context, net *network.Network, batches []*tensor.Tensor) (ActRanges, error) {
	return ObserveRangesCalib(ctx, net, batches, ActCalib{})
}

// ObserveRangesCalib runs the float network over the batches, collects
// every layer input's ActStats in one streamed pass and returns the ranges
// method c chooses from them (ActStats.Range; the integer engine's
// ObserveRanges uses the same code at its quantization points).
func ObserveRangesCalib(ctx context.Context, net *network.Network, batches []*tensor.Tensor, c ActCalib) (ActRanges, error) {
	return ObserveRangesThreads(ctx, net, batches, c, 1)
}

// ObserveRangesThreads is ObserveRangesCalib with up to threads batches in
// flight at once (one Infer pass each). Each worker accumulates its own
// stats and they are merged at the end; the stats are exact (counts and
// extrema, ActStats.Merge), so the ranges do not depend on threads.
func ObserveRangesThreads(ctx context.Context, net *network.Network, batches []*tensor.Tensor, c ActCalib, threads int) (ActRanges, error) {
	isLayer := map[string]bool{}
	for _, l := range net.Layers() {
		isLayer[l.Node] = true
	}
	workers := max(1, min(threads, len(batches)))
	per := make([]map[string]*ActStats, workers)
	errs := make([]error, len(batches))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := range workers {
		stats := map[string]*ActStats{}
		per[w] = stats
		hook := func(node string, input int, v *tensor.Tensor) *tensor.Tensor {
			if input != 0 || !isLayer[node] {
				return v
			}
			s, ok := stats[node]
			if !ok {
				s = NewActStats(c)
				stats[node] = s
			}
			s.Add(v.Data)
			return v
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range jobs {
				if errs[b] = ctx.Err(); errs[b] == nil {
					_, errs[b] = net.InferHook(ctx, batches[b], hook)
				}
			}
		}()
	}
	for b := range batches {
		jobs <- b
	}
	close(jobs)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	stats := per[0]
	for _, p := range per[1:] {
		for node, s := range p {
			if t, ok := stats[node]; ok {
				t.Merge(s)
			} else {
				stats[node] = s
			}
		}
	}
	if len(stats) != len(isLayer) {
		return nil, fmt.Errorf("quant: observed %d of %d layer inputs", len(stats), len(isLayer))
	}
	r := ActRanges{}
	for node, s := range stats {
		r[node] = s.Range(c)
	}
	return r, nil
}

// ActQuantizers turns observed ranges into uint8 quantizers.
func (r ActRanges) ActQuantizers() map[string]ActQuant {
	q := make(map[string]ActQuant, len(r))
	for k, v := range r {
		q[k] = ActFromRange(v[0], v[1])
	}
	return q
}

// ActHook returns a network hook that fake-quantizes the first input of
// every layer named in q (simulated uint8 activations); other values pass
// unchanged. The hook allocates a new tensor; inputs are not modified.
func ActHook(q map[string]ActQuant) network.Hook {
	return func(node string, input int, v *tensor.Tensor) *tensor.Tensor {
		a, ok := q[node]
		if input != 0 || !ok {
			return v
		}
		out := tensor.New(v.Shape...)
		a.fakeAll(out.Data, v.Data)
		return out
	}
}

// ActAllocHook is ActHook for network.InferAllocHook: the same values,
// written into memory the pass recycles.
func ActAllocHook(q map[string]ActQuant) network.AllocHook {
	return func(node string, input int, v *tensor.Tensor, alloc func(n int) []float64) *tensor.Tensor {
		a, ok := q[node]
		if input != 0 || !ok {
			return v
		}
		out := tensor.FromData(alloc(len(v.Data)), v.Shape...)
		a.fakeAll(out.Data, v.Data)
		return out
	}
}

// fakeAll sets dst[i] = a.Fake(src[i]), bit for bit
// (kernels.FakeQuantize: Quantize's formula, 8 values at a time).
func (a ActQuant) fakeAll(dst, src []float64) {
	kernels.FakeQuantize(dst[:len(src)], src, a.Scale, a.ZeroPoint)
}

// WeightSetter replaces layer weights with quantized versions and restores
// them: simulated quantization of a network's weights.
type WeightSetter struct {
	net   *network.Network
	codes WeightCodes       // nil: round to nearest (FakeQuantWeights)
	saved map[int][]float64 // param index -> original values
}

// NewWeightSetter remembers the network's float weights; Set rounds them
// to nearest (FakeQuantWeights).
func NewWeightSetter(net *network.Network) *WeightSetter {
	return &WeightSetter{net: net, saved: map[int][]float64{}}
}

// NewWeightSetterCodes is NewWeightSetter whose Set takes each layer's
// quantized weights from c (codes times scales); nil c rounds to nearest.
func NewWeightSetterCodes(net *network.Network, c WeightCodes) *WeightSetter {
	return &WeightSetter{net: net, codes: c, saved: map[int][]float64{}}
}

// Set quantizes layer li's weights to bits, an option code (0 or a
// per-channel code >= 32 restores float; codes in groups need a source
// that gives them).
func (s *WeightSetter) Set(li, bits int) error {
	l := s.net.Layers()[li]
	w := s.net.Params()[l.Weight].Value
	orig, ok := s.saved[l.Weight]
	if !ok {
		orig = append([]float64(nil), w.Data...)
		s.saved[l.Weight] = orig
	}
	if bits <= 0 || !Grouped(bits) && bits >= 32 {
		copy(w.Data, orig)
		return s.setBias(li, nil)
	}
	if s.codes != nil {
		wq, err := s.codes.Codes(li, bits)
		if err != nil {
			return err
		}
		if len(wq.Q) != len(w.Data) {
			return fmt.Errorf("layer %q: %d codes for a %v weight: %w", l.Node, len(wq.Q), w.Shape, ErrCodes)
		}
		wq.Dequantize(w.Data, w.Shape)
		var shift []float64
		if bs, ok := s.codes.(BiasShifter); ok {
			if shift, err = bs.BiasShift(li, bits); err != nil {
				return err
			}
		}
		return s.setBias(li, shift)
	}
	q, err := FakeQuantWeights(orig, w.Shape, l.ChannelAxis, bits)
	if err != nil {
		return fmt.Errorf("layer %q: %w", l.Node, err)
	}
	copy(w.Data, q)
	return nil
}

// setBias sets layer li's bias to its float value plus shift (nil: the
// float value), when the layer has a bias parameter and the source
// corrects biases (BiasShifter).
func (s *WeightSetter) setBias(li int, shift []float64) error {
	l := s.net.Layers()[li]
	if _, ok := s.codes.(BiasShifter); !ok || l.Bias < 0 {
		return nil
	}
	b := s.net.Params()[l.Bias].Value
	orig, ok := s.saved[l.Bias]
	if !ok {
		orig = append([]float64(nil), b.Data...)
		s.saved[l.Bias] = orig
	}
	copy(b.Data, orig)
	if shift == nil {
		return nil
	}
	if len(shift) != len(b.Data) {
		return fmt.Errorf("layer %q: a bias shift of %d values for a bias of %d: %w", l.Node, len(shift), len(b.Data), ErrCodes)
	}
	for c, v := range shift {
		b.Data[c] += v
	}
	return nil
}

// SetValues replaces layer li's weights by v (values in the weight's
// layout, e.g. from GPTQNetwork); Restore puts the float weights back.
func (s *WeightSetter) SetValues(li int, v []float64) error {
	l := s.net.Layers()[li]
	w := s.net.Params()[l.Weight].Value
	if len(v) != len(w.Data) {
		return fmt.Errorf("layer %q: %d weight values; want %d", l.Node, len(v), len(w.Data))
	}
	if _, ok := s.saved[l.Weight]; !ok {
		s.saved[l.Weight] = append([]float64(nil), w.Data...)
	}
	copy(w.Data, v)
	return nil
}

// SetAll applies a bit width to every layer (bits[i] for layer i).
func (s *WeightSetter) SetAll(bits []int) error {
	for i, b := range bits {
		if err := s.Set(i, b); err != nil {
			return err
		}
	}
	return nil
}

// Restore puts every float weight (and corrected bias) back.
func (s *WeightSetter) Restore() {
	for idx, orig := range s.saved {
		copy(s.net.Params()[idx].Value.Data, orig)
	}
}
