package hessian

import (
	"context"
	"fmt"
	"math"
)

// Defaults for Options fields left at zero.
const (
	DefaultTol           = 0.02
	DefaultMinProbes     = 10
	DefaultMaxProbes     = 1000
	DefaultProbesPerPass = 8
	DefaultFloorFraction = 1e-2
)

// Options configures Hutchinson and HutchPlusPlus. The zero value selects
// the defaults.
type Options struct {
	// Tol is the target relative standard error of every block's trace
	// (default DefaultTol). Estimation stops once every block reaches it.
	// The standard error is itself estimated from the samples, noisily when
	// they are few; MinProbes guards against stopping on a lucky start.
	Tol float64
	// MinProbes is the number of probes taken before the stopping rule is
	// consulted, so that the standard error itself is meaningful (default
	// DefaultMinProbes, at least 2). Set MinProbes = MaxProbes for a fixed
	// number of probes.
	MinProbes int
	// MaxProbes caps the number of probes (default DefaultMaxProbes).
	MaxProbes int
	// ProbesPerPass is the number of directions per oracle call
	// (default DefaultProbesPerPass). It bounds the oracle's memory use and
	// is the granularity of the stopping rule.
	ProbesPerPass int
	// FloorFraction sets the absolute floor used when a block's trace is
	// near zero and its relative error is undefined: a block's relative
	// error is StdErr / max(|Trace|, f), with
	// f = FloorFraction * Len * (sum over blocks of |Trace|) / (sum of Len),
	// that is FloorFraction times the block's trace were its curvature per
	// parameter the average of all blocks (default DefaultFloorFraction;
	// negative disables the floor).
	FloorFraction float64
	// Seed selects the random probes. The same seed, options and oracle
	// give bit-identical results.
	Seed uint64
	// Progress, if not nil, is called after each pass.
	Progress func(Progress)
	// Products, if not nil, is called after every oracle call with the
	// number of Hessian-vector products so far: on large models one pass
	// can take minutes, and this is the finer progress signal.
	Products func(n int)
}

// Progress reports the state of an estimate after a pass.
type Progress struct {
	Probes      int     // probes taken so far (samples per block)
	Products    int     // Hessian-vector products so far, including any sketch
	WorstRelErr float64 // largest relative standard error over blocks
	Block       string  // the block with that error
}

// BlockTrace is the trace estimate of one diagonal Hessian block.
type BlockTrace struct {
	Name   string
	Len    int     // parameters in the block
	Trace  float64 // estimate of Tr(H_bb)
	StdErr float64 // standard error of Trace
	RelErr float64 // StdErr relative to |Trace| or the floor (see Options.FloorFraction)
	Probes int     // Hutchinson samples behind Trace
	// LowRank is the deterministic part of the Hutch++ estimate, included in
	// Trace (zero for plain Hutchinson).
	LowRank float64
}

// Result is the outcome of a trace estimate.
type Result struct {
	Blocks []BlockTrace
	// Products is the total number of Hessian-vector products (directions)
	// requested from the oracle, including Hutch++'s sketch.
	Products int
	// SketchProducts is the part of Products spent on Hutch++'s low-rank part.
	SketchProducts int
	// Converged reports whether every block reached Tol before MaxProbes.
	Converged bool
}

func (o Options) withDefaults() (Options, error) {
	if o.Tol == 0 {
		o.Tol = DefaultTol
	}
	if o.MinProbes == 0 {
		o.MinProbes = DefaultMinProbes
	}
	if o.MaxProbes == 0 {
		o.MaxProbes = DefaultMaxProbes
	}
	if o.ProbesPerPass == 0 {
		o.ProbesPerPass = DefaultProbesPerPass
	}
	if o.FloorFraction == 0 {
		o.FloorFraction = DefaultFloorFraction
	}
	switch {
	case !(o.Tol > 0) || math.IsInf(o.Tol, 0):
		return o, fmt.Errorf("hessian: Tol is %v; give a positive finite tolerance: %w", o.Tol, ErrOptions)
	case o.MinProbes < 2:
		return o, fmt.Errorf("hessian: MinProbes is %d; a standard error needs at least 2 probes: %w", o.MinProbes, ErrOptions)
	case o.MaxProbes < o.MinProbes:
		return o, fmt.Errorf("hessian: MaxProbes %d is below MinProbes %d; raise MaxProbes or lower MinProbes: %w", o.MaxProbes, o.MinProbes, ErrOptions)
	case o.ProbesPerPass < 1:
		return o, fmt.Errorf("hessian: ProbesPerPass is %d; want at least 1: %w", o.ProbesPerPass, ErrOptions)
	}
	return o, nil
}

// welford accumulates a running mean and sum of squared deviations.
type welford struct {
	n    int
	mean float64
	m2   float64
}

func (w *welford) add(x float64) {
	w.n++
	d := x - w.mean
	w.mean += d / float64(w.n)
	w.m2 += d * (x - w.mean)
}

// stderr is the sample standard deviation (ddof=1) over sqrt(n).
func (w *welford) stderr() float64 {
	if w.n < 2 {
		return math.Inf(1)
	}
	return math.Sqrt(w.m2/float64(w.n-1)) / math.Sqrt(float64(w.n))
}

// Hutchinson estimates the trace of every diagonal block H_bb of the oracle's
// Hessian with Rademacher probes. Each probe v is one global vector (±1 on
// every block parameter, 0 elsewhere); block b's sample is v_b·(Hv)_b, an
// unbiased estimate of Tr(H_bb) because the cross terms v_b·H_bc v_c have
// mean zero. Probes are drawn in passes of ProbesPerPass directions per oracle
// call until every block's relative standard error is at most Tol (after
// MinProbes) or MaxProbes is reached.
//
// If ctx is cancelled the error wraps ctx.Err().
func Hutchinson(ctx context.Context, o Oracle, opts Options) (*Result, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	e, err := newEngine(o, "Hutchinson", opts.ProbesPerPass)
	if e != nil {
		e.onProducts = opts.Products
	}
	if err != nil {
		return nil, err
	}
	return e.residual(ctx, opts, make([]float64, len(e.blocks)), nil)
}

// residual runs Hutchinson on P G P, where project applies the orthogonal
// projector P in place to one packed vector (nil means P = I), and adds the
// deterministic low-rank part lowRank (in scaled units) to each block.
// Block b's sample is g_b·(P G P g)_b; estimates are divided by scale[b]^2
// to undo the block scaling.
func (e *engine) residual(ctx context.Context, opts Options, lowRank []float64, project func([]float64)) (*Result, error) {
	sketch := e.products
	rng := newRand(opts.Seed, streamProbes)
	nb := len(e.blocks)
	stats := make([]welford, nb)
	g := make([]float64, opts.ProbesPerPass*e.n)
	z := make([]float64, len(g))
	u := make([]float64, len(g))
	res := &Result{Blocks: make([]BlockTrace, nb), SketchProducts: sketch}
	for b, blk := range e.blocks {
		res.Blocks[b] = BlockTrace{Name: blk.Name, Len: blk.Len}
	}
	probes := 0
	for probes < opts.MaxProbes {
		k := min(opts.ProbesPerPass, opts.MaxProbes-probes)
		g, z, u := g[:k*e.n], z[:k*e.n], u[:k*e.n]
		rademacher(rng, g)
		copy(z, g)
		if project != nil {
			for j := range k {
				project(z[j*e.n : (j+1)*e.n])
			}
		}
		if err := e.apply(ctx, z, u, k); err != nil {
			return nil, err
		}
		for j := range k {
			gj, uj := g[j*e.n:(j+1)*e.n], u[j*e.n:(j+1)*e.n]
			if project != nil {
				project(uj)
			}
			for b := range nb {
				lo, hi := e.span(b)
				stats[b].add(dot(gj[lo:hi], uj[lo:hi]))
			}
		}
		probes += k
		worst, wb := e.summarize(res, stats, lowRank, opts.FloorFraction)
		res.Products = e.products
		if opts.Progress != nil {
			opts.Progress(Progress{Probes: probes, Products: e.products, WorstRelErr: worst, Block: e.blocks[wb].Name})
		}
		if probes >= opts.MinProbes && worst <= opts.Tol {
			res.Converged = true
			break
		}
	}
	return res, nil
}

// summarize fills res.Blocks from the running statistics and returns the
// worst relative error and its block.
func (e *engine) summarize(res *Result, stats []welford, lowRank []float64, floorFrac float64) (float64, int) {
	var sumAbs float64
	for b := range stats {
		s := e.scale[b] * e.scale[b]
		bt := &res.Blocks[b]
		bt.LowRank = lowRank[b] / s
		bt.Trace = (lowRank[b] + stats[b].mean) / s
		bt.StdErr = stats[b].stderr() / s
		bt.Probes = stats[b].n
		sumAbs += math.Abs(bt.Trace)
	}
	worst, wb := math.Inf(-1), 0
	for b := range stats {
		bt := &res.Blocks[b]
		den := math.Abs(bt.Trace)
		if floorFrac > 0 {
			den = max(den, floorFrac*float64(bt.Len)*sumAbs/float64(e.n))
		}
		switch {
		case bt.StdErr == 0:
			bt.RelErr = 0
		case den == 0:
			bt.RelErr = math.Inf(1)
		default:
			bt.RelErr = bt.StdErr / den
		}
		if bt.RelErr > worst {
			worst, wb = bt.RelErr, b
		}
	}
	return worst, wb
}
