// Package quant owns mpsearch's quantizers: uniform symmetric per-channel
// weight quantization (the project's convention, shared with the fixtures),
// per-group scales with a clipping search, GPTQ rounding from the Hessian
// of each layer's inputs, asymmetric per-tensor uint8 activation
// quantization with its calibration, dyadic multipliers for integer-only
// requantization, and simulated (fake) quantization of a float network.
//
// Conventions (DESIGN.md):
//   - weights, b bits: qmax = 2^(b-1)-1, per output channel
//     scale = max|w|/qmax (1 for an all-zero channel),
//     q = clamp(roundHalfEven(w/scale), -qmax, qmax). One bit is binary:
//     q = ±1 with scale = mean|w| of the channel.
//   - activations, uint8: lo = min(0, min x), hi = max(0, max x),
//     scale = (hi-lo)/255, zero point = clamp(roundHalfEven(-lo/scale), 0, 255),
//     x̂ = (clamp(roundHalfEven(x/scale)+zp, 0, 255) - zp)·scale.
//   - dyadic multiplier: a positive real M is m·2^-c with m a 31-bit integer.
//
// Weight matrices (group.go): a weight tensor is quantized as the matrix
// W [rows = output channels, cols = inputs per channel] (ToMatrix): for a
// Conv [M, C/group, kh, kw] the im2col view, column (c, i, j); for MatMul
// and a Gemm stored [in, out] the transpose.
//   - per group (QuantizeMatrix): one scale per row and group of GroupSize
//     consecutive columns (the last may be shorter; GroupSize 0 or >= cols
//     is per channel and equals QuantizeWeights exactly). Scales follow the
//     convention above per group; with the clipping search (MSE) a scale
//     is p·max|w|/qmax for the shrink factor p in {1, 0.95, ..., 0.05} with
//     the least squared rounding error, the largest p on ties, so it is
//     never worse than max|w| in any group. One bit keeps mean|w|, the
//     L2-optimal scale of sign codes.
//   - ONNX blocks (BlockOrder): DequantizeLinear's block_size blocks a
//     Conv weight along its input channels at each kernel tap, which are
//     not consecutive columns of the im2col view; BlockOrder gives the
//     column order (block, tap, channel) in which they are, so groups in
//     that order are exactly the blocks an export stores, scales already
//     in the [M, C/B, kh, kw] layout (GPTQWeights with blocks). B must
//     divide C. Matrix weights need no reordering.
//   - size (SizeBits): rows·cols·bits plus one fp16 scale per row and
//     group, per-channel scales included.
//
// GPTQ (gptq.go; Frantar et al. 2022): given H = ∑ x xᵀ of the layer's
// input vectors (LayerHessian: rows of a Gemm/MatMul input, im2col columns
// of a Conv from network.ConvColumnsInto, one H per conv group; float64
// sums, H's upper triangle cut into column blocks of 256 that the CPUs
// compute independently, one dgemm above the diagonal block and one dsyrk
// on it, each block with the sums of its entries (Mean), so H does not
// depend on the thread count; a Conv's batch is taken a few samples at a
// time, its im2col columns made with the input channels split between
// the CPUs into two buffers that the layers of a pass share, the next
// chunk's while the current one's are summed; the
// accumulation is bit for bit the single-threaded one of before,
// TestHessianThreadIndependence), columns are rounded one at a time and each rounding error is
// compensated on the columns not yet rounded through the upper Cholesky
// factor U of the damped H⁻¹ (UᵀU = H⁻¹, from one dpotrf and one dtrtri
// of H in reversed order), in lazy batches of BlockSize columns (128):
// within a batch the updates are applied column by column, to later
// columns as one matrix product per batch.
//   - damping: Damp·(mean of H's nonzero diagonal) added to the diagonal
//     (1%); zero diagonal entries (inputs never active) are set to that
//     mean first, so their columns are decoupled and rounded to nearest;
//     H's scale does not matter.
//   - exactness: the block size changes only the order of floating-point
//     sums: the batch is shrunk to a multiple or divisor of the group size
//     so that every group's scales are taken from its fully updated weights,
//     and block sizes 1 and 128 give the same codes. The result equals the
//     optimal brain quantizer computed column by column with explicit
//     inverses (the tests' reference).
//   - scales: per channel from the original row; per group from the group's
//     weights when its first column is reached (updated by the compensation
//     so far, as the authors' code does); with ActOrder (columns by
//     decreasing diag H) or StaticGroups every scale is taken up front from
//     the original weights, so groups stay contiguous for export.
//   - one bit: sign codes with the channel's or group's mean|w|; GPTQ
//     compensates the sign errors the same way.
//   - GPTQNetwork quantizes layers in execution order, each with the H of
//     its inputs after the layers before it are quantized (and after the
//     activation hook), so each layer compensates the earlier ones' error.
//
// Weight sources (codes.go, gptqcodes.go): WeightCodes is the one source
// of a network's quantized weights per (layer, bits), in the ONNX weight
// layout with one scale per output channel, that every consumer takes
// (WeightSetter via NewWeightSetterCodes, the integer engine, the QDQ
// export, the sensitivity metrics), so a layer is quantized the same way
// wherever it is measured or written. NewRoundToNearest is QuantizeWeights
// of the weights the network held when it was made (bit for bit what the
// consumers computed themselves before); NewGPTQCodes is per-channel GPTQ
// (GroupSize 0: scales of the original row, as round to nearest takes
// them) from one pass of the float network over the calibration batches
// (AccumulateHessians, no hook), at a fixed list of widths computed up
// front: per layer one Cholesky factor of the damped H⁻¹ serves every
// width, and the Hessians are dropped as each weight is done (sets of
// layers whose Hessians fit in HessianBytes share a pass). A weight that
// several layers read is quantized once on the sum of their Hessians.
// Codes are independent of the thread count; a ctx that ends stops the
// work between layers and widths.
//
// Blocked codes (blockcodes.go): WeightQuant.Block > 0 holds one scale per
// output channel and block of Block inputs along the weight's input axis
// (BlockedAxis: 1 for Conv [M, C, kh, kw] and matrices stored [out, in],
// 0 for [in, out]), in the layout of ONNX DequantizeLinear's block_size
// (opset 21): Scales is the scale tensor (BlockScaleShape, row-major), a
// Conv block is Block channels at one kernel tap (BlockOrder). Scales are
// float16 values (RoundFP16: nearest half, ties to even, kept within
// [2^-24, 65504]), which the export stores as FLOAT16 (2 bytes) and casts to
// FLOAT exactly, and Dequantize computes float32(q·s) (exact for |q| ≤ 127),
// exactly what a runtime computes from the exported file. NewBlockCodes
// makes them: round to nearest per block (max|w| or the clipping search,
// codes recomputed at the float16 scales) or GPTQ with the blocks as static
// groups (Hessians of the float layer inputs, scales rounded to float16
// before GPTQ chooses the codes at them: GPTQOptions.RoundScale). Per-channel consumers (the integer engine) refuse them: their
// scale count is not the channel count.
//
// Bias correction (bias.go): BiasShift is (W - Ŵ)·E[x] per output
// channel, E[x] the mean input vector of the layer (LayerHessian.Mean:
// the mean im2col column for a Conv, padding included), the change of the
// bias that restores the layer's mean output on the calibration data. It
// is measured (TestBiasCorrectionEvidence). WithBiasCorrection wraps a
// source with it (BiasShifter, E[x] from a means-only pass of the float
// network, or with BiasOptions.Means from GPTQ's Hessian pass over the
// same batches, InputMeans: the same sums in the same order, so the pass
// is not run twice); WeightSetter sets and restores the corrected biases, and the
// export writes them, and the integer engine adds the shift before it
// rounds each bias. The command line offers it (--bias-correction, on by
// default); tables and their cache keys record it.
//
// Options (options.go): a layer's quantization is an option, a width per
// output channel or a width in groups of G inputs (blocked codes), written
// as one int everywhere a width goes (OptionCode: the width itself per
// channel, G·100 + width in groups; SplitOption, FormatOption "3g64"), so
// sources, WeightSetter, tables, the search and bits.yaml take options
// without a second key. WithGroups joins a per-channel source and one
// blocked source per group size into one source of option codes.
// CompareOptions orders options by storage (width, then per channel, then
// larger groups); Options lists the candidates of --bits and --group-size
// (groups only below the widest width). OptionSizeBytes is an option's
// stored size: weights packed at the width plus a 4-byte (float32) scale
// per output channel, or a 2-byte (float16) one per channel and group,
// which is what the export writes (its test reads the file back).
//
// Activation calibration (actcalib.go): an activation quantizer's range
// is chosen by a method (ActCalib; ParseActCalib reads --act-calib) from
// ActStats, collected at each quantization point in one streamed pass
// with bounded memory: the minimum and maximum (combined by math.Min and
// math.Max exactly as before) and, for the methods that need them, a
// histogram of each side's magnitudes (x > 0, and -x for x < 0; exact
// zeros counted apart) of 4096 bins over [0, 2^e), e the least exponent
// above the side's largest magnitude, so 2048 to 4096 bins cover the
// observed values. Binning scales by a power of two (exact), and a larger
// e merges pairs of bins, so stats of any parts merged in any order equal
// the whole's: ranges do not depend on batching or the thread count.
//   - minmax (the zero ActCalib): [min, max].
//   - percentile:P (99.99 by default): each side's range ends at the upper
//     edge of the bin in which the cumulative count of that side's
//     magnitudes reaches ceil(P/100·n).
//   - mse: [min, max] clipped to [-t, t] for the t among 512 bin edges up
//     to the largest magnitude (the last keeps the whole range) whose
//     quantizer has the least squared error on the histograms (values at
//     bin centres), the largest t on ties.
//   - kl: TensorRT's entropy calibration as pytorch-quantization computes
//     it, per side: the threshold of i bins minimising KL(P‖Q), P the
//     first i bins with the rest added to the last, Q those bins merged
//     into 256 levels (128 per side when both signs occur) and spread back
//     over their nonzero bins.
//
// The simulation (ObserveRangesCalib, at every layer input; with several
// batches in flight, ObserveRangesThreads, each worker's stats merged at
// the end) and the integer engine (intengine.ObserveRangesCalib, at its quantization
// points) both take their ranges from ActStats.Range. Under minmax a
// layer input behind a max pool has the range of the tensor before it
// (the pool keeps the maximum and, after a ReLU, the 0); under the other
// methods the pool changes the distribution, so the simulation's range
// there can differ from the engine's (both are exact programs of their
// own quantizers; top-1 agreement is tested). DefaultCalib is the command
// line's default, chosen on TestActCalibEvidence.
//
// Invariant: quantizers are pure functions of their inputs (no hidden
// state, no randomness), so simulated results are reproducible bit for bit.
// GPTQ is deterministic for a given BLAS and thread count, like the float
// engine (network/doc.go); with another BLAS thread count its group scales
// taken from updated weights may differ in the last bits (codes agree in
// the tests).
package quant
