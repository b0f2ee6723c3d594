package network

import (
	"fmt"

	"mpsearch/tensor"
)

// This file holds the machinery of the data-movement ops whose every output
// element is a copy of one input element (Gather, Slice, Split, Expand,
// Tile, Where, ScatterND): a pickMap per output says where each element
// comes from, and forward, backward and tangent passes follow from it.

// pickMap is where each element of one output comes from: input src[i]
// (or the single input one, when src is nil) at offset at[i].
type pickMap struct {
	shape []int
	one   int
	src   []int8
	at    []int
	// str, when not nil, replaces at for a single-source map whose
	// offsets are str.base + Σ pos[d]·str.st[d] over shape (Slice): the
	// rows of the last axis are copied without a per-element table.
	str *strided
}

type strided struct {
	base int
	st   []int
}

// size is the number of output elements.
func (m *pickMap) size() int {
	if m.str != nil {
		return tensor.Size(m.shape)
	}
	return len(m.at)
}

// rows calls fn(i, o) for every row of the last axis of a strided map:
// the row's output offset i and its first input offset o; the row has
// shape[r-1] elements, str.st[r-1] apart in the input.
func (m *pickMap) rows(fn func(i, o int)) {
	n, r := tensor.Size(m.shape), len(m.shape)
	if n == 0 {
		return
	}
	if r == 0 {
		fn(0, m.str.base)
		return
	}
	inner, st := m.shape[r-1], m.str.st
	pos := make([]int, r-1)
	o := m.str.base
	for i := 0; i < n; i += inner {
		fn(i, o)
		for d := r - 2; d >= 0; d-- {
			pos[d]++
			o += st[d]
			if pos[d] < m.shape[d] {
				break
			}
			o -= st[d] * m.shape[d]
			pos[d] = 0
		}
	}
}

// inner returns the row length and the input step of a strided map.
func (m *pickMap) inner() (int, int) {
	if r := len(m.shape); r > 0 {
		return m.shape[r-1], m.str.st[r-1]
	}
	return 1, 1
}

func (m *pickMap) from(i int) int {
	if m.src == nil {
		return m.one
	}
	return int(m.src[i])
}

// gather writes the output (K stacked directions of it, each input block
// of size sizes[j]) from srcs; nil sources are zeros.
func (m *pickMap) gather(dst []float64, srcs [][]float64, sizes []int, K int) {
	n := m.size()
	if m.src == nil { // one source: no per-element source lookup
		s := srcs[m.one]
		if s == nil {
			return
		}
		for k := 0; k < K; k++ {
			d, sk := dst[k*n:(k+1)*n], s[k*sizes[m.one]:]
			if m.str != nil {
				inner, step := m.inner()
				m.rows(func(i, o int) {
					if step == 1 {
						copy(d[i:i+inner], sk[o:o+inner])
						return
					}
					for j := range d[i : i+inner] {
						d[i+j] = sk[o+j*step]
					}
				})
				continue
			}
			for i, a := range m.at {
				d[i] = sk[a]
			}
		}
		return
	}
	for k := 0; k < K; k++ {
		d := dst[k*n : (k+1)*n]
		for i, a := range m.at {
			j := m.from(i)
			if s := srcs[j]; s != nil {
				d[i] = s[k*sizes[j]+a]
			}
		}
	}
}

// scatter adds g (K stacked directions of the output) into the inputs with
// want, returning [K]+shape (or shape when K = 0) gradients.
func (m *pickMap) scatter(g []float64, in []*tensor.Tensor, want []bool, K int, acc []*tensor.Tensor) {
	n := m.size()
	for j, t := range in {
		if !want[j] || acc[j] != nil {
			continue
		}
		if K == 0 {
			acc[j] = tensor.New(t.Shape...)
		} else {
			acc[j] = tensor.New(withK(K, t.Shape)...)
		}
	}
	for k := 0; k < max(K, 1); k++ {
		gk := g[k*n : (k+1)*n]
		if m.str != nil {
			if want[m.one] {
				a := acc[m.one].Data[k*in[m.one].Size():]
				inner, step := m.inner()
				m.rows(func(i, o int) {
					for j, v := range gk[i : i+inner] {
						a[o+j*step] += v
					}
				})
			}
			continue
		}
		for i, a := range m.at {
			j := m.from(i)
			if want[j] {
				acc[j].Data[k*in[j].Size()+a] += gk[i]
			}
		}
	}
}

// planner computes the pick maps of an op's outputs for given inputs.
type planner interface {
	plan(in []*tensor.Tensor) ([]*pickMap, error)
}

// pickOp runs a planner as a MultiOp; its state is the maps.
type pickOp struct {
	p       planner
	consts  []int // build-time constant inputs
	nondiff []int // run-time inputs without gradient (indices, conditions)
}

func (op *pickOp) ConstInputs() []int   { return op.consts }
func (op *pickOp) NonDiffInputs() []int { return op.nondiff }

func sizesOf(in []*tensor.Tensor) []int {
	s := make([]int, len(in))
	for i, t := range in {
		if t != nil {
			s[i] = t.Size()
		}
	}
	return s
}

func (op *pickOp) ForwardMulti(in []*tensor.Tensor) ([]*tensor.Tensor, any, error) {
	for i, t := range in {
		if t == nil && !contains(op.consts, i) {
			return nil, nil, fmt.Errorf("input %d is missing", i)
		}
	}
	maps, err := op.p.plan(in)
	if err != nil {
		return nil, nil, err
	}
	srcs := make([][]float64, len(in))
	for i, t := range in {
		srcs[i] = dataOf(t)
	}
	outs := make([]*tensor.Tensor, len(maps))
	for j, m := range maps {
		outs[j] = tensor.New(m.shape...)
		m.gather(outs[j].Data, srcs, sizesOf(in), 1)
	}
	return outs, maps, nil
}

// diffNeed is need without the inputs that have no gradient.
func (op *pickOp) diffNeed(need []bool) []bool {
	w := append([]bool(nil), need...)
	for _, i := range append(op.consts, op.nondiff...) {
		if i < len(w) {
			w[i] = false
		}
	}
	return w
}

func (op *pickOp) BackwardMulti(in, _ []*tensor.Tensor, state any, gouts []*tensor.Tensor, need []bool) []*tensor.Tensor {
	gin := make([]*tensor.Tensor, len(in))
	want := op.diffNeed(need)
	for j, m := range state.([]*pickMap) {
		if gouts[j] != nil {
			m.scatter(gouts[j].Data, in, want, 0, gin)
		}
	}
	return fillZeros(gin, in, want, 0)
}

// fillZeros gives a zero gradient to wanted inputs that got none.
func fillZeros(g, in []*tensor.Tensor, want []bool, K int) []*tensor.Tensor {
	for j := range g {
		if want[j] && g[j] == nil {
			if K == 0 {
				g[j] = tensor.New(in[j].Shape...)
			} else {
				g[j] = tensor.New(withK(K, in[j].Shape)...)
			}
		}
	}
	return g
}

func (op *pickOp) TangentMulti(in, tin, _ []*tensor.Tensor, state any) []*tensor.Tensor {
	K := 0
	srcs := make([][]float64, len(in))
	all := make([]bool, len(in))
	for i := range all {
		all[i] = true
	}
	diff := op.diffNeed(all)
	for i, t := range tin {
		if i < len(in) && diff[i] && t != nil {
			K = max(K, directions(t, in[i].Size()))
			srcs[i] = t.Data
		}
	}
	maps := state.([]*pickMap)
	touts := make([]*tensor.Tensor, len(maps))
	if K == 0 {
		return touts
	}
	for j, m := range maps {
		touts[j] = tensor.New(withK(K, m.shape)...)
		m.gather(touts[j].Data, srcs, sizesOf(in), K)
	}
	return touts
}

func (op *pickOp) BackwardTangentMulti(in, _, outs, _ []*tensor.Tensor, state any, gouts, tgouts []*tensor.Tensor, need []bool) (gin, tgin []*tensor.Tensor) {
	gin = op.BackwardMulti(in, outs, state, gouts, need)
	tgin = make([]*tensor.Tensor, len(in))
	want := op.diffNeed(need)
	K := 0
	for j, m := range state.([]*pickMap) {
		if tgouts[j] != nil {
			K = directions(tgouts[j], tensor.Size(m.shape))
			m.scatter(tgouts[j].Data, in, want, K, tgin)
		}
	}
	if K == 0 {
		return gin, make([]*tensor.Tensor, len(in))
	}
	return gin, fillZeros(tgin, in, want, K)
}

// pickSingle is a one-output pickOp as an Op.
type pickSingle struct{ pickOp }

func newPickSingle(p planner, consts, nondiff []int) *pickSingle {
	return &pickSingle{pickOp{p: p, consts: consts, nondiff: nondiff}}
}

func (op *pickSingle) Forward(in []*tensor.Tensor) (*tensor.Tensor, any, error) {
	outs, st, err := op.ForwardMulti(in)
	if err != nil {
		return nil, nil, err
	}
	return outs[0], st, nil
}

func (op *pickSingle) Backward(in []*tensor.Tensor, out *tensor.Tensor, state any, gout *tensor.Tensor, need []bool) []*tensor.Tensor {
	return op.BackwardMulti(in, []*tensor.Tensor{out}, state, []*tensor.Tensor{gout}, need)
}

func (op *pickSingle) Tangent(in, tin []*tensor.Tensor, out *tensor.Tensor, state any) *tensor.Tensor {
	return op.TangentMulti(in, tin, []*tensor.Tensor{out}, state)[0]
}

func (op *pickSingle) BackwardTangent(in, tin []*tensor.Tensor, out, tout *tensor.Tensor, state any, gout, tgout *tensor.Tensor, need []bool) (gin, tgin []*tensor.Tensor) {
	return op.BackwardTangentMulti(in, tin, []*tensor.Tensor{out}, []*tensor.Tensor{tout}, state, []*tensor.Tensor{gout}, []*tensor.Tensor{tgout}, need)
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// bcastIndex returns, for each element of shape out in row-major order, the
// offset of the element of an operand of shape s broadcast (numpy-style)
// to out.
func bcastIndex(s, out []int) []int {
	st := alignedStrides(s, out)
	n := tensor.Size(out)
	idx := make([]int, n)
	r := len(out)
	if n == 0 || r == 0 {
		return idx
	}
	pos := make([]int, r)
	off := 0
	for i := 0; i < n; i++ {
		idx[i] = off
		for d := r - 1; d >= 0; d-- {
			pos[d]++
			off += st[d]
			if pos[d] < out[d] {
				break
			}
			off -= st[d] * out[d]
			pos[d] = 0
		}
	}
	return idx
}
