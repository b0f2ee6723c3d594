package network

import (
	"context"
	"fmt"
	"math"
	"slices"
	"unsafe"

	"mpsearch/tensor"
)

// Forward-only inference. Forward keeps every value of the pass and every
// op's state for a later Backward, HVP or Tangents; a caller that only
// wants the output (evaluation, running a model over a data set,
// calibration hooks) uses Infer, which holds a value only until its last
// consumer has run. Its peak memory is then that of the widest cut of the
// graph (a residual block's input, its current value and the next), not
// the sum of all activations.

// releasePlan returns, for each node, the node-produced values to drop
// once it has run: those it reads for the last time and its own outputs
// that nothing reads. The graph output, data inputs, parameters and
// constants are never dropped. Computed once by Build.
func (net *Network) releasePlan() [][]int {
	last := make([]int, net.nvals)
	for i := range last {
		last[i] = -1
	}
	produced := make([]bool, net.nvals)
	for k, nd := range net.nodes {
		for _, v := range nd.outs {
			if v >= 0 {
				produced[v] = true
				last[v] = max(last[v], k)
			}
		}
		for _, v := range nd.in {
			if v >= 0 {
				last[v] = max(last[v], k)
			}
		}
	}
	plan := make([][]int, len(net.nodes))
	for v, k := range last {
		if k >= 0 && produced[v] && v != net.outVal {
			plan[k] = append(plan[k], v)
		}
	}
	return plan
}

// inferStats counts what an inference pass holds (for tests): the most
// node-produced values held at once, and how many are held at the end.
type inferStats struct {
	peakLive, endLive int
	inPlace, reused   int // nodes run over an input; outputs in recycled memory
	fused             int // SiLUs run as one loop
}

// Infer runs the network forward on a batch x of shape [N]+SampleShape and
// returns the output only. The output equals Forward's bit for bit (the
// same ops run on the same values in the same order); intermediate values
// and op states are released as soon as no later node reads them. The
// context is checked before every node.
func (net *Network) Infer(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return net.InferHook(ctx, x, nil)
}

// InferHook is Infer with a hook on node inputs, called as ForwardHook
// calls it.
func (net *Network) InferHook(ctx context.Context, x *tensor.Tensor, hook Hook) (*tensor.Tensor, error) {
	if err := net.CheckInput(x); err != nil {
		return nil, err
	}
	if len(net.inVals) != 1 {
		return nil, fmt.Errorf("network: the model has %d data inputs %v; mpsearch runs models with exactly one: %w", len(net.inVals), net.InputNames, ErrUnsupported)
	}
	return net.infer(ctx, []*tensor.Tensor{x}, hook, nil)
}

// InferAll is Infer for a network with several data inputs, one tensor
// for each of InputNames (as ForwardAll takes them): ForwardAll's output
// bit for bit, without keeping the activations, in memory the network's
// passes recycle. The inputs are not released into that memory.
func (net *Network) InferAll(ctx context.Context, xs []*tensor.Tensor) (*tensor.Tensor, error) {
	return net.infer(ctx, xs, nil, nil)
}

// AllocHook is a Hook that writes a replacement value into memory it
// takes from alloc (n values, not zeroed: the hook writes every one) and
// keeps no reference to that memory after the node has run, so that
// InferAllocHook can recycle it for later values of the pass. It returns
// v itself to leave an input unchanged (taking nothing). When v dies at
// this node, alloc(len(v.Data)) may return v.Data itself: the hook must
// then compute each element from v's element at the same index only
// (reading it before writing it), as an element-wise map does.
type AllocHook func(node string, inputIndex int, v *tensor.Tensor, alloc func(n int) []float64) *tensor.Tensor

// InferAllocHook is InferHook with an AllocHook: the output is InferHook's
// bit for bit with the same replacements, but the replacements live in
// memory the pass recycles instead of fresh allocations (which the
// runtime zeroes and the collector frees: on MobileNetV2 with every layer
// input fake-quantized they took a fifth of the pass).
func (net *Network) InferAllocHook(ctx context.Context, x *tensor.Tensor, hook AllocHook) (*tensor.Tensor, error) {
	if err := net.CheckInput(x); err != nil {
		return nil, err
	}
	if len(net.inVals) != 1 {
		return nil, fmt.Errorf("network: the model has %d data inputs %v; mpsearch runs models with exactly one: %w", len(net.inVals), net.InputNames, ErrUnsupported)
	}
	return net.inferPass(ctx, []*tensor.Tensor{x}, nil, hook, nil)
}

// infer is the inference pass on one tensor per data input; st, when not
// nil, receives the pass's counts.
func (net *Network) infer(ctx context.Context, xs []*tensor.Tensor, hook Hook, st *inferStats) (*tensor.Tensor, error) {
	return net.inferPass(ctx, xs, hook, nil, st)
}

// inferPass is infer with either a Hook or an AllocHook (ah, used when
// hook is nil), whose replacements are taken from the pass's arena and
// given back to it once their node has run.
func (net *Network) inferPass(ctx context.Context, xs []*tensor.Tensor, hook Hook, ah AllocHook, st *inferStats) (*tensor.Tensor, error) {
	if len(xs) != len(net.inVals) {
		return nil, fmt.Errorf("network: got %d inputs; the model has %d %v: %w", len(xs), len(net.inVals), net.InputNames, ErrShape)
	}
	plan := net.release
	if plan == nil { // a Network not made by Build
		plan = net.releasePlan()
	}
	vals := make([]*tensor.Tensor, net.nvals)
	for i, t := range net.consts {
		vals[i] = t
	}
	for i, v := range net.pvals {
		vals[v] = net.params[i].Value
	}
	for i, v := range net.inVals {
		vals[v] = xs[i]
	}
	ins := make([]*tensor.Tensor, 0, 4)
	ar := net.takeArena()
	live := 0
	var fresh [][]float64 // memory the AllocHook took for the current node
	cur := 0              // the node running
	if hook == nil && ah != nil {
		hook = func(node string, j int, v *tensor.Tensor) *tensor.Tensor {
			return ah(node, j, v, func(n int) []float64 {
				if vi := net.nodes[cur].in[j]; vi >= 0 && vals[vi] == v && n == len(v.Data) && overwritable(net.nodes[cur], vi, vals, plan[cur]) {
					return v.Data
				}
				d := ar.take(n)
				fresh = append(fresh, d)
				return d
			})
		}
	}
	silu := net.silu
	if silu == nil || hook != nil || !fuseSiLU {
		silu = nil // a hook sees (and may replace) the Sigmoid's output
	}
	for k, nd := range net.nodes {
		cur = k
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if silu != nil && (silu[k] >= 0 || k > 0 && silu[k-1] == k) {
			if silu[k] >= 0 { // the Mul's output, computed here; the Mul (k+1) only releases
				out := net.runSiLU(k, vals, plan[k+1], ar)
				vals[net.nodes[k+1].out] = out
				live++
				if st != nil {
					st.fused++
				}
			}
			for _, v := range plan[k] {
				ar.release(vals, v)
				if vals[v] != nil {
					live--
				}
				vals[v] = nil
			}
			continue
		}
		outs, err := inPlace(nd, vals, hook, &ins, plan[k])
		if outs != nil && st != nil {
			st.inPlace++
		}
		if outs == nil && err == nil {
			outs, err = ar.run(nd, vals, hook, &ins)
		}
		if outs == nil && err == nil {
			outs, _, err = nd.run(vals, hook, &ins)
		}
		if err != nil {
			return nil, err
		}
		for j, v := range nd.outs {
			if v >= 0 {
				vals[v] = outs[j]
				live++
			}
		}
		if st != nil {
			st.peakLive = max(st.peakLive, live)
		}
		for _, d := range fresh {
			ar.give(vals, d)
		}
		fresh = fresh[:0]
		for _, v := range plan[k] {
			ar.release(vals, v)
			vals[v] = nil
			live--
		}
	}
	if st != nil {
		st.endLive, st.reused = live, ar.reused
	}
	net.keepArena(ar)
	return vals[net.outVal], nil
}

// Test and benchmark switches of the arena: keepArenas (Infer passes hand
// their arrays to the next pass of the Network) and poisonTake (take fills
// what it returns with NaN, so that an op marked fillOp that reads its
// output before writing it gives NaN instead of Forward's output).
var (
	keepArenas = true
	poisonTake = false
)

// takeArena returns an arena holding the arrays of an earlier Infer pass
// of net, if the pool has one, or an empty arena.
func (net *Network) takeArena() *arena {
	if a, ok := net.arenas.Get().(*arena); ok && keepArenas {
		a.old, a.free = a.free, nil
		return a
	}
	return &arena{}
}

// keepArena puts a finished pass's arena back into net's pool, holding the
// arrays that pass released only (at most what one pass used; the arrays
// of earlier passes it did not take are dropped). The pass's output never
// is among them: it is not released, and no released value overlaps it.
// The pool is a sync.Pool, one arena per concurrent pass, emptied by the
// collector when passes stop.
func (net *Network) keepArena(a *arena) {
	if !keepArenas {
		return
	}
	a.old, a.reused = nil, 0
	net.arenas.Put(a)
}

// fuseSiLU is a test and benchmark switch: when off, Infer runs a SiLU's
// Sigmoid and Mul as two nodes.
var fuseSiLU = true

// siluPlan returns, for each node k, k+1 when nodes k and k+1 are a SiLU
// that Infer runs as one loop (runSiLU): a Sigmoid of a value x whose
// output s only node k+1 reads, and node k+1 a Mul of x and s (in either
// order); -1 otherwise. Computed once by Build.
func (net *Network) siluPlan() []int {
	readers := make([]int, net.nvals)
	for _, nd := range net.nodes {
		for _, v := range nd.in {
			if v >= 0 {
				readers[v]++
			}
		}
	}
	plan := make([]int, len(net.nodes))
	for k, nd := range net.nodes {
		plan[k] = -1
		if u, ok := nd.single.(*unaryOp); !ok || k+1 == len(net.nodes) || len(nd.in) != 1 {
			continue
		} else if _, ok := u.f.(sigmoidFunc); !ok {
			continue
		}
		mul := net.nodes[k+1]
		if b, ok := mul.single.(*binaryOp); !ok || b.kind != binMul || len(mul.in) != 2 {
			continue
		}
		x, sv := nd.in[0], nd.out
		if x < 0 || sv < 0 || sv == net.outVal || readers[sv] != 1 {
			continue
		}
		if (mul.in[0] == x && mul.in[1] == sv) || (mul.in[0] == sv && mul.in[1] == x) {
			plan[k] = k + 1
		}
	}
	return plan
}

// runSiLU returns node k+1's output (the Mul of the SiLU at k: siluPlan)
// without computing the Sigmoid's output as a value: x·sigmoid(x) (or
// sigmoid(x)·x, the Mul's operand order), the product of the same two
// float64 values as the two nodes', bit for bit. It writes over x when x
// dies at the Mul (in dying) and no other held value shares its memory,
// else into memory from the arena.
func (net *Network) runSiLU(k int, vals []*tensor.Tensor, dying []int, ar *arena) *tensor.Tensor {
	nd, mul := net.nodes[k], net.nodes[k+1]
	xv := nd.in[0]
	x := vals[xv]
	y := x.Data
	if !slices.Contains(dying, xv) || shared(vals, xv) {
		y = ar.take(len(x.Data))
	}
	f := nd.single.(*unaryOp).f
	var sb [256]float64
	sFirst := mul.in[0] != xv
	for lo := 0; lo < len(x.Data); lo += len(sb) {
		xs := x.Data[lo:min(lo+len(sb), len(x.Data))]
		s, ys := sb[:len(xs)], y[lo:lo+len(xs)]
		f.eval(s, xs)
		if sFirst {
			for i, v := range s {
				ys[i] = v * xs[i]
			}
			continue
		}
		for i, v := range s {
			ys[i] = xs[i] * v
		}
	}
	return tensor.FromData(y, slices.Clone(x.Shape)...)
}

// ActivationBytesPerSample estimates, from the layer shapes (batch 1), the
// bytes one sample's values take at the peak of Infer: three float64
// tensors of the largest layer input or output (a residual block's input
// held across the block, the current layer's input and its output). It is
// 0 when the layer shapes are unknown (models not probed at build).
func (net *Network) ActivationBytesPerSample() int64 {
	widest := 0
	for _, l := range net.layers {
		widest = max(widest, tensor.Size(l.InShape), tensor.Size(l.OutShape))
	}
	return 3 * 8 * int64(widest)
}

// InferBatch returns the largest batch size up to limit whose estimated
// activations (ActivationBytesPerSample) fit in budget bytes, and at
// least 1; limit when the estimate is unknown.
func (net *Network) InferBatch(budget int64, limit int) int {
	per := net.ActivationBytesPerSample()
	if per <= 0 {
		return limit
	}
	return max(1, min(limit, int(budget/per)))
}

// inPlacer is implemented by ops that can write their output over one of
// their inputs (element-wise ops: ReLU and the other unary functions, Add,
// Sub, Mul, Div, PRelu with an operand of the output's size). Each output
// element reads only the same element of that input, before writing it.
type inPlacer interface {
	// inPlaceInputs lists the inputs the output may overwrite, in order of
	// preference.
	inPlaceInputs(in []*tensor.Tensor) []int
	// forwardInPlace computes the output, equal to Forward's bit for bit,
	// in in[i]'s memory.
	forwardInPlace(in []*tensor.Tensor, i int) (*tensor.Tensor, error)
}

// inPlace runs nd over the memory of one of its inputs when it can: the
// op is an inPlacer, and that input is a value computed by the pass that
// dies at this node (in dying), that reaches the op unchanged by the hook,
// that nd reads once, and whose memory no other value shares (views made by
// Reshape and the like, the model input, parameters, constants). Then Infer
// allocates nothing for the node and touches memory already in cache. It
// returns nil outputs (and no error) when nd must run normally; ins is
// left holding nd's inputs either way.
func inPlace(nd *node, vals []*tensor.Tensor, hook Hook, ins *[]*tensor.Tensor, dying []int) ([]*tensor.Tensor, error) {
	ip, ok := nd.single.(inPlacer)
	if !ok || len(dying) == 0 {
		return nil, nil
	}
	nd.inputs(vals, hook, ins)
	for _, j := range ip.inPlaceInputs(*ins) {
		v := nd.in[j]
		if v < 0 || (*ins)[j] != vals[v] || !slices.Contains(dying, v) || count(nd.in, v) != 1 || shared(vals, v) {
			continue
		}
		out, err := ip.forwardInPlace(*ins, j)
		if err != nil {
			return nil, nd.wrap(err)
		}
		return []*tensor.Tensor{out}, nil
	}
	return nil, nil
}

// overwritable reports whether an AllocHook may write nd's input value vi
// over its own memory: vi dies at nd (in dying), nd reads it once, no
// other held value shares its memory, and nd is not an inPlacer (whose
// inputs may be read twice: by inPlace, then by the normal run).
func overwritable(nd *node, vi int, vals []*tensor.Tensor, dying []int) bool {
	if _, ok := nd.single.(inPlacer); ok {
		return false
	}
	return slices.Contains(dying, vi) && count(nd.in, vi) == 1 && !shared(vals, vi)
}

// count returns how many times v occurs in s.
func count(s []int, v int) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

// shared reports whether the memory of value v overlaps that of another
// value held in vals (the address ranges of their backing arrays).
func shared(vals []*tensor.Tensor, v int) bool {
	span := func(t *tensor.Tensor) (lo, hi uintptr) {
		d := t.Data[:cap(t.Data)]
		if len(d) == 0 {
			return 0, 0
		}
		lo = uintptr(unsafe.Pointer(&d[0]))
		return lo, lo + uintptr(len(d))*8
	}
	lo, hi := span(vals[v])
	if lo == hi {
		return true
	}
	for i, t := range vals {
		if i == v || t == nil {
			continue
		}
		if l, h := span(t); l < hi && lo < h {
			return true
		}
	}
	return false
}

// allocOp is implemented by ops whose Infer form can write its output into
// memory it is given (Conv, the largest outputs of CNNs; MatMul, Transpose,
// Softmax and LayerNormalization, those of transformers): inferAlloc
// returns Forward's output, bit for bit, in alloc(n) (n zeros), with no
// state.
type allocOp interface {
	inferAlloc(in []*tensor.Tensor, alloc func(n int) []float64) (*tensor.Tensor, error)
}

// fillOp is an allocOp whose inferAlloc writes every value of its
// output, so the arena gives it memory without zeroing it first.
type fillOp interface {
	allocOp
	fills()
}

// arena recycles, within one Infer pass, the memory of values that died
// and that no other held value shares, for the outputs of allocOps: a
// CNN's activations then come from memory the pass already touched
// instead of fresh pages from the OS.
//
// The arrays outlive the pass (Network.keepArena): old holds those of the
// previous pass that this one has not taken yet. Every array in free or
// old belongs to no value held by the caller: Infer's output and the
// caller's inputs are never released, and a hook must not keep the values
// it is shown after their node (as within one pass).
type arena struct {
	free   [][]float64 // whole arrays (len = cap) released by this pass
	old    [][]float64 // whole arrays of the previous pass not yet taken
	reused int         // allocations served from free or old (for tests)
}

// run runs nd as an allocOp with memory from the arena; nil outputs (and
// no error) when nd is not one.
func (a *arena) run(nd *node, vals []*tensor.Tensor, hook Hook, ins *[]*tensor.Tensor) ([]*tensor.Tensor, error) {
	op, ok := nd.single.(allocOp)
	if !ok {
		return nil, nil
	}
	nd.inputs(vals, hook, ins)
	alloc := a.alloc
	if _, ok := op.(fillOp); ok {
		alloc = a.take
	}
	out, err := op.inferAlloc(*ins, alloc)
	if err != nil {
		return nil, nd.wrap(err)
	}
	return []*tensor.Tensor{out}, nil
}

// alloc returns n zeros in the smallest free array that holds them, or in
// a new one.
func (a *arena) alloc(n int) []float64 {
	d := a.take(n)
	clear(d)
	return d
}

// take is alloc without the zeroing: n values of unspecified content,
// for a caller that overwrites them all.
func (a *arena) take(n int) []float64 {
	d := a.fit(n)
	if poisonTake {
		for i := range d {
			d[i] = math.NaN()
		}
	}
	return d
}

// fit returns n values from the smallest array of free or old that holds
// them, removed from its list, or from a new array.
func (a *arena) fit(n int) []float64 {
	list, best := &a.free, -1
	for _, l := range []*[][]float64{&a.free, &a.old} {
		for i, d := range *l {
			if len(d) >= n && (best < 0 || len(d) < len((*list)[best])) {
				list, best = l, i
			}
		}
	}
	if best < 0 {
		return make([]float64, n)
	}
	a.reused++
	d := (*list)[best][:n]
	*list = append((*list)[:best], (*list)[best+1:]...)
	return d
}

// give returns memory taken by an AllocHook (d, its replacement) to the
// arena once its node has run, unless a value held in vals overlaps it
// (an op's output that is a view of its input).
func (a *arena) give(vals []*tensor.Tensor, d []float64) {
	if cap(d) == 0 {
		return
	}
	lo := uintptr(unsafe.Pointer(&d[:1][0]))
	hi := lo + uintptr(cap(d))*8
	for _, t := range vals {
		if t == nil || cap(t.Data) == 0 {
			continue
		}
		l := uintptr(unsafe.Pointer(&t.Data[:1][0]))
		if l < hi && lo < l+uintptr(cap(t.Data))*8 {
			return
		}
	}
	a.free = append(a.free, d[:cap(d)])
}

// release takes value v's memory (v about to be dropped from vals), up to
// its capacity, when no other value in vals overlaps it.
func (a *arena) release(vals []*tensor.Tensor, v int) {
	t := vals[v]
	if t == nil || cap(t.Data) == 0 || shared(vals, v) {
		return
	}
	a.free = append(a.free, t.Data[:cap(t.Data)])
}
