package network

import (
	"fmt"
	"math"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

func init() {
	register("BatchNormalization", buildBatchNorm)
}

// batchNorm is ONNX BatchNormalization in inference mode over [N, C, ...]:
//
//	y = scale*(x - mean)/sqrt(var + eps) + B   (per channel C)
//
// All five inputs are differentiable (mean and var too, so the op is
// exact whatever the graph treats as a parameter). Training mode (the
// training_mode attribute, or the running-statistics outputs) and
// spatial=0 are rejected.
type batchNorm struct {
	node *onnx.Node
	eps  float64
}

func buildBatchNorm(n *onnx.Node, consts map[string]*tensor.Tensor, opset int64) (Op, error) {
	if len(n.Inputs) != 5 {
		return nil, nodeErr(n, "needs 5 inputs (X, scale, B, mean, var); got %d", len(n.Inputs))
	}
	for i, name := range n.Inputs {
		if name == "" {
			return nil, nodeErr(n, "input %d is omitted; all 5 inputs are required", i)
		}
	}
	for _, o := range n.Outputs[min(1, len(n.Outputs)):] {
		if o != "" {
			return nil, fmt.Errorf("%w: %w", nodeErr(n, "outputs beyond Y (training-mode running statistics) are not supported"), ErrUnsupported)
		}
	}
	train, err := layerInt(n, "training_mode", 0)
	if err != nil {
		return nil, err
	}
	if train != 0 {
		return nil, fmt.Errorf("%w: %w", nodeErr(n, "training_mode=1 is not supported (only inference)"), ErrUnsupported)
	}
	spatial, err := layerInt(n, "spatial", 1)
	if err != nil {
		return nil, err
	}
	if spatial != 1 {
		return nil, fmt.Errorf("%w: %w", nodeErr(n, "spatial=%d is not supported", spatial), ErrUnsupported)
	}
	eps, err := layerFloat(n, "epsilon", 1e-5)
	if err != nil {
		return nil, err
	}
	if eps < 0 {
		return nil, nodeErr(n, "epsilon %g; want >= 0", eps)
	}
	return &batchNorm{node: n, eps: eps}, nil
}

// bnState holds per-channel s = 1/sqrt(var+eps) and the layout.
type bnState struct {
	inv        []float64
	n, c, size int // batch, channels, elements per (sample, channel)
}

func (op *batchNorm) Forward(in []*tensor.Tensor) (*tensor.Tensor, any, error) {
	x := in[0]
	if x.Rank() < 2 {
		return nil, nil, fmt.Errorf("%w: %w", nodeErr(op.node, "input %v; want [N, C, ...]", x.Shape), ErrShape)
	}
	c := x.Shape[1]
	for i, p := range in[1:] {
		if p.Size() != c {
			return nil, nil, fmt.Errorf("%w: %w", nodeErr(op.node, "input %d has shape %v; want %d values (one per channel)", i+1, p.Shape, c), ErrShape)
		}
	}
	st := &bnState{inv: make([]float64, c), n: x.Shape[0], c: c}
	if st.n*c > 0 {
		st.size = x.Size() / (st.n * c)
	}
	for ch, v := range in[4].Data {
		if v+op.eps <= 0 {
			return nil, nil, fmt.Errorf("%w: %w", nodeErr(op.node, "channel %d: var + epsilon = %g; want > 0", ch, v+op.eps), ErrShape)
		}
		st.inv[ch] = 1 / math.Sqrt(v+op.eps)
	}
	y := tensor.New(x.Shape...)
	scale, b, mean := in[1].Data, in[2].Data, in[3].Data
	st.each(func(ch, off int) {
		a := scale[ch] * st.inv[ch]
		for i, v := range x.Data[off : off+st.size] {
			y.Data[off+i] = a*(v-mean[ch]) + b[ch]
		}
	})
	return y, st, nil
}

// each calls f(channel, offset) for every (sample, channel) block of
// st.size elements of an input-sized slice.
func (st *bnState) each(f func(ch, off int)) {
	for n := 0; n < st.n; n++ {
		for ch := 0; ch < st.c; ch++ {
			f(ch, (n*st.c+ch)*st.size)
		}
	}
}

// channelSums returns, per channel, sum(g) and sum(g*(x-mean)) over the
// batch (g one block of the input size).
func (st *bnState) channelSums(g, x, mean []float64) (sg, sgx []float64) {
	sg, sgx = make([]float64, st.c), make([]float64, st.c)
	st.each(func(ch, off int) {
		m := mean[ch]
		for i, v := range g[off : off+st.size] {
			sg[ch] += v
			sgx[ch] += v * (x[off+i] - m)
		}
	})
	return sg, sgx
}

func (op *batchNorm) Backward(in []*tensor.Tensor, out *tensor.Tensor, state any, gout *tensor.Tensor, need []bool) []*tensor.Tensor {
	st := state.(*bnState)
	gin := make([]*tensor.Tensor, 5)
	x, scale, mean := in[0].Data, in[1].Data, in[3].Data
	if need[0] {
		gin[0] = tensor.New(in[0].Shape...)
		st.each(func(ch, off int) {
			a := scale[ch] * st.inv[ch]
			for i, g := range gout.Data[off : off+st.size] {
				gin[0].Data[off+i] = a * g
			}
		})
	}
	if !(need[1] || need[2] || need[3] || need[4]) {
		return gin
	}
	sg, sgx := st.channelSums(gout.Data, x, mean)
	for i := 1; i < 5; i++ {
		if !need[i] {
			continue
		}
		gin[i] = tensor.New(in[i].Shape...)
		for ch := 0; ch < st.c; ch++ {
			s := st.inv[ch]
			var v float64
			switch i {
			case 1: // d/dscale = (x-mean)*s
				v = sgx[ch] * s
			case 2: // d/dB = 1
				v = sg[ch]
			case 3: // d/dmean = -scale*s
				v = -scale[ch] * s * sg[ch]
			case 4: // d/dvar = -scale*(x-mean)*s^3/2
				v = -0.5 * scale[ch] * s * s * s * sgx[ch]
			}
			gin[i].Data[ch] = v
		}
	}
	return gin
}

// dirParams returns the per-channel tangents of scale, B, mean and s =
// (var+eps)^-1/2 along direction k (zeros for nil tangents): ds = -s^3/2 dvar.
func (st *bnState) dirParams(tin []*tensor.Tensor, k int) (dscale, db, dmean, ds []float64) {
	get := func(i int) []float64 {
		if tin[i] == nil {
			return make([]float64, st.c)
		}
		return tin[i].Data[k*st.c : (k+1)*st.c]
	}
	dscale, db, dmean = get(1), get(2), get(3)
	ds = make([]float64, st.c)
	if tin[4] != nil {
		for ch, dv := range tin[4].Data[k*st.c : (k+1)*st.c] {
			s := st.inv[ch]
			ds[ch] = -0.5 * s * s * s * dv
		}
	}
	return dscale, db, dmean, ds
}

func (op *batchNorm) Tangent(in, tin []*tensor.Tensor, out *tensor.Tensor, state any) *tensor.Tensor {
	st := state.(*bnState)
	k := tangentCount(tin)
	if k == 0 {
		return nil
	}
	x, scale, mean := in[0].Data, in[1].Data, in[3].Data
	size := in[0].Size()
	ry := tensor.New(append([]int{k}, out.Shape...)...)
	for kk := 0; kk < k; kk++ {
		dscale, db, dmean, ds := st.dirParams(tin, kk)
		r := ry.Data[kk*size : (kk+1)*size]
		var rx []float64
		if tin[0] != nil {
			rx = tin[0].Data[kk*size : (kk+1)*size]
		}
		// Ry = (dscale*s + scale*ds)(x-mean) + scale*s*(Rx - dmean) + dB.
		st.each(func(ch, off int) {
			s := st.inv[ch]
			a := dscale[ch]*s + scale[ch]*ds[ch]
			as := scale[ch] * s
			c0 := db[ch] - as*dmean[ch]
			for i, v := range x[off : off+st.size] {
				r[off+i] = a*(v-mean[ch]) + c0
			}
			if rx != nil {
				for i, v := range rx[off : off+st.size] {
					r[off+i] += as * v
				}
			}
		})
	}
	return ry
}

func (op *batchNorm) BackwardTangent(in, tin []*tensor.Tensor, out, tout *tensor.Tensor, state any, gout, tgout *tensor.Tensor, need []bool) (gin, tgin []*tensor.Tensor) {
	st := state.(*bnState)
	gin = op.Backward(in, out, state, gout, need)
	tgin = make([]*tensor.Tensor, 5)
	k := tangentCount(append(tin[:len(tin):len(tin)], tgout))
	if k == 0 {
		return gin, tgin
	}
	x, scale, mean := in[0].Data, in[1].Data, in[3].Data
	size := in[0].Size()
	for i := range tgin {
		if need[i] {
			tgin[i] = tensor.New(append([]int{k}, in[i].Shape...)...)
		}
	}
	sg, sgx := st.channelSums(gout.Data, x, mean)
	for kk := 0; kk < k; kk++ {
		dscale, _, dmean, ds := st.dirParams(tin, kk)
		var rx, rg []float64
		if tin[0] != nil {
			rx = tin[0].Data[kk*size : (kk+1)*size]
		}
		if tgout != nil {
			rg = tgout.Data[kk*size : (kk+1)*size]
		}
		// R(gx) = Rg*scale*s + g*(dscale*s + scale*ds).
		if need[0] {
			r := tgin[0].Data[kk*size : (kk+1)*size]
			st.each(func(ch, off int) {
				a := dscale[ch]*st.inv[ch] + scale[ch]*ds[ch]
				as := scale[ch] * st.inv[ch]
				for i, g := range gout.Data[off : off+st.size] {
					r[off+i] = a * g
				}
				if rg != nil {
					for i, g := range rg[off : off+st.size] {
						r[off+i] += as * g
					}
				}
			})
		}
		if !(need[1] || need[2] || need[3] || need[4]) {
			continue
		}
		// Per channel: R(sum g) = sum Rg; R(sum g(x-mean)) =
		// sum Rg(x-mean) + sum g(Rx - dmean).
		rsg, rsgx := make([]float64, st.c), make([]float64, st.c)
		if rg != nil {
			rsg, rsgx = st.channelSums(rg, x, mean)
		}
		for ch := 0; ch < st.c; ch++ {
			rsgx[ch] -= sg[ch] * dmean[ch]
		}
		if rx != nil {
			st.each(func(ch, off int) {
				sum := 0.0
				for i, g := range gout.Data[off : off+st.size] {
					sum += g * rx[off+i]
				}
				rsgx[ch] += sum
			})
		}
		for i := 1; i < 5; i++ {
			if !need[i] {
				continue
			}
			r := tgin[i].Data[kk*st.c : (kk+1)*st.c]
			for ch := 0; ch < st.c; ch++ {
				s, dsc := st.inv[ch], ds[ch]
				switch i {
				case 1: // gscale = s*sgx
					r[ch] = dsc*sgx[ch] + s*rsgx[ch]
				case 2: // gB = sg
					r[ch] = rsg[ch]
				case 3: // gmean = -scale*s*sg
					r[ch] = -(dscale[ch]*s+scale[ch]*dsc)*sg[ch] - scale[ch]*s*rsg[ch]
				case 4: // gvar = -scale*s^3*sgx/2
					r[ch] = -0.5 * ((dscale[ch]*s*s*s+3*scale[ch]*s*s*dsc)*sgx[ch] + scale[ch]*s*s*s*rsgx[ch])
				}
			}
		}
	}
	return gin, tgin
}

// FoldBatchNorm folds an inference BatchNormalization (scale, bias, mean,
// variance, eps) that follows a Conv or a Gemm with transB=1 into that
// layer's weight w ([Cout, ...], output channel first) and bias b ([Cout],
// nil for none): with s = scale/sqrt(variance+eps),
//
//	w'[c, ...] = s[c]*w[c, ...],   b'[c] = s[c]*(b[c] - mean[c]) + bias[c].
//
// The inputs are not modified. The four BatchNormalization tensors and b
// must each hold w.Shape[0] values and variance+eps must be positive: the
// caller checks this (import rejects such models); otherwise FoldBatchNorm
// panics.
func FoldBatchNorm(w, b, scale, bias, mean, variance *tensor.Tensor, eps float64) (wf, bf *tensor.Tensor) {
	cout := 0
	if w.Rank() > 0 {
		cout = w.Shape[0]
	}
	s := foldScale(cout, b, scale, bias, mean, variance, eps)
	wf = w.Clone()
	per := 0
	if cout > 0 {
		per = w.Size() / cout
	}
	for c := 0; c < cout; c++ {
		row := wf.Data[c*per : (c+1)*per]
		for i := range row {
			row[i] *= s[c]
		}
	}
	return wf, foldBias(s, b, bias, mean)
}

// FoldBatchNormColumns is FoldBatchNorm for a weight stored [in, out]
// (Gemm with transB=0, MatMul): output channel c is column c of w.
func FoldBatchNormColumns(w, b, scale, bias, mean, variance *tensor.Tensor, eps float64) (wf, bf *tensor.Tensor) {
	if w.Rank() != 2 {
		panic(fmt.Sprintf("network: FoldBatchNormColumns of a weight %v; want [in, out]", w.Shape))
	}
	cout := w.Shape[1]
	s := foldScale(cout, b, scale, bias, mean, variance, eps)
	wf = w.Clone()
	for r := 0; r < w.Shape[0]; r++ {
		row := wf.Data[r*cout : (r+1)*cout]
		for c := range row {
			row[c] *= s[c]
		}
	}
	return wf, foldBias(s, b, bias, mean)
}

// foldScale checks sizes and returns scale/sqrt(variance+eps).
func foldScale(cout int, b, scale, bias, mean, variance *tensor.Tensor, eps float64) []float64 {
	for _, t := range []*tensor.Tensor{scale, bias, mean, variance, b} {
		if t != nil && t.Size() != cout {
			panic(fmt.Sprintf("network: folding a BatchNormalization with %v values into a layer with %d output channels", t.Shape, cout))
		}
	}
	s := make([]float64, cout)
	for c := range s {
		d := variance.Data[c] + eps
		if d <= 0 {
			panic(fmt.Sprintf("network: folding a BatchNormalization with variance+eps = %g <= 0 in channel %d", d, c))
		}
		s[c] = scale.Data[c] / math.Sqrt(d)
	}
	return s
}

func foldBias(s []float64, b, bias, mean *tensor.Tensor) *tensor.Tensor {
	bf := tensor.New(len(s))
	for c := range s {
		bc := 0.0
		if b != nil {
			bc = b.Data[c]
		}
		bf.Data[c] = s[c]*(bc-mean.Data[c]) + bias.Data[c]
	}
	return bf
}
