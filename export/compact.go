package export

import (
	"errors"
	"fmt"

	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/quant"
)

// Int4Bits is the widest weight stored as INT4 (at opset Int4Opset or
// later); wider weights are INT8.
const Int4Bits = 4

// Narrow reports whether some layer of bits has quantized weights of
// Int4Bits or fewer, which only INT4 (opset 21) stores in less than a
// byte each.
func Narrow(bits []int) bool {
	for _, b := range bits {
		if !floatBits(b) && quant.OptionBits(b) <= Int4Bits {
			return true
		}
	}
	return false
}

// Compact is QDQ for a file that shrinks with the bits: when some layer's
// weights have Int4Bits or fewer, or blocked codes (which need
// DequantizeLinear's block_size), it sets cfg.Opset21, so that they are
// stored as INT4 (two a byte). A model the export cannot raise to opset 21
// (an operator not known to keep its meaning there: ErrUnsupported) is
// exported as cfg says instead, with int8 storage, and note says why in
// one line; note is empty otherwise. The model computes the same values
// either way (INT4 holds exactly the codes of 4 bits or fewer).
func Compact(net *network.Network, cfg Config) (m *onnx.Model, note string, err error) {
	if cfg.Opset21 || !Narrow(cfg.Bits) && !blocked(net, cfg) {
		m, err = QDQ(net, cfg)
		return m, "", err
	}
	cfg.Opset21 = true
	m, err = QDQ(net, cfg)
	if err == nil || !errors.Is(err, ErrUnsupported) {
		return m, "", err
	}
	cfg.Opset21 = false
	m, err2 := QDQ(net, cfg)
	if err2 != nil {
		return nil, "", err2
	}
	why := err.Error()
	var re *raiseError
	if errors.As(err, &re) {
		why = fmt.Sprintf("node %q (%s): %s", re.node, re.op, re.why)
	}
	return m, fmt.Sprintf("weights of %d bits or fewer stored as INT8 at opset %d, not INT4 at opset %d: %s", Int4Bits, m.Opset, Int4Opset, why), nil
}

// blocked reports whether cfg.Weights gives some quantized layer blocked
// codes (errors are left to QDQ).
func blocked(net *network.Network, cfg Config) bool {
	if cfg.Weights == nil {
		return false
	}
	for li, b := range cfg.Bits {
		if floatBits(b) || quant.ValidOption(b) != nil || li >= len(net.Layers()) {
			continue
		}
		if wq, err := cfg.Weights.Codes(li, b); err == nil && wq.Block > 0 {
			return true
		}
	}
	return false
}
