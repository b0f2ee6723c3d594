//go:build amd64 && !purego

#include "textflag.h"

// func dwPanelAVX2(acc *int32, x *uint8, w *int32, n, xstride int, z int32)
TEXT ·dwPanelAVX2(SB), NOSPLIT, $0-44
	MOVQ acc+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ w+16(FP), DX
	MOVQ n+24(FP), CX
	MOVQ xstride+32(FP), R8
	MOVL z+40(FP), AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	VMOVDQU (DX), Y1
	VMOVDQU 32(DX), Y2

pixel:
	VPMOVZXBD (SI), Y3
	VPMOVZXBD 8(SI), Y4
	VPSUBD    Y15, Y3, Y3
	VPSUBD    Y15, Y4, Y4
	VPMULLD   Y1, Y3, Y3
	VPMULLD   Y2, Y4, Y4
	VPADDD    (DI), Y3, Y3
	VPADDD    32(DI), Y4, Y4
	VMOVDQU   Y3, (DI)
	VMOVDQU   Y4, 32(DI)
	ADDQ      R8, SI
	ADDQ      $64, DI
	DECQ      CX
	JNZ       pixel
	VZEROUPPER
	RET

// func dwRowAVX512(acc *int32, x *uint8, w *int32, n, xstride, kw, tapstride, wstride int, z int32)
//
// For p < n, j < 16: acc[p*16+j] += sum_{t<kw} (x[p*xstride + t*tapstride + j] - z) * w[t*wstride + j]
// (wstride in int32 elements): the taps of one kernel row summed in Z0,
// so the accumulators are read and written once per row of taps.
TEXT ·dwRowAVX512(SB), NOSPLIT, $0-68
	MOVQ acc+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ w+16(FP), DX
	MOVQ n+24(FP), CX
	MOVQ xstride+32(FP), R8
	MOVQ kw+40(FP), R12
	MOVQ tapstride+48(FP), R13
	MOVQ wstride+56(FP), R14
	SHLQ $2, R14
	MOVL z+64(FP), AX
	VPBROADCASTD AX, Z15

rowpixel:
	VMOVDQU32 (DI), Z0
	MOVQ SI, R9
	MOVQ DX, R10
	MOVQ R12, R11

rowtap:
	VPMOVZXBD (R9), Z1
	VPSUBD    Z15, Z1, Z1
	VPMULLD   (R10), Z1, Z1
	VPADDD    Z1, Z0, Z0
	ADDQ      R13, R9
	ADDQ      R14, R10
	DECQ      R11
	JNZ       rowtap
	VMOVDQU32 Z0, (DI)
	ADDQ      R8, SI
	ADDQ      $64, DI
	DECQ      CX
	JNZ       rowpixel
	VZEROUPPER
	RET
