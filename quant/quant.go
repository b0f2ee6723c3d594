package quant

import (
	"errors"
	"fmt"
	"math"
)

// ErrBits is returned for bit widths the quantizers do not support.
var ErrBits = errors.New("unsupported bit width")

// WeightQuant is a per-channel symmetric quantization of a weight tensor.
type WeightQuant struct {
	Bits   int
	Axis   int       // the channel axis of the original tensor
	Scales []float64 // one per channel (Block 0), else the block scale tensor (BlockScaleShape)
	Q      []int8    // quantized values, same layout as the weights
	// Block, when positive, is the block size along the weight's input
	// axis (BlockedAxis) of blocked codes (blockcodes.go): ONNX
	// DequantizeLinear's block_size. 0: one scale per output channel.
	Block int
}

// QMax is the largest quantized magnitude at b bits (1 for binary).
func QMax(bits int) int {
	if bits <= 1 {
		return 1
	}
	return 1<<(bits-1) - 1
}

// channelLayout returns the number of channels along axis and the number
// of elements after it: flat index i is in channel (i/inner)%channels.
func channelLayout(shape []int, axis int) (channels, inner int) {
	channels = shape[axis]
	inner = 1
	for _, d := range shape[axis+1:] {
		inner *= d
	}
	return channels, inner
}

// QuantizeWeights quantizes w (shape given) per channel along axis at bits
// in 1..8 and returns the quantization; Dequantize gives the float values.
func QuantizeWeights(w []float64, shape []int, axis, bits int) (*WeightQuant, error) {
	if bits < 1 || bits > 8 {
		return nil, fmt.Errorf("quant: %d-bit weights: %w (1 to 8)", bits, ErrBits)
	}
	if axis < 0 || axis >= len(shape) {
		return nil, fmt.Errorf("quant: channel axis %d of a rank-%d tensor", axis, len(shape))
	}
	ch, inner := channelLayout(shape, axis)
	wq := &WeightQuant{Bits: bits, Axis: axis, Scales: make([]float64, ch), Q: make([]int8, len(w))}
	qmax := float64(QMax(bits))
	// Accumulate per-channel statistics in flat order.
	maxAbs := make([]float64, ch)
	sumAbs := make([]float64, ch)
	count := make([]int, ch)
	for i, v := range w {
		c := (i / inner) % ch
		a := math.Abs(v)
		if math.IsNaN(a) || math.IsInf(a, 0) {
			return nil, fmt.Errorf("quant: weight %d is %v", i, v)
		}
		maxAbs[c] = math.Max(maxAbs[c], a)
		sumAbs[c] += a
		count[c]++
	}
	for c := range wq.Scales {
		switch {
		case bits == 1 && sumAbs[c] > 0:
			wq.Scales[c] = sumAbs[c] / float64(count[c])
		case bits > 1 && maxAbs[c] > 0:
			wq.Scales[c] = maxAbs[c] / qmax
		default:
			wq.Scales[c] = 1
		}
	}
	for i, v := range w {
		c := (i / inner) % ch
		if bits == 1 {
			if v < 0 {
				wq.Q[i] = -1
			} else {
				wq.Q[i] = 1
			}
			continue
		}
		q := math.RoundToEven(v / wq.Scales[c])
		q = math.Max(-qmax, math.Min(qmax, q))
		wq.Q[i] = int8(q)
	}
	return wq, nil
}

// Dequantize writes the quantized weights' float values into dst.
func (wq *WeightQuant) Dequantize(dst []float64, shape []int) {
	if wq.Block > 0 {
		wq.dequantizeBlocked(dst, shape)
		return
	}
	ch, inner := channelLayout(shape, wq.Axis)
	for i, q := range wq.Q {
		dst[i] = float64(q) * wq.Scales[(i/inner)%ch]
	}
}

// FakeQuantWeights returns Q_b(w) as floats.
func FakeQuantWeights(w []float64, shape []int, axis, bits int) ([]float64, error) {
	wq, err := QuantizeWeights(w, shape, axis, bits)
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(w))
	wq.Dequantize(out, shape)
	return out, nil
}

// SquaredError returns ||Q_b(w) - w||^2.
func SquaredError(w []float64, shape []int, axis, bits int) (float64, error) {
	q, err := FakeQuantWeights(w, shape, axis, bits)
	if err != nil {
		return 0, err
	}
	s := 0.0
	for i := range w {
		d := q[i] - w[i]
		s += d * d
	}
	return s, nil
}

// ActQuant is an asymmetric per-tensor uint8 quantization of activations.
type ActQuant struct {
	Scale     float64
	ZeroPoint int
}

// ActFromRange makes the uint8 activation quantizer for an observed range,
// widened to include 0 as the convention says.
func ActFromRange(lo, hi float64) ActQuant {
	lo = math.Min(0, lo)
	hi = math.Max(0, hi)
	if hi-lo <= 0 {
		return ActQuant{Scale: 1, ZeroPoint: 0}
	}
	s := (hi - lo) / 255
	zp := math.RoundToEven(-lo / s)
	zp = math.Max(0, math.Min(255, zp))
	return ActQuant{Scale: s, ZeroPoint: int(zp)}
}

// Quantize maps x to its uint8 code.
func (a ActQuant) Quantize(x float64) uint8 {
	q := math.RoundToEven(x/a.Scale) + float64(a.ZeroPoint)
	// Plain comparisons clamp exactly as math.Max(0, math.Min(255, q))
	// does for every q, NaN included (it fails both and converts alike),
	// without their signed-zero and NaN branches: this is the inner loop
	// of every quantization.
	if q < 0 {
		q = 0
	} else if q > 255 {
		q = 255
	}
	return uint8(q)
}

// Fake returns the dequantized value of x's code.
func (a ActQuant) Fake(x float64) float64 {
	return float64(int(a.Quantize(x))-a.ZeroPoint) * a.Scale
}

// Dyadic expresses a positive multiplier M as m·2^-shift with m a 31-bit
// integer in [2^30, 2^31) (the most precise such pair), for requantization
// in integer arithmetic. shift is kept in [0, 62]: for tiny M, m is reduced
// (losing precision); M of 2^31 or more is an error.
func Dyadic(M float64) (m int32, shift int, err error) {
	if !(M > 0) || math.IsInf(M, 0) || M >= 1<<31 {
		return 0, 0, fmt.Errorf("quant: requantization multiplier %g outside (0, 2^31)", M)
	}
	frac, exp := math.Frexp(M) // M = frac·2^exp, frac in [0.5, 1)
	mm := math.Round(frac * (1 << 31))
	shift = 31 - exp
	if mm == 1<<31 { // rounding overflow
		mm /= 2
		shift--
	}
	for shift > 62 {
		mm = math.Round(mm / 2)
		shift--
	}
	if shift < 0 {
		return 0, 0, fmt.Errorf("quant: requantization multiplier %g too large for a dyadic form", M)
	}
	return int32(mm), shift, nil
}
