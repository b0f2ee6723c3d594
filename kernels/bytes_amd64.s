//go:build amd64 && !purego

#include "textflag.h"

// func maxBytesAVX2(dst, src *uint8, n int)
// n is a positive multiple of 32.
TEXT ·maxBytesAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX

loop:
	VMOVDQU (SI), Y0
	VPMAXUB (DI), Y0, Y0
	VMOVDQU Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	SUBQ    $32, CX
	JNZ     loop
	VZEROUPPER
	RET
