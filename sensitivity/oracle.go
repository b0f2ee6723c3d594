package sensitivity

import (
	"context"
	"fmt"
	"sync"

	"mpsearch/dataset"
	"mpsearch/hessian"
	"mpsearch/internal/workers"
	"mpsearch/network"
	"mpsearch/tensor"
)

// Loss names the loss the sensitivities are taken of.
const (
	LossCE = "cross-entropy" // with the data's labels
	LossKL = "kl"            // KL divergence to the float model's own outputs
)

// Oracle gives exact Hessian-vector products of the loss, averaged over a
// whole calibration set processed in mini-batches, with respect to the
// weights of the network's quantizable layers (one block per layer). It
// implements hessian.Oracle.
//
// The forward passes are computed once and kept (the parameters do not
// change while an estimator runs), unless they would exceed MaxCacheBytes.
type Oracle struct {
	net     *network.Network
	batches []*tensor.Tensor
	losses  []network.Loss
	threads int
	blocks  []hessian.Block
	dim     int

	// passBytes is OracleOptions.PassBytes; perSample the bytes of a
	// forward pass per sample (with the passFactor margin).
	passBytes, perSample int64
	// batchCap is OracleOptions.Batch (the largest mini-batch asked for),
	// which fisher's larger mini-batches also respect.
	batchCap int

	mu     sync.Mutex
	passes []*network.Pass // cached forward passes, nil when not cached
	cache  bool
}

// OracleOptions configures NewOracle.
type OracleOptions struct {
	Loss    string // LossCE (default when the data has labels) or LossKL
	Batch   int    // mini-batch size, default 256
	Threads int    // mini-batches processed concurrently, default 1
	// MaxCacheBytes bounds the memory of the cached forward passes
	// (default 1 GiB); above it every product recomputes them.
	MaxCacheBytes int64
	// PassBytes bounds the memory of one mini-batch in flight, per
	// worker (default 1 GiB): the mini-batch is made smaller than Batch
	// when a forward pass and the tangents of a Hessian-vector product
	// would exceed it, and HVP splits its directions into groups that fit.
	// The bound depends on the model only, never on Threads, so results
	// stay independent of the thread count.
	PassBytes int64
	// Progress, if not nil, is called after each mini-batch of the float
	// model's outputs that LossKL computes as its targets.
	Progress func(done, total int)
	// Infer, if not nil, is the float pass LossKL's targets come from in
	// place of net.Infer, whose output it must return bit for bit (Compute
	// gives intengine.RangeObserver.Infer, which observes the engine's
	// activation ranges in the same pass).
	Infer func(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error)
}

// passFactor is the memory of a mini-batch in flight in units of its
// forward pass: the pass itself, its backward values and one direction's
// tangents (forward and backward), with the op states (im2col columns...)
// that Pass.Bytes does not count covered by a factor of 2 on the values.
const passFactor = 6

// NewOracle prepares the losses of every mini-batch of ds. For LossKL the
// targets are the float model's own output probabilities.
func NewOracle(ctx context.Context, net *network.Network, ds *dataset.Dataset, opt OracleOptions) (*Oracle, error) {
	if opt.Batch <= 0 {
		opt.Batch = 256
	}
	if opt.Threads <= 0 {
		opt.Threads = 1
	}
	if opt.MaxCacheBytes == 0 {
		opt.MaxCacheBytes = 1 << 30
	}
	if opt.PassBytes == 0 {
		opt.PassBytes = 1 << 30
	}
	if opt.Loss == "" {
		opt.Loss = LossCE
		if ds.Y == nil {
			opt.Loss = LossKL
		}
	}
	if opt.Loss == LossCE && ds.Y == nil {
		return nil, fmt.Errorf("sensitivity: %s has no labels; give labels or use the KL loss (--labels none)", ds.Source)
	}
	if len(net.Layers()) == 0 {
		return nil, fmt.Errorf("sensitivity: the model has no quantizable layer (Conv, Gemm or MatMul with a weight initializer)")
	}
	o := &Oracle{net: net, threads: opt.Threads}
	batch, perSample, err := memoryBatch(ctx, net, ds, opt)
	if err != nil {
		return nil, err
	}
	o.batchCap = opt.Batch
	opt.Batch = batch
	o.passBytes, o.perSample = opt.PassBytes, perSample
	for _, l := range net.Layers() {
		size := net.Params()[l.Weight].Value.Size()
		o.blocks = append(o.blocks, hessian.Block{Name: l.Node, Offset: o.dim, Len: size})
		o.dim += size
	}
	n := ds.Len()
	if opt.Loss != LossCE && opt.Loss != LossKL {
		return nil, fmt.Errorf("sensitivity: unknown loss %q (want %s or %s)", opt.Loss, LossCE, LossKL)
	}
	for b := 0; b < ds.NumBatches(opt.Batch); b++ {
		x, y := ds.Batch(b, opt.Batch)
		o.batches = append(o.batches, x)
		if opt.Loss == LossCE {
			o.losses = append(o.losses, network.CrossEntropy{Labels: y, Denom: float64(n)})
		}
	}
	if opt.Loss == LossKL {
		// The float model's own outputs, mini-batches on o.threads workers
		// (Infer: its output equals Forward's, without the activations).
		o.losses = make([]network.Loss, len(o.batches))
		infer := opt.Infer
		if infer == nil {
			infer = net.Infer
		}
		var mu sync.Mutex
		done := 0
		err := o.parallel(ctx, func(b int) error {
			y, err := infer(ctx, o.batches[b])
			if err != nil {
				return err
			}
			o.losses[b] = network.SoftTarget{Probs: network.Softmax(y), Denom: float64(n)}
			mu.Lock()
			defer mu.Unlock()
			if done++; opt.Progress != nil {
				opt.Progress(done, len(o.batches))
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	// The cached passes hold every sample's values: the per-sample bytes
	// measured by memoryBatch (without its margin) times the samples.
	o.cache = perSample/passFactor*int64(n) <= opt.MaxCacheBytes
	return o, nil
}

// memoryBatch returns the mini-batch size that keeps one batch in flight
// within opt.PassBytes (at most opt.Batch), and the measured bytes of a
// forward pass per sample times passFactor.
func memoryBatch(ctx context.Context, net *network.Network, ds *dataset.Dataset, opt OracleOptions) (int, int64, error) {
	x, _ := ds.Batch(0, 1)
	p, err := net.Forward(ctx, x)
	if err != nil {
		return 0, 0, err
	}
	per := max(1, p.Bytes()*passFactor)
	return int(min(int64(opt.Batch), max(1, opt.PassBytes/per))), per, nil
}

// Dim implements hessian.Oracle.
func (o *Oracle) Dim() int { return o.dim }

// Blocks implements hessian.Oracle: one block per quantizable layer, in
// the order of Network.Layers.
func (o *Oracle) Blocks() []hessian.Block { return append([]hessian.Block(nil), o.blocks...) }

// pass returns the forward pass of batch b, cached if allowed.
func (o *Oracle) pass(ctx context.Context, b int) (*network.Pass, error) {
	if o.cache {
		o.mu.Lock()
		if o.passes == nil {
			o.passes = make([]*network.Pass, len(o.batches))
		}
		p := o.passes[b]
		o.mu.Unlock()
		if p != nil {
			return p, nil
		}
	}
	p, err := o.net.Forward(ctx, o.batches[b])
	if err != nil {
		return nil, err
	}
	if o.cache {
		o.mu.Lock()
		o.passes[b] = p
		o.mu.Unlock()
	}
	return p, nil
}

// forEachBatch runs f on the forward pass of every mini-batch with up to
// o.threads workers and returns the first error (in batch order). f must
// only write to per-batch storage.
func (o *Oracle) forEachBatch(ctx context.Context, f func(b int, p *network.Pass) error) error {
	return o.parallel(ctx, func(b int) error {
		p, err := o.pass(ctx, b)
		if err != nil {
			return err
		}
		return f(b, p)
	})
}

// parallel runs f(b) for every mini-batch b on up to o.threads workers.
func (o *Oracle) parallel(ctx context.Context, f func(b int) error) error {
	return o.parallelN(ctx, len(o.batches), f)
}

// parallelN runs f(i) for every i < n on up to o.threads workers and
// returns the first error in index order.
func (o *Oracle) parallelN(ctx context.Context, n int, f func(i int) error) error {
	return workers.ForEach(ctx, n, o.threads, f)
}

// directions converts k flat directions (hessian.Oracle layout) into
// per-parameter tangents for the network.
func (o *Oracle) directions(v []float64, k int) []*tensor.Tensor {
	params := o.net.Params()
	dirs := make([]*tensor.Tensor, len(params))
	for li, l := range o.net.Layers() {
		w := params[l.Weight].Value
		blk := o.blocks[li]
		t := tensor.New(append([]int{k}, w.Shape...)...)
		for j := 0; j < k; j++ {
			copy(t.Data[j*blk.Len:(j+1)*blk.Len], v[j*o.dim+blk.Offset:j*o.dim+blk.Offset+blk.Len])
		}
		dirs[l.Weight] = t
	}
	return dirs
}

// HVP implements hessian.Oracle: hv = H v for k directions, H the Hessian
// of the mean loss over the whole calibration set. Batch results are added
// in batch order, so the result does not depend on Threads.
func (o *Oracle) HVP(ctx context.Context, v, hv []float64, k int) error {
	if len(v) != k*o.dim || len(hv) != k*o.dim {
		return fmt.Errorf("sensitivity: HVP with %d and %d values for %d directions of %d", len(v), len(hv), k, o.dim)
	}
	// Directions are independent: groups of at most kk give the same
	// numbers as one call with all k, in bounded memory.
	kk := k
	if b0 := o.batches[0].Shape[0]; o.perSample > 0 {
		kk = int(min(int64(k), max(1, o.passBytes/(o.perSample*int64(b0)))))
	}
	for i := range hv {
		hv[i] = 0
	}
	for start := 0; start < k; start += kk {
		n := min(kk, k-start)
		if err := o.hvpGroup(ctx, v[start*o.dim:(start+n)*o.dim], hv[start*o.dim:(start+n)*o.dim], n); err != nil {
			return err
		}
	}
	return nil
}

// hvpGroup adds H v for k directions into hv, one mini-batch at a time.
func (o *Oracle) hvpGroup(ctx context.Context, v, hv []float64, k int) error {
	dirs := o.directions(v, k)
	parts := make([][]*tensor.Tensor, len(o.batches))
	err := o.forEachBatch(ctx, func(b int, p *network.Pass) error {
		_, h, err := p.HVP(o.losses[b], dirs, k)
		parts[b] = h
		return err
	})
	if err != nil {
		return err
	}
	for _, h := range parts {
		o.addBlocks(hv, h, k)
	}
	return nil
}

// addBlocks adds per-parameter results ([k]+shape) into the flat layout.
func (o *Oracle) addBlocks(dst []float64, h []*tensor.Tensor, k int) {
	for li, l := range o.net.Layers() {
		blk := o.blocks[li]
		src := h[l.Weight].Data
		for j := 0; j < k; j++ {
			d := dst[j*o.dim+blk.Offset : j*o.dim+blk.Offset+blk.Len]
			s := src[j*blk.Len : (j+1)*blk.Len]
			for i := range d {
				d[i] += s[i]
			}
		}
	}
}

// Gradient returns the gradient of the mean loss with respect to the layer
// weights, in the flat layout.
func (o *Oracle) Gradient(ctx context.Context) ([]float64, error) {
	parts := make([]*network.Grads, len(o.batches))
	err := o.forEachBatch(ctx, func(b int, p *network.Pass) error {
		_, gout, err := o.losses[b].Eval(p.Output())
		if err != nil {
			return err
		}
		parts[b] = p.Backward(gout, false)
		return ctx.Err() // Backward stops early when ctx is done
	})
	if err != nil {
		return nil, err
	}
	g := make([]float64, o.dim)
	for _, gr := range parts {
		o.addBlocks(g, gr.Params, 1)
	}
	return g, nil
}

// Loss returns the mean loss over the calibration set.
func (o *Oracle) Loss(ctx context.Context) (float64, error) {
	return o.loss(ctx, nil)
}

// loss returns the mean loss over the calibration set; with a hook (or
// parameters changed since the cached passes) every pass is recomputed.
func (o *Oracle) loss(ctx context.Context, hook network.Hook) (float64, error) {
	parts := make([]float64, len(o.batches))
	err := o.parallel(ctx, func(b int) error {
		var p *network.Pass
		var err error
		if hook == nil {
			p, err = o.pass(ctx, b)
		} else {
			p, err = o.net.ForwardHook(ctx, o.batches[b], hook)
		}
		if err != nil {
			return err
		}
		l, _, err := o.losses[b].Eval(p.Output())
		parts[b] = l
		return err
	})
	s := 0.0
	for _, l := range parts {
		s += l
	}
	return s, err
}

// lossChunks is loss with every mini-batch's loss also split into its
// chunks of directChunk samples (sliceLoss), in batch and sample order:
// the chunks' shares of the loss, from which the direct metric's standard
// error comes. The sum is exactly loss's (the mini-batch losses summed in
// batch order).
func (o *Oracle) lossChunks(ctx context.Context, hook network.Hook) (float64, []float64, error) {
	parts := make([]float64, len(o.batches))
	chunks := make([][]float64, len(o.batches))
	err := o.parallel(ctx, func(b int) error {
		p, err := o.net.ForwardHook(ctx, o.batches[b], hook)
		if err != nil {
			return err
		}
		z := p.Output()
		if parts[b], _, err = o.losses[b].Eval(z); err != nil {
			return err
		}
		n, c := z.Shape[0], z.Shape[1]
		for s := 0; s < n; s += directChunk {
			k := min(directChunk, n-s)
			cl, err := sliceLoss(o.losses[b], s, k)
			if err != nil {
				return err
			}
			l, _, err := cl.Eval(&tensor.Tensor{Shape: []int{k, c}, Data: z.Data[s*c : (s+k)*c]})
			if err != nil {
				return err
			}
			chunks[b] = append(chunks[b], l)
		}
		return nil
	})
	s := 0.0
	var all []float64
	for b, l := range parts {
		s += l
		all = append(all, chunks[b]...)
	}
	return s, all, err
}

// GGNTraces returns the exact Gauss-Newton trace of every layer's block
// (see network.Pass.GGNTraces), summed over the calibration set. done, if
// not nil, is called after each mini-batch (from the worker goroutines).
func (o *Oracle) GGNTraces(ctx context.Context, n int, done func()) ([]float64, error) {
	parts := make([][]float64, len(o.batches))
	err := o.forEachBatch(ctx, func(b int, p *network.Pass) error {
		t, err := p.GGNTraces(ctx, float64(n))
		parts[b] = t
		if err == nil && done != nil {
			done()
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	tr := make([]float64, len(o.blocks))
	for _, t := range parts {
		for i, v := range t {
			tr[i] += v
		}
	}
	return tr, nil
}

// classes returns the number of output classes (the logits' second axis).
func (o *Oracle) classes(ctx context.Context) (int, error) {
	p, err := o.pass(ctx, 0)
	if err != nil {
		return 0, err
	}
	z := p.Output()
	if z.Rank() != 2 {
		return 0, fmt.Errorf("sensitivity: traces need logits [N, classes]; the model gives %v: %w", z.Shape, network.ErrShape)
	}
	return z.Shape[1], nil
}
