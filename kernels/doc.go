// Package kernels implements exact integer GEMM and convolution for
// quantized CNN inference on x86-64 (AVX2) with portable pure-Go twins.
//
// # What it computes
//
// Activations are uint8 with a per-tensor zero point z; weights are signed
// integers of 8, 4, 2 or 1 bit (binary {-1,+1}) or ternary {-1,0,+1}, stored
// row-major as N x K (N output channels, K the reduction length, the ONNX
// Gemm/Conv weight layout). GEMM computes, for an M x K activation matrix A,
//
//	dst[m][n] = sum_k (A[m][k] - z) * W[n][k]          (int32, exact)
//
// and GEMMRequant adds an int32 bias and requantizes each value to uint8 with
// a dyadic multiplier (see Requantize for the one formula used everywhere).
//
// # Exactness
//
// Every result is bit-identical to an int64 reference whenever K <= MaxK,
// which guarantees |dst| <= MaxK*255*128 < 2^31. Inside the kernels no
// intermediate ever saturates:
//
//   - 8-bit weights: A is widened to int16 as (a - z) in [-255, 255] while
//     packing and multiplied with VPMADDWD (int16 x int16 pairs summed into
//     int32): |pair| <= 2*255*128 = 65280, far below 2^31. The zero point is
//     folded into the widening, so no correction is needed.
//   - 4-, 2-, 1-bit and ternary weights: the raw activation a in [0,255] is the
//     unsigned operand of VPMADDUBSW and the weight the signed operand. One
//     VPMADDUBSW lane is a pair sum |a0*w0 + a1*w1| <= 2*255*wmax, with
//     wmax = 8, 2, 1 (ranges [-8,7], [-2,1], [-1,1]), i.e. at most 4080, 1020
//     and 510, so the int16 saturation at 32767 is never reached. Pair sums are
//     then accumulated in int16 with VPADDW for G = 8, 32, 64 steps
//     (8*4080 = 32*1020 = 64*510 = 32640 <= 32767), then widened with
//     VPMADDWD by ones into int32. The zero point is folded in afterwards
//     through the weight column sums: sum_k (a-z)*w = sum_k a*w - z*sum_k w.
//
// The pure-Go twins (tile8Go, tile16Go) reproduce this arithmetic lane by
// lane, including the int16 stage, so the tests check the bound proofs too.
//
// # Layout and blocking
//
// PackWeights copies W once into panels of 16 output channels; within a
// panel the reduction index is grouped in pairs (8-bit: 16 channels x 2
// int16) or quads (low-bit: 16 channels x 4 int8), K padded with zeros to a
// multiple of 4. Each call packs A into tiles of 6 rows with the matching
// grouping (8-bit: a - z as int16; low-bit: raw bytes). The micro-kernel
// computes one 6 x 16 int32 tile; for low-bit weights the tile starts at
// -z * sum_k W[n][k], which folds the zero point in for free. Tiles are
// visited in blocks of rows whose packed activations (about 192 KiB) stay in
// L2 while 16 KiB chunks of a weight panel are reused from L1 by every tile
// of the block. Work is split over Options.Threads goroutines by blocks of
// output tiles (row blocks, and channel panels when there are few row
// blocks); every output is written by exactly one goroutine, so results do
// not depend on the thread count.
//
// The epilogue of GEMMRequant (bias, dyadic requantization, clamp, uint8
// packing) is AVX2 assembly for full 16-channel panels, four channels at a
// time in int64 lanes, with requantTileGo as its twin.
//
// # Dispatch
//
// On amd64 the micro-kernels and the activation packers are AVX2 Plan 9
// assembly, used when the package flag useAVX2 (cpu.X86.HasAVX2 from
// golang.org/x/sys/cpu, which includes the OS support check; no FMA is used)
// is true; tests switch it off to compare with the Go twins. Building with -tags purego, or for another
// architecture, uses only the Go twins.
//
// The package never prints, never exits, and panics only on programming errors
// (inconsistent slice lengths); bad user input returns an error.
package kernels
