package costmodel

import (
	"fmt"
	"math"
	"time"
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
	// which the engine runs without tap lists when channels-first.
	Max2x2 bool
	// NHWC: a pool on channels-last tensors (intengine.StepLayouts), which
	// takes each tap as a run of Channels bytes.
	NHWC     bool
	Channels int
}

// Validate checks that the fields are consistent.
func (o OpShape) Validate() error {
	switch o.Op {
	case OpQuantize, OpDequantize, OpAdd, OpClamp:
	case OpMaxPool, OpAvgPool:
		if o.Taps < 1 && !o.Max2x2 {
			return fmt.Errorf("%w: %s %q: %d taps per window; want at least 1", ErrShape, o.Op, o.Name, o.Taps)
		}
		if o.NHWC && (o.Channels < 1 || o.Elements%o.Channels != 0) {
			return fmt.Errorf("%w: %s %q: %d elements in %d channels", ErrShape, o.Op, o.Name, o.Elements, o.Channels)
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
// pools), measured on the integer engine's own steps (measureOps).
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
	// A channels-last pool costs, per output pixel and tap,
	// PoolNHWCNsPerPixelTap (a call on the tap's run of channels) plus
	// PoolNHWCNsPerByteTap per channel in whole 32-byte blocks (the
	// vector maximum) and PoolNHWCNsPerTailByte per channel of the rest
	// (a byte loop, whose branches the data decide); an average pool,
	// which sums every channel in a byte loop, costs the tail rate per
	// channel and adds PoolNsPerOutput per output value.
	PoolNHWCNsPerPixelTap float64 `yaml:"pool_nhwc_ns_per_pixel_tap"`
	PoolNHWCNsPerByteTap  float64 `yaml:"pool_nhwc_ns_per_byte_tap"`
	PoolNHWCNsPerTailByte float64 `yaml:"pool_nhwc_ns_per_tail_byte"`
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
		{"ops.pool_nhwc_ns_per_pixel_tap", m.PoolNHWCNsPerPixelTap}, {"ops.pool_nhwc_ns_per_byte_tap", m.PoolNHWCNsPerByteTap},
		{"ops.pool_nhwc_ns_per_tail_byte", m.PoolNHWCNsPerTailByte},
	}
}

var requiredOps = []string{"call_ns", "quantize_ns_per_element", "dequantize_ns_per_element", "maxpool2x2_ns_per_output", "pool_ns_per_output", "pool_ns_per_tap", "add_ns_per_element", "clamp_ns_per_element", "pool_nhwc_ns_per_pixel_tap", "pool_nhwc_ns_per_byte_tap", "pool_nhwc_ns_per_tail_byte"}

// vectorBytes is the block of kernels.MaxBytes's vector loop.
const vectorBytes = 32

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
		if o.NHWC {
			taps := float64(o.Taps)
			if o.Max2x2 {
				taps = 4
			}
			pixTaps := e / float64(o.Channels) * taps
			vec := float64(o.Channels &^ (vectorBytes - 1))
			if o.Op == OpAvgPool {
				return m.CallNs + pixTaps*(m.PoolNHWCNsPerPixelTap+float64(o.Channels)*m.PoolNHWCNsPerTailByte) + e*m.PoolNsPerOutput
			}
			return m.CallNs + pixTaps*(m.PoolNHWCNsPerPixelTap+vec*m.PoolNHWCNsPerByteTap+(float64(o.Channels)-vec)*m.PoolNHWCNsPerTailByte)
		}
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
// the layers (PredictModel) plus the operations between them (PredictOps),
// with the share of the profile's cold terms (PredictInPass,
// PredictOpsInPass) that the pass pays (ColdShare).
func PredictNetwork(p *Profile, shapes []LayerShape, bits []int, ops []OpShape, batch int) (time.Duration, error) {
	if len(bits) != len(shapes) {
		return 0, fmt.Errorf("%w: %d bit widths for %d layers", ErrBits, len(bits), len(shapes))
	}
	share := ColdShare(p, shapes, bits, ops)
	var total float64
	for i, s := range shapes {
		t, err := predictNs(p, s, bits[i], batch)
		if err != nil {
			return 0, err
		}
		total += t
		kb, _ := KernelBits(bits[i])
		total += p.coldLayerNs(s, kb, max(batch, 1), share)
	}
	t, err := predictOpsNs(p, ops, batch)
	if err != nil {
		return 0, err
	}
	for _, o := range ops {
		t += p.coldOpNs(o, share)
	}
	return time.Duration(math.Round(total + t)), nil
}
