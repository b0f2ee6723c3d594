package hessian

import (
	"context"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// Defaults for EigenOptions fields left at zero.
const (
	DefaultEigenTol     = 1e-4
	DefaultEigenMaxIter = 100
)

// EigenMethod selects the top-eigenvalue iteration.
type EigenMethod int

const (
	// Power is power iteration with the Rayleigh quotient; it stops when
	// the quotient changes by at most Tol relative between iterations.
	Power EigenMethod = iota
	// Lanczos is the Lanczos iteration with full re-orthogonalization; it
	// stops when the residual bound |beta_m s_m| of the Ritz pair is at most
	// Tol times the Ritz value, which bounds ||H_bb x - theta x||. It keeps
	// the Krylov basis: memory MaxIter * Len per block.
	Lanczos
)

// EigenOptions configures TopEigenvalues. The zero value selects the
// defaults.
type EigenOptions struct {
	Method  EigenMethod
	Tol     float64 // relative tolerance (default DefaultEigenTol)
	MaxIter int     // iterations (products per block) at most (default DefaultEigenMaxIter)
	// Batch caps the directions per oracle call (default: all blocks in one
	// call, each direction supported on its own block).
	Batch int
	Seed  uint64 // start vectors are N(0, I) on each block, normalized
}

// BlockEigen is the dominant eigenvalue of one diagonal block.
type BlockEigen struct {
	Name string
	// Value is the eigenvalue of H_bb of largest magnitude, sign kept (for a
	// positive semi-definite block, the largest eigenvalue).
	Value      float64
	Iterations int  // products spent on this block
	Converged  bool // whether Tol was met before MaxIter
}

// EigenResult is the outcome of TopEigenvalues.
type EigenResult struct {
	Blocks   []BlockEigen
	Products int
}

// TopEigenvalues finds the dominant eigenvalue of every diagonal block H_bb.
// Block b's iterate is supported on block b only and only block b of the
// product is read, so the iteration sees H_bb exactly; all unconverged
// blocks advance together in one batched oracle call per iteration.
//
// If ctx is cancelled the error wraps ctx.Err().
func TopEigenvalues(ctx context.Context, o Oracle, opts EigenOptions) (*EigenResult, error) {
	if opts.Tol == 0 {
		opts.Tol = DefaultEigenTol
	}
	if opts.MaxIter == 0 {
		opts.MaxIter = DefaultEigenMaxIter
	}
	switch {
	case !(opts.Tol > 0) || math.IsInf(opts.Tol, 0):
		return nil, fmt.Errorf("hessian: eigen Tol is %v; give a positive finite tolerance: %w", opts.Tol, ErrOptions)
	case opts.MaxIter < 1:
		return nil, fmt.Errorf("hessian: eigen MaxIter is %d; want at least 1: %w", opts.MaxIter, ErrOptions)
	case opts.Batch < 0:
		return nil, fmt.Errorf("hessian: eigen Batch is %d; want 0 (all blocks) or more: %w", opts.Batch, ErrOptions)
	case opts.Method != Power && opts.Method != Lanczos:
		return nil, fmt.Errorf("hessian: unknown EigenMethod %d; use Power or Lanczos: %w", int(opts.Method), ErrOptions)
	}
	if o == nil {
		return nil, fmt.Errorf("hessian: TopEigenvalues: nil oracle; pass a Hessian-vector product oracle")
	}
	nb := len(o.Blocks())
	batch := opts.Batch
	if batch == 0 {
		batch = max(nb, 1)
	}
	name := "power iteration"
	if opts.Method == Lanczos {
		name = "Lanczos"
	}
	e, err := newEngine(o, name, batch)
	if err != nil {
		return nil, err
	}
	rng := newRand(opts.Seed, streamPower)
	its := make([]eigenIter, nb)
	for b, blk := range e.blocks {
		v := make([]float64, blk.Len)
		gaussian(rng, v)
		normalize(v)
		its[b] = eigenIter{v: v, lanczos: opts.Method == Lanczos}
	}
	res := &EigenResult{Blocks: make([]BlockEigen, nb)}
	z := make([]float64, nb*e.n)
	u := make([]float64, nb*e.n)
	for range opts.MaxIter {
		var active []int
		for b := range its {
			if !its[b].done {
				active = append(active, b)
			}
		}
		if len(active) == 0 {
			break
		}
		k := len(active)
		z, u := z[:k*e.n], u[:k*e.n]
		clear(z)
		for j, b := range active {
			lo, _ := e.span(b)
			copy(z[j*e.n+lo:], its[b].v)
		}
		if err := e.apply(ctx, z, u, k); err != nil {
			return nil, err
		}
		for j, b := range active {
			lo, hi := e.span(b)
			its[b].step(u[j*e.n+lo:j*e.n+hi], opts.Tol)
		}
	}
	for b, blk := range e.blocks {
		res.Blocks[b] = BlockEigen{Name: blk.Name, Value: its[b].value, Iterations: its[b].iter, Converged: its[b].done}
	}
	res.Products = e.products
	return res, nil
}

func normalize(v []float64) float64 {
	n := math.Sqrt(dot(v, v))
	if n > 0 {
		for i := range v {
			v[i] /= n
		}
	}
	return n
}

// eigenIter is the state of one block's iteration.
type eigenIter struct {
	lanczos bool
	v       []float64 // current unit iterate (power) or Lanczos vector
	value   float64
	iter    int
	done    bool

	// Lanczos state.
	basis [][]float64
	alpha []float64
	beta  []float64
}

// step consumes hv = H_bb v and advances the iteration.
func (it *eigenIter) step(hv []float64, tol float64) {
	it.iter++
	if it.lanczos {
		it.lanczosStep(hv, tol)
		return
	}
	rq := dot(it.v, hv)
	if it.iter > 1 && math.Abs(rq-it.value) <= tol*math.Abs(rq) {
		it.done = true
	}
	it.value = rq
	w := append([]float64(nil), hv...)
	if normalize(w) == 0 {
		// v is in the null space; with a random start the block is zero.
		it.value, it.done = 0, true
		return
	}
	it.v = w
}

func (it *eigenIter) lanczosStep(hv []float64, tol float64) {
	n := len(it.v)
	w := append([]float64(nil), hv...)
	a := dot(it.v, w)
	it.basis = append(it.basis, it.v)
	it.alpha = append(it.alpha, a)
	for range 2 { // full re-orthogonalization, twice
		for _, q := range it.basis {
			axpy(-dot(q, w), q, w)
		}
	}
	b := normalize(w)
	m := len(it.alpha)
	t := mat.NewSymDense(m, nil)
	for i := range m {
		t.SetSym(i, i, it.alpha[i])
		if i+1 < m {
			t.SetSym(i, i+1, it.beta[i])
		}
	}
	var es mat.EigenSym
	if !es.Factorize(t, true) {
		// The QL iteration on a small symmetric tridiagonal matrix does not
		// fail in practice; keep the previous estimate and stop.
		it.done = true
		return
	}
	vals := es.Values(nil)
	best := 0
	for i, x := range vals {
		if math.Abs(x) > math.Abs(vals[best]) {
			best = i
		}
	}
	var vecs mat.Dense
	es.VectorsTo(&vecs)
	it.value = vals[best]
	resid := b * math.Abs(vecs.At(m-1, best))
	if resid <= tol*math.Abs(it.value) || m == n || b <= 1e-14*math.Abs(it.value) || b == 0 {
		it.done = true
		return
	}
	it.beta = append(it.beta, b)
	it.v = w
}
