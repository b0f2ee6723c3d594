package network

import (
	"fmt"

	"mpsearch/tensor"
)

// bcast is the iteration plan of numpy-style (multidirectional)
// broadcasting of two operands a and b to a common output shape.
//
// The output is walked in row-major order as a sequence of runs of length
// inner: run r starts at output offset o and operand offsets ia, ib (see
// runs), and element j of the run is out[o+j], a[ia+j*astep],
// b[ib+j*bstep]. Adjacent dimensions that step the same way in both
// operands are merged, so equal shapes give a single run and a [N,C]+[C]
// bias gives N runs of C.
//
// The same plan serves the gradients: summing over broadcast axes is a
// scatter-add into a[ia+j*astep] along the runs.
type bcast struct {
	shape        []int // output shape
	n, na, nb    int   // element counts of the output, a and b
	dims         []int // merged output dimensions, innermost last (at least one)
	sa, sb       []int // operand strides per merged dimension, 0 where broadcast
	inner        int   // dims[len(dims)-1]
	astep, bstep int   // sa and sb of the innermost merged dimension
}

// numpyShape returns the numpy broadcast of shapes a and b.
func numpyShape(a, b []int) ([]int, error) {
	r := max(len(a), len(b))
	out := make([]int, r)
	for i := 0; i < r; i++ {
		da, db := 1, 1
		if j := i - (r - len(a)); j >= 0 {
			da = a[j]
		}
		if j := i - (r - len(b)); j >= 0 {
			db = b[j]
		}
		switch {
		case da == db, db == 1:
			out[i] = da
		case da == 1:
			out[i] = db
		default:
			return nil, fmt.Errorf("shapes %v and %v do not broadcast (dimension %d: %d vs %d): %w", a, b, i, da, db, ErrShape)
		}
	}
	return out, nil
}

// newBcast plans the broadcasting of shapes a and b.
func newBcast(a, b []int) (*bcast, error) {
	shape, err := numpyShape(a, b)
	if err != nil {
		return nil, err
	}
	r := len(shape)
	p := &bcast{shape: shape, n: tensor.Size(shape), na: tensor.Size(a), nb: tensor.Size(b)}
	stA, stB := alignedStrides(a, shape), alignedStrides(b, shape)
	for i := 0; i < r; i++ {
		d := shape[i]
		if d == 1 {
			continue // contributes nothing to the walk
		}
		if k := len(p.dims) - 1; k >= 0 && p.sa[k] == stA[i]*d && p.sb[k] == stB[i]*d {
			// Dimension i continues dimension k contiguously in both operands.
			p.dims[k] *= d
			p.sa[k], p.sb[k] = stA[i], stB[i]
			continue
		}
		p.dims = append(p.dims, d)
		p.sa = append(p.sa, stA[i])
		p.sb = append(p.sb, stB[i])
	}
	if len(p.dims) == 0 {
		p.dims, p.sa, p.sb = []int{1}, []int{0}, []int{0}
	}
	last := len(p.dims) - 1
	p.inner, p.astep, p.bstep = p.dims[last], p.sa[last], p.sb[last]
	return p, nil
}

// alignedStrides returns the row-major strides of shape s right-aligned to
// the output shape out, with 0 on the axes where s is broadcast.
func alignedStrides(s, out []int) []int {
	st := make([]int, len(out))
	acc := 1
	for i := len(s) - 1; i >= 0; i-- {
		j := i + len(out) - len(s)
		if s[i] != 1 {
			st[j] = acc
		}
		acc *= s[i]
	}
	return st
}

// runs calls fn once per run, in row-major output order, with the offsets
// of the run's first element in the output, in a and in b.
func (p *bcast) runs(fn func(o, ia, ib int)) {
	if p.n == 0 {
		return
	}
	nd := len(p.dims) - 1 // outer dimensions, walked by an odometer
	if nd == 0 {
		fn(0, 0, 0)
		return
	}
	var buf [8]int
	idx := buf[:0]
	if nd <= len(buf) {
		idx = buf[:nd]
	} else {
		idx = make([]int, nd)
	}
	ia, ib := 0, 0
	for o := 0; o < p.n; o += p.inner {
		fn(o, ia, ib)
		for d := nd - 1; d >= 0; d-- {
			idx[d]++
			ia += p.sa[d]
			ib += p.sb[d]
			if idx[d] < p.dims[d] {
				break
			}
			ia -= p.sa[d] * p.dims[d]
			ib -= p.sb[d] * p.dims[d]
			idx[d] = 0
		}
	}
}

// directions returns the number K of directions of tangent t of a value of
// n elements (t has shape [K]+shape), or 0 if t is nil.
func directions(t *tensor.Tensor, n int) int {
	switch {
	case t == nil:
		return 0
	case n > 0:
		return len(t.Data) / n
	case t.Rank() > 0:
		return t.Shape[0]
	}
	return 0
}

// withK returns [k]+shape.
func withK(k int, shape []int) []int {
	return append([]int{k}, shape...)
}

// dataOf returns t.Data, or nil for a nil tensor.
func dataOf(t *tensor.Tensor) []float64 {
	if t == nil {
		return nil
	}
	return t.Data
}
