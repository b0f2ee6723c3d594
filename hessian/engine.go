package hessian

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
)

// Independent random streams derived from Options.Seed, so that, for
// example, Hutch++'s sketch never shares random numbers with its probes.
const (
	streamProbes = 0x9e3779b97f4a7c15
	streamSketch = 0xbf58476d1ce4e5b9
	streamPilot  = 0x94d049bb133111eb
	streamPower  = 0x2545f4914f6cdd1d
)

func newRand(seed, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, stream))
}

// rademacher fills x with independent ±1 values, 64 signs per draw.
func rademacher(r *rand.Rand, x []float64) {
	var bits uint64
	left := 0
	for i := range x {
		if left == 0 {
			bits = r.Uint64()
			left = 64
		}
		x[i] = float64(int64(bits&1)*2 - 1)
		bits >>= 1
		left--
	}
}

func gaussian(r *rand.Rand, x []float64) {
	for i := range x {
		x[i] = r.NormFloat64()
	}
}

// engine applies the block-restricted, optionally block-scaled operator
// G = (D H D)_{BB} to packed vectors. B is the union of the oracle's blocks;
// a packed vector holds only the coordinates of B, block after block, and
// D = diag(scale[b]) per block. Parameters outside every block are held at
// zero in each direction passed to the oracle.
type engine struct {
	o      Oracle
	what   string // estimator name, for error messages
	dim    int
	blocks []Block
	poff   []int // packed offset of each block
	n      int   // packed length
	scale  []float64
	batch  int // at most this many directions per oracle call

	products   int       // directions passed to the oracle so far
	onProducts func(int) // called after each oracle call, when not nil
	v, hv      []float64
}

func newEngine(o Oracle, what string, batch int) (*engine, error) {
	if o == nil {
		return nil, fmt.Errorf("hessian: %s: nil oracle; pass a Hessian-vector product oracle", what)
	}
	dim := o.Dim()
	blocks := append([]Block(nil), o.Blocks()...)
	if err := ValidateBlocks(dim, blocks); err != nil {
		return nil, err
	}
	e := &engine{o: o, what: what, dim: dim, blocks: blocks, poff: make([]int, len(blocks)), batch: batch}
	e.scale = make([]float64, len(blocks))
	for b, blk := range blocks {
		e.poff[b] = e.n
		e.n += blk.Len
		e.scale[b] = 1
	}
	e.v = make([]float64, batch*dim)
	e.hv = make([]float64, batch*dim)
	return e, nil
}

// span returns the packed index range of block b.
func (e *engine) span(b int) (lo, hi int) { return e.poff[b], e.poff[b] + e.blocks[b].Len }

// apply sets u = G z for k packed directions (row-major k×n), calling the
// oracle in chunks of at most e.batch directions.
func (e *engine) apply(ctx context.Context, z, u []float64, k int) error {
	for start := 0; start < k; start += e.batch {
		kk := min(e.batch, k-start)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("hessian: %s stopped after %d Hessian-vector products: %w", e.what, e.products, err)
		}
		v, hv := e.v[:kk*e.dim], e.hv[:kk*e.dim]
		clear(v)
		for j := range kk {
			zj := z[(start+j)*e.n:]
			vj := v[j*e.dim:]
			for b, blk := range e.blocks {
				d := e.scale[b]
				src := zj[e.poff[b] : e.poff[b]+blk.Len]
				dst := vj[blk.Offset : blk.Offset+blk.Len]
				for i, x := range src {
					dst[i] = d * x
				}
			}
		}
		if err := e.o.HVP(ctx, v, hv, kk); err != nil {
			return fmt.Errorf("hessian: %s: Hessian-vector product failed after %d products: %w", e.what, e.products, err)
		}
		e.products += kk
		if e.onProducts != nil {
			e.onProducts(e.products)
		}
		for j := range kk {
			uj := u[(start+j)*e.n:]
			hj := hv[j*e.dim:]
			for b, blk := range e.blocks {
				d := e.scale[b]
				src := hj[blk.Offset : blk.Offset+blk.Len]
				dst := uj[e.poff[b] : e.poff[b]+blk.Len]
				for i, x := range src {
					if math.IsNaN(x) || math.IsInf(x, 0) {
						return fmt.Errorf("hessian: %s: Hessian-vector product %d has a non-finite value %v in block %q; check the oracle and the loss",
							e.what, e.products-kk+j, x, blk.Name)
					}
					dst[i] = d * x
				}
			}
		}
	}
	return nil
}

func dot(x, y []float64) float64 {
	var s float64
	for i, v := range x {
		s += v * y[i]
	}
	return s
}

func axpy(a float64, x, y []float64) {
	for i, v := range x {
		y[i] += a * v
	}
}

// orthonormalize returns an orthonormal basis (as rows of length n) of the
// span of the k rows of y, by modified Gram-Schmidt with one full
// re-orthogonalization pass. Rows that are numerically dependent on the
// previous ones are dropped, so fewer than k rows may be returned. y is
// overwritten.
func orthonormalize(y []float64, k, n int) [][]float64 {
	const dropRel = 1e-10 // a row keeping less than this fraction of its norm is dependent
	var q [][]float64
	for j := range k {
		x := y[j*n : (j+1)*n]
		norm0 := math.Sqrt(dot(x, x))
		if norm0 == 0 {
			continue
		}
		for range 2 {
			for _, qi := range q {
				axpy(-dot(qi, x), qi, x)
			}
		}
		norm := math.Sqrt(dot(x, x))
		if norm <= dropRel*norm0 {
			continue
		}
		for i := range x {
			x[i] /= norm
		}
		q = append(q, x)
	}
	return q
}
