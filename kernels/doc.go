// Package kernels implements exact integer GEMM and convolution for
// quantized CNN inference on x86-64 (AVX-512 VNNI or AVX2) with portable
// pure-Go twins.
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
//   - VNNI (every bit width, when the CPU has AVX-512 VNNI): the raw
//     activation a in [0,255] is the unsigned operand of VPDPBUSD and the
//     weight the signed one; each instruction adds a sum of four products,
//     |a0*w0 + ... + a3*w3| <= 4*255*128, straight to an int32 lane, with no
//     narrower intermediate. The zero point is folded in through the weight
//     column sums (below). Every partial sum is
//     sum_{k<k'} (a_k-z)*w_k - z*sum_{k>=k'} w_k, at most K*255*128 in
//     magnitude, so even the int32 partial sums never wrap.
//   - 8-bit weights without VNNI: A is widened to int16 as (a - z) in
//     [-255, 255] while packing and multiplied with VPMADDWD (int16 x int16
//     pairs summed into int32): |pair| <= 2*255*128 = 65280, far below 2^31.
//     The zero point is folded into the widening, so no correction is needed.
//   - binary weights without VNNI (table kernel, lut.go): with b = (w+1)/2,
//     sum_k (a-z)*w = 2*sum_k a*b - sum_k a - z*sum_k w. Per row and quad of
//     K the activation packer writes two 16-entry byte tables indexed by the
//     4-bit weight pattern, the sums of the selected low nibbles and of the
//     high nibbles (each <= 4*15 = 60); one VPSHUFB looks up 16 channels x 4
//     steps in both. Lookups are added in bytes over 4 quads (<= 240),
//     widened into uint16 lanes (<= 512*60 = 30720 before the flush) and
//     flushed to int32 as 2*(lo + 16*hi); the tile starts at
//     -z*sum_k w - sum_k a. No step can wrap, so the result is exact.
//   - 4-, 2-bit and ternary weights without VNNI (and binary weights packed
//     while VNNI was on but run without it): the raw activation a is
//     the unsigned operand of VPMADDUBSW and the weight the signed operand.
//     One VPMADDUBSW lane is a pair sum |a0*w0 + a1*w1| <= 2*255*wmax, with
//     wmax = 8, 2, 1 (ranges [-8,7], [-2,1], [-1,1]), i.e. at most 4080, 1020
//     and 510, so the int16 saturation at 32767 is never reached. Pair sums are
//     then accumulated in int16 with VPADDW for G = 8, 32, 64 steps
//     (8*4080 = 32*1020 = 64*510 = 32640 <= 32767), then widened with
//     VPMADDWD by ones into int32. The zero point is folded in afterwards
//     through the weight column sums: sum_k (a-z)*w = sum_k a*w - z*sum_k w.
//   - stream kernels (GEMMStream, few rows; see below): the weight fields
//     are stored as non-negative v with w = scale*v - off (v = w+8 for 4
//     bits, w+2 for 2 bits and ternary, (w+1)/2 with scale 2 for binary,
//     raw w for 8 bits), so after shift and mask they are valid signed
//     operands. The kernels sum S = sum_k a*v, four products at a time into
//     int32 with VPDPBUSD (AVX-512 or AVX-VNNI), or as VPMADDUBSW pairs
//     (at most 2*255*15 = 7650, far from the int16 limit) widened at once
//     by VPMADDWD (AVX2); without VNNI 8-bit weights are summed as
//     w XOR 0x80 = 16*h + l, two nibble products widened by VPMADDWD with
//     16 and 1 (pairs again <= 7650). The result is
//     scale*S - off*sum_k a - z*sum_k w, computed in wrapping int32: every
//     step is exact modulo 2^32 and the true result is in int32 (K <=
//     MaxK), so it is exact even where S alone wraps (the AVX2 8-bit sum
//     reaches K*255*255).
//
// The pure-Go twins (tileDotGo, tile8Go, tile16Go, lutRowGo, lutTileGo,
// streamGoRun, streamGoAVX2Run) reproduce this arithmetic lane by lane,
// including the int16 (and byte and uint16) stages, so the tests check the
// bound proofs too.
//
// # Layout and blocking
//
// PackWeights copies W once into panels of 16 output channels; within a
// panel the reduction index is grouped in quads (16 channels x 4 int8, the
// VNNI and low-bit layout) or, for 8-bit weights packed while the VNNI
// kernels are off, in pairs (16 channels x 2 int16); K is padded with zeros
// to a multiple of 4. Binary weights packed while the VNNI kernels are off
// are stored instead as 4-bit patterns, one byte per channel and quad,
// repeated for the two 128-bit lanes ([N/16 panels][quads][2][16], K padded
// to a multiple of 16), for the table kernel, whose activation tables (32
// bytes per row and quad, built in assembly with the row sums) are computed
// per call; each 6-row tile then runs against every panel, three rows per
// inner loop. Weights records its layout, and GEMM picks the kernel
// from the layout and the current flags, so any Weights runs correctly under
// any flag setting (8-bit quads without VNNI fall back to tileDotGo). Each
// call packs A into tiles of 6 rows with the matching grouping (quads: raw
// bytes; pairs: a - z as int16). The VNNI micro-kernel computes four 6 x 16
// int32 tiles (6 rows x 64 channels, 24 ZMM accumulators) per call, one
// 6 x 16 tile for the last panels of a matrix; the AVX2 ones one 6 x 16 tile.
// For quad layouts the tiles start at -z * sum_k W[n][k], which folds the
// zero point in for free. GEMM (int32 output) has the VNNI kernel's last
// call on a full tile of four full panels store its accumulators straight
// into dst (tilesQuadOut: row r of panel j at dst[r*N + 16j]), so those
// results skip the copy through the tile; on Zen 5 under load this made
// 256^3, 512^3 and 1024^3 products 1.46x, 1.24x and 1.08x faster. Partial
// tiles, tail panels and GEMMRequant go through the tile and the epilogue. Tiles are visited in blocks of rows whose packed
// activations (about 192 KiB) stay in L2 while chunks of the weight panels
// (16 KiB for AVX2, 32 KiB for the four panels of a VNNI call) are reused
// from L1 by every tile of the block. Work is split over Options.Threads
// goroutines by blocks of output tiles (row blocks, and channel panel groups
// when there are few row blocks); every output is written by exactly one
// goroutine, so results do not depend on the thread count.
//
// # Few rows: the stream kernels
//
// With one activation row (batch-1 fully connected layers, 1x1
// convolutions on small maps) a product reads every weight once and the
// tile kernels, which pad M to 6 and read one byte per weight, run at the
// memory's pace whatever the bit width. PackStream stores the weights at
// their width instead (8, 4, 2, 1 bits; 2 for ternary): 16-channel panels
// interleaved in groups of four, in blocks of Q = 2, 2, 4, 8 quads of K
// whose fields share 64 bytes per panel (field i of byte 4c+j at bit i*f).
// GEMMStream and GEMMStreamRequant pad each activation row to whole blocks
// (zeros, so padded weights add nothing) and stream each group once:
// the AVX-512 kernels take up to four rows per pass (16 ZMM accumulators,
// or two sets of four for one row to hide the VPDPBUSD latency; with one
// row, two full groups per pass, read as two streams (streamGroupsRun,
// streamZ<b>R1G2; on Zen 5 two streams read 1.19-1.29x the bandwidth of
// one at 64 MiB of 8-bit weights; a four-stream 8-bit kernel,
// streamZ8R1G4, is exact and tested but off, useStreamQuads, as it read
// 0.96-1.05x as fast as two), the
// AVX-VNNI and AVX2 ones one row (eight YMM accumulators). With more rows
// than a pass takes, K is cut into chunks of 16 KiB of weights reused
// from L1 by every pass. Groups are split over Options.Threads goroutines;
// each output is written by one of them. With one row and fewer than four
// groups per thread (a logits layer, a narrow projection), K is split
// instead (splitK): each thread sums S over its range of blocks for every
// group into its own row, the rows are added in wrapping int32 and the
// epilogue runs once, so the result is the same for any cut. A call's
// padded rows, sums and accumulators live in Options.Scratch (streamJob),
// so on one thread a call allocates nothing once the Scratch has grown. The kernels are generated by
// kernels/internal/genstream (go generate). At m = 1 their time follows
// the packed bytes: on the development machine (Zen 5, one thread,
// 8192 x 8192, weights evicted from the caches) the 4-, 2- and 1-bit
// kernels were 1.8-2.2x, 2.7-3.4x and 5.3-6.1x the 8-bit one
// (BenchmarkStreamRatios), and the 8-bit AVX-512 kernel moved its weights
// at 0.94-1.09x the pace of a plain read of as many bytes in the same run
// (BenchmarkStreamBandwidth, hot and cold, load 16-18) while it read one
// group at a time: it waits on memory only. Software prefetching
// (PREFETCHT0 or NTA, 0.5 to 8 KiB ahead) and 2 MiB pages did not read
// faster in a stand-alone test; two streams did, hence the pairs. For 8-bit weights the tile GEMM is faster from
// about 8 rows, for narrower ones the stream kernels up to 16 rows at
// least (BenchmarkGEMMStream). BenchmarkStreamCrossover times both with
// requantization at 1 to 16 rows; the integer engine picks the stream
// kernels up to 2 rows at 8 bits and up to 4 narrower from it.
//
// Conv2D is Im2Col, GEMMRequant and a transpose to NCHW. Im2Col writes each
// output row as KW-long segments: fills for padding rows, 8-byte copies (or
// strided copies under dilation) for interior columns, checked per-tap loops
// only at the left and right borders. The transpose moves 8 x 8 byte tiles
// through registers along bands of 64 rows, so each destination line is
// completed while in L1 (a byte-wise transpose thrashes one cache set when
// OH*OW is a multiple of 1024).
//
// Im2ColNHWC is the im2col of a channels-last image: columns ordered
// (ky, kx, c), matching weights permuted by PermuteHWC; a kernel row of
// adjacent in-image pixels is one copy of KW*C bytes, other taps one copy
// of C bytes each (the channels of a group for a grouped convolution).
//
// DepthwiseNHWC computes a depthwise convolution of a channels-last image
// without patches: per output row, for every tap, the output pixels whose
// tap lies inside the image accumulate (x - z)*w over the channels in
// int32 (dwTapAVX2: VPMOVZXBD, VPSUBD, VPMULLD, VPADDD on eight channels;
// |(x - z)*w| <= 255*128 and at most KH*KW products, so exact), taps in
// the padding (which hold z) are skipped since they add zero, and the row
// is requantized through the GEMM epilogue (requantTile) in 6 x 16 tiles.
// dwTapGo is its twin. With AVX-512, the output columns whose whole kernel
// row lies inside the image (dwInterior) take the taps of a row in one
// pass (dwRowAVX512: sixteen channels per VPMULLD, the row's taps summed
// in a register, the accumulators read and written once per kernel row
// instead of once per tap); the other columns go tap by tap. dwRowGo is
// its twin. The sums are exact either way, so the order does not matter.
//
// With Options.Scratch, a call's working memory (packed activations,
// accumulator tiles, requantization panels, the call's state) is the
// Scratch's, kept from call to call, so a call on one thread allocates
// nothing; without it the buffers come from sync.Pools, which collections
// empty. A Scratch serves one call at a time.
//
// The epilogue of GEMMRequant (bias, dyadic requantization, clamp, uint8
// packing) works from per-panel int64 constants that each call derives
// from its Requant, unless Requant.Freeze computed them once (then they
// are used while the Requant's slices and scalars are the ones frozen).
// It is assembly for full 16-channel panels, in int64 lanes: eight
// channels at a time with AVX-512 (when useVNNI is set), four with AVX2;
// requantTileGo is its twin. The AVX-512 epilogue keeps the panel's
// constants in registers and narrows each row's 16 results in registers
// for one 16-byte store (VPMOVQB to memory is several times slower on
// Zen 4/5).
//
// # Dispatch
//
// On amd64 the micro-kernels and the activation packers are Plan 9
// assembly. The package flag useVNNI (cpu.X86.HasAVX512F, HasAVX512BW and
// HasAVX512VNNI from golang.org/x/sys/cpu, which include the OS check for the
// AVX-512 register state) selects the VPDPBUSD kernels for every bit width
// and the quad layout for 8-bit weights packed while it is set; otherwise
// useAVX2 (cpu.X86.HasAVX2; no FMA is used) selects the VPMADDWD,
// VPMADDUBSW and VPSHUFB-table kernels. Tests switch the flags off to compare every path with
// the Go twins. ISA names the path in use (recorded in hardware profiles);
// GODEBUG=cpu.avx512f=off selects the AVX2 kernels on a VNNI CPU.
//
// The stream kernels dispatch on their own (StreamISA): AVX-512 VNNI when
// useVNNI is set; else AVX-VNNI (useAVXVNNI: cpu.X86.HasAVXVNNI, the
// VEX-encoded 256-bit VPDPBUSD, which the Go assembler does not know: the
// generated assembly spells it in BYTE directives, with the table of
// encodings and their source at the top of stream_amd64.s) with AVX2;
// else AVX2; else the Go twin. GODEBUG=cpu.avx512f=off selects AVX-VNNI
// on a CPU with both, cpu.avxvnni=off then AVX2.
//
// With VNNI every bit width runs the same kernel at the same speed (measured
// on Zen 5: about 4x the AVX2 int8 kernel and 2.2-2.5x the AVX2 low-bit
// ones): VPDPBUSD takes full 8-bit weights at its peak rate, so narrower
// weights save memory there but no arithmetic in the tile kernels; they
// save time where the weight bytes set it (the stream kernels). The
// low-bit speed-up of the AVX2 tile kernels (VPMADDUBSW with int16
// accumulation, against VPMADDWD for 8-bit) exists only on CPUs without
// VNNI. The tile kernels do not use AVX-VNNI. Building with -tags purego,
// or for another architecture, uses only the Go twins.
//
// # Exp: float64 exponentials bit-identical to math.Exp
//
// Exp, Sigmoid and SigmoidPair are the floating-point kernels:
// dst[i] = math.Exp(src[i]) bit for bit, for the float engine's softmax
// and exponential-based activations, and the logistic function (and its
// complement) from exp(-|x|). On amd64 math.Exp is
// assembly (archExp, src/math/exp_amd64.s); with AVX and FMA (math's
// useFMA) it computes k = CVTSD2SL(x*LOG2E) (nearest even by MXCSR),
// r = x - k*LN2U - k*LN2L (two fused negated multiply-adds), r/16, a
// Taylor polynomial by seven fused multiply-adds, r*p, three r*(r+2)
// steps, one fused r*(r+2)+1, and the product with 2^k built as the bits
// (k+0x3FF)<<52; branches send NaN, ±Inf, x > Overflow and results whose
// biased exponent k+0x3FF is <= 0 or >= 0x7FF elsewhere. Every step of
// that main path is an IEEE operation on one value, so the AVX-512 (8
// lanes) and AVX2 (4 lanes) kernels, which do the same operations on
// the same constants (spelled as in math's source) in the same order
// (VCVTPD2DQ rounds by MXCSR like CVTSD2SL), give each lane on the main
// path the same bits. A lane is on the main path exactly when
// -1022 <= k <= 1023: NaN, ±Inf and |x*LOG2E| >= 2^31 convert to
// k = -2^31; k <= 1023 implies x*LOG2E < 1023.5, so x < Overflow; and
// the biased exponent is then in [1, 0x7FE]. (For k = 1024, reached
// below Overflow from x = 709.44: math.Exp returns +Inf there, and so
// would the lanes, the scale's bits being +Inf, but they are left to
// math.Exp all the same.) A vector with any other lane is not stored;
// Exp computes that vector, and the tail, with math.Exp. The kernels run
// only when golang.org/x/sys/cpu reports AVX and FMA, the condition of
// math's own FMA path (both read the same GODEBUG names, e.g.
// cpu.fma=off turns off both), and AVX-512F or AVX2 for the integer
// steps; otherwise, and under purego, Exp is a math.Exp loop. Sigmoid runs the same kernels on -|x| (the sign bit
// set, as -math.Abs does) and finishes each lane with the selection of the
// numerator (1 for x >= 0, else e) and the division by 1 + e, IEEE
// operations again, so its bits are those of the scalar formula;
// SigmoidPair likewise divides 1 and e by 1 + e and selects the pair
// (sigmoid(x), sigmoid(-x)) by the sign of x.
// TestExpBits checks every path of each against its scalar definition
// on millions of random inputs and around every branch.
//
// QuantizeBytes and FakeQuantize are uint8 activation quantization
// (quant.ActQuant's Quantize and Fake) over a slice: the code
// RoundToEven(x/s) + zp clamped to [0, 255], and (code - zp)·s. The
// AVX-512 kernels take 8 lanes through VDIVPD, VRNDSCALEPD (nearest even,
// as math.RoundToEven), VADDPD, VMAXPD against 0 and VMINPD against 255,
// each an IEEE operation per lane, so each lane's value is the scalar
// formula's. The clamp agrees at every input: VMAXPD returns its second
// source (the 0) for a NaN lane, and a NaN's code in Go on amd64 is 0 too;
// -0 cannot arise (x/s rounds to -0 only for a zp of +0, and -0 + 0 = +0),
// and ±Inf clamp like any large value. The clamped value is an integer in
// [0, 255], so VCVTTPD2DQ converts it exactly, and code - zp is exact in
// float64 as the integer difference is, leaving one rounding, the product
// by s, as in Fake. TestQuantizeBits checks both against the formula at
// ties, clamps, ±0, ±Inf and NaN, every length 0..40.
//
// The package never prints, never exits, and panics only on programming errors
// (inconsistent slice lengths); bad user input returns an error.
package kernels
