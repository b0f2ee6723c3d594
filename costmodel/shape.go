package costmodel

import (
	"errors"
	"fmt"
	"math"

	"mpsearch/intengine"
	"mpsearch/kernels"
)

// ErrShape is wrapped by the errors returned for inconsistent layer shapes.
var ErrShape = errors.New("costmodel: invalid layer shape")

// ErrBits is wrapped by the errors returned for unsupported bit widths.
var ErrBits = errors.New("costmodel: unsupported bit width")

// ActBits is the activation bit width of every layer: the kernels multiply
// uint8 activations.
const ActBits = 8

// scaleBytes is the storage of one per-output-channel weight scale (float32).
const scaleBytes = 4

// LayerShape is one quantizable layer as the integer engine runs it, per
// sample: its geometry and the path the engine takes (the fields after
// Conv; see the package doc, "What a layer costs"). A channels-first
// convolution (the zero path) is, for each group, an im2col of the group's
// input channels, an M x K by K x N GEMM with requantization and a
// transpose of the M x N result back to channel-major (NCHW) order; a Gemm
// or MatMul is one GEMM with requantization.
//
// M, K and N are per group and per sample: M = OH*OW for a Conv (rows of the
// patch matrix of one image), the rows of one sample for a Gemm or MatMul
// (1 for a [batch, features] input); K = Cin/Groups*KH*KW or the input
// features; N = Cout/Groups or the output features.
type LayerShape struct {
	Name string // the ONNX node name
	Op   string // "Conv", "Gemm" or "MatMul"

	M, K, N int
	// Groups is the number of convolution groups; 0 means 1.
	Groups int
	// Params is the number of weights (all groups, bias excluded) and MACs
	// the multiply-accumulates per sample (all groups): M*K*N*Groups.
	Params, MACs int64
	// Conv is the geometry of one group of a convolution (C is the input
	// channels of one group); nil for Gemm and MatMul. Its output size
	// OH*OW must equal M and C*KH*KW must equal K.
	Conv *kernels.ConvShape

	// The path the integer engine takes (intengine.LayerPaths; WithPath
	// sets them). The zero value is a channels-first convolution (im2col,
	// GEMMRequant per image, transpose back to NCHW) or a Gemm/MatMul
	// with a requantized output.
	//
	// InNHWC and OutNHWC: a Conv's input and output are channels-last
	// (kernels.Im2ColNHWC; the GEMM writes the output in place). Depthwise:
	// kernels.DepthwiseNHWC. Direct: a 1x1, stride-1 Conv on a
	// channels-last input, one GEMM on the input itself. Logits: the layer
	// produces the graph output as int32 accumulators.
	//
	// Stream: a layer with few rows per sample, whose products of at most
	// intengine.StreamMaxRows(kernel bits) rows (M times the batch) the
	// engine runs on the small-M stream kernels (kernels.GEMMStreamRequant);
	// a Gemm or MatMul there is predicted by Profile.Stream.
	InNHWC, OutNHWC, Depthwise, Direct, Logits, Stream bool
}

// GemmLayer returns the shape of a Gemm or MatMul layer computing out
// features from in features for rows rows per sample (1 for the usual
// [batch, in] input), on the path the engine takes for it: Stream when
// rows is at most intengine.StreamMaxRows of its narrowest widths.
func GemmLayer(name, op string, rows, in, out int) LayerShape {
	return LayerShape{
		Name: name, Op: op, M: rows, K: in, N: out, Groups: 1, Stream: rows <= intengine.StreamMaxRows(1),
		Params: int64(in) * int64(out),
		MACs:   int64(rows) * int64(in) * int64(out),
	}
}

// ConvLayer returns the shape of a convolution with cout output channels
// over the geometry g of the whole input (g.C is all input channels),
// in groups groups (0 means 1).
func ConvLayer(name string, g kernels.ConvShape, cout, groups int) (LayerShape, error) {
	groups = max(groups, 1)
	if g.C%groups != 0 || cout%groups != 0 || cout < 1 {
		return LayerShape{}, fmt.Errorf("%w: layer %q: %d input and %d output channels are not divisible into %d groups", ErrShape, name, g.C, cout, groups)
	}
	g.C /= groups
	oh, ow, err := g.Out()
	if err != nil {
		return LayerShape{}, fmt.Errorf("%w: layer %q: %v", ErrShape, name, err)
	}
	m, k, n := oh*ow, g.C*g.KH*g.KW, cout/groups
	gc := g
	return LayerShape{
		Name: name, Op: "Conv", M: m, K: k, N: n, Groups: groups,
		Params: int64(k) * int64(cout),
		MACs:   int64(m) * int64(k) * int64(n) * int64(groups),
		Conv:   &gc,
	}, nil
}

// InferConv returns a convolution geometry for one group with c input
// channels of h x w, a kh x kw kernel and an oh x ow output, for callers that
// know the tensor shapes but not the strides and pads: the smallest stride
// for which some padding gives that output, with the padding split as evenly
// as possible (dilation 1). The patch matrix it produces has the same size as
// the real one, which is what the im2col cost depends on.
func InferConv(c, h, w, kh, kw, oh, ow int) (kernels.ConvShape, error) {
	if c < 1 || h < 1 || w < 1 || kh < 1 || kw < 1 || oh < 1 || ow < 1 {
		return kernels.ConvShape{}, fmt.Errorf("%w: convolution sizes c=%d h=%d w=%d kernel %dx%d output %dx%d must be positive", ErrShape, c, h, w, kh, kw, oh, ow)
	}
	sh, ph, err := inferAxis(h, kh, oh)
	if err != nil {
		return kernels.ConvShape{}, err
	}
	sw, pw, err := inferAxis(w, kw, ow)
	if err != nil {
		return kernels.ConvShape{}, err
	}
	return kernels.ConvShape{
		C: c, H: h, W: w, KH: kh, KW: kw, StrideH: sh, StrideW: sw,
		DilationH: 1, DilationW: 1,
		PadTop: ph / 2, PadBottom: ph - ph/2, PadLeft: pw / 2, PadRight: pw - pw/2,
	}, nil
}

// inferAxis finds the smallest stride s and total padding p with
// (in + p - k)/s + 1 == out and 0 <= p < k + s.
func inferAxis(in, k, out int) (stride, pad int, err error) {
	for s := 1; s <= in+k; s++ {
		// The output has out elements for paddings in [lo, lo+s).
		lo := (out-1)*s + k - in
		for p := max(lo, 0); p < lo+s; p++ {
			if p < k+s && (in+p-k)/s+1 == out {
				return s, p, nil
			}
		}
	}
	return 0, 0, fmt.Errorf("%w: no stride and padding turn %d inputs into %d outputs with a kernel of %d", ErrShape, in, out, k)
}

// Validate checks that the fields are consistent.
func (s LayerShape) Validate() error {
	g := max(s.Groups, 1)
	switch {
	case s.M < 1 || s.K < 1 || s.N < 1:
		return fmt.Errorf("%w: layer %q: M=%d K=%d N=%d must be positive", ErrShape, s.Name, s.M, s.K, s.N)
	case s.K > kernels.MaxK:
		return fmt.Errorf("%w: layer %q: K=%d exceeds the kernels' limit %d", ErrShape, s.Name, s.K, kernels.MaxK)
	case s.Groups < 0:
		return fmt.Errorf("%w: layer %q: %d groups", ErrShape, s.Name, s.Groups)
	case s.MACs != int64(s.M)*int64(s.K)*int64(s.N)*int64(g):
		return fmt.Errorf("%w: layer %q: MACs = %d; want M*K*N*Groups = %d", ErrShape, s.Name, s.MACs, int64(s.M)*int64(s.K)*int64(s.N)*int64(g))
	case s.Params < 1:
		return fmt.Errorf("%w: layer %q: %d params", ErrShape, s.Name, s.Params)
	}
	if s.Conv != nil {
		oh, ow, err := s.Conv.Out()
		if err != nil {
			return fmt.Errorf("%w: layer %q: %v", ErrShape, s.Name, err)
		}
		if oh*ow != s.M || s.Conv.C*s.Conv.KH*s.Conv.KW != s.K {
			return fmt.Errorf("%w: layer %q: geometry gives M=%d K=%d; the shape says M=%d K=%d", ErrShape, s.Name, oh*ow, s.Conv.C*s.Conv.KH*s.Conv.KW, s.M, s.K)
		}
	} else if g != 1 {
		return fmt.Errorf("%w: layer %q: %d groups need a convolution geometry", ErrShape, s.Name, g)
	}
	return nil
}

// channels is the number of output channels over all groups.
func (s LayerShape) channels() int64 { return int64(s.N) * int64(max(s.Groups, 1)) }

// SizeBytes is the deployed weight storage at bits bits: the packed weights,
// ceil(Params*bits/8) bytes, plus one float32 scale per output channel.
func (s LayerShape) SizeBytes(bits int) int64 {
	return (s.Params*int64(bits)+7)/8 + scaleBytes*s.channels()
}

// BOPs is the number of bit operations per sample at bits-bit weights and
// ActBits-bit activations: MACs * bits * ActBits.
func (s LayerShape) BOPs(bits int) float64 {
	return float64(s.MACs) * float64(bits) * ActBits
}

// KernelBits is the weight bit width of the kernel that runs bits-bit
// weights: 8 for 5 to 8 bits, 4 for 3 and 4, 2 for 2 and 1 for binary.
// Narrower values fit the wider kernel's range exactly.
func KernelBits(bits int) (int, error) {
	switch {
	case bits == 1 || bits == 2:
		return bits, nil
	case bits == 3 || bits == 4:
		return 4, nil
	case bits >= 5 && bits <= 8:
		return 8, nil
	}
	return 0, fmt.Errorf("%w: %d-bit weights; the kernels run 1 to 8 bits", ErrBits, bits)
}

// roundSig rounds x to sig significant decimal digits.
func roundSig(x float64, sig int) float64 {
	if x == 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	p := math.Pow(10, float64(sig-1)-math.Floor(math.Log10(math.Abs(x))))
	return math.Round(x*p) / p
}
