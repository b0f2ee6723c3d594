// Package export writes mpsearch's mixed-precision result as an ONNX QDQ
// model: the float network with QuantizeLinear/DequantizeLinear nodes that
// make any ONNX runtime compute exactly the project's simulated
// quantization (quant.WeightSetter for weights, quant.ActHook for
// activations).
//
// Layout of the exported graph, for every layer of net.Layers() (a Conv,
// Gemm or MatMul with a weight initializer W):
//
//		x ──QuantizeLinear(x_scale, x_zero_point)──DequantizeLinear──┐   (when Config.Act names the layer)
//		W_quantized ──DequantizeLinear(W_scale, W_zero_point, axis)──┼──> layer ──> ...
//		bias (FLOAT, unchanged) ─────────────────────────────────────┘
//
//	  - W_quantized holds the integers of Config.Weights (a
//	    quant.WeightCodes: round to nearest by default, quant.QuantizeWeights
//	    of net.Model's weight; or GPTQ's): symmetric per output channel,
//	    values in [-(2^(b-1)-1), 2^(b-1)-1] (±1 for binary weights, whose
//	    scale is the channel's mean |w| by default). It is INT8, or INT4
//	    for b <= 4 when the exported opset is 21 or later. W_scale is FLOAT
//	    [Cout] (quant's scales rounded to float32), W_zero_point is zeros of
//	    W_quantized's type, and axis is the layer's ChannelAxis (0 for Conv
//	    and Gemm with transB=1, the last axis for MatMul and Gemm without).
//	  - Blocked codes (quant.WeightQuant.Block > 0, opset 21 only): the
//	    DequantizeLinear has block_size = Block and axis = the weight's
//	    input axis (quant.BlockedAxis), W_scale and W_zero_point have the
//	    scale tensor's shape (quant.BlockScaleShape); the scales are stored
//	    as a FLOAT16 initializer W_scale_fp16 (their values are float16,
//	    quant.RoundFP16) and W_scale is its Cast to FLOAT (exact), so the
//	    DequantizeLinear computes float32(q·s) in FLOAT; dequantizing the
//	    file by ONNX's definition gives exactly the simulated weights.
//	  - A source with bias correction (quant.BiasShifter) gives each
//	    quantized layer with a bias a new FLOAT initializer
//	    float32(bias + shift), the simulation's bias.
//	  - x_scale is a FLOAT scalar and x_zero_point a UINT8 scalar: the
//	    asymmetric per-tensor quant.ActQuant of Config.Act. Layers reading the
//	    same value with the same quantizer share one pair of nodes.
//	  - Names follow ONNX Runtime's quantizer: W_quantized, W_scale,
//	    W_zero_point, W_DequantizeLinear(_Output), x_QuantizeLinear(_Output),
//	    x_DequantizeLinear(_Output), with _1, _2... added on a clash.
//	  - Biases stay FLOAT. An INT32 bias at scale S_w·S_x (DESIGN.md's
//	    integer convention) would be rounded to that grid, which the
//	    simulated quantization does not do; a float bias keeps the exported
//	    model equal to the simulation and to the fixtures' convention, and
//	    integer-only engines derive the INT32 bias themselves.
//	  - Layer outputs, ReLU, pooling and the graph output are not quantized
//	    (no QuantizeLinear after a layer), so a runtime computes each layer in
//	    float on dequantized inputs and weights: the simulated result up to
//	    float32 rounding.
//
// Compact (compact.go) is the export of the command line: it raises the
// model to opset 21 when some layer has weights of 4 bits or fewer (INT4,
// two a byte, so the file shrinks with the bits) or blocked codes; a model
// whose operators cannot be carried to opset 21 is written at its own
// opset with INT8 storage and a one-line note saying why.
//
// Opsets: per-channel DequantizeLinear needs opset 13, so models of an
// older opset are raised to 13 (and to 21 with Config.Opset21). Nodes whose
// operator changed meaning in between are converted (Clip/Pad attributes to
// inputs, Squeeze/Unsqueeze/ReduceSum axes and ReduceMean axes from 18 to
// inputs, legacy broadcast attributes of Add/Sub/Mul/Div/Gemm/PRelu) or
// refused with an error wrapping ErrUnsupported (for instance a Softmax over
// a non-last axis before opset 13). Opset 21 models are written with IR
// version 10, as INT4 requires.
//
// Invariants: QDQ never modifies the network or net.Model (tensors are
// shared and replaced, never written); the same network and Config give a
// byte-identical file (node and initializer order follow the source graph).
// The weights exported are those of net.Model, not net.Params(): a network
// whose parameters hold simulated-quantized values (quant.WeightSetter)
// still exports from its float weights.
package export
