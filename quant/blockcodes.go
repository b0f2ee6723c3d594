package quant

import (
	"context"
	"fmt"
	"slices"

	"mpsearch/network"
	"mpsearch/tensor"
)

// Blocked weight codes: one scale per output channel and block of Block
// consecutive inputs along the weight's blocked axis (BlockedAxis), the
// layout of ONNX DequantizeLinear with block_size (opset 21). Their
// Scales are float16 values (RoundFP16; the export stores them as FLOAT16,
// 2 bytes each, cast to FLOAT before the DequantizeLinear) in the scale
// tensor's layout (BlockScaleShape, row-major) and Dequantize computes
// float32(q·s), exactly what a runtime computes from the exported file, so
// the simulated weights and the file's dequantized weights are the same
// numbers.

// BlockedAxis is the axis along which a weight (shape, channel axis) is
// blocked: its input axis, 1 for a Conv weight [M, C, kh, kw] and for a
// matrix stored [out, in], 0 for a matrix stored [in, out].
func BlockedAxis(shape []int, axis int) int {
	if len(shape) == 2 && axis == 1 {
		return 0
	}
	return 1
}

// BlockScaleShape is the shape of the scale tensor of a weight blocked by
// block: the weight's shape with its blocked axis d replaced by ceil(d/block).
func BlockScaleShape(shape []int, axis, block int) []int {
	s := slices.Clone(shape)
	ba := BlockedAxis(shape, axis)
	s[ba] = (s[ba] + block - 1) / block
	return s
}

// dequantizeBlocked writes float32(q·s) of blocked codes into dst.
func (wq *WeightQuant) dequantizeBlocked(dst []float64, shape []int) {
	ba := BlockedAxis(shape, wq.Axis)
	ss := BlockScaleShape(shape, wq.Axis, wq.Block)
	inner := tensorSize(shape[ba+1:])
	for i, q := range wq.Q {
		outer, j, rest := i/(inner*shape[ba]), (i/inner)%shape[ba], i%inner
		s := wq.Scales[(outer*ss[ba]+j/wq.Block)*inner+rest]
		dst[i] = float64(float32(float64(q) * s))
	}
}

// BlockWeightQuant turns the quantization g of a weight's matrix view with
// its columns in BlockOrder(shape, axis, block) (order) into blocked codes
// in the weight's layout. The scales must already be float16 values.
func (g *GroupQuant) BlockWeightQuant(shape []int, axis, block int, order []int) (*WeightQuant, error) {
	ch, _ := channelLayout(shape, axis)
	if ch != g.Rows || tensorSize(shape) != g.Rows*g.Cols || len(order) != g.Cols {
		return nil, fmt.Errorf("quant: a %d×%d quantization for a %v weight with channels on axis %d", g.Rows, g.Cols, shape, axis)
	}
	ss := BlockScaleShape(shape, axis, block)
	if tensorSize(ss) != len(g.Scales) {
		return nil, fmt.Errorf("quant: %d group scales for a %v scale tensor (block %d)", len(g.Scales), ss, block)
	}
	q := make([]float64, len(g.Q))
	for i, v := range g.Q {
		q[i] = float64(v)
	}
	q = PermuteColumns(q, g.Rows, g.Cols, InverseOrder(order))
	wq := &WeightQuant{Bits: g.Bits, Axis: axis, Block: block, Q: make([]int8, len(q)), Scales: make([]float64, len(g.Scales))}
	for i, v := range FromMatrix(q, shape, axis) {
		wq.Q[i] = int8(v)
	}
	ng := g.Groups()
	if BlockedAxis(shape, axis) == 0 { // [in, out]: the scale tensor is [groups, out]
		for r := 0; r < g.Rows; r++ {
			for k := 0; k < ng; k++ {
				wq.Scales[k*g.Rows+r] = g.Scales[r*ng+k]
			}
		}
	} else { // [out, groups] or [M, C/B, kh, kw]: row by row, groups in block order
		copy(wq.Scales, g.Scales)
	}
	return wq, nil
}

// fp16Scales rounds a quantization's scales to float16 (RoundFP16) and
// recomputes its codes at the rounded scales from the weights m it
// quantized (matrix view, columns in block order): round to nearest only.
func fp16Scales(g *GroupQuant, m []float64) {
	ng := g.Groups()
	for r := 0; r < g.Rows; r++ {
		for k := 0; k < ng; k++ {
			s := RoundFP16(g.Scales[r*ng+k])
			g.Scales[r*ng+k] = s
			for j := k * g.GroupSize; j < min((k+1)*g.GroupSize, g.Cols); j++ {
				g.Q[r*g.Cols+j] = roundCode(m[r*g.Cols+j], s, g.Bits)
			}
		}
	}
}

// BlockCodesOptions configures NewBlockCodes.
type BlockCodesOptions struct {
	CodesOptions
	// Block is the block size along each weight's input axis (a Conv's
	// input channels at each kernel tap; BlockOrder): it must divide a
	// Conv's input channels per group or be at least that many.
	Block int
	// MSE chooses each block's scale by the clipping search.
	MSE bool
}

// blockCodes is a blocked source: every layer's codes at every prepared
// width.
type blockCodes struct {
	method string
	net    *network.Network
	widths []int
	codes  map[int]map[int]*WeightQuant
}

func (b *blockCodes) Method() string { return b.method }

func (b *blockCodes) Codes(li, bits int) (*WeightQuant, error) {
	layers := b.net.Layers()
	if li < 0 || li >= len(layers) {
		return nil, fmt.Errorf("quant: layer %d of %d: %w", li, len(layers), ErrCodes)
	}
	wq, ok := b.codes[layers[li].Weight][bits]
	if !ok {
		return nil, fmt.Errorf("quant: layer %q: blocked codes at %d bits were not prepared (widths %v): %w", layers[li].Node, bits, b.widths, ErrCodes)
	}
	return wq, nil
}

// NewBlockCodes returns a source of blocked codes (one float16 scale per
// output channel and block of opt.Block inputs, BlockOrder) at each width
// of opt.Widths: method MethodRTN rounds each block to nearest at its
// scale (max|w|/qmax, or the clipping search's with opt.MSE), MethodGPTQ
// rounds by GPTQ with the blocks as its groups (Hessians of the float
// network's layer inputs over batches, as NewGPTQCodes; scales taken from
// the original weights up front, StaticGroups, rounded to float16 before
// GPTQ chooses the codes at them, GPTQOptions.RoundScale). Each
// weight parameter is quantized once, for its first layer (a shared
// weight's other layers are not summed in, unlike NewGPTQCodes).
func NewBlockCodes(ctx context.Context, method string, net *network.Network, batches []*tensor.Tensor, opt BlockCodesOptions) (WeightCodes, error) {
	if opt.Block < 1 {
		return nil, fmt.Errorf("quant: block size %d; want 1 or more inputs per scale", opt.Block)
	}
	if method != MethodRTN && method != MethodGPTQ {
		return nil, fmt.Errorf("quant: weight rounding %q: %w (want %s or %s)", method, ErrCodes, MethodRTN, MethodGPTQ)
	}
	src := &blockCodes{method: method, net: net, widths: slices.Sorted(slices.Values(opt.Widths)), codes: map[int]map[int]*WeightQuant{}}
	layers := net.Layers()
	var hs []*LayerHessian
	if method == MethodGPTQ {
		all := make([]int, len(layers))
		for i := range all {
			all[i] = i
		}
		var err error
		if hs, err = AccumulateHessians(ctx, net, batches, all, nil); err != nil {
			return nil, err
		}
	}
	w := floatWeights(net)
	for li, l := range layers {
		if _, done := src.codes[l.Weight]; done {
			continue
		}
		src.codes[l.Weight] = map[int]*WeightQuant{}
		shape := net.Params()[l.Weight].Value.Shape
		order, gs, err := BlockOrder(shape, l.ChannelAxis, opt.Block)
		if err != nil {
			return nil, fmt.Errorf("layer %q: %w", l.Node, err)
		}
		m, rows, cols := ToMatrix(w[l.Weight], shape, l.ChannelAxis)
		m = PermuteColumns(m, rows, cols, order)
		for _, bits := range src.widths {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			var g *GroupQuant
			if hs == nil {
				g, err = QuantizeMatrix(m, rows, cols, bits, gs, opt.MSE)
				if err == nil {
					fp16Scales(g, m)
				}
			} else {
				_, g, err = GPTQWeights(w[l.Weight], shape, l.ChannelAxis, hs[li], GPTQOptions{Bits: bits, GroupSize: opt.Block, MSE: opt.MSE, Damp: opt.Damp, StaticGroups: true, RoundScale: RoundFP16}, true)
				if err == nil {
					for i, v := range g.Scales {
						g.Scales[i] = RoundFP16(v)
					}
				}
			}
			if err != nil {
				return nil, fmt.Errorf("layer %q: %w", l.Node, err)
			}
			if src.codes[l.Weight][bits], err = g.BlockWeightQuant(shape, l.ChannelAxis, gs, order); err != nil {
				return nil, fmt.Errorf("layer %q: %w", l.Node, err)
			}
		}
	}
	return src, nil
}
