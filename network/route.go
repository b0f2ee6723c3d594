package network

import "mpsearch/tensor"

// linearRouter is the state of an op whose output is a fixed linear
// routing of its inputs' elements once the forward pass has chosen the
// routes (variadic Max/Min select an element, Sum/Mean add scaled ones).
// route applies input i's part: forward it adds (or copies) src, laid out
// like input i, into dst, laid out like the output; with back it does the
// adjoint, from an output-shaped src into an input-shaped dst.
type linearRouter interface {
	route(i int, dst, src []float64, back bool)
}

// routeBackward is Backward of such an op: each gradient routed back.
func routeBackward(r linearRouter, in []*tensor.Tensor, gout *tensor.Tensor, need []bool) []*tensor.Tensor {
	gin := make([]*tensor.Tensor, len(in))
	for i := range in {
		if need[i] {
			gin[i] = tensor.New(in[i].Shape...)
			r.route(i, gin[i].Data, gout.Data, true)
		}
	}
	return gin
}

// routeTangent is Tangent of such an op: each direction routed forward.
func routeTangent(r linearRouter, in, tin []*tensor.Tensor, out *tensor.Tensor) *tensor.Tensor {
	K := tangentCount(tin)
	if K == 0 {
		return nil
	}
	n := out.Size()
	tout := tensor.New(withK(K, out.Shape)...)
	for i, t := range tin {
		if t == nil {
			continue
		}
		m := in[i].Size()
		for k := 0; k < K; k++ {
			r.route(i, tout.Data[k*n:(k+1)*n], t.Data[k*m:(k+1)*m], false)
		}
	}
	return tout
}

// routeBackwardTangent is BackwardTangent of such an op: gout and each
// direction of tgout routed back (the routes do not move with the input
// tangents, the op being linear once they are chosen).
func routeBackwardTangent(r linearRouter, in []*tensor.Tensor, out, gout, tgout *tensor.Tensor, need []bool) (gin, tgin []*tensor.Tensor) {
	gin = routeBackward(r, in, gout, need)
	tgin = make([]*tensor.Tensor, len(in))
	n := out.Size()
	K := directions(tgout, n)
	if K == 0 {
		return gin, tgin
	}
	for i := range in {
		if !need[i] {
			continue
		}
		m := in[i].Size()
		tgin[i] = tensor.New(withK(K, in[i].Shape)...)
		for k := 0; k < K; k++ {
			r.route(i, tgin[i].Data[k*m:(k+1)*m], tgout.Data[k*n:(k+1)*n], true)
		}
	}
	return gin, tgin
}
