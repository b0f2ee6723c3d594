// Package intengine runs a quantized network with integer arithmetic only:
// Compile turns a float network (package network, BatchNorm already folded)
// and a per-layer choice of weight bit widths into a program of uint8
// tensors and int32 accumulators executed by package kernels; floats appear
// only when the input is quantized, when the output is dequantized, and in
// float fallback steps (below). Reference runs the same quantized model as
// simulated quantization in float64, for exactness tests.
//
// # Where quantization happens
//
// Every tensor between operators is uint8 with an asymmetric per-tensor
// quantizer (S, z): real value = (q - z)·S. The quantization points, each
// with its own quantizer from the range observed on calibration data
// (ObserveRanges, QuantPoints; ObserveRangesCalib chooses the range by a
// calibration method from quant.ActStats, the simulation's code, merged
// exactly across threads; quant.ActFromRange: the range is widened to
// contain 0, S = (hi - lo)/255, z = round(-lo/S); the float pass is
// Network.Infer, whose hook sees each point as the input of its first
// reader (observe.go: each value once, dropped after its last reader),
// or Forward when the hook cannot name the readers; a batch whose pass
// would hold more than rangePassBytes is observed in sub-batches, which
// bounds the memory and moves a range by at most the float32 products'
// rounding), are:
//
//   - the model input: q = clamp(roundHalfEven(x/S) + z, 0, 255) (the only
//     float-to-integer conversion, quant.ActQuant.Quantize);
//   - the output of every Conv/Gemm/MatMul, after a fused ReLU or Clip: a
//     ReLU or Clip that is the only consumer of the layer's output is folded
//     into the requantization bounds, and the range is that of the
//     activation's output;
//   - the output of every Add, after a fused ReLU/Clip in the same way;
//   - the output of every Concat;
//   - the output of every float fallback step.
//
// MaxPool, AveragePool, GlobalAveragePool, a standalone ReLU or Clip, and
// the views Flatten, Reshape, Squeeze, Unsqueeze, Identity and Dropout keep
// their input's quantizer. So the output scale of a layer is the scale of
// the next layer's input whenever only such operators lie between them, as
// in the fixture LeNet, where each layer input's quantizer equals the one
// package quant derives from the range at that input.
//
// # Float fallback steps
//
// A node with no integer path runs in float between quantized tensors:
// Sigmoid, Mul (SiLU, squeeze-excitation), HardSwish, a BatchNormalization
// the float engine could not fold (DenseNet's, after a Concat), ReduceMean,
// Pad, an Add with a constant or broadcast addend, a Clip whose bounds are
// not constants, pools with windows the integer pools refuse, a MatMul of
// two activations, and any other operator the float engine runs. Its uint8
// inputs are dequantized, x = (q - z)·S in float64, the network package's
// own operator runs on them (a one-node network built from the node, its
// attributes and its constant inputs), and the result is quantized with the
// output's own quantizer, q = Quantize(y) (round half to even, clamp). The
// output is a quantization point (QuantPoints lists it; its range is
// observed on calibration data like any other). Model.FloatNodes lists
// these nodes; Steps shows them as "Op (float)". An int32 accumulator (the
// logits layer) cannot feed one. An elementwise operator (Sigmoid, Mul,
// HardSwish... with one or two data inputs of the output's shape and no
// constant input) is tabulated at Compile: the same operator runs once on
// every input code (or pair of codes), dequantized as above, and Run looks
// the output codes up; this equals running it on the tensor, element by
// element. A Mul of a [C, H, W] tensor by a [C, 1, 1] one (the gate of
// squeeze-excitation, in either order) runs as a channel Mul: the same
// float64 product of the two dequantized values (x·g = g·x exactly) and
// the same Quantize, without the one-node network, each channel
// tabulated over the 256 codes of x when it has more than 256 positions.
//
// Layer biases may be parameters or constants of the graph: torch.onnx
// writes the biases BatchNorm folding creates, when several are equal, as
// Identity nodes of one shared initializer; the float engine folds those to
// constants, and the engine quantizes them like parameter biases.
//
// The last layer, when it produces the graph output, is not requantized:
// its int32 accumulators (bias included) are the integer logits, and the
// float output is acc·S_x·S_w[c]. Any other output is a uint8 tensor,
// dequantized as (q - z)·S.
//
// # Formulas
//
// Weights, b bits, per output channel c: the codes and scales of
// Config.Weights (a quant.WeightCodes, shared by a Model's variants), by
// default round to nearest (quant.QuantizeWeights of the weights at
// Compile): S_w[c] = max|W_c| / (2^(b-1) - 1), codes in
// [-(2^(b-1)-1), 2^(b-1)-1]; one bit is binary, ±1 with S_w[c] = mean|W_c|.
// GPTQ codes (quant.NewGPTQCodes) have the same scales and ranges, so
// every formula below holds for them unchanged. They are packed once with
// kernels.PackWeights: 8 bits (and 5 to 7) on the 8-bit kernel, 3 and 4 bits
// on the 4-bit kernel, 2 bits (codes {-1, 0, 1}) on the ternary kernel,
// 1 bit on the binary kernel. A source with bias correction
// (quant.BiasShifter, quant.WithBiasCorrection) adds its shift at the
// layer's width to the float bias of every layer with a bias parameter
// before the bias is rounded below, as package quant's simulation and the
// QDQ export do.
//
// Conv/Gemm/MatMul with input quantizer (S_x, z_x) and output quantizer
// (S_y, z_y):
//
//	bias_q[c] = round(b[c] / (S_x·S_w[c]))                  (int32, ties away)
//	acc[c]    = Σ_k (x_k - z_x)·W_q[c][k] + bias_q[c]        (exact int32)
//	M[c]      = S_x·S_w[c]/S_y = m[c]·2^-s[c]                (quant.Dyadic, m < 2^31)
//	y         = clamp(z_y + round(acc·m[c] / 2^s[c]), lo, hi)  (kernels.Requantize)
//
// with round to nearest, ties away from zero, and [lo, hi] = [0, 255]
// narrowed by a fused activation to the codes of its bounds (ReLU: lo = z_y;
// Clip(a, b): lo = Quantize(a), hi = Quantize(b)). Convolutions run as
// an im2col (kernels.Im2Col or kernels.Im2ColNHWC, padding with z_x, so
// padding contributes zero; a one-channel input, whose bytes and patch
// columns are the same in both layouts, always takes Im2Col) and
// kernels.GEMMRequant over a chunk of images, grouped convolutions once
// per group; a 1x1 convolution with
// stride 1 on a channels-last tensor is one GEMMRequant on the tensor
// itself, and a depthwise convolution between channels-last tensors is
// kernels.DepthwiseNHWC, which sums the same products over the taps
// inside the image (a padded tap adds (z_x - z_x)·w = 0) and requantizes
// them with the same epilogue. The order of the products within a sum
// differs between these paths (channels-last patches are ordered
// (ky, kx, c), the weights permuted to match), but every sum is exact in
// int32 (kernels' bound), so the codes do not depend on the path.
// Compile rejects a bias that could overflow int32. Each layer's
// kernels.Requant is frozen when the layer is built (Requant.Freeze): the
// epilogue's per-channel constants are computed once, not on every call;
// a layer's bias, multipliers and shifts never change afterwards.
//
// Layers with few GEMM rows (at most 4 per sample: Gemm and MatMul on one
// row, convolutions on maps of up to 4 pixels) also pack their weights at
// their width for the stream kernels (kernels.PackStream; 3-bit codes on
// the 4-bit format, 2-bit ones ternary), and a product of at most
// streamMaxRows rows (2 at 8 bits, 4 narrower; kernels'
// BenchmarkStreamCrossover) runs kernels.GEMMStreamRequant or GEMMStream
// on them: at batch 1 such a layer's time follows its weight bytes. Larger
// batches take the tile GEMM. Both compute the same exact sums and the
// same epilogue, so the codes do not depend on the kernel.
//
// Add of (S_a, z_a) and (S_b, z_b) into (S_y, z_y): S_a/S_y and S_b/S_y
// become m_a·2^-c and m_b·2^-c with one shift c (that of the larger, so it
// keeps 31 bits), and the sum is rounded once:
//
//	y = clamp(z_y + round((m_a·(a - z_a) + m_b·(b - z_b)) / 2^c), lo, hi)
//
// Compile evaluates this formula on all 65,536 pairs of input codes, and
// Run looks each output code up in that 64 KiB table.
//
// Concat of inputs (S_j, z_j) into (S_y, z_y) rescales each input like an
// Add term, all multipliers m_j·2^-c ≈ S_j/S_y sharing one shift c:
//
//	y = clamp(z_y + round(m_j·(q - z_j) / 2^c), 0, 255)
//
// MaxPool takes the maximum of the codes (the quantizer is monotone).
// AveragePool and GlobalAveragePool keep the quantizer and round the mean
// of the centred codes half away from zero:
//
//	y = z + round(Σ(q - z) / count)
//
// where count is the number of taps inside the input (count_include_pad=0)
// or inside the padded input (count_include_pad=1; padded taps are q = z).
// A standalone ReLU or Clip clamps the codes to the codes of its bounds.
//
// # Simulated quantization (Reference)
//
// Reference builds a second float network from the same rewritten ONNX
// graph with each layer's weights replaced by their integer codes and its
// bias by the int32 bias (as float64 values), and runs it with network hooks
// that, at every consumer, turn the incoming values back into uint8 codes
// with the same scales and rounding (dyadic requantization on exact 128-bit
// products; average-pool means rounded half away from zero) and hand the
// consumer the centred codes (layers, average pools), the rescaled integers
// m·(q - z) (Add, Concat) or the dequantized values (q - z)·S (everything
// else). Every accumulator it forms is an integer far below 2^53, so the
// float engine computes it exactly and the two programs must agree bit for
// bit. A float fallback node receives the same dequantized float64 values
// in both programs and runs the same operator code, and its output is
// quantized by the same Quantize, so the codes agree bit for bit across
// fallback steps too. Each layer of the reference graph reads its own new
// initializers (integer weights, int32 bias), so weights and biases the
// model shares between layers (or that are folded constants) are per-layer.
//
// # Prefix reuse (prefix.go)
//
// WithLayerBits derives from a compiled Model the Model Compile would give
// with one layer at another bit width: only that layer's step is set up
// again (weights quantized and packed, bias and requantization derived);
// every other step, the quantizers and the workspace pool are shared. Every
// buffer is written by exactly one step, so the steps before the layer's
// step (LayerStep) compute the same codes in the Model and all its
// variants. A Prefix runs a Model on a batch up to a step; RunFrom continues
// it in a variant of the same Compile from that step on, starting from a
// copy of the buffers live there (written before the cut and read at or
// after it, or the graph output: LiveAt), and returns the output Run would
// give. RunFrom refuses a Prefix of another Compile or one that ran past a
// step in which the two Models differ. The sensitivity package measures
// the direct metric this way: the all-8-bit prefix once per batch, one
// suffix per (layer, bit width).
//
// # Serial programs (graphs that move the batch axis)
//
// The program lays every tensor out batch-first, [N]+per-sample shape.
// Some graphs do not keep the batch first: ViT and Swin fold it into the
// rows of their attention projections (Transpose to [T, N, D], Reshape to
// [T·N, D]) and read it with Shape nodes; ShuffleNet rebuilds its
// channel-shuffle shapes from Shape. For them analyze plans a serial
// program: the float probe runs at batch 1 (and at batch 2, to tell which
// values keep the batch first), everything that depends on the data only
// through Shape nodes becomes a constant of batch 1, values without a
// leading batch axis ("whole") keep their batch-1 shape, and each step
// runs once per sample on that sample's part of every buffer (serialRunner).
// A Gemm reads a whole [M, K] input as M rows; an Add, Concat or pool
// with a whole operand runs as a float fallback step, which takes whole
// values without a batch axis. The buffers stay batch-major, so Prefix
// and RunFrom work unchanged, and Reference runs one float pass per sample
// for the same batch-1 constants. Per sample the codes are those of a
// batch-first program.
//
// # Layouts and memory (layout.go, run.go)
//
// A [C, H, W] tensor is stored channels-first (NCHW, the ONNX order) or
// channels-last (NHWC), chosen once at Compile: channels-last when every
// step that reads or writes it, or a tensor tied to it (a pool, Add,
// clamp or tabulated elementwise float step has its inputs and output in
// one layout; a channel Mul its [C, H, W] input and output), is one of
// these, a convolution or the input quantization, no view aliases it (Flatten and
// Reshape read the ONNX order) and it is not the graph output. Tensors of
// one pixel have the same bytes in both. Serial programs keep NCHW. The
// layout changes where codes are stored, never their values: RunInt
// reports every tensor in NCHW order, and a convolution's output codes
// are the same from either input layout.
//
// A full run (Run, RunInto, RunInt, Time's whole-program runs) of more
// samples than plan.micro takes them plan.micro at a time, every step on
// the passes' samples (execMicro, a view of the batch-major buffers), so
// that a pass's tensors and patch matrices (about 1 MiB, microBytes) stay
// in the cache: the VGG-style CNN at batch 32 runs 1.07-1.15x faster in
// passes of 3. A model whose sample alone exceeds that runs the whole
// batch at once (its GEMMs gain from the rows), and so do serial plans,
// Prefix and Time's step timings. Every step computes each sample from
// that sample alone, so the codes are the same.
//
// A run's memory is a workspace: every uint8 tensor, the im2col, GEMM and
// stream-kernel scratch (kernels.Scratch, kernels.DWScratch) and a channel
// Mul's tables. Models keep up to
// GOMAXPROCS workspaces across garbage collections (wsPool), so RunInto
// allocates nothing once a run at the largest batch has grown them, on
// one thread (several threads start goroutines per GEMM) and except for
// binary layers on CPUs without VNNI (the table kernel builds its tables
// per call).
//
// # The cost model's view (costhook.go)
//
// Package costmodel describes and times layers as the engine runs them,
// through the engine itself: LayerPaths and StepLayouts plan a network as
// Compile does and report each layer's path (layouts, depthwise, direct
// 1x1, int32 logits, stream) and each other step's layout; FloatSteps
// counts the float fallback steps and FloatStepNodes names them (the
// cost model leaves them to a timing); Model.LayerRunner runs one layer's
// step alone on a workspace Run prepared, Model.StepRunner any step (the
// cost model times an Add with its table evicted); ImageChunkBytes is the patch-matrix
// bound of the convolution chunks. A new path in layerStep.run must be
// reported by LayerPaths, or costmodel's programs, which check the path
// of the layer they time against it, refuse the shape.
//
// # Invariants
//
// A Model is immutable after Compile and safe for concurrent Run calls; its
// results do not depend on Config.Threads. Compile reads the network's
// current parameters once; Run never touches the network. Unsupported graph
// patterns are reported by Compile with an error wrapping ErrUnsupported that
// names the node; configuration problems wrap ErrConfig. The package never
// prints and never exits.
package intengine
