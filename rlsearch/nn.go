package rlsearch

import (
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
)

// activation is the output nonlinearity of an mlp; hidden layers use ReLU.
type activation int

const (
	linear activation = iota
	sigmoid
)

// mlp is a fully connected network on row-major batches: hidden layers
// with ReLU, the last layer linear or sigmoid. Parameters and gradients are
// each one contiguous slice (weights then bias of each layer) so that Adam
// and soft updates are single loops; workspaces are allocated once for up to
// maxN rows, so forward and backward passes do not allocate.
type mlp struct {
	sizes  []int
	out    activation
	params []float64
	grads  []float64
	w, b   [][]float64 // views into params: w[l] is sizes[l+1] x sizes[l]
	gw, gb [][]float64 // views into grads
	maxN   int
	acts   [][]float64 // acts[0] is the last input; acts[l+1] the outputs of layer l
	deltas [][]float64 // gradient with respect to layer l's pre-activation
	dx     []float64   // gradient with respect to the input
}

func newMLP(sizes []int, out activation, maxN int, rng *rand.Rand) *mlp {
	n := 0
	for l := 0; l+1 < len(sizes); l++ {
		n += sizes[l+1]*sizes[l] + sizes[l+1]
	}
	m := &mlp{
		sizes:  append([]int(nil), sizes...),
		out:    out,
		params: make([]float64, n),
		grads:  make([]float64, n),
	}
	m.views()
	m.workspace(maxN)
	// Initialisation of the DDPG paper (Lillicrap et al. 2016): hidden
	// layers uniform in ±1/sqrt(fan-in), the last layer in ±3e-3 so that the
	// initial outputs are near zero (actions near 0.5, Q near 0).
	last := len(sizes) - 2
	for l := range m.w {
		r := 1 / math.Sqrt(float64(sizes[l]))
		if l == last {
			r = 3e-3
		}
		for i := range m.w[l] {
			m.w[l][i] = (2*rng.Float64() - 1) * r
		}
		for i := range m.b[l] {
			m.b[l][i] = (2*rng.Float64() - 1) * r
		}
	}
	return m
}

func (m *mlp) views() {
	nl := len(m.sizes) - 1
	m.w, m.b = make([][]float64, nl), make([][]float64, nl)
	m.gw, m.gb = make([][]float64, nl), make([][]float64, nl)
	off := 0
	for l := 0; l < nl; l++ {
		in, out := m.sizes[l], m.sizes[l+1]
		m.w[l], m.gw[l] = m.params[off:off+in*out], m.grads[off:off+in*out]
		off += in * out
		m.b[l], m.gb[l] = m.params[off:off+out], m.grads[off:off+out]
		off += out
	}
}

func (m *mlp) workspace(maxN int) {
	nl := len(m.sizes) - 1
	m.maxN = maxN
	m.acts = make([][]float64, nl+1)
	m.deltas = make([][]float64, nl)
	for l := 0; l < nl; l++ {
		m.acts[l+1] = make([]float64, maxN*m.sizes[l+1])
		m.deltas[l] = make([]float64, maxN*m.sizes[l+1])
	}
	m.dx = make([]float64, maxN*m.sizes[0])
}

// clone returns a network with a copy of m's parameters and its own
// workspace for up to maxN rows.
func (m *mlp) clone(maxN int) *mlp {
	c := &mlp{
		sizes:  append([]int(nil), m.sizes...),
		out:    m.out,
		params: append([]float64(nil), m.params...),
		grads:  make([]float64, len(m.grads)),
	}
	c.views()
	c.workspace(maxN)
	return c
}

// forward evaluates the n rows of x (n x sizes[0]) and returns the n x
// sizes[last] outputs, a view into m's workspace valid until the next call.
func (m *mlp) forward(x []float64, n int) []float64 {
	if n > m.maxN {
		panic("rlsearch: batch larger than the workspace")
	}
	m.acts[0] = x[:n*m.sizes[0]]
	nl := len(m.w)
	for l := 0; l < nl; l++ {
		in, out := m.sizes[l], m.sizes[l+1]
		z := m.acts[l+1][:n*out]
		if n == 1 {
			copy(z, m.b[l])
			impl.Dgemv(blas.NoTrans, out, in, 1, m.w[l], in, m.acts[l], 1, 1, z, 1)
		} else {
			for r := 0; r < n; r++ {
				copy(z[r*out:(r+1)*out], m.b[l])
			}
			impl.Dgemm(blas.NoTrans, blas.Trans, n, out, in, 1, m.acts[l], in, m.w[l], in, 1, z, out)
		}
		switch {
		case l < nl-1:
			for i, v := range z {
				if v < 0 {
					z[i] = 0
				}
			}
		case m.out == sigmoid:
			for i, v := range z {
				z[i] = 1 / (1 + math.Exp(-v))
			}
		}
	}
	return m.acts[nl][:n*m.sizes[nl]]
}

// backward propagates dout (n x sizes[last], the gradient of the loss with
// respect to the outputs of the last forward call on n rows), adds the
// parameter gradients to m.grads and, if wantDX, returns the gradient with
// respect to the input (a view into m's workspace).
func (m *mlp) backward(dout []float64, n int, wantDX bool) []float64 {
	nl := len(m.w)
	d := m.deltas[nl-1][:n*m.sizes[nl]]
	copy(d, dout[:n*m.sizes[nl]])
	if m.out == sigmoid {
		for i, a := range m.acts[nl][:len(d)] {
			d[i] *= a * (1 - a)
		}
	}
	for l := nl - 1; l >= 0; l-- {
		in, out := m.sizes[l], m.sizes[l+1]
		d = m.deltas[l][:n*out]
		impl.Dgemm(blas.Trans, blas.NoTrans, out, in, n, 1, d, out, m.acts[l], in, 1, m.gw[l], in)
		gb := m.gb[l]
		for r := 0; r < n; r++ {
			for i, v := range d[r*out : (r+1)*out] {
				gb[i] += v
			}
		}
		if l == 0 {
			if !wantDX {
				return nil
			}
			dx := m.dx[:n*in]
			impl.Dgemm(blas.NoTrans, blas.NoTrans, n, in, out, 1, d, out, m.w[l], in, 0, dx, in)
			return dx
		}
		prev := m.deltas[l-1][:n*in]
		impl.Dgemm(blas.NoTrans, blas.NoTrans, n, in, out, 1, d, out, m.w[l], in, 0, prev, in)
		for i, a := range m.acts[l][:n*in] {
			if a <= 0 {
				prev[i] = 0
			}
		}
	}
	return nil
}

func (m *mlp) zeroGrad() {
	for i := range m.grads {
		m.grads[i] = 0
	}
}

// softUpdate moves m's parameters towards src's: θ ← τ θ_src + (1-τ) θ.
func (m *mlp) softUpdate(src *mlp, tau float64) {
	for i, v := range src.params {
		m.params[i] += tau * (v - m.params[i])
	}
}

// adam is the Adam optimiser (Kingma and Ba 2015) on one parameter slice.
type adam struct {
	lr, beta1, beta2, eps float64
	m, v                  []float64
	t                     int
	p1, p2                float64 // beta1^t, beta2^t
}

func newAdam(n int, lr float64) *adam {
	return &adam{lr: lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, m: make([]float64, n), v: make([]float64, n), p1: 1, p2: 1}
}

// step applies one Adam update to params given grads (a minimisation step).
func (a *adam) step(params, grads []float64) {
	a.t++
	a.p1 *= a.beta1
	a.p2 *= a.beta2
	// Bias corrections folded into the step size.
	lr := a.lr * math.Sqrt(1-a.p2) / (1 - a.p1)
	b1, b2 := a.beta1, a.beta2
	m, v := a.m[:len(params)], a.v[:len(params)]
	for i, g := range grads[:len(params)] {
		mi := b1*m[i] + (1-b1)*g
		vi := b2*v[i] + (1-b2)*g*g
		m[i], v[i] = mi, vi
		params[i] -= lr * mi / (math.Sqrt(vi) + a.eps)
	}
}
