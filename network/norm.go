package network

import (
	"fmt"
	"math"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

func init() {
	register("LayerNormalization", buildLayerNorm)
	register("InstanceNormalization", buildInstanceNorm)
}

// normOp normalises rows of length D to zero mean and unit variance, then
// applies a scale and a bias: y = x̂·s + b with x̂ = (x - μ)·r,
// r = 1/√(σ² + ε), σ² the (biased) variance of the row.
//
// LayerNormalization (opset 17): the rows are the trailing axes from axis
// on; Scale and the optional B broadcast to those axes. Only output 0 (Y)
// is computed (the graph refuses models that use Mean or InvStdDev). InstanceNormalization: the rows are the spatial planes of
// each sample and channel of [N, C, ...]; scale and B are per channel.
//
// With J = r(I - 11ᵀ/D - x̂x̂ᵀ/D) the Jacobian of x̂ (symmetric), the input
// gradient is J(g∘s), and its tangent along tx is
// dJ[tx]v = -r·a·Jv - r(m·tx̂ + x̂·mean(tx̂∘v)), a = mean(x̂∘tx),
// m = mean(x̂∘v).
type normOp struct {
	instance bool
	axis     int
	eps      float64
}

// normState is a normOp's Forward state: the row layout, x̂, r per row
// and the scale and bias index of every element.
type normState struct {
	rows, d int
	xhat    []float64
	r       []float64
	sIdx    []int // scale index of element (row, j): sIdx[j] + (row % per)·rowStep
	bIdx    []int // same for the bias
	per     int   // rows per sample for InstanceNorm (C), 1 for LayerNorm
	rowStep int   // 1 for InstanceNorm (channel index), 0 for LayerNorm
}

func buildLayerNorm(n *onnx.Node, _ map[string]*tensor.Tensor, _ int64) (Op, error) {
	if err := wantInputs(n, 2, 3); err != nil {
		return nil, err
	}
	return &normOp{axis: int(attrInt(n, "axis", -1)), eps: attrFloat(n, "epsilon", 1e-5)}, nil
}

func buildInstanceNorm(n *onnx.Node, _ map[string]*tensor.Tensor, _ int64) (Op, error) {
	if err := wantInputs(n, 3, 3); err != nil {
		return nil, err
	}
	return &normOp{instance: true, eps: attrFloat(n, "epsilon", 1e-5)}, nil
}

// plan returns the layout of the rows and the scale/bias index maps.
func (op *normOp) plan(in []*tensor.Tensor) (*normState, error) {
	if len(in) < 2 || in[0] == nil || in[1] == nil {
		return nil, fmt.Errorf("missing input")
	}
	x := in[0]
	st := &normState{per: 1}
	if op.instance {
		if x.Rank() < 3 {
			return nil, fmt.Errorf("InstanceNormalization input %v: want [N, C, spatial...]: %w", x.Shape, ErrShape)
		}
		c := x.Shape[1]
		for i, t := range in[1:3] {
			if t == nil || t.Size() != c {
				return nil, fmt.Errorf("InstanceNormalization input %d: want %d values (one per channel): %w", i+1, c, ErrShape)
			}
		}
		st.rows, st.d = x.Shape[0]*c, tensor.Size(x.Shape[2:])
		st.per, st.rowStep = c, 1
		st.sIdx, st.bIdx = make([]int, st.d), make([]int, st.d)
		return st, nil
	}
	axis := op.axis
	if axis < 0 {
		axis += x.Rank()
	}
	if axis < 0 || axis >= x.Rank() {
		return nil, fmt.Errorf("LayerNormalization axis %d is out of range for input %v: %w", op.axis, x.Shape, ErrShape)
	}
	block := x.Shape[axis:]
	st.rows, st.d = tensor.Size(x.Shape[:axis]), tensor.Size(block)
	var err error
	if st.sIdx, err = blockIndex(block, in[1].Shape); err != nil {
		return nil, fmt.Errorf("Scale: %w", err)
	}
	if len(in) > 2 && in[2] != nil {
		if st.bIdx, err = blockIndex(block, in[2].Shape); err != nil {
			return nil, fmt.Errorf("B: %w", err)
		}
	}
	return st, nil
}

// blockIndex returns, for each element of a block of the given shape, the
// offset of the value of a tensor of shape s broadcast to it
// (unidirectionally).
func blockIndex(block, s []int) ([]int, error) {
	p, err := newBcast(block, s)
	if err != nil {
		return nil, err
	}
	if !tensor.SameShape(p.shape, block) {
		return nil, fmt.Errorf("shape %v does not broadcast to the normalised axes %v: %w", s, block, ErrShape)
	}
	idx := make([]int, p.n)
	p.runs(func(o, _, ib int) {
		for j := 0; j < p.inner; j++ {
			idx[o+j] = ib + j*p.bstep
		}
	})
	return idx, nil
}

// off returns the offset of row i's scale (or bias) values.
func (st *normState) off(i int) int { return (i % st.per) * st.rowStep }

func (op *normOp) Forward(in []*tensor.Tensor) (*tensor.Tensor, any, error) {
	st, err := op.plan(in)
	if err != nil {
		return nil, nil, err
	}
	st.xhat = make([]float64, len(in[0].Data))
	st.r = make([]float64, st.rows)
	out := tensor.New(in[0].Shape...)
	op.forward(out.Data, in, st)
	return out, st, nil
}

// inferAlloc is Forward for Infer: the output in memory from alloc, and
// no state (x̂ and the reciprocal deviations are not kept).
func (op *normOp) inferAlloc(in []*tensor.Tensor, alloc func(n int) []float64) (*tensor.Tensor, error) {
	st, err := op.plan(in)
	if err != nil {
		return nil, err
	}
	out := tensor.FromData(alloc(in[0].Size()), in[0].Shape...)
	op.forward(out.Data, in, st)
	return out, nil
}

// fills: forward writes every value of every row of y.
func (op *normOp) fills() {}

// forward normalises every row of in[0] into y, recording x̂ and the
// reciprocal deviations in st when st holds room for them.
func (op *normOp) forward(y []float64, in []*tensor.Tensor, st *normState) {
	x, s := in[0].Data, in[1].Data
	var b []float64
	if len(in) > 2 && in[2] != nil {
		b = in[2].Data
	}
	d := float64(st.d)
	for i := 0; i < st.rows; i++ {
		row := x[i*st.d : (i+1)*st.d]
		mu := 0.0
		for _, v := range row {
			mu += v
		}
		mu /= d
		v2 := 0.0
		for _, v := range row {
			v2 += (v - mu) * (v - mu)
		}
		r := 1 / math.Sqrt(v2/d+op.eps)
		if st.r != nil {
			st.r[i] = r
		}
		o := st.off(i)
		yr := y[i*st.d : (i+1)*st.d]
		for j, v := range row {
			xh := (v - mu) * r
			if st.xhat != nil {
				st.xhat[i*st.d+j] = xh
			}
			yr[j] = xh * s[o+st.sIdx[j]]
			if b != nil {
				yr[j] += b[o+st.bIdx[j]]
			}
		}
	}
}

// project sets dst = J v for row i: r(v - mean(v) - x̂·mean(x̂∘v)). It
// returns mean(x̂∘v).
func (st *normState) project(dst, v []float64, i int) float64 {
	xh := st.xhat[i*st.d : (i+1)*st.d]
	mv, m := 0.0, 0.0
	for j, w := range v {
		mv += w
		m += xh[j] * w
	}
	d := float64(st.d)
	mv, m = mv/d, m/d
	r := st.r[i]
	for j, w := range v {
		dst[j] = r * (w - mv - xh[j]*m)
	}
	return m
}

// scaled sets dst[j] = v[j]·s(row i, j) + w[j]·ts(row i, j), omitting
// the first term when v is nil and the second when ts is nil.
func (st *normState) scaled(dst, v, s []float64, i int, w, ts []float64) {
	o := st.off(i)
	for j := range dst {
		dst[j] = 0
		if v != nil {
			dst[j] = v[j] * s[o+st.sIdx[j]]
		}
		if ts != nil {
			dst[j] += w[j] * ts[o+st.sIdx[j]]
		}
	}
}

// Backward returns J(g∘s), Σ g∘x̂ and Σ g per scale and bias value.
func (op *normOp) Backward(in []*tensor.Tensor, out *tensor.Tensor, state any, gout *tensor.Tensor, need []bool) []*tensor.Tensor {
	gin, _ := op.BackwardTangent(in, make([]*tensor.Tensor, len(in)), out, nil, state, gout, nil, need)
	return gin
}

// Tangent returns tx̂∘s + x̂∘ts + tb with tx̂ = J tx.
func (op *normOp) Tangent(in, tin []*tensor.Tensor, out *tensor.Tensor, state any) *tensor.Tensor {
	st := state.(*normState)
	K := tangentCount(tin)
	if K == 0 {
		return nil
	}
	n := out.Size()
	tout := tensor.New(withK(K, out.Shape)...)
	tx, ts, tb := tin[0], tin[1], tangentAt(tin, 2)
	txh := make([]float64, st.d)
	s := in[1].Data
	for k := 0; k < K; k++ {
		for i := 0; i < st.rows; i++ {
			dst := tout.Data[k*n+i*st.d : k*n+(i+1)*st.d]
			xh := st.xhat[i*st.d : (i+1)*st.d]
			var v []float64
			if tx != nil {
				st.project(txh, tx.Data[k*n+i*st.d:k*n+(i+1)*st.d], i)
				v = txh
			}
			var tsk []float64
			if ts != nil {
				tsk = ts.Data[k*in[1].Size():]
			}
			st.scaled(dst, v, s, i, xh, tsk)
			if tb != nil {
				tbk, o := tb.Data[k*in[2].Size():], st.off(i)
				for j := range dst {
					dst[j] += tbk[o+st.bIdx[j]]
				}
			}
		}
	}
	return tout
}

// BackwardTangent returns Backward's gradients and their tangents:
// d(J(g∘s)) = J(tg∘s + g∘ts) + dJ[tx](g∘s), d Σ g∘x̂ = Σ tg∘x̂ + g∘tx̂,
// d Σ g = Σ tg.
func (op *normOp) BackwardTangent(in, tin []*tensor.Tensor, out, _ *tensor.Tensor, state any, gout, tgout *tensor.Tensor, need []bool) (gin, tgin []*tensor.Tensor) {
	st := state.(*normState)
	gin = make([]*tensor.Tensor, len(in))
	tgin = make([]*tensor.Tensor, len(in))
	K := tangentCount(append(tin[:len(tin):len(tin)], tgout))
	for i := range in {
		if i < len(need) && need[i] && in[i] != nil {
			gin[i] = tensor.New(in[i].Shape...)
			if K > 0 {
				tgin[i] = tensor.New(withK(K, in[i].Shape)...)
			}
		}
	}
	d, n := st.d, out.Size()
	s, g := in[1].Data, gout.Data
	v, jv, u, txh := make([]float64, d), make([]float64, d), make([]float64, d), make([]float64, d)
	// kins[k] holds views of direction k of the gradient tangents.
	kins := make([][]*tensor.Tensor, K)
	for k := range kins {
		kins[k] = make([]*tensor.Tensor, len(tgin))
		for j, t := range tgin {
			if t != nil {
				sz := in[j].Size()
				kins[k][j] = tensor.FromData(t.Data[k*sz:(k+1)*sz], in[j].Shape...)
			}
		}
	}
	for i := 0; i < st.rows; i++ {
		gr, xh := g[i*d:(i+1)*d], st.xhat[i*d:(i+1)*d]
		st.scaled(v, gr, s, i, nil, nil)
		m := st.project(jv, v, i)
		if gin[0] != nil {
			copy(gin[0].Data[i*d:(i+1)*d], jv)
		}
		st.paramGrads(gin, i, gr, xh)
		for k := 0; k < K; k++ {
			var tg, tx, ts []float64
			if tgout != nil {
				tg = tgout.Data[k*n+i*d : k*n+(i+1)*d]
			}
			if tin[0] != nil {
				tx = tin[0].Data[k*n+i*d : k*n+(i+1)*d]
				st.project(txh, tx, i)
			}
			if tin[1] != nil {
				ts = tin[1].Data[k*in[1].Size():]
			}
			kin := kins[k]
			if tg != nil {
				st.paramGrads(kin, i, tg, xh)
			}
			if tx != nil {
				st.paramGrads(kin[:2], i, gr, txh)
			}
			if kin[0] == nil {
				continue
			}
			dst := kin[0].Data[i*d : (i+1)*d]
			// J(tg∘s + g∘ts).
			if tg != nil || ts != nil {
				st.scaled(u, tg, s, i, gr, ts)
				st.project(dst, u, i)
			}
			if tx == nil {
				continue
			}
			// dJ[tx](v) = -r·a·Jv - r(m·tx̂ + x̂·mean(tx̂∘v)).
			a, c := 0.0, 0.0
			for j := range xh {
				a += xh[j] * tx[j]
				c += txh[j] * v[j]
			}
			a, c = a/float64(d), c/float64(d)
			r := st.r[i]
			for j := range dst {
				dst[j] += -r*a*jv[j] - r*(m*txh[j]+xh[j]*c)
			}
		}
	}
	return gin, tgin
}

// paramGrads adds row i's contributions to the scale and bias gradients in
// g (entries 1 and 2, nil to skip): Σ w∘x̂ to the scale and Σ w to the
// bias, where x̂ is given (x̂ or its tangent).
func (st *normState) paramGrads(g []*tensor.Tensor, i int, w, xh []float64) {
	o := st.off(i)
	if len(g) > 1 && g[1] != nil {
		gs := g[1].Data
		for j, v := range w {
			gs[o+st.sIdx[j]] += v * xh[j]
		}
	}
	if len(g) > 2 && g[2] != nil && st.bIdx != nil {
		gb := g[2].Data
		for j, v := range w {
			gb[o+st.bIdx[j]] += v
		}
	}
}
