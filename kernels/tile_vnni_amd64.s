//go:build amd64 && !purego

#include "textflag.h"

// The AVX-512 VNNI micro-kernels. VPDPBUSD multiplies the unsigned bytes of
// its second operand (activations, broadcast four at a time) by the signed
// bytes of its first (a 16-channel weight quad vector) and adds each group of
// four products to one int32 lane: no intermediate is narrower than int32, so
// the sums are exact (|4*255*128| per instruction, and K <= MaxK bounds the
// total below 2^31).

// func tileVNNI64(a *uint8, w *int8, wstride int, c *int32, kq int, start *int32, out *int32, pstride, rstride int)
// Four consecutive 16-channel panels (at w, w+wstride, w+2*wstride,
// w+3*wstride) against one 6-row activation tile. Every row of panel j
// starts at the 16 int32 at start+64j bytes, or, when start is nil, at row r
// of the j-th of the four consecutive 6 x 16 tiles at c; row r of panel j
// goes to the 16 int32 at out + j*pstride + r*rstride bytes (the tiles at c
// with pstride 384, rstride 64; a row-major output with pstride 64).
// Registers: Z(4r+j) accumulates row r of panel j, Z24-Z27 the weight quad
// vectors, Z28/Z29 broadcast activations.
TEXT ·tileVNNI64(SB), NOSPLIT, $0-72
	MOVQ a+0(FP), SI
	MOVQ w+8(FP), DI
	MOVQ wstride+16(FP), BX
	MOVQ c+24(FP), DX
	MOVQ kq+32(FP), CX
	LEAQ (DI)(BX*2), R10
	ADDQ BX, R10
	MOVQ start+40(FP), AX
	TESTQ AX, AX
	JNZ fromstart64
	VMOVDQU32 0(DX), Z0
	VMOVDQU32 384(DX), Z1
	VMOVDQU32 768(DX), Z2
	VMOVDQU32 1152(DX), Z3
	VMOVDQU32 64(DX), Z4
	VMOVDQU32 448(DX), Z5
	VMOVDQU32 832(DX), Z6
	VMOVDQU32 1216(DX), Z7
	VMOVDQU32 128(DX), Z8
	VMOVDQU32 512(DX), Z9
	VMOVDQU32 896(DX), Z10
	VMOVDQU32 1280(DX), Z11
	VMOVDQU32 192(DX), Z12
	VMOVDQU32 576(DX), Z13
	VMOVDQU32 960(DX), Z14
	VMOVDQU32 1344(DX), Z15
	VMOVDQU32 256(DX), Z16
	VMOVDQU32 640(DX), Z17
	VMOVDQU32 1024(DX), Z18
	VMOVDQU32 1408(DX), Z19
	VMOVDQU32 320(DX), Z20
	VMOVDQU32 704(DX), Z21
	VMOVDQU32 1088(DX), Z22
	VMOVDQU32 1472(DX), Z23
	JMP loop64
fromstart64:
	VMOVDQU32 0(AX), Z0
	VMOVDQU32 64(AX), Z1
	VMOVDQU32 128(AX), Z2
	VMOVDQU32 192(AX), Z3
	VMOVDQA32 Z0, Z4
	VMOVDQA32 Z1, Z5
	VMOVDQA32 Z2, Z6
	VMOVDQA32 Z3, Z7
	VMOVDQA32 Z0, Z8
	VMOVDQA32 Z1, Z9
	VMOVDQA32 Z2, Z10
	VMOVDQA32 Z3, Z11
	VMOVDQA32 Z0, Z12
	VMOVDQA32 Z1, Z13
	VMOVDQA32 Z2, Z14
	VMOVDQA32 Z3, Z15
	VMOVDQA32 Z0, Z16
	VMOVDQA32 Z1, Z17
	VMOVDQA32 Z2, Z18
	VMOVDQA32 Z3, Z19
	VMOVDQA32 Z0, Z20
	VMOVDQA32 Z1, Z21
	VMOVDQA32 Z2, Z22
	VMOVDQA32 Z3, Z23
loop64:
	VMOVDQU32 (DI), Z24
	VMOVDQU32 (DI)(BX*1), Z25
	VMOVDQU32 (DI)(BX*2), Z26
	VMOVDQU32 (R10), Z27
	VPBROADCASTD 0(SI), Z28
	VPDPBUSD Z24, Z28, Z0
	VPDPBUSD Z25, Z28, Z1
	VPDPBUSD Z26, Z28, Z2
	VPDPBUSD Z27, Z28, Z3
	VPBROADCASTD 4(SI), Z29
	VPDPBUSD Z24, Z29, Z4
	VPDPBUSD Z25, Z29, Z5
	VPDPBUSD Z26, Z29, Z6
	VPDPBUSD Z27, Z29, Z7
	VPBROADCASTD 8(SI), Z28
	VPDPBUSD Z24, Z28, Z8
	VPDPBUSD Z25, Z28, Z9
	VPDPBUSD Z26, Z28, Z10
	VPDPBUSD Z27, Z28, Z11
	VPBROADCASTD 12(SI), Z29
	VPDPBUSD Z24, Z29, Z12
	VPDPBUSD Z25, Z29, Z13
	VPDPBUSD Z26, Z29, Z14
	VPDPBUSD Z27, Z29, Z15
	VPBROADCASTD 16(SI), Z28
	VPDPBUSD Z24, Z28, Z16
	VPDPBUSD Z25, Z28, Z17
	VPDPBUSD Z26, Z28, Z18
	VPDPBUSD Z27, Z28, Z19
	VPBROADCASTD 20(SI), Z29
	VPDPBUSD Z24, Z29, Z20
	VPDPBUSD Z25, Z29, Z21
	VPDPBUSD Z26, Z29, Z22
	VPDPBUSD Z27, Z29, Z23
	ADDQ $24, SI
	ADDQ $64, DI
	ADDQ $64, R10
	DECQ CX
	JNZ loop64
	MOVQ out+48(FP), R8
	MOVQ pstride+56(FP), R9
	MOVQ rstride+64(FP), R11
	LEAQ (R9)(R9*2), R12
	VMOVDQU32 Z0, (R8)
	VMOVDQU32 Z1, (R8)(R9*1)
	VMOVDQU32 Z2, (R8)(R9*2)
	VMOVDQU32 Z3, (R8)(R12*1)
	ADDQ R11, R8
	VMOVDQU32 Z4, (R8)
	VMOVDQU32 Z5, (R8)(R9*1)
	VMOVDQU32 Z6, (R8)(R9*2)
	VMOVDQU32 Z7, (R8)(R12*1)
	ADDQ R11, R8
	VMOVDQU32 Z8, (R8)
	VMOVDQU32 Z9, (R8)(R9*1)
	VMOVDQU32 Z10, (R8)(R9*2)
	VMOVDQU32 Z11, (R8)(R12*1)
	ADDQ R11, R8
	VMOVDQU32 Z12, (R8)
	VMOVDQU32 Z13, (R8)(R9*1)
	VMOVDQU32 Z14, (R8)(R9*2)
	VMOVDQU32 Z15, (R8)(R12*1)
	ADDQ R11, R8
	VMOVDQU32 Z16, (R8)
	VMOVDQU32 Z17, (R8)(R9*1)
	VMOVDQU32 Z18, (R8)(R9*2)
	VMOVDQU32 Z19, (R8)(R12*1)
	ADDQ R11, R8
	VMOVDQU32 Z20, (R8)
	VMOVDQU32 Z21, (R8)(R9*1)
	VMOVDQU32 Z22, (R8)(R9*2)
	VMOVDQU32 Z23, (R8)(R12*1)
	VZEROUPPER
	RET

// func tileVNNI16(a *uint8, w *int8, c *int32, kq int, start *int32)
// One 16-channel panel against one 6-row tile, rows starting at the 16 int32
// at start (or at c when start is nil). Even quads accumulate in Z0-Z5, odd
// quads in Z6-Z11 (two independent chains per row hide the VPDPBUSD
// latency); they are added at the end. Z24/Z25 weights, Z28/Z29 broadcast
// activations.
TEXT ·tileVNNI16(SB), NOSPLIT, $0-40
	MOVQ a+0(FP), SI
	MOVQ w+8(FP), DI
	MOVQ c+16(FP), DX
	MOVQ kq+24(FP), CX
	MOVQ start+32(FP), AX
	TESTQ AX, AX
	JNZ fromstart16v
	VMOVDQU32 0(DX), Z0
	VMOVDQU32 64(DX), Z1
	VMOVDQU32 128(DX), Z2
	VMOVDQU32 192(DX), Z3
	VMOVDQU32 256(DX), Z4
	VMOVDQU32 320(DX), Z5
	JMP start16v
fromstart16v:
	VMOVDQU32 (AX), Z0
	VMOVDQA32 Z0, Z1
	VMOVDQA32 Z0, Z2
	VMOVDQA32 Z0, Z3
	VMOVDQA32 Z0, Z4
	VMOVDQA32 Z0, Z5
start16v:
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	CMPQ CX, $2
	JLT tail16v
loop16v:
	VMOVDQU32 (DI), Z24
	VMOVDQU32 64(DI), Z25
	VPBROADCASTD 0(SI), Z28
	VPDPBUSD Z24, Z28, Z0
	VPBROADCASTD 24(SI), Z29
	VPDPBUSD Z25, Z29, Z6
	VPBROADCASTD 4(SI), Z28
	VPDPBUSD Z24, Z28, Z1
	VPBROADCASTD 28(SI), Z29
	VPDPBUSD Z25, Z29, Z7
	VPBROADCASTD 8(SI), Z28
	VPDPBUSD Z24, Z28, Z2
	VPBROADCASTD 32(SI), Z29
	VPDPBUSD Z25, Z29, Z8
	VPBROADCASTD 12(SI), Z28
	VPDPBUSD Z24, Z28, Z3
	VPBROADCASTD 36(SI), Z29
	VPDPBUSD Z25, Z29, Z9
	VPBROADCASTD 16(SI), Z28
	VPDPBUSD Z24, Z28, Z4
	VPBROADCASTD 40(SI), Z29
	VPDPBUSD Z25, Z29, Z10
	VPBROADCASTD 20(SI), Z28
	VPDPBUSD Z24, Z28, Z5
	VPBROADCASTD 44(SI), Z29
	VPDPBUSD Z25, Z29, Z11
	ADDQ $48, SI
	ADDQ $128, DI
	SUBQ $2, CX
	CMPQ CX, $2
	JGE loop16v
tail16v:
	TESTQ CX, CX
	JZ done16v
	VMOVDQU32 (DI), Z24
	VPBROADCASTD 0(SI), Z28
	VPDPBUSD Z24, Z28, Z0
	VPBROADCASTD 4(SI), Z28
	VPDPBUSD Z24, Z28, Z1
	VPBROADCASTD 8(SI), Z28
	VPDPBUSD Z24, Z28, Z2
	VPBROADCASTD 12(SI), Z28
	VPDPBUSD Z24, Z28, Z3
	VPBROADCASTD 16(SI), Z28
	VPDPBUSD Z24, Z28, Z4
	VPBROADCASTD 20(SI), Z28
	VPDPBUSD Z24, Z28, Z5
done16v:
	VPADDD Z6, Z0, Z0
	VMOVDQU32 Z0, 0(DX)
	VPADDD Z7, Z1, Z1
	VMOVDQU32 Z1, 64(DX)
	VPADDD Z8, Z2, Z2
	VMOVDQU32 Z2, 128(DX)
	VPADDD Z9, Z3, Z3
	VMOVDQU32 Z3, 192(DX)
	VPADDD Z10, Z4, Z4
	VMOVDQU32 Z4, 256(DX)
	VPADDD Z11, Z5, Z5
	VMOVDQU32 Z5, 320(DX)
	VZEROUPPER
	RET

// REQ8 requantizes the eight int32 at off(SI) into the eight int64 lanes
// of zr with the channel constants (see rqParams) in registers: mult zm,
// bias*mult zb, half zh, adj za, shift zs. Z29 = zero, Z30 = lo, Z31 = hi
// (int64 broadcasts); zt is scratch. AVX-512 has the int64 arithmetic
// shift (VPSRAVQ), min and max that AVX2 lacks.
#define REQ8(off, zm, zb, zh, za, zs, zr, zt) \
	VPMOVSXDQ off(SI), zr \
	VPMULDQ zm, zr, zr \
	VPADDQ zb, zr, zr \
	VPSRAQ $63, zr, zt \
	VPANDQ za, zt, zt \
	VPADDQ zh, zr, zr \
	VPADDQ zt, zr, zr \
	VPSRAVQ zs, zr, zr \
	VPADDQ Z29, zr, zr \
	VPMAXSQ Z30, zr, zr \
	VPMINSQ Z31, zr, zr

// func requantTileAVX512(dst *uint8, ldd int, c *int32, rows int, prm *rqParams)
//
// The channel constants stay in Z2-Z11 for every row. Each row's 16
// values are narrowed in registers (VPMOVQB to XMM, the two halves joined
// by VPUNPCKLQDQ) and stored with one 16-byte move: the memory form of
// VPMOVQB is several times slower on Zen 4/5.
TEXT ·requantTileAVX512(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ ldd+8(FP), BX
	MOVQ c+16(FP), SI
	MOVQ rows+24(FP), CX
	MOVQ prm+32(FP), DX
	VPBROADCASTQ 640(DX), Z30
	VPBROADCASTQ 672(DX), Z31
	VPBROADCASTQ 704(DX), Z29
	VMOVDQU64 0(DX), Z2
	VMOVDQU64 64(DX), Z3
	VMOVDQU64 128(DX), Z4
	VMOVDQU64 192(DX), Z5
	VMOVDQU64 256(DX), Z6
	VMOVDQU64 320(DX), Z7
	VMOVDQU64 384(DX), Z8
	VMOVDQU64 448(DX), Z9
	VMOVDQU64 512(DX), Z10
	VMOVDQU64 576(DX), Z11
rq512row:
	REQ8(0, Z2, Z4, Z6, Z8, Z10, Z0, Z28)
	REQ8(32, Z3, Z5, Z7, Z9, Z11, Z1, Z27)
	VPMOVQB Z0, X0
	VPMOVQB Z1, X1
	VPUNPCKLQDQ X1, X0, X0
	VMOVDQU X0, (DI)
	ADDQ $64, SI
	ADDQ BX, DI
	DECQ CX
	JNZ rq512row
	VZEROUPPER
	RET
