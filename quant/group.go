package quant

import (
	"fmt"
	"math"
)

// A weight tensor of any layout is quantized as a matrix W [Rows, Cols]:
// one row per output channel (the tensor's channel axis), one column per
// input the channel reads. Column j of row c is the flat element with
// channel c whose other indices, read in the tensor's order with the
// channel axis removed, number j. For a Conv weight [M, C/group, kh, kw]
// that is the im2col order (c, i, j) of network.ConvColumns; for a MatMul
// or a Gemm weight stored [in, out] it is the transpose.

// ToMatrix returns w (shape given, channel axis axis) as the row-major
// matrix view [rows, cols].
func ToMatrix(w []float64, shape []int, axis int) (m []float64, rows, cols int) {
	ch, inner := channelLayout(shape, axis)
	rows, cols = ch, len(w)/max(ch, 1)
	m = make([]float64, len(w))
	for i, v := range w {
		c, j := matrixIndex(i, ch, inner)
		m[c*cols+j] = v
	}
	return m, rows, cols
}

// FromMatrix is ToMatrix's inverse: it returns the matrix view m as a
// tensor of the given shape and channel axis.
func FromMatrix(m []float64, shape []int, axis int) []float64 {
	ch, inner := channelLayout(shape, axis)
	cols := len(m) / max(ch, 1)
	w := make([]float64, len(m))
	for i := range w {
		c, j := matrixIndex(i, ch, inner)
		w[i] = m[c*cols+j]
	}
	return w
}

// matrixIndex maps flat index i to (row, column) of the matrix view.
func matrixIndex(i, ch, inner int) (c, j int) {
	c = (i / inner) % ch
	return c, i/(inner*ch)*inner + i%inner
}

// Clipping search (Options.MSE): the scale of a channel or group is
// p·max|w|/qmax for the shrink factor p in {1, 1-mseStep, ..., 1-(mseGrid-1)·mseStep}
// with the smallest squared rounding error ∑(w - ŵ)², the largest p on ties
// (so p = 1, the plain convention, unless a smaller scale is strictly better).
const (
	mseGrid = 20
	mseStep = 0.05
)

// GroupQuant is a symmetric quantization of a weight matrix with one scale
// per row and group of GroupSize consecutive columns (the last group of a
// row may be shorter). GroupSize = Cols is per-channel quantization.
type GroupQuant struct {
	Bits       int
	Rows, Cols int
	GroupSize  int
	Scales     []float64 // [Rows, Groups()] row-major
	Q          []int8    // [Rows, Cols] row-major
}

// Groups is the number of scale groups per row.
func (g *GroupQuant) Groups() int { return groupCount(g.Cols, g.GroupSize) }

// groupCount is ceil(cols/size).
func groupCount(cols, size int) int { return (cols + size - 1) / size }

// Dequantize returns the quantized matrix's float values, [Rows, Cols].
func (g *GroupQuant) Dequantize() []float64 {
	out := make([]float64, len(g.Q))
	ng := g.Groups()
	for r := 0; r < g.Rows; r++ {
		for j := 0; j < g.Cols; j++ {
			out[r*g.Cols+j] = float64(g.Q[r*g.Cols+j]) * g.Scales[r*ng+j/g.GroupSize]
		}
	}
	return out
}

// checkMatrix validates a quantization request of a rows×cols matrix.
func checkMatrix(w []float64, rows, cols, bits, groupSize int) (int, error) {
	if bits < 1 || bits > 8 {
		return 0, fmt.Errorf("quant: %d-bit weights: %w (1 to 8)", bits, ErrBits)
	}
	if rows < 1 || cols < 1 || len(w) != rows*cols {
		return 0, fmt.Errorf("quant: weight matrix of %d values is not %d×%d", len(w), rows, cols)
	}
	if groupSize < 0 {
		return 0, fmt.Errorf("quant: group size %d; want 0 (per channel) or a positive number of columns", groupSize)
	}
	for i, v := range w {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, fmt.Errorf("quant: weight (%d, %d) is %v", i/cols, i%cols, v)
		}
	}
	if groupSize == 0 || groupSize > cols {
		groupSize = cols
	}
	return groupSize, nil
}

// QuantizeMatrix rounds a [rows, cols] matrix to nearest at bits (1..8)
// with one scale per row and group of groupSize columns (0: per channel),
// each scale max|w|/qmax or, with mse, the clipping search's choice. With
// groupSize 0 and mse false it equals QuantizeWeights on the matrix view.
func QuantizeMatrix(w []float64, rows, cols, bits, groupSize int, mse bool) (*GroupQuant, error) {
	gs, err := checkMatrix(w, rows, cols, bits, groupSize)
	if err != nil {
		return nil, err
	}
	g := newGroupQuant(rows, cols, bits, gs)
	ng := g.Groups()
	for r := 0; r < rows; r++ {
		for k := 0; k < ng; k++ {
			lo, hi := k*gs, min((k+1)*gs, cols)
			s := chooseScale(w[r*cols+lo:r*cols+hi], bits, mse)
			g.Scales[r*ng+k] = s
			for j := lo; j < hi; j++ {
				g.Q[r*cols+j] = roundCode(w[r*cols+j], s, bits)
			}
		}
	}
	return g, nil
}

func newGroupQuant(rows, cols, bits, gs int) *GroupQuant {
	return &GroupQuant{Bits: bits, Rows: rows, Cols: cols, GroupSize: gs,
		Scales: make([]float64, rows*groupCount(cols, gs)), Q: make([]int8, rows*cols)}
}

// roundCode is the project's rounding of w at scale s: the sign (+1 for 0)
// at one bit, else clamp(roundHalfEven(w/s), -qmax, qmax).
func roundCode(w, s float64, bits int) int8 {
	if bits == 1 {
		if w < 0 {
			return -1
		}
		return 1
	}
	qmax := float64(QMax(bits))
	return int8(math.Max(-qmax, math.Min(qmax, math.RoundToEven(w/s))))
}

// chooseScale returns the scale of one channel or group v: at one bit
// mean|v| (the L2-optimal scale of sign codes, so the clipping search has
// nothing to add), else max|v|/qmax or, with mse, the clipping search's
// choice; 1 for all-zero values.
func chooseScale(v []float64, bits int, mse bool) float64 {
	maxAbs, sumAbs := 0.0, 0.0
	for _, x := range v {
		maxAbs = math.Max(maxAbs, math.Abs(x))
		sumAbs += math.Abs(x)
	}
	if maxAbs == 0 {
		return 1
	}
	if bits == 1 {
		return sumAbs / float64(len(v))
	}
	qmax := float64(QMax(bits))
	best := maxAbs / qmax
	if !mse {
		return best
	}
	bestErr := roundingError(v, best, bits)
	for k := 1; k < mseGrid; k++ {
		s := (1 - float64(k)*mseStep) * maxAbs / qmax
		if e := roundingError(v, s, bits); e < bestErr {
			best, bestErr = s, e
		}
	}
	return best
}

// roundingError is ∑(v - s·code(v))².
func roundingError(v []float64, s float64, bits int) float64 {
	e := 0.0
	for _, x := range v {
		d := x - s*float64(roundCode(x, s, bits))
		e += d * d
	}
	return e
}

// ScaleBits is the storage of one scale: fp16.
const ScaleBits = 16

// SizeBits is the storage in bits of a [rows, cols] weight matrix at bits
// with one fp16 scale per row and group of groupSize columns (0: one per
// row): rows·cols·bits + rows·ceil(cols/groupSize)·ScaleBits. Per-channel
// scales count too, so per-channel and per-group options compare on the
// same footing.
func SizeBits(rows, cols, bits, groupSize int) int64 {
	if groupSize <= 0 || groupSize > cols {
		groupSize = cols
	}
	return int64(rows)*int64(cols)*int64(bits) + int64(rows)*int64(groupCount(cols, groupSize))*ScaleBits
}

// WeightQuant returns a per-channel quantization (one group per row) as a
// WeightQuant of the weight tensor (shape, channel axis) the matrix view
// was taken from, for the consumers of per-channel integers (the integer
// engine, the per-channel export). Per-group quantizations are an error.
func (g *GroupQuant) WeightQuant(shape []int, axis int) (*WeightQuant, error) {
	if g.Groups() != 1 {
		return nil, fmt.Errorf("quant: %d groups per channel; want one (per-channel scales)", g.Groups())
	}
	ch, inner := channelLayout(shape, axis)
	if ch != g.Rows || tensorSize(shape) != g.Rows*g.Cols {
		return nil, fmt.Errorf("quant: a %d×%d quantization for a %v weight with channels on axis %d", g.Rows, g.Cols, shape, axis)
	}
	wq := &WeightQuant{Bits: g.Bits, Axis: axis, Scales: append([]float64(nil), g.Scales...), Q: make([]int8, len(g.Q))}
	for i := range wq.Q {
		c, j := matrixIndex(i, ch, inner)
		wq.Q[i] = g.Q[c*g.Cols+j]
	}
	return wq, nil
}
