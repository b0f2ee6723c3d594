//go:build amd64 && !purego

#include "textflag.h"

// The constants of math.Exp's FMA path (src/math/exp_amd64.s), spelled as
// there so that they parse to the same bits, four copies each (32 bytes):
// memory operands of the AVX2 kernel, broadcast by the AVX-512 one.
// 0: LOG2E
DATA expc<>+0(SB)/8, $1.4426950408889634073599246810018920
DATA expc<>+8(SB)/8, $1.4426950408889634073599246810018920
DATA expc<>+16(SB)/8, $1.4426950408889634073599246810018920
DATA expc<>+24(SB)/8, $1.4426950408889634073599246810018920
// 32: LN2U
DATA expc<>+32(SB)/8, $0.69314718055966295651160180568695068359375
DATA expc<>+40(SB)/8, $0.69314718055966295651160180568695068359375
DATA expc<>+48(SB)/8, $0.69314718055966295651160180568695068359375
DATA expc<>+56(SB)/8, $0.69314718055966295651160180568695068359375
// 64: LN2L
DATA expc<>+64(SB)/8, $0.28235290563031577122588448175013436025525412068e-12
DATA expc<>+72(SB)/8, $0.28235290563031577122588448175013436025525412068e-12
DATA expc<>+80(SB)/8, $0.28235290563031577122588448175013436025525412068e-12
DATA expc<>+88(SB)/8, $0.28235290563031577122588448175013436025525412068e-12
// 96: 1/16
DATA expc<>+96(SB)/8, $0.0625
DATA expc<>+104(SB)/8, $0.0625
DATA expc<>+112(SB)/8, $0.0625
DATA expc<>+120(SB)/8, $0.0625
// 128: c8
DATA expc<>+128(SB)/8, $2.4801587301587301587e-5
DATA expc<>+136(SB)/8, $2.4801587301587301587e-5
DATA expc<>+144(SB)/8, $2.4801587301587301587e-5
DATA expc<>+152(SB)/8, $2.4801587301587301587e-5
// 160: c7
DATA expc<>+160(SB)/8, $1.9841269841269841270e-4
DATA expc<>+168(SB)/8, $1.9841269841269841270e-4
DATA expc<>+176(SB)/8, $1.9841269841269841270e-4
DATA expc<>+184(SB)/8, $1.9841269841269841270e-4
// 192: c6
DATA expc<>+192(SB)/8, $1.3888888888888888889e-3
DATA expc<>+200(SB)/8, $1.3888888888888888889e-3
DATA expc<>+208(SB)/8, $1.3888888888888888889e-3
DATA expc<>+216(SB)/8, $1.3888888888888888889e-3
// 224: c5
DATA expc<>+224(SB)/8, $8.3333333333333333333e-3
DATA expc<>+232(SB)/8, $8.3333333333333333333e-3
DATA expc<>+240(SB)/8, $8.3333333333333333333e-3
DATA expc<>+248(SB)/8, $8.3333333333333333333e-3
// 256: c4
DATA expc<>+256(SB)/8, $4.1666666666666666667e-2
DATA expc<>+264(SB)/8, $4.1666666666666666667e-2
DATA expc<>+272(SB)/8, $4.1666666666666666667e-2
DATA expc<>+280(SB)/8, $4.1666666666666666667e-2
// 288: c3
DATA expc<>+288(SB)/8, $1.6666666666666666667e-1
DATA expc<>+296(SB)/8, $1.6666666666666666667e-1
DATA expc<>+304(SB)/8, $1.6666666666666666667e-1
DATA expc<>+312(SB)/8, $1.6666666666666666667e-1
// 320: c2
DATA expc<>+320(SB)/8, $0.5
DATA expc<>+328(SB)/8, $0.5
DATA expc<>+336(SB)/8, $0.5
DATA expc<>+344(SB)/8, $0.5
// 352: c1
DATA expc<>+352(SB)/8, $1.0
DATA expc<>+360(SB)/8, $1.0
DATA expc<>+368(SB)/8, $1.0
DATA expc<>+376(SB)/8, $1.0
// 384: two
DATA expc<>+384(SB)/8, $2.0
DATA expc<>+392(SB)/8, $2.0
DATA expc<>+400(SB)/8, $2.0
DATA expc<>+408(SB)/8, $2.0
// 416: kmin
DATA expc<>+416(SB)/8, $-1022.0
DATA expc<>+424(SB)/8, $-1022.0
DATA expc<>+432(SB)/8, $-1022.0
DATA expc<>+440(SB)/8, $-1022.0
// 448: kmax
DATA expc<>+448(SB)/8, $1023.0
DATA expc<>+456(SB)/8, $1023.0
DATA expc<>+464(SB)/8, $1023.0
DATA expc<>+472(SB)/8, $1023.0
// 480: bias
DATA expc<>+480(SB)/8, $0x3FF
DATA expc<>+488(SB)/8, $0x3FF
DATA expc<>+496(SB)/8, $0x3FF
DATA expc<>+504(SB)/8, $0x3FF
// 512: the sign bit, for -|x| (Sigmoid)
DATA expc<>+512(SB)/8, $0x8000000000000000
DATA expc<>+520(SB)/8, $0x8000000000000000
DATA expc<>+528(SB)/8, $0x8000000000000000
DATA expc<>+536(SB)/8, $0x8000000000000000
GLOBL expc<>(SB), RODATA, $544

// EXP512 sets Z3 = exp(Z0) on 8 lanes by math.Exp's FMA path (each line's
// comment names the instruction of exp_amd64.s it repeats) and K1 to the
// lanes on its main path, where Z3 is math.Exp's value: -1022 <= k <= 1023
// (see the package documentation: NaN, ±Inf and x*LOG2E outside int32
// convert to k = -2^31, and k <= 1023 implies x < Overflow). It uses
// Z1, Z2, Z4, Z5 and the constants EXP512CONSTS loads into Z15-Z31.
#define EXP512 \
	VMULPD  Z0, Z15, Z1          /* MULSD X0, X1 (X1 = LOG2E) */ \
	VCVTPD2DQ Z1, Y2             /* CVTSD2SL X1, BX */ \
	VCVTDQ2PD Y2, Z1             /* CVTSL2SD BX, X1 */ \
	VMOVAPD Z0, Z3 \
	VFNMADD231PD Z16, Z1, Z3     /* VFNMADD231SD X2, X1, X0 (X2 = LN2U) */ \
	VFNMADD231PD Z17, Z1, Z3     /* VFNMADD231SD X2, X1, X0 (X2 = LN2L) */ \
	VMULPD  Z18, Z3, Z3          /* MULSD $0.0625, X0 */ \
	VMOVAPD Z19, Z4              /* MOVSD exprodata<>+64(SB), X1 */ \
	VFMADD213PD Z20, Z3, Z4      /* VFMADD213SD exprodata<>+56(SB), X0, X1 */ \
	VFMADD213PD Z21, Z3, Z4      /* +48 */ \
	VFMADD213PD Z22, Z3, Z4      /* +40 */ \
	VFMADD213PD Z23, Z3, Z4      /* +32 */ \
	VFMADD213PD Z24, Z3, Z4      /* +24 */ \
	VFMADD213PD Z25, Z3, Z4      /* +0 (0.5) */ \
	VFMADD213PD Z26, Z3, Z4      /* +8 (1.0) */ \
	VMULPD  Z4, Z3, Z3           /* MULSD X1, X0 */ \
	VADDPD  Z27, Z3, Z4          /* VADDSD exprodata<>+16(SB), X0, X1 */ \
	VMULPD  Z4, Z3, Z3           /* MULSD X1, X0 */ \
	VADDPD  Z27, Z3, Z4 \
	VMULPD  Z4, Z3, Z3 \
	VADDPD  Z27, Z3, Z4 \
	VMULPD  Z4, Z3, Z3 \
	VADDPD  Z27, Z3, Z4 \
	VFMADD213PD Z26, Z4, Z3      /* VFMADD213SD exprodata<>+8(SB), X1, X0 */ \
	VPMOVSXDQ Y2, Z5             /* ldexp: ADDL $0x3FF, BX; SHLQ $52, BX */ \
	VPADDQ  Z31, Z5, Z5 \
	VPSLLQ  $52, Z5, Z5 \
	VMULPD  Z5, Z3, Z3           /* lastStep: MULSD X1, X0 */ \
	VCMPPD  $0x1D, Z29, Z1, K1     /* GE_OQ: -1022 <= k */ \
	VCMPPD  $0x12, Z30, Z1, K1, K1 /* LE_OQ: k <= 1023 */

#define EXP512CONSTS \
	VBROADCASTSD expc<>+0(SB), Z15   /* LOG2E */ \
	VBROADCASTSD expc<>+32(SB), Z16  /* LN2U */ \
	VBROADCASTSD expc<>+64(SB), Z17  /* LN2L */ \
	VBROADCASTSD expc<>+96(SB), Z18  /* 0.0625 */ \
	VBROADCASTSD expc<>+128(SB), Z19 /* Taylor coefficients, highest first */ \
	VBROADCASTSD expc<>+160(SB), Z20 \
	VBROADCASTSD expc<>+192(SB), Z21 \
	VBROADCASTSD expc<>+224(SB), Z22 \
	VBROADCASTSD expc<>+256(SB), Z23 \
	VBROADCASTSD expc<>+288(SB), Z24 \
	VBROADCASTSD expc<>+320(SB), Z25 /* 0.5 */ \
	VBROADCASTSD expc<>+352(SB), Z26 /* 1.0 */ \
	VBROADCASTSD expc<>+384(SB), Z27 /* 2.0 */ \
	VBROADCASTSD expc<>+416(SB), Z29 /* -1022 */ \
	VBROADCASTSD expc<>+448(SB), Z30 /* 1023 */ \
	VPBROADCASTQ expc<>+480(SB), Z31 /* 0x3FF */

// EXP256 is EXP512 on 4 lanes (AVX2 and FMA): Y3 = exp(Y0), BX = the
// 4-bit mask of the lanes on the main path. It uses Y1, Y2, Y4-Y7, Y13
// (-1022), Y14 (1023) and Y15 (2.0), the other constants as memory
// operands.
#define EXP256 \
	VMULPD  expc<>+0(SB), Y0, Y1 \
	VCVTPD2DQY Y1, X2 \
	VCVTDQ2PD X2, Y1 \
	VMOVAPD Y0, Y3 \
	VFNMADD231PD expc<>+32(SB), Y1, Y3 \
	VFNMADD231PD expc<>+64(SB), Y1, Y3 \
	VMULPD  expc<>+96(SB), Y3, Y3 \
	VMOVUPD expc<>+128(SB), Y4 \
	VFMADD213PD expc<>+160(SB), Y3, Y4 \
	VFMADD213PD expc<>+192(SB), Y3, Y4 \
	VFMADD213PD expc<>+224(SB), Y3, Y4 \
	VFMADD213PD expc<>+256(SB), Y3, Y4 \
	VFMADD213PD expc<>+288(SB), Y3, Y4 \
	VFMADD213PD expc<>+320(SB), Y3, Y4 \
	VFMADD213PD expc<>+352(SB), Y3, Y4 \
	VMULPD  Y4, Y3, Y3 \
	VADDPD  Y15, Y3, Y4 \
	VMULPD  Y4, Y3, Y3 \
	VADDPD  Y15, Y3, Y4 \
	VMULPD  Y4, Y3, Y3 \
	VADDPD  Y15, Y3, Y4 \
	VMULPD  Y4, Y3, Y3 \
	VADDPD  Y15, Y3, Y4 \
	VFMADD213PD expc<>+352(SB), Y4, Y3 \
	VPMOVSXDQ X2, Y5 \
	VPADDQ  expc<>+480(SB), Y5, Y5 \
	VPSLLQ  $52, Y5, Y5 \
	VMULPD  Y5, Y3, Y3 \
	VCMPPD  $0x1D, Y13, Y1, Y6 /* -1022 <= k */ \
	VCMPPD  $0x12, Y14, Y1, Y7 /* k <= 1023 */ \
	VANDPD  Y7, Y6, Y6 \
	VMOVMSKPD Y6, BX

#define EXP256CONSTS \
	VMOVUPD expc<>+416(SB), Y13 \
	VMOVUPD expc<>+448(SB), Y14 \
	VMOVUPD expc<>+384(SB), Y15

// func expAVX512(dst, src *float64, n int) int
// n is a positive multiple of 8. Per 8 lanes it computes EXP512 and
// stores the results if every lane is on math.Exp's main path; at the
// first vector with another lane it stops and returns how many values it
// stored.
TEXT ·expAVX512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	XORQ AX, AX
	EXP512CONSTS

loop512:
	VMOVUPD (SI)(AX*8), Z0
	EXP512
	KMOVW   K1, BX
	CMPB    BX, $0xFF
	JNE     done512
	VMOVUPD Z3, (DI)(AX*8)
	ADDQ    $8, AX
	CMPQ    AX, CX
	JLT     loop512

done512:
	MOVQ AX, ret+24(FP)
	VZEROUPPER
	RET

// func expAVX2(dst, src *float64, n int) int
// expAVX512 on 4 lanes (EXP256).
TEXT ·expAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	XORQ AX, AX
	EXP256CONSTS

loop256:
	VMOVUPD (SI)(AX*8), Y0
	EXP256
	CMPL    BX, $15
	JNE     done256
	VMOVUPD Y3, (DI)(AX*8)
	ADDQ    $4, AX
	CMPQ    AX, CX
	JLT     loop256

done256:
	MOVQ AX, ret+24(FP)
	VZEROUPPER
	RET

// func sigmoidAVX512(dst, src *float64, n int) int
// expAVX512 for Sigmoid: per 8 lanes x, e = EXP512(-|x|) (the sign bit
// set by VPORQ, as -math.Abs does), num = 1 where x >= 0 (-0 included)
// and e elsewhere, and dst = num / (1 + e); it stops at the first vector
// with a lane whose exponential is off math.Exp's main path.
TEXT ·sigmoidAVX512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	XORQ AX, AX
	EXP512CONSTS
	VPBROADCASTQ expc<>+512(SB), Z28 // sign bit
	VPXORQ Z7, Z7, Z7                 // 0.0

sigloop512:
	VMOVUPD (SI)(AX*8), Z6
	VPORQ   Z28, Z6, Z0
	EXP512
	KMOVW   K1, BX
	CMPB    BX, $0xFF
	JNE     sigdone512
	VCMPPD  $0x1D, Z7, Z6, K2 // GE_OQ: x >= 0
	VADDPD  Z26, Z3, Z8       // 1 + e
	VMOVAPD Z26, K2, Z3       // num
	VDIVPD  Z8, Z3, Z3
	VMOVUPD Z3, (DI)(AX*8)
	ADDQ    $8, AX
	CMPQ    AX, CX
	JLT     sigloop512

sigdone512:
	MOVQ AX, ret+24(FP)
	VZEROUPPER
	RET

// func sigmoidAVX2(dst, src *float64, n int) int
// sigmoidAVX512 on 4 lanes (EXP256).
TEXT ·sigmoidAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	XORQ AX, AX
	EXP256CONSTS
	VMOVUPD expc<>+512(SB), Y12 // sign bit
	VMOVUPD expc<>+352(SB), Y11 // 1.0
	VXORPD  Y10, Y10, Y10       // 0.0

sigloop256:
	VMOVUPD (SI)(AX*8), Y8
	VORPD   Y12, Y8, Y0
	EXP256
	CMPL    BX, $15
	JNE     sigdone256
	VCMPPD  $0x1D, Y10, Y8, Y6   // x >= 0
	VADDPD  Y11, Y3, Y9          // 1 + e
	VBLENDVPD Y6, Y11, Y3, Y3    // num
	VDIVPD  Y9, Y3, Y3
	VMOVUPD Y3, (DI)(AX*8)
	ADDQ    $4, AX
	CMPQ    AX, CX
	JLT     sigloop256

sigdone256:
	MOVQ AX, ret+24(FP)
	VZEROUPPER
	RET

// func sigmoidPairAVX512(s, c, src *float64, n int) int
// sigmoidAVX512 for SigmoidPair: per 8 lanes x, e = EXP512(-|x|),
// p = 1/(1+e), q = e/(1+e), then s = p and c = q where x >= 0, s = q and
// c = p elsewhere.
TEXT ·sigmoidPairAVX512(SB), NOSPLIT, $0-40
	MOVQ s+0(FP), DI
	MOVQ c+8(FP), DX
	MOVQ src+16(FP), SI
	MOVQ n+24(FP), CX
	XORQ AX, AX
	EXP512CONSTS
	VPBROADCASTQ expc<>+512(SB), Z28 // sign bit
	VPXORQ Z7, Z7, Z7                 // 0.0

pairloop512:
	VMOVUPD (SI)(AX*8), Z6
	VPORQ   Z28, Z6, Z0
	EXP512
	KMOVW   K1, BX
	CMPB    BX, $0xFF
	JNE     pairdone512
	VCMPPD  $0x1D, Z7, Z6, K2 // GE_OQ: x >= 0
	VADDPD  Z26, Z3, Z8       // 1 + e
	VDIVPD  Z8, Z26, Z9       // p
	VDIVPD  Z8, Z3, Z10       // q
	VMOVAPD Z10, Z11
	VMOVAPD Z9, K2, Z11       // s
	VMOVAPD Z9, Z12
	VMOVAPD Z10, K2, Z12      // c
	VMOVUPD Z11, (DI)(AX*8)
	VMOVUPD Z12, (DX)(AX*8)
	ADDQ    $8, AX
	CMPQ    AX, CX
	JLT     pairloop512

pairdone512:
	MOVQ AX, ret+32(FP)
	VZEROUPPER
	RET

// func sigmoidPairAVX2(s, c, src *float64, n int) int
// sigmoidPairAVX512 on 4 lanes (EXP256).
TEXT ·sigmoidPairAVX2(SB), NOSPLIT, $0-40
	MOVQ s+0(FP), DI
	MOVQ c+8(FP), DX
	MOVQ src+16(FP), SI
	MOVQ n+24(FP), CX
	XORQ AX, AX
	EXP256CONSTS
	VMOVUPD expc<>+512(SB), Y12 // sign bit
	VMOVUPD expc<>+352(SB), Y11 // 1.0
	VXORPD  Y10, Y10, Y10       // 0.0

pairloop256:
	VMOVUPD (SI)(AX*8), Y8
	VORPD   Y12, Y8, Y0
	EXP256
	CMPL    BX, $15
	JNE     pairdone256
	VCMPPD  $0x1D, Y10, Y8, Y6   // x >= 0
	VADDPD  Y11, Y3, Y9          // 1 + e
	VDIVPD  Y9, Y11, Y4          // p
	VDIVPD  Y9, Y3, Y5           // q
	VBLENDVPD Y6, Y4, Y5, Y7     // s
	VBLENDVPD Y6, Y5, Y4, Y2     // c
	VMOVUPD Y7, (DI)(AX*8)
	VMOVUPD Y2, (DX)(AX*8)
	ADDQ    $4, AX
	CMPQ    AX, CX
	JLT     pairloop256

pairdone256:
	MOVQ AX, ret+32(FP)
	VZEROUPPER
	RET
