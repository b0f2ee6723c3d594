package network

import (
	"fmt"
	"math"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

func init() {
	register("Pow", buildPow)
}

// powOp is Pow(A, B) = A^B with numpy broadcasting (opset >= 7; before,
// the legacy broadcast attribute rules of Add apply). An exponent known at
// build time (the usual Pow(x, 2) and Pow(x, 0.5) of decomposed
// normalisations) is a constant input: it is not a parameter and gets no
// gradient. Otherwise B is differentiated too, with dA^B/dB = A^B·ln A
// (taken as 0 where A = 0 and B >= 0, as PyTorch does; NaN for A < 0).
type powOp struct {
	bin    binaryOp // broadcast plan only (kind unused)
	consts []int
}

func buildPow(n *onnx.Node, consts map[string]*tensor.Tensor, opset int64) (Op, error) {
	op, err := newArithOp(n, binMul, opset)
	if err != nil {
		return nil, err
	}
	p := &powOp{bin: *op.(*binaryOp)}
	if _, ok := consts[n.Inputs[1]]; ok {
		p.consts = []int{1}
	}
	return p, nil
}

// ConstInputs lists the exponent when it is a build-time constant.
func (op *powOp) ConstInputs() []int { return op.consts }

// powPartials returns z = a^b and the partial derivatives fa = dz/da,
// fb = dz/db, faa, fab, fbb.
func powPartials(a, b float64) (z, fa, fb, faa, fab, fbb float64) {
	z = math.Pow(a, b)
	am1 := math.Pow(a, b-1)
	fa = b * am1
	faa = b * (b - 1) * math.Pow(a, b-2)
	if a == 0 && b >= 0 {
		return z, fa, 0, faa, am1, 0
	}
	l := math.Log(a)
	return z, fa, z * l, faa, am1 * (1 + b*l), z * l * l
}

// Forward computes a^b; the state is the broadcast plan.
func (op *powOp) Forward(in []*tensor.Tensor) (*tensor.Tensor, any, error) {
	if len(in) != 2 || in[0] == nil || in[1] == nil {
		return nil, nil, fmt.Errorf("Pow needs 2 inputs")
	}
	p, err := op.bin.plan(in)
	if err != nil {
		return nil, nil, err
	}
	out := tensor.New(p.shape...)
	a, b, z := in[0].Data, in[1].Data, out.Data
	p.runs(func(o, ia, ib int) {
		for j := 0; j < p.inner; j++ {
			z[o+j] = math.Pow(a[ia+j*p.astep], b[ib+j*p.bstep])
		}
	})
	return out, p, nil
}

// Backward returns g·fa and g·fb summed over broadcast axes.
func (op *powOp) Backward(in []*tensor.Tensor, out *tensor.Tensor, state any, gout *tensor.Tensor, need []bool) []*tensor.Tensor {
	gin, _ := op.BackwardTangent(in, []*tensor.Tensor{nil, nil}, out, nil, state, gout, nil, need)
	return gin
}

// Tangent returns fa·ta + fb·tb for each direction.
func (op *powOp) Tangent(in, tin []*tensor.Tensor, out *tensor.Tensor, state any) *tensor.Tensor {
	p := state.(*bcast)
	ta, tb := dataOf(tin[0]), dataOf(tin[1])
	K := max(directions(tin[0], p.na), directions(tin[1], p.nb))
	if K == 0 {
		return nil
	}
	tout := tensor.New(withK(K, p.shape)...)
	a, b, t := in[0].Data, in[1].Data, tout.Data
	p.runs(func(o, ia, ib int) {
		for j := 0; j < p.inner; j++ {
			oo, ai, bi := o+j, ia+j*p.astep, ib+j*p.bstep
			_, fa, fb, _, _, _ := powPartials(a[ai], b[bi])
			for k := 0; k < K; k++ {
				v := 0.0
				if ta != nil {
					v += fa * ta[k*p.na+ai]
				}
				if tb != nil {
					v += fb * tb[k*p.nb+bi]
				}
				t[k*p.n+oo] = v
			}
		}
	})
	return tout
}

// BackwardTangent returns the gradients and their tangents
// d(g·fa) = tg·fa + g·(faa·ta + fab·tb), d(g·fb) = tg·fb + g·(fab·ta + fbb·tb),
// summed over broadcast axes.
func (op *powOp) BackwardTangent(in, tin []*tensor.Tensor, out, _ *tensor.Tensor, state any, gout, tgout *tensor.Tensor, need []bool) (gin, tgin []*tensor.Tensor) {
	p := state.(*bcast)
	a, b, g := in[0].Data, in[1].Data, gout.Data
	ta, tb, tg := dataOf(tin[0]), dataOf(tin[1]), dataOf(tgout)
	K := max(directions(tgout, p.n), directions(tin[0], p.na), directions(tin[1], p.nb))
	gin = make([]*tensor.Tensor, 2)
	tgin = make([]*tensor.Tensor, 2)
	var grads, tgrads [2][]float64
	for i := range 2 {
		if !need[i] {
			continue
		}
		gin[i] = tensor.New(in[i].Shape...)
		grads[i] = gin[i].Data
		if K > 0 {
			tgin[i] = tensor.New(withK(K, in[i].Shape)...)
			tgrads[i] = tgin[i].Data
		}
	}
	p.runs(func(o, ia, ib int) {
		for j := 0; j < p.inner; j++ {
			oo, ai, bi := o+j, ia+j*p.astep, ib+j*p.bstep
			_, fa, fb, faa, fab, fbb := powPartials(a[ai], b[bi])
			gv := g[oo]
			if grads[0] != nil {
				grads[0][ai] += gv * fa
			}
			if grads[1] != nil {
				grads[1][bi] += gv * fb
			}
			for k := 0; k < K; k++ {
				// Terms of absent tangents are skipped, not multiplied by
				// zero: ln A is NaN for A < 0 under a constant exponent.
				var d0, d1 float64
				if tg != nil {
					dtg := tg[k*p.n+oo]
					d0, d1 = dtg*fa, dtg*fb
				}
				if ta != nil {
					dta := gv * ta[k*p.na+ai]
					d0, d1 = d0+faa*dta, d1+fab*dta
				}
				if tb != nil {
					dtb := gv * tb[k*p.nb+bi]
					d0, d1 = d0+fab*dtb, d1+fbb*dtb
				}
				if tgrads[0] != nil {
					tgrads[0][k*p.na+ai] += d0
				}
				if tgrads[1] != nil {
					tgrads[1][k*p.nb+bi] += d1
				}
			}
		}
	})
	return gin, tgin
}
