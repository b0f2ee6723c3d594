package equalize

import (
	"errors"
	"fmt"
	"math"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

// Tol is the convergence test of the sweeps: they stop when no scale
// factor of a sweep differs from 1 by more than Tol.
const Tol = 1e-9

// MaxSweeps bounds the sweeps over the pairs (Report.Converged says
// whether Tol was reached first).
const MaxSweeps = 2000

// Pair is one chain that was equalized: output channel i of First and
// input channel i of Second (through the ops Through) scaled by 1/s_i and
// s_i.
type Pair struct {
	First, Second string   // node names
	Through       []string // op types between them, in order
}

// Report says what Model did.
type Report struct {
	Pairs     []Pair
	Sweeps    int  // sweeps over the pairs
	Converged bool // the last sweep's factors were all within Tol of 1
}

// String is a one-line summary ("7 pairs equalized in 41 sweeps").
func (r Report) String() string {
	if len(r.Pairs) == 0 {
		return "no Conv/Gemm chains to equalize"
	}
	s := fmt.Sprintf("%d pairs equalized in %d sweeps", len(r.Pairs), r.Sweeps)
	if !r.Converged {
		s += fmt.Sprintf(" (stopped at the limit of %d, not converged to %g)", MaxSweeps, Tol)
	}
	return s
}

// view addresses the weights of one channel of a weight tensor: channel i
// is the elements base(i) + m·stride + t for m < count, t < inner.
type view struct {
	t             *tensor.Tensor
	n             int
	base          func(i int) int
	count, stride int
	inner         int
}

func (v view) absMax(i int) float64 {
	r := 0.0
	b := v.base(i)
	for m := 0; m < v.count; m++ {
		for _, w := range v.t.Data[b+m*v.stride : b+m*v.stride+v.inner] {
			r = math.Max(r, math.Abs(w))
		}
	}
	return r
}

func (v view) scale(i int, s float64) {
	b := v.base(i)
	for m := 0; m < v.count; m++ {
		d := v.t.Data[b+m*v.stride : b+m*v.stride+v.inner]
		for k := range d {
			d[k] *= s
		}
	}
}

// pair is a chain ready to equalize: out views the first layer's output
// channels (bias: its bias, or nil), in the second's input channels.
type pair struct {
	Pair
	out  view
	bias *tensor.Tensor
	in   view
}

// passThrough lists the ops that commute with a positive per-channel
// scale: f(s·x) = s·f(x) channel by channel for s > 0 (ReLU and LeakyReLU
// are positively homogeneous, max and average pooling act on each channel
// alone and are positively homogeneous, Identity and inference Dropout are
// the identity). Clip (ReLU6) is not: Clip(s·x, 0, 6) ≠ s·Clip(x, 0, 6).
var passThrough = map[string]bool{
	"Relu": true, "LeakyRelu": true, "MaxPool": true, "AveragePool": true,
	"GlobalAveragePool": true, "GlobalMaxPool": true, "Identity": true, "Dropout": true,
}

// spatial marks the pass-through ops that need a channel axis 1 (NCHW).
var spatial = map[string]bool{"MaxPool": true, "AveragePool": true, "GlobalAveragePool": true, "GlobalMaxPool": true}

// Model returns a copy of m with every chain equalized (see the package
// comment), and what it did. m is not modified: the copy shares the
// tensors it does not change. m should be a network's Model (BatchNorm
// already folded), so that folding does not undo the balance.
func Model(m *onnx.Model) (*onnx.Model, Report, error) {
	if m == nil || m.Graph == nil {
		return nil, Report{}, errors.New("equalize: model has no graph")
	}
	g := m.Graph.Clone()
	out := &onnx.Model{IRVersion: m.IRVersion, Opset: m.Opset, ProducerName: m.ProducerName, Graph: g}
	pairs := findPairs(g)
	rep := Report{}
	for _, p := range pairs {
		rep.Pairs = append(rep.Pairs, p.Pair)
	}
	if len(pairs) == 0 {
		return out, rep, nil
	}
	for rep.Sweeps < MaxSweeps {
		rep.Sweeps++
		worst := 0.0
		for _, p := range pairs {
			worst = math.Max(worst, p.equalize())
		}
		if worst <= Tol {
			rep.Converged = true
			break
		}
	}
	return out, rep, nil
}

// equalize scales each channel of p by s = sqrt(r1/r2) (r1 the range of
// the first layer's output channel, r2 of the second's input channel),
// leaving both at sqrt(r1·r2), and returns the largest |s - 1|.
// Channels with a zero range on either side are left alone.
func (p pair) equalize() float64 {
	worst := 0.0
	for i := 0; i < p.out.n; i++ {
		r1, r2 := p.out.absMax(i), p.in.absMax(i)
		if r1 == 0 || r2 == 0 {
			continue
		}
		s := math.Sqrt(r1 / r2)
		if s == 1 {
			continue
		}
		p.out.scale(i, 1/s)
		if p.bias != nil {
			p.bias.Data[i] /= s
		}
		p.in.scale(i, s)
		worst = math.Max(worst, math.Abs(s-1))
	}
	return worst
}
