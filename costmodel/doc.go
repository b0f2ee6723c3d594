// Package costmodel tells what each weight bit width costs on a CPU: the
// latency of every quantized layer, measured by running the real integer
// kernels (package kernels) on the layer's real shapes or predicted from a
// YAML hardware profile, together with its packed size and its bit
// operations.
//
// # What a layer costs
//
// A LayerShape is one Conv, Gemm or MatMul as the integer engine runs it:
// its geometry (per group: M rows, reduction K, N outputs; the
// convolution window) and its path in the engine, taken from the engine's
// own plan (intengine.LayerPaths, through LayerShape.WithPath): whether
// its input and output are channels-last, whether it is a depthwise
// convolution (kernels.DepthwiseNHWC), a direct 1x1 convolution (one
// GEMM on the channels-last input itself) or the layer producing the
// int32 logits. A convolution otherwise runs, per group and per chunk of
// images whose patch matrices fit intengine.ImageChunkBytes (one image
// at batch 1), the patch matrix of each image (kernels.Im2ColNHWC from a
// channels-last input with more than one channel, else kernels.Im2Col),
// one kernels.GEMMRequant, and the move of its rows to the output: none
// (channels-last, one group), a copy of each pixel's channels (a group
// of a channels-last output) or kernels.Transpose (channels-first).
// Gemm and MatMul are one GEMMRequant.
//
// Measure times each layer on the integer engine itself: the layer is
// compiled by package intengine in a small program that gives it the
// path of its shape (a Reshape view in front keeps a channels-first
// input, a Flatten, a 1x1 Conv or a second MatMul behind gives the
// output its layout; newLayerProgram checks the engine's plan against
// the shape), with random weights and inputs, and its step is run alone
// by intengine.Model.LayerRunner: same kernels, buffers and scratch as a
// Run. So whatever the engine does for a layer — including paths added
// later, such as streaming small-M weights — is what Measure times; no
// replica of an engine loop is timed. Timings are the median of Repeats
// samples (each long enough for the clock) after a collection of the
// heap and a warm-up, with the quartiles and extremes as their spread.
// With MeasureOptions.Cold it also times each layer cold: single calls,
// each after reading a buffer of EvictBytes (larger than any last-level
// cache), so weights and inputs come from memory; BitCost.Cold holds
// those figures next to the hot ones (on the development machine a
// one-row layer with 4 MiB of int8 weights took 85 µs hot and 475 µs
// cold). Bit widths sharing a kernel (KernelBits: 3 runs the 4-bit
// kernel, 5 to 7 the 8-bit one) share a timing. MeasureModel times the
// layers' steps run one after another; Time times any call (a whole
// engine run) the same way. SizeBytes is ceil(params*bits/8) plus a
// float32 scale per output channel; BOPs are MACs * weight bits *
// ActBits, per sample.
//
// # Hot or cold: which one a prediction uses
//
// Profiles are fitted to hot timings, and whole-model predictions use
// them. The evidence (BenchmarkColdVsHot in package pipeline, table in the
// README's cost-model paragraph; 2026-12-05, load average 15 on the 2
// vCPUs): a batch-1 run repeated in a loop and a single run after the
// caches were flushed take the same time for ResNet18, MobileNetV2 and
// ResNet50 (9.15 and 9.12 ms, 6.35 and 6.40, 22.26 and 22.28): with 3.5 to
// 25 MB of int8 weights, more than the 1 MiB L2, each layer's weights have
// left the near caches by the time the next run needs them, so a stream
// of inferences is a single inference repeated. With the operations
// between layers added (by the profile: 0.80, 0.43 and 2.71 ms), the
// layers' hot timings sum to 9.24, 5.32 and 19.42 ms (+1%, -16%, -13%
// against the runs) and their cold timings to 10.83, 7.62 and 23.43 ms
// (+18%, +20%, +5%). A cold timing flushes the layer's input as well as
// its weights, while in a run the input was just written by the layer
// before, so the cold figures overstate layers whose inputs are large
// (ResNet18's early layers, MobileNetV2's expansions) and approach the run
// where weights dominate (ResNet50's 25 MB). On the small Fashion-MNIST
// CNNs (0.1 to 0.4 MB of weights, kept in cache by a stream of inferences)
// the flushed single run is 1.6 to 2 times the repeated one, and only the
// hot figures describe a stream. So predictions use the hot figures, which
// match within the machine's noise (single measurements moved by 20% from
// one minute to the next at that load) except for the largest model;
// BitCost.Cold (MeasureOptions.Cold) is recorded for a single inference
// after unrelated work.
//
// What the hot figures miss is the term for weights that come from memory
// while the inputs stay in cache, since the layer before has just written
// them. Profile.Cold (ColdModel) measures it: measureCold times
// GEMMRequant calls on ResNet50's and ViT's widest layers hot and alone
// after a 256 MiB eviction with their activations read back (the fastest
// cold call minus the fastest hot sample per packed weight byte, 0.049 to
// 0.055 ns on the development machine, about 20 GB/s; a separate rate for
// the stream kernels, 0.032), and an engine Add step
// (intengine.Model.StepRunner) with its 64 KiB table of output codes
// evicted (27 to 30 µs). ColdShare says what share of them a pass pays:
// none while its weights and its Adds' tables fit what a loop of passes
// keeps in the cache; beyond, by the time an inference comes back to a
// layer the others have evicted it. What the cache keeps is measured
// (ColdModel.Pass, measurePass: loops of passes over chains of 1 MiB
// one-row layers, 1 to 128 MiB; on the development machine passes up to
// 16 MiB paid 0.01 to 0.08 of the cold time per byte, 32 MiB 0.27, 128 MiB
// 0.61), the largest working set paying at most a tenth; profiles measured
// before the curve existed step at cpu.l2_bytes, which called the 2.9 MB
// of a Fashion-MNIST MLP cold and predicted it 3.5 times its measured
// time. Beyond it, layers on the tile GEMM and Adds pay their terms in
// full (ResNet50's steps did) and one-row layers on the stream kernels the
// curve's share at the pass's bytes (the curve is their own: read in
// sequence pass after pass, weights from memory cost less than after an
// eviction). PredictNetwork then adds both terms (PredictInPass and
// PredictOpsInPass per layer and operation; pipeline.ProfileLatency for a
// search). ResNet50's step timings inside whole runs
// (BenchmarkPredictedSteps) showed exactly these gaps: its 1x1 and 3x3
// convolutions on 7x7 and 14x14 maps 15-35% above their hot prediction,
// every Add about 30 µs above it whatever its size. The small
// Fashion-MNIST CNNs fit in the L2 and stay hot. A profile without a cold
// section (measured before it existed) loads with Cold nil and predicts
// hot, as before; RefitCold adds one to it.
//
// # What runs between layers
//
// An OpShape is one operation the integer engine runs between layers: the
// quantization of the float input, max and average pools, Adds,
// standalone ReLU/Clip clamps and the dequantization of the output. They
// cost no MACs and the same at every bit configuration, so they do not
// change which configuration is best, but they are a few percent of a
// small CNN's latency (about 5% of the LeNet and the VGG-style CNN). They
// are measured on the engine itself, so the model cannot drift from what
// runs: on the development machine its Add took 3.5 to 3.9 ns per element
// where a replica of its loop took 2.1, and its pools 1.9 ns per tap where
// the replica took 3.3 (minutes apart, same load).
// PredictOps predicts them from the profile; PredictNetwork is
// PredictModel plus PredictOps, the latency of a whole integer-only run.
//
// On Linux with one thread the default clock is the CPU time of the
// measuring thread (ClockThreadCPU): on a shared machine it leaves out the
// time other processes hold the core, which the wall clock (ClockWall)
// includes. Profiles record the clock they were measured with.
//
// # Profiles
//
// A Profile is a linear latency model whose terms mirror the kernels' work:
// padded multiply-accumulates of whole 6 x 16 tiles, tiles and row tiles,
// requantized rows and scalar outputs, vector and scalar activation packing,
// streamed weight bytes and a per-call constant, per kernel bit width
// (GEMMRequant); per-image terms for Im2Col (lines, 8-byte runs and bytes
// copied one at a time, counted by walking its loops), Im2ColNHWC (patch
// rows, kernel-row segments, copy calls and their bytes, bytes of the
// byte loops), DepthwiseNHWC (output rows, tap-kernel calls, lanes
// multiplied, outputs requantized) and the transpose (including the
// cache-set conflicts of a transpose whose stride is a multiple of 1
// KiB); and per-element costs of the operations between layers, timed
// on the integer engine's own steps (intengine.Model.Time on small
// compiled programs, measureOps), with channels-last pools costed per
// pixel-tap and per byte-tap. Predict composes them as the engine's
// step runs (Profile.convNs): chunks, groups, layouts. The sweeps time
// the kernels the engine calls (GEMMRequant with a Scratch, as the
// engine's workspace holds one; Im2Col, Im2ColNHWC, DepthwiseNHWC,
// Transpose); no replica of an engine loop is left. BuildProfile
// measures a sweep of shapes on this CPU, timing small groups of different
// calls back to back as a model runs its layers, and fits each model by
// non-negative least squares on a symmetric relative error (recording the
// fit's median and largest error; a sweep whose fit misses its own points
// by more than 8% at the median is timed again, up to three passes, each
// group keeping its fastest time, since interference only adds time),
// plus the copy bandwidth, the smallest
// call's time and reference GEMM throughput at 256^3, 512^3 and 1024^3
// (kernels.GEMM) and at one row against k = n = 1024, 4096 and 8192
// (kernels.GEMMStream, the small-M kernels, StreamSizes; 8192 is 64 MiB
// of int8 weights, beyond any cache share of one core), where narrower
// weights are faster because the time follows the weight bytes. These
// one-row points are timed back to back (weights as hot as their size
// lets them be). The stream kernels have their own model (StreamModel,
// fitted on a sweep of kernels.GEMMStreamRequant with 1 to 4 rows, the
// most the engine streams, against 16 KiB to 16 MiB of weights): a
// constant, per channel, per packed weight byte streamed (once per group
// of 4 rows), more per byte with more than one row (one row has its own,
// faster kernels), per output and per activation byte. RefitStream
// re-measures it alone. Predict uses it for a Gemm or MatMul whose path is
// Stream (intengine.LayerPath.Stream) when the product has at most
// intengine.StreamMaxRows rows (2 at 8 bits, 4 narrower: the engine's own
// dispatch rule), and Measure times that path through the engine. (A
// convolution on a map of at most 4 pixels also streams in the engine; it
// is still predicted by the convolution model.) RefitLayoutModels
// re-measures only the models of the kernels that move activations
// (im2col, im2col_nhwc, depthwise, transpose) of a profile. AnalyticAVX2
// derives
// a profile from instruction throughputs for CPUs the kernels cannot be
// run on. Predict and PredictModel evaluate a profile for any layer shape,
// so a model's latency can be predicted without running it.
//
// A profile records the thread count of its kernels (threads):
// CheckThreads refuses it for another count, since the kernels split
// their tiles over the threads (a search with a latency budget checks it
// against its --threads).
//
// A profile records the kernels' instruction set (cpu.kernel_isa, from
// kernels.ISA: avx512_vnni, avx2 or go), and the GEMM terms depend on it
// (8-bit weights are int16 pairs except with VNNI). A profile describes the
// kernels of its ISA only: Profile.CheckISA refuses it for another, and
// pipeline.LoadProfile picks a shipped profile only when it matches.
//
// Profiles are YAML (ReadProfile, Profile.WriteFile): decoding is strict
// (unknown fields, missing fields and non-finite or negative numbers are
// errors naming the field; inputs over MaxProfileBytes are refused before
// they are read whole; FuzzReadProfile checks that damaged profiles give
// one-line errors), writing is deterministic (the same values give the same
// bytes) and atomic.
//
// # Invariants
//
//   - The package never prints or exits; bad input returns an error
//     wrapping ErrShape, ErrBits or ErrProfile.
//   - Measured work is the real work: Measure times the integer engine's
//     own step of each layer, on the path the engine's plan gives it
//     (newLayerProgram refuses a shape whose path the engine would not
//     take; tested for every path).
//   - Measurements depend on the machine; everything else (shapes, sizes,
//     BOPs, predictions, YAML) is deterministic.
package costmodel
