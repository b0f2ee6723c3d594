package intengine

import (
	"context"
	"fmt"
	"math"
	"sort"
	"sync"

	"mpsearch/kernels"
	"mpsearch/network"
	"mpsearch/quant"
	"mpsearch/tensor"
)

// Ranges maps the name of a value stored as uint8 (see QuantPoints) to
// its observed [min, max] on calibration data.
type Ranges map[string][2]float64

// Config says how to quantize a network.
type Config struct {
	// Bits is the weight bit width of each layer, in network.Layers()
	// order: 8, 4, 2 or 1 (3 and 5..7 run on the 4- and 8-bit kernels).
	// nil means 8 everywhere.
	Bits []int
	// Ranges holds the observed range of every quantization point
	// (ObserveRanges computes it); each becomes a uint8 quantizer through
	// quant.ActFromRange.
	Ranges Ranges
	// Quantizers, when it names a quantization point, overrides Ranges.
	Quantizers map[string]quant.ActQuant
	// Threads is the number of goroutines of each GEMM (kernels.Options);
	// values below 1 mean 1.
	Threads int
	// Weights is the source of every layer's weight codes and scales; nil
	// rounds the network's weights at Compile to nearest
	// (quant.NewRoundToNearest, quant.QuantizeWeights).
	Weights quant.WeightCodes
}

// Model is a network compiled to an integer-only program. It is immutable
// after Compile and safe for concurrent use.
type Model struct {
	net   *network.Network
	plan  *plan
	bits  []int
	quant []quant.ActQuant // per buffer (inherited ones copied)
	opt   kernels.Options
	// pool recycles workspaces; the variants of a Model (WithLayerBits)
	// share it, since their buffers are the same.
	pool *wsPool
	// family is the plan Compile made; variants share it (and its
	// buffers), so a Prefix of one continues in another.
	family *plan
	// codes is the source of the weight codes (variants share it).
	codes quant.WeightCodes
}

// setupper is implemented by every step: it derives the integer parameters
// once the quantizers are known.
type setupper interface {
	setup(m *Model) error
}

// Compile converts the float network into an integer-only program with the
// weight bit widths and activation quantizers of cfg. It reads the
// network's current weights once: later changes to the network do not
// affect Run, but NewReference reads the network's graph again, so keep it
// unchanged until the reference is built.
func Compile(net *network.Network, cfg Config) (*Model, error) {
	p, err := analyze(net)
	if err != nil {
		return nil, err
	}
	nl := len(net.Layers())
	bits := cfg.Bits
	if bits == nil {
		bits = make([]int, nl)
		for i := range bits {
			bits[i] = 8
		}
	}
	if len(bits) != nl {
		return nil, fmt.Errorf("intengine: %d bit widths for %d layers: %w", len(bits), nl, ErrConfig)
	}
	for i, b := range bits {
		if b < 1 || b > 8 {
			return nil, fmt.Errorf("intengine: layer %q: %d-bit weights; want 1 to 8: %w", net.Layers()[i].Node, b, ErrConfig)
		}
	}
	codes := cfg.Weights
	if codes == nil {
		codes = quant.NewRoundToNearest(net)
	}
	m := &Model{net: net, plan: p, bits: append([]int(nil), bits...), quant: make([]quant.ActQuant, len(p.bufs)), opt: kernels.Options{Threads: cfg.Threads},
		pool: &wsPool{}, family: p, codes: codes}
	for i, b := range p.bufs {
		if !b.own {
			m.quant[i] = m.quant[b.parent]
			continue
		}
		if q, ok := cfg.Quantizers[b.name]; ok {
			if !(q.Scale > 0) || math.IsInf(q.Scale, 0) || q.ZeroPoint < 0 || q.ZeroPoint > 255 {
				return nil, fmt.Errorf("intengine: quantizer of %q has scale %g and zero point %d; want a positive finite scale and a zero point in [0, 255]: %w", b.name, q.Scale, q.ZeroPoint, ErrConfig)
			}
			m.quant[i] = q
			continue
		}
		r, ok := cfg.Ranges[b.name]
		if !ok {
			return nil, fmt.Errorf("intengine: no range for tensor %q; observe it with ObserveRanges: %w", b.name, ErrConfig)
		}
		if math.IsNaN(r[0]) || math.IsNaN(r[1]) || math.IsInf(r[0], 0) || math.IsInf(r[1], 0) || r[0] > r[1] {
			return nil, fmt.Errorf("intengine: range %v of tensor %q is not a finite interval: %w", r, b.name, ErrConfig)
		}
		m.quant[i] = quant.ActFromRange(r[0], r[1])
	}
	for _, s := range p.steps {
		if err := s.(setupper).setup(m); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// ObserveRanges runs the float network over the batches and records the
// minimum and maximum of every quantization point (QuantPoints).
func ObserveRanges(ctx context.Context, net *network.Network, batches []*tensor.Tensor) (Ranges, error) {
	return ObserveRangesParallel(ctx, net, batches, 1)
}

// ObserveRangesParallel is ObserveRanges with up to threads batches in
// flight at once. Minima and maxima do not depend on the order in which
// batches are combined, so neither do the ranges on threads.
func ObserveRangesParallel(ctx context.Context, net *network.Network, batches []*tensor.Tensor, threads int) (Ranges, error) {
	return ObserveRangesCalib(ctx, net, batches, threads, quant.ActCalib{})
}

// ObserveRangesCalib runs the float network over the batches, up to
// threads at once, collects the quant.ActStats of every quantization point
// in one streamed pass and returns the ranges calibration method c chooses
// from them (quant.ActStats.Range, the code package quant's simulation
// uses). Each worker accumulates its own stats and they are merged at the
// end; the stats are exact (counts and extrema), so the ranges do not
// depend on threads or on how the batches are split.
func ObserveRangesCalib(ctx context.Context, net *network.Network, batches []*tensor.Tensor, threads int, c quant.ActCalib) (Ranges, error) {
	names, err := QuantPoints(net)
	if err != nil {
		return nil, err
	}
	if len(batches) == 0 {
		return nil, fmt.Errorf("intengine: no calibration batches: %w", ErrConfig)
	}
	return observeRanges(ctx, net, batches, threads, c, names, newObserver(net, names, c))
}

// observeRanges is ObserveRangesCalib with the points' names and the way
// to observe them given.
func observeRanges(ctx context.Context, net *network.Network, batches []*tensor.Tensor, threads int, c quant.ActCalib, names []string, obs *observer) (Ranges, error) {
	workers := max(1, min(threads, len(batches)))
	per := make([][]*quant.ActStats, workers)
	errs := make([]error, len(batches))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := range workers {
		per[w] = make([]*quant.ActStats, len(names))
		for i := range names {
			per[w][i] = quant.NewActStats(c)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range jobs {
				errs[b] = batchStats(ctx, net, batches[b], names, per[w], obs)
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
	r := Ranges{}
	for i, name := range names {
		s := per[0][i]
		for _, p := range per[1:] {
			s.Merge(p[i])
		}
		r[name] = s.Range(c)
	}
	return r, nil
}

// batchStats adds every named value of the float pass of x to stats:
// through Infer when r can observe the points there (r.infer still true),
// else through Forward. Infer holds a few values at a time, so its
// sub-batches are sized from the layer shapes (Network.InferBatch);
// Forward keeps every value of the pass, so its sub-batches are sized on
// the first sample's pass (ResNet50's is about 230 MB per sample; 24 at
// once took 5.5 GB). Either way a sub-batch holds at most about
// rangePassBytes, and the stats do not depend on the split.
func batchStats(ctx context.Context, net *network.Network, x *tensor.Tensor, names []string, stats []*quant.ActStats, r *observer) error {
	n := x.Shape[0]
	per := x.Size() / max(n, 1)
	step := 1
	if r.useInfer() {
		step = net.InferBatch(rangePassBytes, n)
	}
	for lo := 0; lo < n; {
		if err := ctx.Err(); err != nil {
			return err
		}
		hi := min(n, lo+step)
		xb := tensor.FromData(x.Data[lo*per:hi*per], append([]int{hi - lo}, x.Shape[1:]...)...)
		if r.useInfer() {
			ok, err := r.readers.observeInfer(ctx, net, xb, stats, r.calib)
			if err != nil {
				return err
			}
			if ok {
				lo = hi
				continue
			}
			r.noInfer.Store(true)
		}
		bytes, err := observeForward(ctx, net, xb, names, stats)
		if err != nil {
			return err
		}
		step = int(max(1, rangePassBytes/max(bytes, 1)))
		lo = hi
	}
	return nil
}

// rangePassBytes bounds the values of one float pass that batchRanges
// holds at once (a variable for tests).
var rangePassBytes int64 = 512 << 20

// TensorInfo describes one uint8 tensor of the program.
type TensorInfo struct {
	Name  string // the ONNX value stored
	Shape []int  // per sample
	Quant quant.ActQuant
	// Own is true for a quantization point; otherwise the tensor shares
	// the quantizer of the one it is computed from (pools, ReLU/Clip).
	Own bool
}

// Tensors lists the uint8 tensors of the program in execution order.
func (m *Model) Tensors() []TensorInfo {
	out := make([]TensorInfo, len(m.plan.bufs))
	for i, b := range m.plan.bufs {
		out[i] = TensorInfo{Name: b.name, Shape: append([]int(nil), m.plan.shapes[b.name]...), Quant: m.quant[i], Own: b.own}
	}
	return out
}

// LayerInfo holds the integer parameters of one Conv/Gemm/MatMul.
type LayerInfo struct {
	Node, Op   string
	Fused      string // fused ReLU/Clip node, "" for none
	Bits       int    // weight quantizer bit width
	KernelBits int    // packed format it runs on (kernels.Ternary for 2 bits)
	N, K       int    // output channels and reduction length, per group
	Groups     int
	// Weights are the quantized weights in the ONNX weight layout and
	// WeightScales their per-output-channel scales.
	Weights      []int8
	WeightScales []float64
	// Bias is the int32 bias at scale S_x*S_w[c] (zeros when the layer
	// has none).
	Bias []int32
	// In and Out are the quantizers of the input and of the stored output;
	// for the layer that produces the int32 logits Out is the zero value
	// and Mult/Shift are nil.
	In, Out quant.ActQuant
	Mult    []int32
	Shift   []int
	Lo, Hi  uint8 // output clamp (fused activation)
	// LogitsScale is S_x·S_w[c] per output channel for the layer that
	// produces the int32 logits (output = acc·LogitsScale[c]); nil otherwise.
	LogitsScale []float64
}

// Layers returns the integer parameters of every layer, in
// network.Layers() order. The slices are the Model's own: do not modify.
func (m *Model) Layers() []LayerInfo {
	var out []LayerInfo
	for _, st := range m.plan.steps {
		s, ok := st.(*layerStep)
		if !ok {
			continue
		}
		li := LayerInfo{Node: s.node, Op: s.opType, Fused: s.fused, Bits: s.bits, KernelBits: s.kbits, N: s.n, K: s.k, Groups: s.groups,
			Weights: s.wq.Q, WeightScales: s.wq.Scales, Bias: s.bias, In: m.quant[s.in], Mult: s.mult, Shift: s.shift, Lo: s.lo, Hi: s.hi, LogitsScale: s.outScale}
		if s.out >= 0 {
			li.Out = m.quant[s.out]
		}
		out = append(out, li)
	}
	sort.SliceStable(out, func(i, j int) bool { return m.layerIndex(out[i].Node) < m.layerIndex(out[j].Node) })
	return out
}

func (m *Model) layerIndex(node string) int {
	for i, l := range m.net.Layers() {
		if l.Node == node {
			return i
		}
	}
	return -1
}

// Steps lists the program's operations in execution order as (node, op)
// pairs; a fused activation appears as "layer+activation".
func (m *Model) Steps() [][2]string {
	out := make([][2]string, len(m.plan.steps))
	for i, s := range m.plan.steps {
		node, op := s.describe()
		out[i] = [2]string{node, op}
	}
	return out
}
