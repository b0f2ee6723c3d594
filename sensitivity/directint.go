package sensitivity

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"

	"mpsearch/intengine"
	"mpsearch/network"
	"mpsearch/tensor"
)

// directChunk is the number of samples in a unit of work of the direct
// metric on the integer engine: every mini-batch is cut into chunks of at
// most this many samples, whatever the thread count. The integer engine's
// outputs are per-sample exact, so the chunking does not change them; it
// only lets the workers share a mini-batch.
const directChunk = 8

// intCell is one (layer, bit width) cell of the direct metric.
type intCell struct {
	li, b  int
	cut    int                // the layer's step: the prefix ends there
	model  *intengine.Model   // layer li at b bits, every other at 8; nil at 8 bits
	loss   []float64          // per mini-batch
	logits [][]*tensor.Tensor // per mini-batch, per chunk
	chunk  []float64          // per chunk (unit): its share of the loss, for the standard error
}

// intRun is the state of one directIntMetric run shared by its workers.
type intRun struct {
	o      *Oracle
	base   *intengine.Model
	cells  []*intCell // sorted by cut
	chunks [][2]int   // per unit: mini-batch and first sample
	nchunk []int      // per mini-batch: its chunks
	left   []int      // per mini-batch: chunks not yet done
	baseZ  [][]*tensor.Tensor
	baseL  []float64
	baseC  []float64 // per chunk (unit): the all-8-bit model's share of the loss

	mu       sync.Mutex
	done     int
	progress func(done int, detail string)
}

// directIntMetric measures the direct metric on the integer engine (see
// doc.go): for each owned cell, the calibration loss of the integer model
// with that layer at b bits and every other layer at 8, minus that of the
// all-8-bit integer model. refused is the engine's reason when it cannot
// compile the model (the caller then measures on the float engine); err is
// any other failure.
func directIntMetric(ctx context.Context, o *Oracle, t *Table, cfg *Config, own []bool) (refused, err error) {
	total := count(own)
	if total == 0 {
		return nil, nil
	}
	net := o.net
	threads := cfg.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	// No progress before the engine has accepted the model: a refusal's
	// note is then the stage's first report, which is never dropped by a
	// rate-limited display.
	samples := 0
	for _, x := range o.batches {
		samples += x.Shape[0]
	}
	ranges := cfg.ranges // observed during the KL targets' pass
	if ranges == nil {
		cfg.report("ranges", 0, 1, fmt.Sprintf("the integer engine's activation ranges on %d samples (float pass)", samples))
		if ranges, err = intengine.ObserveRangesCalib(ctx, net, o.batches, threads, cfg.ActCalib); err != nil {
			if errors.Is(err, intengine.ErrUnsupported) || errors.Is(err, intengine.ErrConfig) {
				return err, nil
			}
			return nil, err
		}
	}
	r := &intRun{o: o}
	for bi, x := range o.batches {
		for s := 0; s < x.Shape[0]; s += directChunk {
			r.chunks = append(r.chunks, [2]int{bi, s})
		}
		r.nchunk = append(r.nchunk, (x.Shape[0]+directChunk-1)/directChunk)
		r.left = append(r.left, r.nchunk[bi])
	}
	workers := min(threads, len(r.chunks))
	r.base, err = intengine.Compile(net, intengine.Config{Ranges: ranges, Threads: max(1, threads/workers), Weights: cfg.Weights})
	if err != nil {
		return err, nil
	}
	cfg.report("ranges", 1, 1, "")
	k := len(cfg.Bits)
	compiled, toCompile := 0, 0
	for li := range t.Layers {
		for j, b := range cfg.Bits {
			if own[li*k+j] && b != 8 {
				toCompile++
			}
		}
	}
	for li := range t.Layers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		cut, err := r.base.LayerStep(li)
		if err != nil {
			return err, nil
		}
		for j, b := range cfg.Bits {
			if !own[li*k+j] {
				continue
			}
			c := &intCell{li: li, b: b, cut: cut, loss: make([]float64, len(o.batches)), logits: make([][]*tensor.Tensor, len(o.batches)), chunk: make([]float64, len(r.chunks))}
			if b != 8 {
				if c.model, err = r.base.WithLayerBits(li, b); err != nil {
					return err, nil
				}
				compiled++
				cfg.report("compile", compiled, toCompile, fmt.Sprintf("integer models of %s at %d bits", t.Layers[li].Name, b))
			}
			r.cells = append(r.cells, c)
		}
	}
	slices.SortStableFunc(r.cells, func(a, b *intCell) int { return a.cut - b.cut })
	r.baseZ = make([][]*tensor.Tensor, len(o.batches))
	r.baseL = make([]float64, len(o.batches))
	r.baseC = make([]float64, len(r.chunks))
	measured := 0 // cells run per chunk (8-bit cells are not run)
	for _, c := range r.cells {
		if c.model != nil {
			measured++
		}
	}
	units := measured * len(r.chunks)
	r.progress = func(done int, detail string) { cfg.report("direct", done, units, detail) }
	r.progress(0, fmt.Sprintf("integer engine, %d cells on %d chunks of up to %d samples", measured, len(r.chunks), directChunk))
	if measured > 0 {
		if err := r.runAll(ctx, workers); err != nil {
			return nil, err
		}
	}
	baseSum := 0.0
	for _, l := range r.baseL {
		baseSum += l
	}
	for _, c := range r.cells {
		m, se := directCells(&t.Layers[c.li])
		if c.model == nil {
			m[c.b], se[c.b] = 0, 0 // the configuration is the baseline itself
			continue
		}
		s := 0.0
		for _, l := range c.loss {
			s += l
		}
		m[c.b] = s - baseSum // signed: a loss that falls is kept as such
		d := make([]float64, len(c.chunk))
		for u, l := range c.chunk {
			d[u] = l - r.baseC[u]
		}
		se[c.b] = stderrOfSum(d)
	}
	r.progress(units, "")
	return nil, nil
}

// runAll processes every chunk on the workers; each chunk's results land in
// per-chunk slots, and the losses of a mini-batch are evaluated once all
// its chunks are done, so nothing depends on the scheduling.
func (r *intRun) runAll(ctx context.Context, workers int) error {
	jobs := make(chan int)
	errs := make([]error, len(r.chunks))
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range jobs {
				if err := ctx.Err(); err != nil {
					errs[u] = err
					continue
				}
				errs[u] = r.chunk(ctx, u)
			}
		}()
	}
	for u := range r.chunks {
		jobs <- u
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// chunk runs unit u: the all-8-bit program on the chunk, stopped at each
// layer's step in turn, and every cell of that layer continued from there.
func (r *intRun) chunk(ctx context.Context, u int) error {
	bi, s := r.chunks[u][0], r.chunks[u][1]
	x := r.o.batches[bi]
	n := min(directChunk, x.Shape[0]-s)
	per := tensor.Size(x.Shape[1:])
	xc := &tensor.Tensor{Shape: append([]int{n}, x.Shape[1:]...), Data: x.Data[s*per : (s+n)*per]}
	p, err := r.base.Start(xc)
	if err != nil {
		return err
	}
	defer p.Release()
	ci := s / directChunk
	cl, err := sliceLoss(r.o.losses[bi], s, n)
	if err != nil {
		return err
	}
	for _, c := range r.cells {
		if c.model == nil {
			continue
		}
		if err := p.RunTo(ctx, c.cut); err != nil {
			return err
		}
		z, err := c.model.RunFrom(ctx, p)
		if err != nil {
			return err
		}
		if c.chunk[u], _, err = cl.Eval(z); err != nil {
			return err
		}
		r.mu.Lock()
		if c.logits[bi] == nil {
			c.logits[bi] = make([]*tensor.Tensor, r.nchunk[bi])
		}
		c.logits[bi][ci] = z
		r.done++
		r.progress(r.done, fmt.Sprintf("%s at %d bits", r.o.blocks[c.li].Name, c.b))
		r.mu.Unlock()
	}
	if err := p.RunTo(ctx, len(r.base.Steps())); err != nil {
		return err
	}
	z, err := p.Output()
	if err != nil {
		return err
	}
	if r.baseC[u], _, err = cl.Eval(z); err != nil {
		return err
	}
	r.mu.Lock()
	if r.baseZ[bi] == nil {
		r.baseZ[bi] = make([]*tensor.Tensor, r.nchunk[bi])
	}
	r.baseZ[bi][ci] = z
	r.left[bi]--
	last := r.left[bi] == 0
	r.mu.Unlock()
	if !last {
		return nil
	}
	return r.batchLosses(bi)
}

// batchLosses evaluates the loss of mini-batch bi for the baseline and
// every cell from their chunks' logits, then drops the logits. Only the
// worker that finished the batch's last chunk calls it.
func (r *intRun) batchLosses(bi int) error {
	loss := r.o.losses[bi]
	l, err := evalChunks(loss, r.baseZ[bi])
	if err != nil {
		return err
	}
	r.baseL[bi], r.baseZ[bi] = l, nil
	for _, c := range r.cells {
		if c.model == nil {
			continue
		}
		r.mu.Lock()
		zs := c.logits[bi]
		c.logits[bi] = nil
		r.mu.Unlock()
		if c.loss[bi], err = evalChunks(loss, zs); err != nil {
			return err
		}
	}
	return nil
}

// evalChunks concatenates the chunks' logits (in sample order) into the
// mini-batch's logits and evaluates the loss on them.
func evalChunks(loss network.Loss, zs []*tensor.Tensor) (float64, error) {
	n, size := 0, 0
	for _, z := range zs {
		n += z.Shape[0]
		size += len(z.Data)
	}
	all := &tensor.Tensor{Shape: append([]int{n}, zs[0].Shape[1:]...), Data: make([]float64, 0, size)}
	for _, z := range zs {
		all.Data = append(all.Data, z.Data...)
	}
	l, _, err := loss.Eval(all)
	return l, err
}

// directCells returns the layer's direct-metric values and standard
// errors, creating the maps.
func directCells(l *Layer) (values, stderr map[int]float64) {
	if l.Metrics[MetricDirect] == nil {
		l.Metrics[MetricDirect] = map[int]float64{}
	}
	if l.Stderr == nil {
		l.Stderr = map[string]map[int]float64{}
	}
	if l.Stderr[MetricDirect] == nil {
		l.Stderr[MetricDirect] = map[int]float64{}
	}
	return l.Metrics[MetricDirect], l.Stderr[MetricDirect]
}

// sliceLoss returns the loss of samples [start, start+n) of a mini-batch
// whose loss is l, with l's denominator, so that the chunks' losses add up
// to the mini-batch's (up to rounding).
func sliceLoss(l network.Loss, start, n int) (network.Loss, error) {
	switch l := l.(type) {
	case network.CrossEntropy:
		return network.CrossEntropy{Labels: l.Labels[start : start+n], Denom: l.Denom}, nil
	case network.SoftTarget:
		c := l.Probs.Shape[1]
		p := &tensor.Tensor{Shape: []int{n, c}, Data: l.Probs.Data[start*c : (start+n)*c]}
		return network.SoftTarget{Probs: p, Denom: l.Denom}, nil
	}
	return nil, fmt.Errorf("sensitivity: no per-chunk form of the loss %T", l)
}

// stderrOfSum is the standard error of a sum of U independent chunk
// contributions d (the direct metric is the sum of its chunks' shares of
// the loss change): sqrt(U) times their sample standard deviation, by
// Welford's one-pass recurrence in chunk order (deterministic). With fewer
// than two chunks the spread is unknown and it returns 0.
func stderrOfSum(d []float64) float64 {
	if len(d) < 2 {
		return 0
	}
	mean, m2 := 0.0, 0.0
	for i, v := range d {
		delta := v - mean
		mean += delta / float64(i+1)
		m2 += delta * (v - mean)
	}
	u := float64(len(d))
	return math.Sqrt(u * m2 / (u - 1))
}
