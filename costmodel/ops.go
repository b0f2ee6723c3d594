package costmodel

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"mpsearch/kernels"
)

// Operations between layers that the integer engine (package intengine)
// runs on uint8 codes, or on floats at the model's input and output. They
// cost no multiply-accumulates but a few percent of a small CNN's latency.
const (
	OpQuantize   = "QuantizeLinear"   // float input to uint8 codes
	OpDequantize = "DequantizeLinear" // int32 or uint8 output to float
	OpMaxPool    = "MaxPool"
	OpAvgPool    = "AveragePool" // also GlobalAveragePool
	OpAdd        = "Add"         // two uint8 inputs rescaled dyadically
	OpClamp      = "Clamp"       // a ReLU or Clip not fused into a layer
)

// OpShape is one operation between layers, per sample.
type OpShape struct {
	Name string // the ONNX node name
	Op   string // one of the Op constants
	// Elements is the number of output values per sample (for
	// QuantizeLinear, the input values).
	Elements int
	// Taps is the number of window taps per output of a pool inside the
	// input (KH*KW without padding).
	Taps int
	// Max2x2 marks a MaxPool with 2x2 windows, stride 2 and no padding,
	// which the engine runs without tap lists.
	Max2x2 bool
}

// Validate checks that the fields are consistent.
func (o OpShape) Validate() error {
	switch o.Op {
	case OpQuantize, OpDequantize, OpAdd, OpClamp:
	case OpMaxPool, OpAvgPool:
		if o.Taps < 1 && !o.Max2x2 {
			return fmt.Errorf("%w: %s %q: %d taps per window; want at least 1", ErrShape, o.Op, o.Name, o.Taps)
		}
	default:
		return fmt.Errorf("%w: operation %q of %q; want %s, %s, %s, %s, %s or %s", ErrShape, o.Op, o.Name, OpQuantize, OpDequantize, OpMaxPool, OpAvgPool, OpAdd, OpClamp)
	}
	if o.Elements < 1 {
		return fmt.Errorf("%w: %s %q: %d elements; want at least 1", ErrShape, o.Op, o.Name, o.Elements)
	}
	return nil
}

// OpsModel is the time model of the operations between layers: a constant
// per operation plus a cost per element (per output and per window tap for
// pools), measured on replicas of the integer engine's loops.
type OpsModel struct {
	CallNs float64 `yaml:"call_ns"`
	// QuantizeNsPerElement is per float input value rounded to uint8.
	QuantizeNsPerElement float64 `yaml:"quantize_ns_per_element"`
	// DequantizeNsPerElement is per int32 output value scaled to float.
	DequantizeNsPerElement float64 `yaml:"dequantize_ns_per_element"`
	// MaxPool2x2NsPerOutput is per output of the 2x2 stride-2 max pool.
	MaxPool2x2NsPerOutput float64 `yaml:"maxpool2x2_ns_per_output"`
	// PoolNsPerOutput and PoolNsPerTap model the general pools.
	PoolNsPerOutput float64 `yaml:"pool_ns_per_output"`
	PoolNsPerTap    float64 `yaml:"pool_ns_per_tap"`
	AddNsPerElement float64 `yaml:"add_ns_per_element"`
	// ClampNsPerElement is per element of a standalone ReLU or Clip.
	ClampNsPerElement float64 `yaml:"clamp_ns_per_element"`
}

func (m *OpsModel) nums() []struct {
	name string
	v    float64
} {
	return []struct {
		name string
		v    float64
	}{
		{"ops.call_ns", m.CallNs}, {"ops.quantize_ns_per_element", m.QuantizeNsPerElement},
		{"ops.dequantize_ns_per_element", m.DequantizeNsPerElement}, {"ops.maxpool2x2_ns_per_output", m.MaxPool2x2NsPerOutput},
		{"ops.pool_ns_per_output", m.PoolNsPerOutput}, {"ops.pool_ns_per_tap", m.PoolNsPerTap},
		{"ops.add_ns_per_element", m.AddNsPerElement}, {"ops.clamp_ns_per_element", m.ClampNsPerElement},
	}
}

var requiredOps = []string{"call_ns", "quantize_ns_per_element", "dequantize_ns_per_element", "maxpool2x2_ns_per_output", "pool_ns_per_output", "pool_ns_per_tap", "add_ns_per_element", "clamp_ns_per_element"}

// opNs predicts one operation for a batch in nanoseconds.
func (m *OpsModel) opNs(o OpShape, batch int) float64 {
	e := float64(batch) * float64(o.Elements)
	var per float64
	switch o.Op {
	case OpQuantize:
		per = m.QuantizeNsPerElement
	case OpDequantize:
		per = m.DequantizeNsPerElement
	case OpMaxPool, OpAvgPool:
		if o.Max2x2 && o.Op == OpMaxPool {
			per = m.MaxPool2x2NsPerOutput
		} else {
			per = m.PoolNsPerOutput + float64(o.Taps)*m.PoolNsPerTap
		}
	case OpAdd:
		per = m.AddNsPerElement
	case OpClamp:
		per = m.ClampNsPerElement
	}
	return m.CallNs + e*per
}

// PredictOps returns the predicted latency of the operations between
// layers for a batch of batch samples (0 means 1).
func PredictOps(p *Profile, ops []OpShape, batch int) (time.Duration, error) {
	ns, err := predictOpsNs(p, ops, batch)
	if err != nil {
		return 0, err
	}
	return time.Duration(math.Round(ns)), nil
}

func predictOpsNs(p *Profile, ops []OpShape, batch int) (float64, error) {
	batch = max(batch, 1)
	var t float64
	for _, o := range ops {
		if err := o.Validate(); err != nil {
			return 0, err
		}
		t += p.Ops.opNs(o, batch)
	}
	return t, nil
}

// PredictNetwork returns the predicted latency of a whole integer-only run:
// the layers (PredictModel) plus the operations between them (PredictOps).
func PredictNetwork(p *Profile, shapes []LayerShape, bits []int, ops []OpShape, batch int) (time.Duration, error) {
	if len(bits) != len(shapes) {
		return 0, fmt.Errorf("%w: %d bit widths for %d layers", ErrBits, len(bits), len(shapes))
	}
	var total float64
	for i, s := range shapes {
		t, err := predictNs(p, s, bits[i], batch)
		if err != nil {
			return 0, err
		}
		total += t
	}
	t, err := predictOpsNs(p, ops, batch)
	if err != nil {
		return 0, err
	}
	return time.Duration(math.Round(total + t)), nil
}

// Replicas of the engine's loops between layers (package intengine keeps
// them private). Each writes the same values the engine's step writes.

// quantizeInput rounds x/scale half to even, adds the zero point and clamps
// to [0, 255].
func quantizeInput(dst []uint8, x []float64, scale float64, zero int) {
	zp := float64(zero)
	for i, v := range x {
		q := math.RoundToEven(v/scale) + zp
		switch {
		case q >= 255:
			dst[i] = 255
		case q > 0:
			dst[i] = uint8(q)
		default:
			dst[i] = 0
		}
	}
}

// dequantizeAcc scales int32 accumulators of per outputs per sample (the
// last of them the channel axis) by their channel's scale.
func dequantizeAcc(out []float64, acc []int32, scale []float64) {
	n := len(scale)
	for i, a := range acc[:len(out)] {
		out[i] = float64(a) * scale[i%n]
	}
}

// maxPool2x2 pools planes of h x w into oh x ow with 2x2 windows, stride 2.
func maxPool2x2(dst, src []uint8, h, w, oh, ow int) {
	for p := 0; p < len(dst)/(oh*ow); p++ {
		plane := src[p*h*w:]
		out := dst[p*oh*ow : (p+1)*oh*ow]
		for oy := 0; oy < oh; oy++ {
			r0 := plane[2*oy*w : 2*oy*w+2*ow]
			r1 := plane[(2*oy+1)*w : (2*oy+1)*w+2*ow]
			o := out[oy*ow : (oy+1)*ow]
			for ox := range o {
				o[ox] = max(r0[2*ox], r0[2*ox+1], r1[2*ox], r1[2*ox+1])
			}
		}
	}
}

// maxPoolTaps pools planes of hw values into len(first)-1 outputs per plane,
// output o taking the maximum over offs[first[o]:first[o+1]].
func maxPoolTaps(dst, src []uint8, hw int, offs, first []int32) {
	ohw := len(first) - 1
	for p := 0; p < len(dst)/ohw; p++ {
		plane := src[p*hw : (p+1)*hw]
		out := dst[p*ohw : (p+1)*ohw]
		for o := range out {
			var m uint8
			for _, t := range offs[first[o]:first[o+1]] {
				m = max(m, plane[t])
			}
			out[o] = m
		}
	}
}

// addCodes adds two uint8 tensors rescaled by ma*2^-shift and mb*2^-shift.
func addCodes(y, a, b []uint8, ma, mb, za, zb int64, shift int, zy int32) {
	for i := range y {
		acc := ma*(int64(a[i])-za) + mb*(int64(b[i])-zb)
		y[i] = kernels.Requantize(acc, 1, shift, zy, 0, 255)
	}
}

func clampCodes(y, x []uint8, lo, hi uint8) {
	for i, v := range x {
		y[i] = min(max(v, lo), hi)
	}
}

// poolTaps returns the tap offsets of square k x k windows with stride s and
// padding pad over an h x h plane, and the output side.
func poolTaps(h, k, s, pad int) (offs, first []int32, oh int) {
	oh = (h+2*pad-k)/s + 1
	first = []int32{0}
	for oy := 0; oy < oh; oy++ {
		for ox := 0; ox < oh; ox++ {
			for i := 0; i < k; i++ {
				for j := 0; j < k; j++ {
					y, x := oy*s-pad+i, ox*s-pad+j
					if y >= 0 && y < h && x >= 0 && x < h {
						offs = append(offs, int32(y*h+x))
					}
				}
			}
			first = append(first, int32(len(offs)))
		}
	}
	return offs, first, oh
}

// measureOps fits OpsModel: every operation is timed at a small and a
// large size; the slope is its per-element cost and the median intercept
// the per-operation constant. The general pools are timed with 2x2 and
// 3x3 windows to separate the per-output and per-tap costs.
func measureOps(ctx context.Context, mo MeasureOptions, rng *rand.Rand) (OpsModel, error) {
	// Sizes: planes of side 8 and 32 (64 and 1024 values) times 16
	// channels, as between the layers of a small CNN.
	const ch = 16
	sides := [2]int{8, 32}
	type op struct {
		name string
		make func(side int) (f func() error, elems float64)
	}
	ops := []op{
		{OpQuantize, func(side int) (func() error, float64) {
			n := ch * side * side
			x := make([]float64, n)
			for i := range x {
				x[i] = rng.NormFloat64()
			}
			dst := make([]uint8, n)
			return func() error { quantizeInput(dst, x, 0.02, 128); return nil }, float64(n)
		}},
		{OpDequantize, func(side int) (func() error, float64) {
			n := ch * side * side
			acc := make([]int32, n)
			for i := range acc {
				acc[i] = int32(rng.IntN(1<<20)) - 1<<19
			}
			scale := make([]float64, side)
			for i := range scale {
				scale[i] = 1e-4 * (1 + rng.Float64())
			}
			out := make([]float64, n)
			return func() error { dequantizeAcc(out, acc, scale); return nil }, float64(n)
		}},
		{"maxpool2x2", func(side int) (func() error, float64) {
			src := randBytes(rng, ch*side*side)
			dst := make([]uint8, ch*side*side/4)
			return func() error { maxPool2x2(dst, src, side, side, side/2, side/2); return nil }, float64(len(dst))
		}},
		{OpAdd, func(side int) (func() error, float64) {
			n := ch * side * side
			a, b, y := randBytes(rng, n), randBytes(rng, n), make([]uint8, n)
			return func() error { addCodes(y, a, b, 1<<30, 3<<28, 3, 7, 31, 5); return nil }, float64(n)
		}},
		{OpClamp, func(side int) (func() error, float64) {
			n := ch * side * side
			x, y := randBytes(rng, n), make([]uint8, n)
			return func() error { clampCodes(y, x, 20, 240); return nil }, float64(n)
		}},
	}
	var m OpsModel
	var intercepts []float64
	for _, o := range ops {
		var ts, es [2]float64
		for i, side := range sides {
			f, e := o.make(side)
			t, err := timeCall(ctx, f, mo)
			if err != nil {
				return m, fmt.Errorf("costmodel: timing %s: %w", o.name, err)
			}
			ts[i], es[i] = float64(t.Median), e
		}
		slope := max(0, (ts[1]-ts[0])/(es[1]-es[0]))
		intercepts = append(intercepts, max(0, ts[0]-slope*es[0]))
		slope = roundSig(slope, 4)
		switch o.name {
		case OpQuantize:
			m.QuantizeNsPerElement = slope
		case OpDequantize:
			m.DequantizeNsPerElement = slope
		case "maxpool2x2":
			m.MaxPool2x2NsPerOutput = slope
		case OpAdd:
			m.AddNsPerElement = slope
		case OpClamp:
			m.ClampNsPerElement = slope
		}
	}
	// General pools: per output, with 2x2 (stride 2) and 3x3 (stride 1,
	// padding 1) windows over the large planes.
	side := sides[1]
	src := randBytes(rng, ch*side*side)
	var perOut [2]float64
	var taps [2]float64
	for i, w := range [2][3]int{{2, 2, 0}, {3, 1, 1}} {
		offs, first, oh := poolTaps(side, w[0], w[1], w[2])
		dst := make([]uint8, ch*oh*oh)
		t, err := timeCall(ctx, func() error { maxPoolTaps(dst, src, side*side, offs, first); return nil }, mo)
		if err != nil {
			return m, fmt.Errorf("costmodel: timing pooling: %w", err)
		}
		perOut[i] = float64(t.Median) / float64(len(dst))
		taps[i] = float64(len(offs)) / float64(oh*oh)
	}
	tap := max(0, (perOut[1]-perOut[0])/(taps[1]-taps[0]))
	m.PoolNsPerTap = roundSig(tap, 4)
	m.PoolNsPerOutput = roundSig(max(0, perOut[0]-tap*taps[0]), 4)
	slices.Sort(intercepts)
	m.CallNs = roundSig(intercepts[len(intercepts)/2], 4)
	return m, nil
}
