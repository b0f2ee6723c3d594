package network

import (
	"fmt"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

func init() {
	register("Gemm", buildGemm)
	register("MatMul", buildMatMul)
}

// gemmOp is ONNX Gemm: Y = alpha*op(A)*op(B) + beta*C with op(A) [M,K],
// op(B) [K,N] and the optional C broadcast unidirectionally to [M,N].
// All three inputs are differentiable.
type gemmOp struct {
	node        *onnx.Node
	alpha, beta float64
	ta, tb      bool
	prec        Precision
}

func (g *gemmOp) setPrecision(p Precision) { g.prec = p }

func buildGemm(n *onnx.Node, consts map[string]*tensor.Tensor, opset int64) (Op, error) {
	if len(n.Inputs) < 2 || n.Inputs[0] == "" || n.Inputs[1] == "" {
		return nil, nodeErr(n, "needs inputs A and B; got %d inputs", len(n.Inputs))
	}
	g := &gemmOp{node: n}
	var err error
	if g.alpha, err = layerFloat(n, "alpha", 1); err != nil {
		return nil, err
	}
	if g.beta, err = layerFloat(n, "beta", 1); err != nil {
		return nil, err
	}
	ta, err := layerInt(n, "transA", 0)
	if err != nil {
		return nil, err
	}
	tb, err := layerInt(n, "transB", 0)
	if err != nil {
		return nil, err
	}
	g.ta, g.tb = ta != 0, tb != 0
	return g, nil
}

// gemmDims are the sizes of one Gemm: op(A) is m×k, op(B) k×n.
type gemmDims struct{ m, k, n int }

func (g *gemmOp) dims(in []*tensor.Tensor) (gemmDims, error) {
	a, b := in[0], in[1]
	if a.Rank() != 2 || b.Rank() != 2 {
		return gemmDims{}, fmt.Errorf("%w: %w", nodeErr(g.node, "inputs %v and %v; want 2-D matrices", a.Shape, b.Shape), ErrShape)
	}
	d := gemmDims{m: a.Shape[0], k: a.Shape[1]}
	if g.ta {
		d.m, d.k = d.k, d.m
	}
	kb, n := b.Shape[0], b.Shape[1]
	if g.tb {
		kb, n = n, kb
	}
	d.n = n
	if kb != d.k {
		return d, fmt.Errorf("%w: %w", nodeErr(g.node, "op(A) is %dx%d but op(B) is %dx%d (transA=%v, transB=%v)", d.m, d.k, kb, n, g.ta, g.tb), ErrShape)
	}
	if c := bias(in); c != nil {
		if _, _, ok := gemmBiasStrides(c.Shape, d.m, d.n); !ok {
			return d, fmt.Errorf("%w: %w", nodeErr(g.node, "C %v does not broadcast to [%d %d]", c.Shape, d.m, d.n), ErrShape)
		}
	}
	return d, nil
}

// gemmBiasStrides returns the strides along M and N with which C of the
// given shape broadcasts (numpy rules, unidirectionally) to [m, n].
func gemmBiasStrides(shape []int, m, n int) (sm, sn int, ok bool) {
	if len(shape) > 2 {
		return 0, 0, false
	}
	full := []int{1, 1}
	copy(full[2-len(shape):], shape)
	if (full[0] != 1 && full[0] != m) || (full[1] != 1 && full[1] != n) {
		return 0, 0, false
	}
	if full[1] != 1 {
		sn = 1
	}
	if full[0] != 1 {
		sm = full[1]
	}
	return sm, sn, true
}

// lda and ldb are the leading dimensions of A and B as stored.
func (g *gemmOp) lda(d gemmDims) int {
	if g.ta {
		return d.m
	}
	return d.k
}

func (g *gemmOp) ldb(d gemmDims) int {
	if g.tb {
		return d.k
	}
	return d.n
}

func (g *gemmOp) Forward(in []*tensor.Tensor) (*tensor.Tensor, any, error) {
	d, err := g.dims(in)
	if err != nil {
		return nil, nil, err
	}
	y := tensor.New(d.m, d.n)
	newGemmer(g.prec).gemm(g.ta, g.tb, d.m, d.n, d.k, g.alpha, in[0].Data, g.lda(d), in[1].Data, g.ldb(d), 0, y.Data, d.n)
	if c := bias(in); c != nil && g.beta != 0 {
		addBroadcastBias(y.Data, c, d.m, d.n, g.beta)
	}
	return y, d, nil
}

// addBroadcastBias adds beta*C, broadcast to [m, n], to y.
func addBroadcastBias(y []float64, c *tensor.Tensor, m, n int, beta float64) {
	sm, sn, _ := gemmBiasStrides(c.Shape, m, n)
	for i := 0; i < m; i++ {
		row := y[i*n : (i+1)*n]
		for j := range row {
			row[j] += beta * c.Data[i*sm+j*sn]
		}
	}
}

// reduceBias returns beta * g [m, n] summed down to C's shape.
func reduceBias(g []float64, shape []int, m, n int, beta float64) *tensor.Tensor {
	sm, sn, _ := gemmBiasStrides(shape, m, n)
	r := tensor.New(shape...)
	for i := 0; i < m; i++ {
		for j, v := range g[i*n : (i+1)*n] {
			r.Data[i*sm+j*sn] += beta * v
		}
	}
	return r
}

// gradA adds to dst (A's shape) the gradient alpha * (dY through op(B))
// for output gradient gy [m, n] and B data b: dop(A) = gy op(B)^T.
func (g *gemmOp) gradA(d gemmDims, gy, b, dst []float64, beta float64) {
	if !g.ta {
		// dA [m,k] = gy [m,n] x op(B)^T; op(B)^T is B when tb, else B^T.
		newGemmer(g.prec).gemm(false, !g.tb, d.m, d.k, d.n, g.alpha, gy, d.n, b, g.ldb(d), beta, dst, d.k)
		return
	}
	// dA [k,m] = op(B) [k,n] x gy^T.
	newGemmer(g.prec).gemm(g.tb, true, d.k, d.m, d.n, g.alpha, b, g.ldb(d), gy, d.n, beta, dst, d.m)
}

// gradB adds to dst (B's shape) dop(B) = op(A)^T gy, stored as B is.
func (g *gemmOp) gradB(d gemmDims, gy, a, dst []float64, beta float64) {
	if !g.tb {
		// dB [k,n] = op(A)^T [k,m] x gy [m,n]; op(A)^T is A when ta, else A^T.
		newGemmer(g.prec).gemm(!g.ta, false, d.k, d.n, d.m, g.alpha, a, g.lda(d), gy, d.n, beta, dst, d.n)
		return
	}
	// dB [n,k] = gy^T [n,m] x op(A) [m,k].
	newGemmer(g.prec).gemm(true, g.ta, d.n, d.k, d.m, g.alpha, gy, d.n, a, g.lda(d), beta, dst, d.k)
}

func (g *gemmOp) Backward(in []*tensor.Tensor, out *tensor.Tensor, state any, gout *tensor.Tensor, need []bool) []*tensor.Tensor {
	d := state.(gemmDims)
	gin := make([]*tensor.Tensor, len(in))
	if need[0] {
		gin[0] = tensor.New(in[0].Shape...)
		g.gradA(d, gout.Data, in[1].Data, gin[0].Data, 0)
	}
	if need[1] {
		gin[1] = tensor.New(in[1].Shape...)
		g.gradB(d, gout.Data, in[0].Data, gin[1].Data, 0)
	}
	if c := bias(in); c != nil && need[2] {
		gin[2] = reduceBias(gout.Data, c.Shape, d.m, d.n, g.beta)
	}
	return gin
}

func (g *gemmOp) Tangent(in, tin []*tensor.Tensor, out *tensor.Tensor, state any) *tensor.Tensor {
	d := state.(gemmDims)
	k := tangentCount(tin)
	if k == 0 {
		return nil
	}
	ra, rb, rc := tin[0], tin[1], tangentAt(tin, 2)
	ry := tensor.New(k, d.m, d.n)
	mn := d.m * d.n
	beta := 0.0
	if ra != nil {
		if !g.ta {
			// All K directions at once: [K*m, k] x op(B).
			newGemmer(g.prec).gemm(false, g.tb, k*d.m, d.n, d.k, g.alpha, ra.Data, d.k, in[1].Data, g.ldb(d), 0, ry.Data, d.n)
		} else {
			as := in[0].Size()
			for kk := 0; kk < k; kk++ {
				newGemmer(g.prec).gemm(true, g.tb, d.m, d.n, d.k, g.alpha, ra.Data[kk*as:], d.m, in[1].Data, g.ldb(d), 0, ry.Data[kk*mn:], d.n)
			}
		}
		beta = 1
	}
	if rb != nil {
		bs := in[1].Size()
		for kk := 0; kk < k; kk++ {
			newGemmer(g.prec).gemm(g.ta, g.tb, d.m, d.n, d.k, g.alpha, in[0].Data, g.lda(d), rb.Data[kk*bs:], g.ldb(d), beta, ry.Data[kk*mn:], d.n)
		}
	}
	if rc != nil && g.beta != 0 {
		cs := in[2].Size()
		for kk := 0; kk < k; kk++ {
			c := tensor.FromData(rc.Data[kk*cs:(kk+1)*cs], in[2].Shape...)
			addBroadcastBias(ry.Data[kk*mn:], c, d.m, d.n, g.beta)
		}
	}
	return ry
}

func (g *gemmOp) BackwardTangent(in, tin []*tensor.Tensor, out, tout *tensor.Tensor, state any, gout, tgout *tensor.Tensor, need []bool) (gin, tgin []*tensor.Tensor) {
	d := state.(gemmDims)
	gin = g.Backward(in, out, state, gout, need)
	tgin = make([]*tensor.Tensor, len(in))
	k := tangentCount(append(tin[:len(tin):len(tin)], tgout))
	if k == 0 {
		return gin, tgin
	}
	ra, rb := tin[0], tin[1]
	mn := d.m * d.n
	as, bs := in[0].Size(), in[1].Size()
	// R(dA) = dA(R gout, B) + dA(gout, RB); likewise for B.
	if need[0] && (tgout != nil || rb != nil) {
		tgin[0] = tensor.New(append([]int{k}, in[0].Shape...)...)
		for kk := 0; kk < k; kk++ {
			dst := tgin[0].Data[kk*as:]
			beta := 0.0
			if tgout != nil {
				g.gradA(d, tgout.Data[kk*mn:], in[1].Data, dst, 0)
				beta = 1
			}
			if rb != nil {
				g.gradA(d, gout.Data, rb.Data[kk*bs:], dst, beta)
			}
		}
	}
	if need[1] && (tgout != nil || ra != nil) {
		tgin[1] = tensor.New(append([]int{k}, in[1].Shape...)...)
		for kk := 0; kk < k; kk++ {
			dst := tgin[1].Data[kk*bs:]
			beta := 0.0
			if tgout != nil {
				g.gradB(d, tgout.Data[kk*mn:], in[0].Data, dst, 0)
				beta = 1
			}
			if ra != nil {
				g.gradB(d, gout.Data, ra.Data[kk*as:], dst, beta)
			}
		}
	}
	if c := bias(in); c != nil && need[2] && tgout != nil {
		cs := c.Size()
		tgin[2] = tensor.New(append([]int{k}, c.Shape...)...)
		for kk := 0; kk < k; kk++ {
			r := reduceBias(tgout.Data[kk*mn:(kk+1)*mn], c.Shape, d.m, d.n, g.beta)
			copy(tgin[2].Data[kk*cs:], r.Data)
		}
	}
	return gin, tgin
}

// matMul is ONNX MatMul with numpy semantics: A [..., M, K] x B [..., K, N]
// with broadcast batch dimensions; a 1-D A is a row [1, K] and a 1-D B a
// column [K, 1], their unit dimension removed from the output. Both inputs
// are differentiable.
type matMul struct {
	node *onnx.Node
	prec Precision
}

func (op *matMul) setPrecision(p Precision) { op.prec = p }

func buildMatMul(n *onnx.Node, consts map[string]*tensor.Tensor, opset int64) (Op, error) {
	if len(n.Inputs) != 2 || n.Inputs[0] == "" || n.Inputs[1] == "" {
		return nil, nodeErr(n, "needs inputs A and B; got %d inputs", len(n.Inputs))
	}
	return &matMul{node: n}, nil
}

// mmPlan is the resolved shape of one MatMul.
type mmPlan struct {
	m, k, n        int
	aBatch, bBatch []int // batch shapes of A and B after 1-D promotion
	batch          []int // broadcast batch shape
	outShape       []int
	prec           Precision // of the products
}

func (op *matMul) plan(a, b []int) (mmPlan, error) {
	p := mmPlan{prec: op.prec}
	if len(a) == 0 || len(b) == 0 {
		return p, fmt.Errorf("%w: %w", nodeErr(op.node, "scalar operand (%v x %v)", a, b), ErrShape)
	}
	a1, b1 := len(a) == 1, len(b) == 1
	if a1 {
		a = []int{1, a[0]}
	}
	if b1 {
		b = []int{b[0], 1}
	}
	p.m, p.k = a[len(a)-2], a[len(a)-1]
	if b[len(b)-2] != p.k {
		return p, fmt.Errorf("%w: %w", nodeErr(op.node, "inner dimensions differ: %v x %v", a, b), ErrShape)
	}
	p.n = b[len(b)-1]
	p.aBatch, p.bBatch = a[:len(a)-2], b[:len(b)-2]
	var ok bool
	if p.batch, ok = broadcastShape(p.aBatch, p.bBatch); !ok {
		return p, fmt.Errorf("%w: %w", nodeErr(op.node, "batch dimensions %v and %v do not broadcast", p.aBatch, p.bBatch), ErrShape)
	}
	p.outShape = append([]int(nil), p.batch...)
	if !a1 {
		p.outShape = append(p.outShape, p.m)
	}
	if !b1 {
		p.outShape = append(p.outShape, p.n)
	}
	return p, nil
}

// broadcastShape returns the numpy broadcast of shapes a and b.
func broadcastShape(a, b []int) ([]int, bool) {
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
			return nil, false
		}
	}
	return out, true
}

// bcastStrides returns, for each dimension of the full batch shape, the
// stride (in matrices) of an operand with batch shape sub, 0 where sub
// is broadcast.
func bcastStrides(sub, full []int) []int {
	s := make([]int, len(full))
	acc := 1
	for i := len(full) - 1; i >= 0; i-- {
		j := i - (len(full) - len(sub))
		if j < 0 {
			continue
		}
		if sub[j] != 1 {
			s[i] = acc
		}
		acc *= sub[j]
	}
	return s
}

// bmmOperand is one operand of a batched product: data, batch shape, and
// whether its matrices are used transposed; rows×cols is the stored shape.
type bmmOperand struct {
	data       []float64
	batch      []int
	rows, cols int
	trans      bool
	// zero (dst only) says the caller's dst holds zeros, so a dst matrix
	// written by one product alone takes it with beta 0 instead of adding
	// it: no read (and, in float32, no conversion) of the zeros.
	zero bool
}

// bmm adds, for every index of the batch shape full, op(a[i]) x op(b[i])
// into dst[i], each operand indexed with broadcasting (a broadcast dst
// accumulates the products it is broadcast over). op(a) is m×k, op(b)
// k×n, dst matrices m×n.
func bmm(prec Precision, full []int, dst bmmOperand, a, b bmmOperand, m, n, k int) {
	gm := newGemmer(prec)
	nb := tensor.Size(full)
	sa, sb, sd := bcastStrides(a.batch, full), bcastStrides(b.batch, full), bcastStrides(dst.batch, full)
	sizeA, sizeB, sizeD := a.rows*a.cols, b.rows*b.cols, m*n
	allZero := func(s []int) bool {
		for _, v := range s {
			if v != 0 {
				return false
			}
		}
		return true
	}
	dense := func(o bmmOperand) bool { return tensor.Size(o.batch) == nb }
	beta := 1.0
	if dst.zero {
		beta = 0 // every product below writes its own zero dst matrix
	}
	// One product when a whole batch folds into the rows of A and dst
	// (B shared), or into the inner dimension (dst shared).
	if nb > 1 && allZero(sb) && dense(a) && dense(dst) && !a.trans {
		gm.gemm(false, b.trans, nb*m, n, k, 1, a.data, a.cols, b.data, b.cols, beta, dst.data, n)
		return
	}
	if nb > 1 && allZero(sd) && dense(a) && dense(b) && a.trans && !b.trans {
		// dst += sum_i A_i^T B_i = [A_1; A_2; ...]^T [B_1; B_2; ...].
		gm.gemm(true, false, m, n, nb*k, 1, a.data, a.cols, b.data, b.cols, beta, dst.data, n)
		return
	}
	if !dense(dst) {
		beta = 1 // a broadcast dst accumulates several products
	}
	if allZero(sb) {
		gm.keep(b.data[:sizeB]) // one B for the whole batch
	}
	idx := make([]int, len(full))
	for i := 0; i < nb; i++ {
		oa, ob, od := 0, 0, 0
		for j, v := range idx {
			oa += v * sa[j]
			ob += v * sb[j]
			od += v * sd[j]
		}
		gm.gemm(a.trans, b.trans, m, n, k, 1, a.data[oa*sizeA:], a.cols, b.data[ob*sizeB:], b.cols, beta, dst.data[od*sizeD:], n)
		for j := len(idx) - 1; j >= 0; j-- {
			idx[j]++
			if idx[j] < full[j] {
				break
			}
			idx[j] = 0
		}
	}
}

func (op *matMul) Forward(in []*tensor.Tensor) (*tensor.Tensor, any, error) {
	p, err := op.plan(in[0].Shape, in[1].Shape)
	if err != nil {
		return nil, nil, err
	}
	y := tensor.New(p.outShape...)
	p.forward(y, in)
	return y, &p, nil
}

// inferAlloc is Forward for Infer, the output in memory from alloc.
func (op *matMul) inferAlloc(in []*tensor.Tensor, alloc func(n int) []float64) (*tensor.Tensor, error) {
	p, err := op.plan(in[0].Shape, in[1].Shape)
	if err != nil {
		return nil, err
	}
	y := tensor.FromData(alloc(tensor.Size(p.outShape)), p.outShape...)
	p.forward(y, in)
	return y, nil
}

// fills: forward's products take y with beta 0 (every matrix of y is
// written by one product: y is dense over the batch), which BLAS does not
// read.
func (op *matMul) fills() {}

// forward computes the product into y, which holds zeros (or, from Infer's
// arena, anything: beta 0).
func (p *mmPlan) forward(y *tensor.Tensor, in []*tensor.Tensor) {
	bmm(p.prec, p.batch, bmmOperand{data: y.Data, batch: p.batch, rows: p.m, cols: p.n, zero: true},
		bmmOperand{data: in[0].Data, batch: p.aBatch, rows: p.m, cols: p.k},
		bmmOperand{data: in[1].Data, batch: p.bBatch, rows: p.k, cols: p.n}, p.m, p.n, p.k)
}

// lift returns the batch shape sub of an operand as seen with a leading
// direction axis of size k: [k, 1, ..., 1, sub...], of rank 1+len(batch).
func lift(k int, sub, batch []int) []int {
	s := make([]int, 1+len(batch)-len(sub), 1+len(batch))
	for i := range s {
		s[i] = 1
	}
	s[0] = k
	return append(s, sub...)
}

// gradA adds into da (batch shape aBatch, possibly with a leading K) the
// products g x B^T; gradB adds A^T x g into db.
// zero says da (db) holds zeros.
func (p *mmPlan) gradA(full []int, da []float64, daBatch []int, g []float64, gBatch []int, b []float64, bBatch []int, zero bool) {
	bmm(p.prec, full, bmmOperand{data: da, batch: daBatch, rows: p.m, cols: p.k, zero: zero},
		bmmOperand{data: g, batch: gBatch, rows: p.m, cols: p.n},
		bmmOperand{data: b, batch: bBatch, rows: p.k, cols: p.n, trans: true}, p.m, p.k, p.n)
}

func (p *mmPlan) gradB(full []int, db []float64, dbBatch []int, a []float64, aBatch []int, g []float64, gBatch []int, zero bool) {
	bmm(p.prec, full, bmmOperand{data: db, batch: dbBatch, rows: p.k, cols: p.n, zero: zero},
		bmmOperand{data: a, batch: aBatch, rows: p.m, cols: p.k, trans: true},
		bmmOperand{data: g, batch: gBatch, rows: p.m, cols: p.n}, p.k, p.n, p.m)
}

func (op *matMul) Backward(in []*tensor.Tensor, out *tensor.Tensor, state any, gout *tensor.Tensor, need []bool) []*tensor.Tensor {
	p := state.(*mmPlan)
	gin := make([]*tensor.Tensor, 2)
	if need[0] {
		gin[0] = tensor.New(in[0].Shape...)
		p.gradA(p.batch, gin[0].Data, p.aBatch, gout.Data, p.batch, in[1].Data, p.bBatch, true)
	}
	if need[1] {
		gin[1] = tensor.New(in[1].Shape...)
		p.gradB(p.batch, gin[1].Data, p.bBatch, in[0].Data, p.aBatch, gout.Data, p.batch, true)
	}
	return gin
}

func (op *matMul) Tangent(in, tin []*tensor.Tensor, out *tensor.Tensor, state any) *tensor.Tensor {
	p := state.(*mmPlan)
	k := tangentCount(tin)
	if k == 0 {
		return nil
	}
	// The K directions are one more (leading) batch dimension; the
	// primal operand is broadcast along it.
	full := lift(k, p.batch, p.batch)
	ry := tensor.New(append([]int{k}, out.Shape...)...)
	dst := bmmOperand{data: ry.Data, batch: full, rows: p.m, cols: p.n}
	if tin[0] != nil {
		dst.zero = true
		bmm(p.prec, full, dst, bmmOperand{data: tin[0].Data, batch: lift(k, p.aBatch, p.batch), rows: p.m, cols: p.k},
			bmmOperand{data: in[1].Data, batch: lift(1, p.bBatch, p.batch), rows: p.k, cols: p.n}, p.m, p.n, p.k)
	}
	if tin[1] != nil {
		dst.zero = tin[0] == nil
		bmm(p.prec, full, dst, bmmOperand{data: in[0].Data, batch: lift(1, p.aBatch, p.batch), rows: p.m, cols: p.k},
			bmmOperand{data: tin[1].Data, batch: lift(k, p.bBatch, p.batch), rows: p.k, cols: p.n}, p.m, p.n, p.k)
	}
	return ry
}

func (op *matMul) BackwardTangent(in, tin []*tensor.Tensor, out, tout *tensor.Tensor, state any, gout, tgout *tensor.Tensor, need []bool) (gin, tgin []*tensor.Tensor) {
	p := state.(*mmPlan)
	gin = op.Backward(in, out, state, gout, need)
	tgin = make([]*tensor.Tensor, 2)
	k := tangentCount([]*tensor.Tensor{tin[0], tin[1], tgout})
	if k == 0 {
		return gin, tgin
	}
	full := lift(k, p.batch, p.batch)
	kA, kB := lift(k, p.aBatch, p.batch), lift(k, p.bBatch, p.batch)
	oneA, oneB, oneG := lift(1, p.aBatch, p.batch), lift(1, p.bBatch, p.batch), lift(1, p.batch, p.batch)
	// R(dA) = R gout x B^T + gout x RB^T; R(dB) = A^T R gout + RA^T gout.
	if need[0] && (tgout != nil || tin[1] != nil) {
		tgin[0] = tensor.New(append([]int{k}, in[0].Shape...)...)
		if tgout != nil {
			p.gradA(full, tgin[0].Data, kA, tgout.Data, full, in[1].Data, oneB, true)
		}
		if tin[1] != nil {
			p.gradA(full, tgin[0].Data, kA, gout.Data, oneG, tin[1].Data, kB, tgout == nil)
		}
	}
	if need[1] && (tgout != nil || tin[0] != nil) {
		tgin[1] = tensor.New(append([]int{k}, in[1].Shape...)...)
		if tgout != nil {
			p.gradB(full, tgin[1].Data, kB, in[0].Data, oneA, tgout.Data, full, true)
		}
		if tin[0] != nil {
			p.gradB(full, tgin[1].Data, kB, tin[0].Data, kA, gout.Data, oneG, tgout == nil)
		}
	}
	return gin, tgin
}
