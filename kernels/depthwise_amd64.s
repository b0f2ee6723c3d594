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
