package intengine

import (
	"context"
	"fmt"
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
		return false, err
	}
	if p := r.outPoint; p >= 0 && scratch[p] == nil {
		scratch[p] = quant.NewActStats(c)
		scratch[p].Add(out.Data)
	}
	for _, s := range scratch {
		if s == nil {
			return false, nil
		}
	}
	for i, s := range scratch {
		stats[i].Merge(s)
	}
	return true, nil
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
