package quant

import (
	"context"
	"fmt"
	"runtime"
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"

	"mpsearch/network"
	"mpsearch/tensor"
)

// hessianColsLimit bounds the im2col values (32 MiB) of one chunk of a
// Conv Add; larger batches are taken a few samples at a time (two chunks
// are held at once: the one summed and the next).
var hessianColsLimit = 1 << 22

// LayerHessian accumulates H = ∑ x xᵀ over the input vectors x of one
// layer's output values, the matrix GPTQ needs: for Gemm and MatMul each
// row of the input (the last axis; op(A)'s rows for a Gemm), for Conv each
// im2col column (network.ConvColumns). A Conv with G groups has one H per
// group: group g's input columns, seen by rows [g·Rows/G, (g+1)·Rows/G) of
// the weight's matrix view (ToMatrix). Sums are float64 (BLAS dsyrk).
type LayerHessian struct {
	Node   string // the layer's node
	Cols   int    // columns of the weight's matrix view
	Groups int    // conv groups (1 for Gemm and MatMul)
	N      int64  // input vectors accumulated

	net    *network.Network
	li     int
	op     string
	transA bool
	h      [][]float64 // per group, the upper triangle of H, Cols×Cols
	sum    [][]float64 // per group, ∑ x (Cols values), for Mean
	// meansOnly: only sum is accumulated (h is nil).
	meansOnly bool
	// cols, when not nil, are the buffers of the im2col columns.
	cols *colsBuffers
}

// hessianLegacy selects the accumulation as it was before the columns
// were made on every CPU into a reused buffer and the sums were split
// between the workers: single-threaded im2col into a new slice per
// chunk, single-threaded sums. Only BenchmarkAccumulateHessians sets it,
// to measure the old path next to the new in one run; H is the same bit
// for bit (TestHessianThreadIndependence).
var hessianLegacy = false

// NewLayerHessian starts an empty accumulation for layer li of net.
func NewLayerHessian(net *network.Network, li int) (*LayerHessian, error) {
	return newLayerHessian(net, li, false)
}

// newLayerHessian is NewLayerHessian; with meansOnly it keeps only the
// sums of the input vectors (Mean), not H.
func newLayerHessian(net *network.Network, li int, meansOnly bool) (*LayerHessian, error) {
	layers := net.Layers()
	if li < 0 || li >= len(layers) {
		return nil, fmt.Errorf("quant: layer %d of %d", li, len(layers))
	}
	l := layers[li]
	w := net.Params()[l.Weight].Value
	a := &LayerHessian{Node: l.Node, Groups: 1, net: net, li: li, op: l.Op, meansOnly: meansOnly}
	a.Cols = w.Size() / w.Shape[l.ChannelAxis]
	switch l.Op {
	case "Conv":
		g, err := convGroups(net, l.Node)
		if err != nil {
			return nil, err
		}
		a.Groups = g
	case "Gemm":
		for i := range net.Model.Graph.Nodes {
			if n := &net.Model.Graph.Nodes[i]; n.Name == l.Node {
				a.transA = n.Attrs["transA"].I != 0
			}
		}
	}
	a.h = make([][]float64, a.Groups)
	a.sum = make([][]float64, a.Groups)
	for g := range a.h {
		if !meansOnly {
			a.h[g] = make([]float64, a.Cols*a.Cols)
		}
		a.sum[g] = make([]float64, a.Cols)
	}
	return a, nil
}

// convGroups reads the group attribute of Conv node name.
func convGroups(net *network.Network, name string) (int, error) {
	for i := range net.Model.Graph.Nodes {
		if n := &net.Model.Graph.Nodes[i]; n.Name == name {
			if a, ok := n.Attrs["group"]; ok && a.I > 1 {
				return int(a.I), nil
			}
			return 1, nil
		}
	}
	return 0, fmt.Errorf("quant: Conv layer %q is not a node of the model", name)
}

// Add accumulates a batch x of the layer's input (its node's first input,
// as a network.Hook sees it).
func (a *LayerHessian) Add(x *tensor.Tensor) error {
	switch a.op {
	case "Conv":
		return a.addConv(x)
	case "Gemm":
		if x.Rank() != 2 {
			return fmt.Errorf("quant: Gemm layer %q input %v; want a matrix", a.Node, x.Shape)
		}
		k := x.Shape[1]
		if a.transA {
			k = x.Shape[0]
		}
		if k != a.Cols {
			return fmt.Errorf("quant: Gemm layer %q input %v has %d features; want %d", a.Node, x.Shape, k, a.Cols)
		}
		if a.transA { // x is [K, M]: H += x xᵀ
			a.syrk(0, blas.NoTrans, x.Data, a.Cols, x.Shape[1])
		} else { // x is [M, K]: H += xᵀ x
			a.syrk(0, blas.Trans, x.Data, x.Shape[0], a.Cols)
		}
		return nil
	default: // MatMul: rows of the last axis
		if x.Rank() == 0 || x.Shape[x.Rank()-1] != a.Cols {
			return fmt.Errorf("quant: MatMul layer %q input %v; want %d values on the last axis", a.Node, x.Shape, a.Cols)
		}
		a.syrk(0, blas.Trans, x.Data, x.Size()/a.Cols, a.Cols)
		return nil
	}
}

// addConv accumulates the im2col columns of x, a few samples at a time:
// the first sample alone (it measures the columns' size), then chunks of
// hessianColsLimit values. The next chunk's columns are made while the
// current chunk's are summed into H (except with hessianLegacy), which
// keeps both CPUs busy when H has a single column block.
func (a *LayerHessian) addConv(x *tensor.Tensor) error {
	if x.Rank() < 3 {
		return fmt.Errorf("quant: Conv layer %q input %v; want [N, C, ...]", a.Node, x.Shape)
	}
	n, per := x.Shape[0], x.Size()/max(x.Shape[0], 1)
	if n == 0 {
		return nil
	}
	chunk := func(b0, nb int) *tensor.Tensor {
		return tensor.FromData(x.Data[b0*per:(b0+nb)*per], append([]int{nb}, x.Shape[1:]...)...)
	}
	cols, err := a.columns(chunk(0, 1), 0)
	if err != nil {
		return err
	}
	step := max(1, hessianColsLimit/max(1, len(cols)))
	for b0, nb, buf := 0, 1, 0; ; {
		b1 := b0 + nb
		nb1 := min(step, n-b1)
		var next []float64
		var nextErr error
		done := make(chan struct{})
		makeNext := func() {
			defer close(done)
			if b1 < n {
				next, nextErr = a.columns(chunk(b1, nb1), 1-buf)
			}
		}
		if hessianLegacy {
			a.addColumns(cols)
			makeNext()
		} else {
			go makeNext()
			a.addColumns(cols)
		}
		<-done
		if b1 >= n || nextErr != nil {
			return nextErr
		}
		b0, nb, buf, cols = b1, nb1, 1-buf, next
	}
}

// addColumns accumulates one chunk's [C*kh*kw, nb*P] im2col columns, conv
// group by conv group: H += c cᵀ for group g's rows c.
func (a *LayerHessian) addColumns(cols []float64) {
	ld := len(cols) / (a.Cols * a.Groups)
	for g := 0; g < a.Groups; g++ {
		a.syrk(g, blas.NoTrans, cols[g*a.Cols*ld:(g+1)*a.Cols*ld], a.Cols, ld)
	}
}

// colsBuffers are the two buffers of a Conv's im2col columns (the chunk
// being summed and the next), shared by the layers of one accumulate pass
// (one Add runs at a time).
type colsBuffers [2][]float64

// columns returns the im2col columns of the chunk xb, made on every CPU
// (in buffer i of a.cols when it is set: the slice is kept for the next
// chunks).
func (a *LayerHessian) columns(xb *tensor.Tensor, i int) ([]float64, error) {
	if hessianLegacy {
		cols, _, err := a.net.ConvColumns(a.li, xb)
		if err != nil {
			return nil, fmt.Errorf("quant: %w", err)
		}
		return cols, nil
	}
	var buf []float64
	if a.cols != nil {
		buf = a.cols[i]
	}
	cols, _, err := a.net.ConvColumnsInto(a.li, xb, buf, runtime.GOMAXPROCS(0))
	if err != nil {
		return nil, fmt.Errorf("quant: %w", err)
	}
	if a.cols != nil && cap(cols) > cap(buf) {
		a.cols[i] = cols
	}
	return cols, nil
}

// syrk adds m mᵀ (t = NoTrans, m r×c) or mᵀ m (t = Trans) to the upper
// triangle of group g's H (not with meansOnly), adds the input vectors to
// the group's sums (Mean) and counts them. The triangle is cut into
// column blocks of hessianBlock columns (see syrkBlock), which the workers
// take in turn, each with the sums of its block's entries: a block is
// always computed by the same BLAS calls and every sum in the order of
// the vectors whatever the worker count, so H and the sums do not depend
// on it.
func (a *LayerHessian) syrk(g int, t blas.Transpose, m []float64, r, c int) {
	n := r
	if t == blas.NoTrans {
		n = c
	}
	if n == 0 {
		return
	}
	if g == 0 {
		a.N += int64(n)
	}
	if hessianLegacy {
		a.sumVectors(g, t, m, r, c, 0, a.Cols)
		if a.meansOnly {
			return
		}
	}
	nb := (a.Cols + hessianBlock - 1) / hessianBlock
	task := func(b int) {
		if !hessianLegacy {
			a.sumVectors(g, t, m, r, c, b*hessianBlock, min(a.Cols, (b+1)*hessianBlock))
		}
		if !a.meansOnly {
			a.syrkBlock(g, t, m, r, c, b)
		}
	}
	workers := min(nb, runtime.GOMAXPROCS(0))
	if workers <= 1 {
		for b := range nb {
			task(b)
		}
		return
	}
	// The widest blocks (the last columns, with the most rows above the
	// diagonal) first, so that the workers finish together.
	next := make(chan int, nb)
	for b := nb - 1; b >= 0; b-- {
		next <- b
	}
	close(next)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range next {
				task(b)
			}
		}()
	}
	wg.Wait()
}

// sumVectors adds entries [j0, j1) of the input vectors (m's columns for
// t = NoTrans, its rows for Trans) to group g's sums, vector by vector.
func (a *LayerHessian) sumVectors(g int, t blas.Transpose, m []float64, r, c, j0, j1 int) {
	s := a.sum[g]
	if t == blas.NoTrans { // s[i] += ∑_j m[i, j]
		sumRows(s[j0:j1], m[j0*c:j1*c], c)
		return
	}
	sumCols(s[j0:j1], m, r, c, j0)
}

// sumCols adds rows [0, r) of the r×c matrix m, restricted to columns
// [j0, j0+len(s)), to s, row after row: s[j] += m[0,j0+j] + m[1,j0+j] + ...
// in that order. Four rows go at a time, s[j] taking their four additions
// in row order in a register, so the sums are the plain loop's bit for bit.
func sumCols(s, m []float64, r, c, j0 int) {
	n := len(s)
	i := 0
	for ; i+4 <= r; i += 4 {
		r0 := m[i*c+j0 : i*c+j0+n]
		r1 := m[(i+1)*c+j0 : (i+1)*c+j0+n][:len(r0)]
		r2 := m[(i+2)*c+j0 : (i+2)*c+j0+n][:len(r0)]
		r3 := m[(i+3)*c+j0 : (i+3)*c+j0+n][:len(r0)]
		s := s[:len(r0)]
		for j, v := range r0 {
			s[j] = s[j] + v + r1[j] + r2[j] + r3[j]
		}
	}
	for ; i < r; i++ {
		for j, v := range m[i*c+j0 : i*c+j0+n] {
			s[j] += v
		}
	}
}

// sumRows adds the sum of each row of the len(s)×c matrix m to s, each in
// the order of its entries: s[i] += m[i,0] + m[i,1] + ... one by one. Four
// rows go at a time, so that four chains of additions are in flight
// instead of one waiting on each add (3-4× on ResNet-sized convolution
// columns); every s[i] takes the same additions in the same order, so the
// sums are those of the plain loop bit for bit.
func sumRows(s, m []float64, c int) {
	i := 0
	for ; i+4 <= len(s); i += 4 {
		r0 := m[i*c : (i+1)*c]
		r1 := m[(i+1)*c : (i+2)*c][:len(r0)]
		r2 := m[(i+2)*c : (i+3)*c][:len(r0)]
		r3 := m[(i+3)*c : (i+4)*c][:len(r0)]
		s0, s1, s2, s3 := s[i], s[i+1], s[i+2], s[i+3]
		for j, v := range r0 {
			s0 += v
			s1 += r1[j]
			s2 += r2[j]
			s3 += r3[j]
		}
		s[i], s[i+1], s[i+2], s[i+3] = s0, s1, s2, s3
	}
	for ; i < len(s); i++ {
		for _, v := range m[i*c : (i+1)*c] {
			s[i] += v
		}
	}
}

// hessianBlock is the column width of the blocks of H that syrk computes
// independently (a variable for the tests, which cut small layers into
// several blocks).
var hessianBlock = 256

// syrkBlock adds block b's share of syrk's product: columns [j0, j1) of
// H's upper triangle, the rectangle above the diagonal block by one GEMM
// and the diagonal block by one SYRK. With X the Cols×n matrix of input
// vectors (m for NoTrans, mᵀ for Trans), H[0:j0, j0:j1] += X[0:j0] X[j0:j1]ᵀ
// and H[j0:j1, j0:j1] += X[j0:j1] X[j0:j1]ᵀ.
func (a *LayerHessian) syrkBlock(g int, t blas.Transpose, m []float64, r, c, b int) {
	j0 := b * hessianBlock
	j1 := min(a.Cols, j0+hessianBlock)
	h := a.h[g]
	// xs returns X's rows [i0, i1) as a BLAS operand and the transpose
	// that makes it Cols-rows-first.
	xs := func(i0, i1 int) (blas64.General, blas.Transpose) {
		if t == blas.NoTrans { // rows i0..i1 of m (r = Cols)
			return blas64.General{Rows: i1 - i0, Cols: c, Stride: c, Data: m[i0*c : i1*c]}, blas.NoTrans
		}
		// columns i0..i1 of m (c = Cols): an r×(i1-i0) view
		return blas64.General{Rows: r, Cols: i1 - i0, Stride: c, Data: m[i0 : (r-1)*c+i1]}, blas.Trans
	}
	xb, tb := xs(j0, j1)
	if j0 > 0 {
		xa, ta := xs(0, j0)
		other := blas.Trans // B = X[j0:j1]ᵀ
		if tb == blas.Trans {
			other = blas.NoTrans
		}
		blas64.Gemm(ta, other, 1, xa, xb, 1, blas64.General{Rows: j0, Cols: j1 - j0, Stride: a.Cols, Data: h[j0 : (j0-1)*a.Cols+j1]})
	}
	blas64.Syrk(tb, 1, xb, 1, blas64.Symmetric{Uplo: blas.Upper, N: j1 - j0, Stride: a.Cols, Data: h[j0*a.Cols+j0 : (j1-1)*a.Cols+j1]})
}

// Hessian returns conv group g's H as a full symmetric Cols×Cols
// row-major matrix (a copy).
func (a *LayerHessian) Hessian(g int) []float64 {
	h := append([]float64(nil), a.h[g]...)
	for i := 0; i < a.Cols; i++ {
		for j := 0; j < i; j++ {
			h[i*a.Cols+j] = h[j*a.Cols+i]
		}
	}
	return h
}

// Mean returns conv group g's mean input vector E[x] (Cols values; zeros
// before any input): for a Conv the mean im2col column, padding included,
// so (W-Ŵ)·Mean(g) is the mean change of each output of the group.
func (a *LayerHessian) Mean(g int) []float64 {
	m := make([]float64, a.Cols)
	if a.N == 0 {
		return m
	}
	for i, v := range a.sum[g] {
		m[i] = v / float64(a.N)
	}
	return m
}

// symmetric fills the lower triangle of conv group g's H in place and
// returns it: the full symmetric matrix, without a copy (Add must not be
// called afterwards).
func (a *LayerHessian) symmetric(g int) []float64 {
	h := a.h[g]
	for i := 0; i < a.Cols; i++ {
		for j := 0; j < i; j++ {
			h[i*a.Cols+j] = h[j*a.Cols+i]
		}
	}
	return h
}

// meansOnlyCopy returns a copy of a that keeps only the sums of the input
// vectors (Mean), as a means-only accumulation of the same vectors would.
func (a *LayerHessian) meansOnlyCopy() *LayerHessian {
	c := &LayerHessian{Node: a.Node, Cols: a.Cols, Groups: a.Groups, N: a.N, net: a.net, li: a.li, op: a.op, transA: a.transA, meansOnly: true}
	c.h = make([][]float64, a.Groups)
	c.sum = make([][]float64, a.Groups)
	for g := range c.sum {
		c.sum[g] = append([]float64(nil), a.sum[g]...)
	}
	return c
}

// addFrom adds o's sums into a's: the Hessian of a weight that both
// layers read (the squared output error of the two layers adds up).
func (a *LayerHessian) addFrom(o *LayerHessian) error {
	if o.Cols != a.Cols || o.Groups != a.Groups {
		return fmt.Errorf("quant: layers %q and %q share a weight but their inputs have %d and %d columns in %d and %d groups", a.Node, o.Node, a.Cols, o.Cols, a.Groups, o.Groups)
	}
	for g := range a.h {
		for i, v := range o.h[g] {
			a.h[g][i] += v
		}
		for i, v := range o.sum[g] {
			a.sum[g][i] += v
		}
	}
	a.N += o.N
	return nil
}

// AccumulateHessians runs the network over the batches and returns the H
// of each layer in layers (indices into net.Layers()), built from the
// layers' inputs as they reach the layers after hook (nil: unchanged; a
// quant.ActHook gives the inputs of simulated uint8 activations).
func AccumulateHessians(ctx context.Context, net *network.Network, batches []*tensor.Tensor, layers []int, hook network.Hook) ([]*LayerHessian, error) {
	return accumulate(ctx, net, batches, layers, hook, false, nil)
}

// accumulate is AccumulateHessians; with meansOnly only the sums of the
// input vectors (Mean) are kept, not H. onBatch, if not nil, is called
// after each batch.
func accumulate(ctx context.Context, net *network.Network, batches []*tensor.Tensor, layers []int, hook network.Hook, meansOnly bool, onBatch func()) ([]*LayerHessian, error) {
	acc := make([]*LayerHessian, len(layers))
	byNode := map[string]*LayerHessian{}
	cols := new(colsBuffers) // the im2col buffers of every Conv
	for i, li := range layers {
		a, err := newLayerHessian(net, li, meansOnly)
		if err != nil {
			return nil, err
		}
		a.cols = cols
		acc[i], byNode[a.Node] = a, a
	}
	defer func() {
		for _, a := range acc {
			a.cols = nil
		}
	}()
	var addErr error
	rec := func(node string, input int, v *tensor.Tensor) *tensor.Tensor {
		if hook != nil {
			v = hook(node, input, v)
		}
		if a, ok := byNode[node]; ok && input == 0 && addErr == nil {
			addErr = a.Add(v)
		}
		return v
	}
	for _, x := range batches {
		if _, err := net.InferHook(ctx, x, rec); err != nil {
			return nil, err
		}
		if addErr != nil {
			return nil, addErr
		}
		if onBatch != nil {
			onBatch()
		}
	}
	return acc, nil
}

// GPTQWeights quantizes the weight tensor w (shape, channel axis) of the
// layer h was accumulated for by GPTQ, conv group by conv group, and
// returns the fake-quantized weights in w's layout with the quantization
// of the matrix view (ToMatrix; scales and codes of the groups stacked in
// row order). With blocks, opt.GroupSize counts input channels of ONNX
// blocks (BlockOrder) instead of matrix columns, and the quantization
// returned is that of the matrix with its columns in block order.
func GPTQWeights(w []float64, shape []int, axis int, h *LayerHessian, opt GPTQOptions, blocks bool) ([]float64, *GroupQuant, error) {
	m, rows, cols := ToMatrix(w, shape, axis)
	if cols != h.Cols || rows%h.Groups != 0 {
		return nil, nil, fmt.Errorf("quant: layer %q: weight %v has a %d×%d matrix view; the Hessian has %d columns and %d groups", h.Node, shape, rows, cols, h.Cols, h.Groups)
	}
	var order []int
	if blocks && opt.GroupSize > 0 {
		var err error
		if order, opt.GroupSize, err = BlockOrder(shape, axis, opt.GroupSize); err != nil {
			return nil, nil, fmt.Errorf("layer %q: %w", h.Node, err)
		}
		m = PermuteColumns(m, rows, cols, order)
	}
	rg := rows / h.Groups
	var all *GroupQuant
	for g := 0; g < h.Groups; g++ {
		hg := h.Hessian(g)
		if order != nil {
			hg = permuteSym(hg, cols, order)
		}
		q, err := GPTQ(m[g*rg*cols:(g+1)*rg*cols], rg, cols, hg, opt)
		if err != nil {
			return nil, nil, fmt.Errorf("layer %q: %w", h.Node, err)
		}
		if all == nil {
			all = q
			all.Rows = rows
			continue
		}
		all.Scales = append(all.Scales, q.Scales...)
		all.Q = append(all.Q, q.Q...)
	}
	fake := all.Dequantize()
	if order != nil {
		fake = PermuteColumns(fake, rows, cols, InverseOrder(order))
	}
	return FromMatrix(fake, shape, axis), all, nil
}
