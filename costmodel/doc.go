// Package costmodel tells what each weight bit width costs on a CPU: the
// latency of every quantized layer, measured by running the real integer
// kernels (package kernels) on the layer's real shapes or predicted from a
// YAML hardware profile, together with its packed size and its bit
// operations.
//
// # What a layer costs
//
// A LayerShape is one Conv, Gemm or MatMul as the integer engine runs it:
// per group, an im2col of the group's input channels for every image of the
// batch into one patch matrix of batch*M rows, one kernels.GEMMRequant (bias,
// dyadic requantization to uint8) of that matrix with the K x N packed
// weights, and a transpose of the M x N result of every image back to NCHW
// (kernels.Transpose, which the engine's convolutions call), the sequence
// of kernels.Conv2D. Gemm and MatMul are one GEMMRequant.
// Measure times that sequence with random weights and activations, after a
// collection of the heap and a warm-up, as the median of Repeats samples
// (each long enough for the clock) with the quartiles and extremes as its
// spread. With MeasureOptions.Cold it also times each layer cold: single
// calls, each after reading a buffer of EvictBytes (larger than any
// last-level cache), so weights and inputs come from memory as in a
// whole-model pass; BitCost.Cold and LayerCost.OverheadCold hold those
// figures next to the hot ones (on the development machine a one-row
// layer with 4 MiB of int8 weights took 85 µs hot and 475 µs cold). The
// profile's model is still fitted to hot timings only. The collection matters: the kernels allocate a little per call,
// and after large buffers (a big shape just measured) the collector lets
// the heap grow by hundreds of MB, so those allocations would fault in
// fresh pages that a running inference, whose heap is steady, does not
// touch (about 4 µs instead of 0.6 µs for the smallest GEMMRequant on the
// development VM); and since a forced collection makes the runtime return
// most free memory to the OS, a call that allocates is warmed up through
// two of the collector's own cycles before it is timed. Bit widths sharing a
// kernel (KernelBits: 3 runs the 4-bit kernel, 5 to 7 the 8-bit one) share a
// timing. MeasureModel times the layers of a model run one after another.
// SizeBytes is ceil(params*bits/8) plus a float32 scale per output channel;
// BOPs are MACs * weight bits * ActBits, per sample.
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
// streamed weight bytes and a per-call constant, per kernel bit width; and
// per-image terms for im2col (lines, 8-byte runs and bytes copied one at a
// time, counted by walking kernels.Im2Col's loops) and the transpose
// (including the cache-set conflicts of a transpose whose stride is a
// multiple of 1 KiB); and per-element costs of the operations between
// layers, timed on the integer engine's own steps (intengine.Model.Time
// on small compiled programs, measureOps). kernels.Im2Col, GEMMRequant
// and Transpose are timed themselves: no replica of an engine loop is
// left. BuildProfile
// measures a sweep of shapes on this CPU, timing small groups of different
// calls back to back as a model runs its layers, and fits each model by
// non-negative least squares on a symmetric relative error (recording the
// fit's median and largest error), plus the copy bandwidth, the smallest
// call's time and reference GEMM throughput at 256^3, 512^3 and 1024^3
// (kernels.GEMM) and at one row against k = n = 1024, 4096 and 8192
// (kernels.GEMMStream, the small-M kernels, StreamSizes; 8192 is 64 MiB
// of int8 weights, beyond any cache share of one core), where narrower
// weights are faster because the time follows the weight bytes. These
// one-row points are timed back to back (weights as hot as their size
// lets them be); the GEMM model does not yet describe the stream kernels. AnalyticAVX2 derives a profile
// from instruction throughputs for CPUs the kernels cannot be run on.
// Predict and PredictModel evaluate a profile for any layer shape, so a
// model's latency can be predicted without running it.
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
//   - Measured work is the real work: the timed runner computes exactly what
//     kernels.Conv2D computes (tested).
//   - Measurements depend on the machine; everything else (shapes, sizes,
//     BOPs, predictions, YAML) is deterministic.
package costmodel
