package intengine

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"mpsearch/network"
	"mpsearch/quant"
	"mpsearch/tensor"
)

// Range observation by inference. The quantization points are values of
// the float pass; Forward keeps all of them (and every op's state) until
// the pass ends, which on ImageNet models holds hundreds of MB per sample
// and touches memory no longer in cache. Infer drops each value after its
// last reader, and its hook sees every value a node reads before the node
// runs; so each point is observed as the first input of a node that reads
// it (or as Infer's result, for the graph output), once per pass. The
// stats are the same as Forward's: the same values, and ActStats do not
// depend on the order or grouping of what they add (their merge is exact).

// pointReaders maps the node inputs that read a quantization point to the
// point's index in names: key node name, then input index. ok is false
// when the hook cannot tell nodes apart (an unnamed node, or two with one
// name, reads a point); the caller then observes through Forward.
// outPoint is the index of the graph output among names, or -1.
type pointReaders struct {
	at       map[string]map[int]int
	outPoint int
}

func newPointReaders(net *network.Network, names []string) (*pointReaders, bool) {
	idx := make(map[string]int, len(names))
	for i, n := range names {
		idx[n] = i
	}
	r := &pointReaders{at: map[string]map[int]int{}, outPoint: -1}
	if i, ok := idx[net.OutputName]; ok {
		r.outPoint = i
	}
	seen := map[string]bool{}
	for _, n := range net.Model.Graph.Nodes {
		dup := seen[n.Name]
		seen[n.Name] = true
		for j, in := range n.Inputs {
			p, ok := idx[in]
			if !ok {
				continue
			}
			if n.Name == "" || dup {
				return nil, false
			}
			if r.at[n.Name] == nil {
				r.at[n.Name] = map[int]int{}
			}
			r.at[n.Name][j] = p
		}
	}
	return r, true
}

// observeInfer adds the quantization points of x's float pass to stats
// (one ActStats per point, in names order) through Infer. It returns false,
// having added nothing, when some point was not seen (a node the network
// does not run, such as one folded at build, was its only reader).
func (r *pointReaders) observeInfer(ctx context.Context, net *network.Network, x *tensor.Tensor, stats []*quant.ActStats, c quant.ActCalib) (bool, error) {
	_, ok, err := r.inferObserving(ctx, net, x, stats, c)
	return ok, err
}

// inferObserving is observeInfer that also returns the pass's output.
func (r *pointReaders) inferObserving(ctx context.Context, net *network.Network, x *tensor.Tensor, stats []*quant.ActStats, c quant.ActCalib) (*tensor.Tensor, bool, error) {
	scratch := make([]*quant.ActStats, len(stats))
	hook := func(node string, input int, v *tensor.Tensor) *tensor.Tensor {
		if p, ok := r.at[node][input]; ok && scratch[p] == nil {
			scratch[p] = quant.NewActStats(c)
			scratch[p].Add(v.Data)
		}
		return v
	}
	out, err := net.InferHook(ctx, x, hook)
	if err != nil {
		return nil, false, err
	}
	if p := r.outPoint; p >= 0 && scratch[p] == nil {
		scratch[p] = quant.NewActStats(c)
		scratch[p].Add(out.Data)
	}
	for _, s := range scratch {
		if s == nil {
			return nil, false, nil
		}
	}
	for i, s := range scratch {
		stats[i].Merge(s)
	}
	return out, true, nil
}

// observeForward adds the quantization points of x's float pass to stats
// through Forward and returns the bytes the pass held.
func observeForward(ctx context.Context, net *network.Network, x *tensor.Tensor, names []string, stats []*quant.ActStats) (int64, error) {
	pass, err := net.Forward(ctx, x)
	if err != nil {
		return 0, err
	}
	for i, name := range names {
		v := pass.Value(name)
		if v == nil {
			return 0, fmt.Errorf("intengine: the float pass has no value %q", name)
		}
		stats[i].Add(v.Data)
	}
	return pass.Bytes(), nil
}

// observer chooses how ObserveRangesCalib's workers observe the points:
// through Infer while that sees every point, through Forward after a pass
// in which it did not (or from the start when readers is nil).
type observer struct {
	readers *pointReaders
	calib   quant.ActCalib
	noInfer atomic.Bool
}

func newObserver(net *network.Network, names []string, c quant.ActCalib) *observer {
	o := &observer{calib: c}
	if r, ok := newPointReaders(net, names); ok {
		o.readers = r
	}
	return o
}

func (o *observer) useInfer() bool { return o.readers != nil && !o.noInfer.Load() }

// RangeObserver observes the quantization points during float passes that
// a caller runs for its own ends (the sensitivity oracle's KL targets), so
// that the ranges cost no pass of their own; it observes each layer's
// first input too, the ranges package quant's simulation calibrates. Its
// Infer returns net.Infer's output bit for bit and is safe for concurrent
// use; the ranges are those ObserveRangesCalib and
// quant.ObserveRangesThreads give on the same samples, however they were
// split into batches or ordered (the stats' merge is exact).
type RangeObserver struct {
	net     *network.Network
	names   []string // the points, then the layer inputs that are not points
	points  int      // len(QuantPoints)
	layerIn []int    // per layer of net.Layers(): its first input's index in names
	calib   quant.ActCalib
	obs     *observer
	mu      sync.Mutex
	stats   []*quant.ActStats
	samples int
}

// NewRangeObserver returns an observer of net's quantization points and
// layer inputs under calibration c; it fails as ObserveRangesCalib would
// (ErrUnsupported for a model the engine cannot run).
func NewRangeObserver(net *network.Network, c quant.ActCalib) (*RangeObserver, error) {
	names, err := QuantPoints(net)
	if err != nil {
		return nil, err
	}
	o := &RangeObserver{net: net, points: len(names), calib: c}
	idx := map[string]int{}
	for i, n := range names {
		idx[n] = i
	}
	input := map[string]string{}
	for _, n := range net.Model.Graph.Nodes {
		if len(n.Inputs) > 0 {
			input[n.Name] = n.Inputs[0]
		}
	}
	for _, l := range net.Layers() {
		in := input[l.Node]
		i, ok := idx[in]
		if !ok {
			i = len(names)
			idx[in] = i
			names = append(names, in)
		}
		o.layerIn = append(o.layerIn, i)
	}
	o.names, o.obs = names, newObserver(net, names, c)
	o.stats = o.fresh()
	return o, nil
}

func (o *RangeObserver) fresh() []*quant.ActStats {
	st := make([]*quant.ActStats, len(o.names))
	for i := range st {
		st[i] = quant.NewActStats(o.calib)
	}
	return st
}

// Infer returns net's output on x and adds x's quantization points and
// layer inputs to the observer. A graph whose readers Infer's hook cannot
// name is observed by a second pass (batchStats, through Forward).
func (o *RangeObserver) Infer(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	local := o.fresh()
	var out *tensor.Tensor
	if o.obs.useInfer() {
		z, ok, err := o.obs.readers.inferObserving(ctx, o.net, x, local, o.calib)
		if err != nil {
			return nil, err
		}
		if ok {
			out = z
		} else {
			o.obs.noInfer.Store(true)
		}
	}
	if out == nil {
		if err := batchStats(ctx, o.net, x, o.names, local, o.obs); err != nil {
			return nil, err
		}
		z, err := o.net.Infer(ctx, x)
		if err != nil {
			return nil, err
		}
		out = z
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, s := range local {
		o.stats[i].Merge(s)
	}
	o.samples += x.Shape[0]
	return out, nil
}

// Samples returns the number of samples observed so far.
func (o *RangeObserver) Samples() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.samples
}

// Ranges returns the quantization points' ranges of the samples observed
// so far, as ObserveRangesCalib computes them.
func (o *RangeObserver) Ranges() Ranges {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := Ranges{}
	for i, name := range o.names[:o.points] {
		r[name] = o.stats[i].Range(o.calib)
	}
	return r
}

// LayerRanges returns the range of each layer's first input, keyed by the
// layer's node, as quant.ObserveRangesThreads computes them on the same
// samples.
func (o *RangeObserver) LayerRanges() quant.ActRanges {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := quant.ActRanges{}
	for li, l := range o.net.Layers() {
		r[l.Node] = o.stats[o.layerIn[li]].Range(o.calib)
	}
	return r
}
