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

// func lookupBytesVBMI(dst, src *uint8, n int, tab *[256]uint8)
// n is a positive multiple of 64. Z0-Z3 hold the table; per 64 indices
// Z4, VPERMT2B looks up bytes 0-127 (Z0:Z1) and 128-255 (Z2:Z3) by the
// low 7 bits, and the top bit of each index (VPMOVB2M) picks the half.
TEXT ·lookupBytesVBMI(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ tab+24(FP), DX
	VMOVDQU8 0(DX), Z0
	VMOVDQU8 64(DX), Z1
	VMOVDQU8 128(DX), Z2
	VMOVDQU8 192(DX), Z3
lookup64:
	VMOVDQU8 (SI), Z4
	VMOVDQA64 Z0, Z5
	VPERMT2B Z1, Z4, Z5
	VMOVDQA64 Z2, Z6
	VPERMT2B Z3, Z4, Z6
	VPMOVB2M Z4, K1
	VMOVDQU8 Z6, K1, Z5
	VMOVDQU8 Z5, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $64, CX
	JNZ lookup64
	VZEROUPPER
	RET
