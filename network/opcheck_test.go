package network

import (
	"math"
	"math/rand/v2"
	"testing"

	"mpsearch/tensor"
)

// Tolerances for central finite differences in float64 with step fdStep:
// truncation error O(h^2·f”') ≈ 1e-10 and rounding O(eps/h) ≈ 1e-11 for
// O(1) values, so 1e-6 relative (the bound) leaves a wide margin.
const (
	fdStep = 1e-5
	fdRel  = 1e-6
	fdAbs  = 1e-8
)

// randTensor fills a tensor with N(0,1) values from rng.
func randTensor(rng *rand.Rand, shape ...int) *tensor.Tensor {
	t := tensor.New(shape...)
	for i := range t.Data {
		t.Data[i] = rng.NormFloat64()
	}
	return t
}

func closeEnough(got, want float64) bool {
	return math.Abs(got-want) <= fdAbs+fdRel*math.Max(math.Abs(got), math.Abs(want))
}

// checkOp verifies an op against central finite differences:
//   - Backward: the gradient of L = <w, out> (w random) w.r.t. each input
//     listed in diff;
//   - Tangent: the directional derivative of out along K=2 random directions;
//   - BackwardTangent: the directional derivative of Backward's gradients
//     (with gout = w fixed, and also with a random tgout) along the same
//     directions.
//
// Inputs not in diff are held fixed (constants, integer-like inputs, or
// inputs at a kink). Points at kinks (ReLU at 0, ties in max pooling) are
// the caller's job to avoid.
func checkOp(t *testing.T, op Op, in []*tensor.Tensor, diff []int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 11))
	out, st, err := op.Forward(in)
	if err != nil {
		t.Fatalf("Forward: %v", err)
	}
	w := randTensor(rng, out.Shape...)
	need := make([]bool, len(in))
	for _, i := range diff {
		need[i] = true
	}
	dot := func(a, b []float64) float64 {
		s := 0.0
		for i := range a {
			s += a[i] * b[i]
		}
		return s
	}
	forwardWith := func(i, j int, v float64) *tensor.Tensor {
		old := in[i].Data[j]
		in[i].Data[j] = v
		o, _, err := op.Forward(in)
		if err != nil {
			t.Fatalf("Forward: %v", err)
		}
		o = o.Clone() // the output may be a view of in[i] (Reshape, Identity...)
		in[i].Data[j] = old
		return o
	}
	// Backward against FD of <w, out>.
	g := op.Backward(in, out, st, w, need)
	for _, i := range diff {
		if g[i] == nil || !tensor.SameShape(g[i].Shape, in[i].Shape) {
			t.Fatalf("Backward input %d: got %v; want shape %v", i, g[i], in[i].Shape)
		}
		for j := range in[i].Data {
			x := in[i].Data[j]
			fp := dot(w.Data, forwardWith(i, j, x+fdStep).Data)
			fm := dot(w.Data, forwardWith(i, j, x-fdStep).Data)
			want := (fp - fm) / (2 * fdStep)
			if !closeEnough(g[i].Data[j], want) {
				t.Errorf("Backward d/d in[%d][%d]: got %.10g; want %.10g (finite differences)", i, j, g[i].Data[j], want)
				return
			}
		}
	}
	// Tangent along K random directions (only in diff inputs).
	const K = 2
	tin := make([]*tensor.Tensor, len(in))
	for _, i := range diff {
		tin[i] = randTensor(rng, append([]int{K}, in[i].Shape...)...)
	}
	shifted := func(s float64, k int) []*tensor.Tensor {
		cp := make([]*tensor.Tensor, len(in))
		for i := range in {
			cp[i] = in[i]
			if tin[i] != nil {
				c := in[i].Clone()
				n := len(c.Data)
				for j := range c.Data {
					c.Data[j] += s * tin[i].Data[k*n+j]
				}
				cp[i] = c
			}
		}
		return cp
	}
	tout := op.Tangent(in, tin, out, st)
	if len(diff) > 0 {
		if tout == nil || tout.Size() != K*out.Size() {
			t.Fatalf("Tangent: got %v; want shape [%d]+%v", tout, K, out.Shape)
		}
	}
	n := out.Size()
	for k := 0; k < K && tout != nil; k++ {
		op1, _, _ := op.Forward(shifted(fdStep, k))
		om1, _, _ := op.Forward(shifted(-fdStep, k))
		for j := 0; j < n; j++ {
			want := (op1.Data[j] - om1.Data[j]) / (2 * fdStep)
			if !closeEnough(tout.Data[k*n+j], want) {
				t.Errorf("Tangent dir %d out[%d]: got %.10g; want %.10g (finite differences)", k, j, tout.Data[k*n+j], want)
				return
			}
		}
	}
	// BackwardTangent: d/ds Backward(in + s*tin_k, gout = w + s*tgout_k).
	tg := randTensor(rng, append([]int{K}, out.Shape...)...)
	for _, tgout := range []*tensor.Tensor{nil, tg} {
		gin, tgin := op.BackwardTangent(in, tin, out, tout, st, w, tgout, need)
		for _, i := range diff {
			if gin[i] == nil {
				t.Fatalf("BackwardTangent gin[%d] is nil", i)
			}
			for j := range g[i].Data {
				if !closeEnough(gin[i].Data[j], g[i].Data[j]) {
					t.Fatalf("BackwardTangent gin[%d][%d]: got %g; want %g (Backward)", i, j, gin[i].Data[j], g[i].Data[j])
				}
			}
		}
		for k := 0; k < K; k++ {
			grads := func(s float64) []*tensor.Tensor {
				x := shifted(s, k)
				o, st2, _ := op.Forward(x)
				gw := w.Clone()
				if tgout != nil {
					for j := range gw.Data {
						gw.Data[j] += s * tgout.Data[k*n+j]
					}
				}
				return op.Backward(x, o, st2, gw, need)
			}
			gp, gm := grads(fdStep), grads(-fdStep)
			for _, i := range diff {
				m := in[i].Size()
				for j := 0; j < m; j++ {
					want := (gp[i].Data[j] - gm[i].Data[j]) / (2 * fdStep)
					got := 0.0
					if tgin[i] != nil {
						got = tgin[i].Data[k*m+j]
					}
					if !closeEnough(got, want) {
						t.Errorf("BackwardTangent dir %d d gin[%d][%d]: got %.10g; want %.10g (finite differences, tgout nil=%v)", k, i, j, got, want, tgout == nil)
						return
					}
				}
			}
		}
	}
}
