//go:build amd64 && !purego

#include "textflag.h"

// 255.0 as float64 bits.
DATA quant255<>+0(SB)/8, $0x406FE00000000000
GLOBL quant255<>(SB), RODATA|NOPTR, $8

// func quantizeBytesAVX512(dst *uint8, src *float64, n int, s, zp float64)
// n is a positive multiple of 8. Z15 = s, Z14 = zp, Z13 = 0, Z12 = 255.
TEXT ·quantizeBytesAVX512(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSD s+24(FP), Z15
	VBROADCASTSD zp+32(FP), Z14
	VPXORQ       Z13, Z13, Z13
	VBROADCASTSD quant255<>(SB), Z12

qb8:
	VMOVUPD     (SI), Z0
	VDIVPD      Z15, Z0, Z0
	VRNDSCALEPD $0, Z0, Z0  // round to nearest even
	VADDPD      Z14, Z0, Z0
	VMAXPD      Z13, Z0, Z0 // a NaN lane takes Z13's 0
	VMINPD      Z12, Z0, Z0
	VCVTTPD2DQ  Z0, Y1
	VPMOVDB     Y1, X2
	MOVQ        X2, (DI)
	ADDQ        $64, SI
	ADDQ        $8, DI
	SUBQ        $8, CX
	JNZ         qb8
	VZEROUPPER
	RET

// func fakeQuantizeAVX512(dst, src *float64, n int, s, zp float64)
// n is a positive multiple of 8; registers as quantizeBytesAVX512.
TEXT ·fakeQuantizeAVX512(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSD s+24(FP), Z15
	VBROADCASTSD zp+32(FP), Z14
	VPXORQ       Z13, Z13, Z13
	VBROADCASTSD quant255<>(SB), Z12

fq8:
	VMOVUPD     (SI), Z0
	VDIVPD      Z15, Z0, Z0
	VRNDSCALEPD $0, Z0, Z0
	VADDPD      Z14, Z0, Z0
	VMAXPD      Z13, Z0, Z0
	VMINPD      Z12, Z0, Z0
	VSUBPD      Z14, Z0, Z0 // code - zp, exact
	VMULPD      Z15, Z0, Z0
	VMOVUPD     Z0, (DI)
	ADDQ        $64, SI
	ADDQ        $64, DI
	SUBQ        $8, CX
	JNZ         fq8
	VZEROUPPER
	RET
