// Command genstream writes the streaming small-M kernels of package kernels:
// stream_amd64.s (the assembly) and stream_decl_amd64.go (their Go
// declarations and dispatch tables). Run it from the kernels directory with
// go generate (see stream_amd64.go); the layout and arithmetic it emits are
// described in kernels/stream.go and kernels/doc.go.
//
// Every kernel has the Go signature
//
//	func(a *uint8, astride int, w *uint8, c *int32, blocks int)
//
// and adds to the rows x (16*panels) int32 accumulators at c (row stride
// 64*panels bytes) the dot products of rows activation rows (at a,
// a+astride, ...) with panels 16-channel weight panels over blocks blocks
// of the stream layout.
//
//   - streamZ<b>R<r>P<p>: AVX-512 VNNI (VPDPBUSD on ZMM), r = 1..4 rows.
//   - streamZ<b>R1G2: AVX-512 VNNI, one row against two groups of four
//     panels read as two streams in one pass; astride is then the distance
//     in bytes from the first group's weights to the second's, and c holds
//     the first group's 64 accumulators then the second's.
//   - streamZ8R1G4: AVX-512 VNNI, 8-bit weights, one row against four
//     groups of four panels read as four streams in one pass (the groups
//     astride bytes apart; c holds the four groups' 64 accumulators in
//     order).
//   - streamV<b>P<p>: AVX-VNNI (VEX VPDPBUSD on YMM, encoded with BYTE
//     directives; see vexDPBUSD), one row.
//   - streamA<b>P<p>: AVX2 (VPMADDUBSW, VPMADDWD), one row.
package main

import (
	"bytes"
	"fmt"
	"go/format"
	"log"
	"os"
	"strings"
)

// quads returns the quads of K in one block of the stream layout and the
// width of a weight field in bits.
func quads(bits int) (q, field int) {
	switch bits {
	case 8:
		return 2, 8
	case 4:
		return 2, 4
	case 2:
		return 4, 2
	case 1:
		return 8, 1
	}
	panic("bits")
}

var allBits = [...]int{8, 4, 2, 1}

type gen struct{ b bytes.Buffer }

func (g *gen) f(format string, args ...any) { fmt.Fprintf(&g.b, format+"\n", args...) }

// header writes the TEXT line and loads the arguments.
func (g *gen) header(name string) {
	g.f("")
	g.f("// func %s(a *uint8, astride int, w *uint8, c *int32, blocks int)", name)
	g.f("TEXT ·%s(SB), NOSPLIT, $0-40", name)
	g.f("\tMOVQ a+0(FP), SI")
	g.f("\tMOVQ astride+8(FP), BX")
	g.f("\tMOVQ w+16(FP), DI")
	g.f("\tMOVQ c+24(FP), DX")
	g.f("\tMOVQ blocks+32(FP), CX")
}

// zmm writes the AVX-512 VNNI kernel for rows r and panels p. Registers:
// accumulators Z0.. (row-major over rows and panels; with one row a second
// set for odd quads, added at the end), Z16-Z19 packed weights, Z20/Z21
// unpacked weights, Z24-Z27 broadcast activations, Z30 the field mask.
func (g *gen) zmm(bits, r, p int) string {
	name := fmt.Sprintf("streamZ%dR%dP%d", bits, r, p)
	q, field := quads(bits)
	sets := 1
	if r == 1 {
		sets = 2
	}
	acc := func(set, row, pan int) string { return fmt.Sprintf("Z%d", set*r*p+row*p+pan) }
	rowPtr := []string{"SI", "R8", "R9", "R10"}
	g.header(name)
	if r > 1 {
		g.f("\tLEAQ (SI)(BX*1), R8")
	}
	if r > 2 {
		g.f("\tLEAQ (R8)(BX*1), R9")
	}
	if r > 3 {
		g.f("\tLEAQ (R9)(BX*1), R10")
	}
	if bits != 8 {
		g.f("\tMOVL $0x%08x, AX", 0x01010101*((1<<field)-1))
		g.f("\tVPBROADCASTD AX, Z30")
	}
	for row := 0; row < r; row++ {
		for pan := 0; pan < p; pan++ {
			g.f("\tVMOVDQU32 %d(DX), %s", (row*p+pan)*64, acc(0, row, pan))
		}
	}
	if sets == 2 {
		for pan := 0; pan < p; pan++ {
			a := acc(1, 0, pan)
			g.f("\tVPXORD %s, %s, %s", a, a, a)
		}
	}
	g.f("%sloop:", name)
	if bits == 8 {
		for j := 0; j < q; j++ {
			for row := 0; row < r; row++ {
				g.f("\tVPBROADCASTD %d(%s), Z%d", 4*j, rowPtr[row], 24+row)
			}
			for pan := 0; pan < p; pan++ {
				off := (j*p + pan) * 64
				if r == 1 {
					g.f("\tVPDPBUSD %d(DI), Z24, %s", off, acc(j%sets, 0, pan))
					continue
				}
				t := fmt.Sprintf("Z%d", 20+pan%2)
				g.f("\tVMOVDQU64 %d(DI), %s", off, t)
				for row := 0; row < r; row++ {
					g.f("\tVPDPBUSD %s, Z%d, %s", t, 24+row, acc(0, row, pan))
				}
			}
		}
	} else {
		for pan := 0; pan < p; pan++ {
			g.f("\tVMOVDQU64 %d(DI), Z%d", pan*64, 16+pan)
		}
		for j := 0; j < q; j++ {
			for row := 0; row < r; row++ {
				g.f("\tVPBROADCASTD %d(%s), Z%d", 4*j, rowPtr[row], 24+row)
			}
			for pan := 0; pan < p; pan++ {
				t := fmt.Sprintf("Z%d", 20+pan%2)
				if j == 0 {
					g.f("\tVPANDD Z30, Z%d, %s", 16+pan, t)
				} else {
					g.f("\tVPSRLW $%d, Z%d, %s", j*field, 16+pan, t)
					g.f("\tVPANDD Z30, %s, %s", t, t)
				}
				for row := 0; row < r; row++ {
					g.f("\tVPDPBUSD %s, Z%d, %s", t, 24+row, acc(j%sets, row, pan))
				}
			}
		}
	}
	for row := 0; row < r; row++ {
		g.f("\tADDQ $%d, %s", 4*q, rowPtr[row])
	}
	if bits == 8 {
		g.f("\tADDQ $%d, DI", q*p*64)
	} else {
		g.f("\tADDQ $%d, DI", p*64)
	}
	g.f("\tDECQ CX")
	g.f("\tJNZ %sloop", name)
	if sets == 2 {
		for pan := 0; pan < p; pan++ {
			g.f("\tVPADDD %s, %s, %s", acc(1, 0, pan), acc(0, 0, pan), acc(0, 0, pan))
		}
	}
	for row := 0; row < r; row++ {
		for pan := 0; pan < p; pan++ {
			g.f("\tVMOVDQU32 %s, %d(DX)", acc(0, row, pan), (row*p+pan)*64)
		}
	}
	g.f("\tVZEROUPPER")
	g.f("\tRET")
	return name
}

// zmmPair writes streamZ<bits>R1G2: one row, two groups of four panels
// (at DI and at DI+BX) in one pass, so that the weights come from memory
// as two sequential streams (on Zen 5, 1.2-1.3x the bandwidth of one
// stream at 64 MiB). Registers: accumulators Z(8*set + 4*group + panel),
// the second set for odd quads (added at the end); Z16-Z23 packed weights;
// Z28/Z29 unpacked weights; Z24 the broadcast activations; Z30 the mask.
func (g *gen) zmmPair(bits int) string {
	name := fmt.Sprintf("streamZ%dR1G2", bits)
	q, field := quads(bits)
	acc := func(set, grp, pan int) string { return fmt.Sprintf("Z%d", 8*set+4*grp+pan) }
	ptr := []string{"DI", "R11"}
	g.header(name)
	g.f("\tLEAQ (DI)(BX*1), R11")
	if bits != 8 {
		g.f("\tMOVL $0x%08x, AX", 0x01010101*((1<<field)-1))
		g.f("\tVPBROADCASTD AX, Z30")
	}
	for grp := 0; grp < 2; grp++ {
		for pan := 0; pan < 4; pan++ {
			g.f("\tVMOVDQU32 %d(DX), %s", (4*grp+pan)*64, acc(0, grp, pan))
			a := acc(1, grp, pan)
			g.f("\tVPXORD %s, %s, %s", a, a, a)
		}
	}
	g.f("%sloop:", name)
	if bits != 8 {
		for grp := 0; grp < 2; grp++ {
			for pan := 0; pan < 4; pan++ {
				g.f("\tVMOVDQU64 %d(%s), Z%d", pan*64, ptr[grp], 16+4*grp+pan)
			}
		}
	}
	for j := 0; j < q; j++ {
		g.f("\tVPBROADCASTD %d(SI), Z24", 4*j)
		for pan := 0; pan < 4; pan++ {
			for grp := 0; grp < 2; grp++ {
				if bits == 8 {
					g.f("\tVPDPBUSD %d(%s), Z24, %s", (j*4+pan)*64, ptr[grp], acc(j%2, grp, pan))
					continue
				}
				t := fmt.Sprintf("Z%d", 28+grp)
				src := fmt.Sprintf("Z%d", 16+4*grp+pan)
				if j == 0 {
					g.f("\tVPANDD Z30, %s, %s", src, t)
				} else {
					g.f("\tVPSRLW $%d, %s, %s", j*field, src, t)
					g.f("\tVPANDD Z30, %s, %s", t, t)
				}
				g.f("\tVPDPBUSD %s, Z24, %s", t, acc(j%2, grp, pan))
			}
		}
	}
	g.f("\tADDQ $%d, SI", 4*q)
	step := 4 * 64
	if bits == 8 {
		step = q * 4 * 64
	}
	g.f("\tADDQ $%d, DI", step)
	g.f("\tADDQ $%d, R11", step)
	g.f("\tDECQ CX")
	g.f("\tJNZ %sloop", name)
	for grp := 0; grp < 2; grp++ {
		for pan := 0; pan < 4; pan++ {
			g.f("\tVPADDD %s, %s, %s", acc(1, grp, pan), acc(0, grp, pan), acc(0, grp, pan))
			g.f("\tVMOVDQU32 %s, %d(DX)", acc(0, grp, pan), (4*grp+pan)*64)
		}
	}
	g.f("\tVZEROUPPER")
	g.f("\tRET")
	return name
}

// zmmQuad8 writes streamZ8R1G4: one row of 8-bit weights, four groups of
// four panels (at DI, DI+BX, DI+2*BX, DI+3*BX) in one pass, four
// sequential streams. Registers: accumulators Z(4*group + panel), one set
// (16 independent chains hide the VPDPBUSD latency); Z24 the broadcast
// activations.
func (g *gen) zmmQuad8() string {
	name := "streamZ8R1G4"
	q, _ := quads(8)
	ptr := []string{"DI", "R11", "R12", "R13"}
	g.header(name)
	g.f("\tLEAQ (DI)(BX*1), R11")
	g.f("\tLEAQ (DI)(BX*2), R12")
	g.f("\tLEAQ (R11)(BX*2), R13")
	for i := 0; i < 16; i++ {
		g.f("\tVMOVDQU32 %d(DX), Z%d", i*64, i)
	}
	g.f("%sloop:", name)
	for j := 0; j < q; j++ {
		g.f("\tVPBROADCASTD %d(SI), Z24", 4*j)
		for pan := 0; pan < 4; pan++ {
			for grp := 0; grp < 4; grp++ {
				g.f("\tVPDPBUSD %d(%s), Z24, Z%d", (j*4+pan)*64, ptr[grp], 4*grp+pan)
			}
		}
	}
	g.f("\tADDQ $%d, SI", 4*q)
	for _, r := range ptr {
		g.f("\tADDQ $%d, %s", q*4*64, r)
	}
	g.f("\tDECQ CX")
	g.f("\tJNZ %sloop", name)
	for i := 0; i < 16; i++ {
		g.f("\tVMOVDQU32 Z%d, %d(DX)", i, i*64)
	}
	g.f("\tVZEROUPPER")
	g.f("\tRET")
	return name
}

// vexDPBUSD returns the BYTE directive of the VEX-encoded (AVX-VNNI)
//
//	VPDPBUSD ymm(dst), ymm(src1), ymm(src2)
//
// (dst += dot of the unsigned bytes of src1 with the signed bytes of src2):
// VEX.256.66.0F38.W0 50 /r (Intel SDM vol. 2C, "VPDPBUSD", AVX-VNNI form),
// three-byte prefix C4 [R̄ X̄ B̄ 00010] [W=0 v̄v̄v̄v̄ L=1 pp=01], opcode 50,
// ModRM 11 reg=dst rm=src2. Registers 0..15.
func vexDPBUSD(dst, src1, src2 int) string {
	b1 := 0x02 // map 0F38
	if dst < 8 {
		b1 |= 0x80 // R̄
	}
	b1 |= 0x40 // X̄ (no index register)
	if src2 < 8 {
		b1 |= 0x20 // B̄
	}
	b2 := (^src1&15)<<3 | 1<<2 | 1 // W=0, vvvv inverted, L=1 (256-bit), pp=01 (66)
	modrm := 0xc0 | (dst&7)<<3 | src2&7
	return fmt.Sprintf("BYTE $0xc4; BYTE $0x%02x; BYTE $0x%02x; BYTE $0x50; BYTE $0x%02x // VPDPBUSD Y%d, Y%d, Y%d (Go order: src2, src1, dst)", b1, b2, modrm, src2, src1, dst)
}

// ymm writes the one-row YMM kernel: vnni selects AVX-VNNI (VEX VPDPBUSD),
// otherwise AVX2 (VPMADDUBSW pair sums widened by VPMADDWD). Registers:
// Y0-Y7 accumulators (panel j: Y(2j) channels 0-7, Y(2j+1) 8-15), Y8 the
// broadcast activation quad, Y9 the field mask, Y10/Y11 unpacked weights,
// Y12 int16 ones, Y13 int16 sixteens, Y14 bytes 0x80, Y15 scratch.
func (g *gen) ymm(bits, p int, vnni bool) string {
	pre := "streamA"
	if vnni {
		pre = "streamV"
	}
	name := fmt.Sprintf("%s%dP%d", pre, bits, p)
	q, field := quads(bits)
	g.header(name)
	if bits == 8 && !vnni {
		field = 4 // two nibbles of the weight XOR 0x80
	}
	if bits != 8 || !vnni {
		g.f("\tMOVL $0x%08x, AX", 0x01010101*((1<<field)-1))
		g.f("\tMOVQ AX, X9")
		g.f("\tVPBROADCASTD X9, Y9")
	}
	if !vnni {
		g.f("\tMOVL $0x00010001, AX")
		g.f("\tMOVQ AX, X12")
		g.f("\tVPBROADCASTD X12, Y12")
		if bits == 8 {
			g.f("\tMOVL $0x00100010, AX")
			g.f("\tMOVQ AX, X13")
			g.f("\tVPBROADCASTD X13, Y13")
			g.f("\tMOVL $0x80808080, AX")
			g.f("\tMOVQ AX, X14")
			g.f("\tVPBROADCASTD X14, Y14")
		}
	}
	for i := 0; i < 2*p; i++ {
		g.f("\tVMOVDQU %d(DX), Y%d", 32*i, i)
	}
	g.f("%sloop:", name)
	for j := 0; j < q; j++ {
		g.f("\tVPBROADCASTD %d(SI), Y8", 4*j)
		for i := 0; i < 2*p; i++ { // i = 2*panel + half
			t := 10 + i%2
			var off int
			if bits == 8 {
				off = (j*p+i/2)*64 + (i%2)*32
			} else {
				off = i * 32
			}
			switch {
			case bits == 8 && vnni:
				g.f("\tVMOVDQU %d(DI), Y%d", off, t)
			case bits == 8:
				g.f("\tVMOVDQU %d(DI), Y%d", off, t)
				g.f("\tVPXOR Y14, Y%d, Y%d", t, t)
				g.f("\tVPSRLW $4, Y%d, Y15", t)
				g.f("\tVPAND Y9, Y15, Y15")
				g.f("\tVPAND Y9, Y%d, Y%d", t, t)
				g.f("\tVPMADDUBSW Y15, Y8, Y15")
				g.f("\tVPMADDUBSW Y%d, Y8, Y%d", t, t)
				g.f("\tVPMADDWD Y13, Y15, Y15")
				g.f("\tVPMADDWD Y12, Y%d, Y%d", t, t)
				g.f("\tVPADDD Y15, Y%d, Y%d", i, i)
				g.f("\tVPADDD Y%d, Y%d, Y%d", t, i, i)
				continue
			case j == 0:
				g.f("\tVPAND %d(DI), Y9, Y%d", off, t)
			default:
				g.f("\tVMOVDQU %d(DI), Y%d", off, t)
				g.f("\tVPSRLW $%d, Y%d, Y%d", j*field, t, t)
				g.f("\tVPAND Y9, Y%d, Y%d", t, t)
			}
			if vnni {
				g.f("\t%s", vexDPBUSD(i, 8, t))
			} else {
				g.f("\tVPMADDUBSW Y%d, Y8, Y%d", t, t)
				g.f("\tVPMADDWD Y12, Y%d, Y%d", t, t)
				g.f("\tVPADDD Y%d, Y%d, Y%d", t, i, i)
			}
		}
	}
	g.f("\tADDQ $%d, SI", 4*q)
	if bits == 8 {
		g.f("\tADDQ $%d, DI", q*p*64)
	} else {
		g.f("\tADDQ $%d, DI", p*64)
	}
	g.f("\tDECQ CX")
	g.f("\tJNZ %sloop", name)
	for i := 0; i < 2*p; i++ {
		g.f("\tVMOVDQU Y%d, %d(DX)", i, 32*i)
	}
	g.f("\tVZEROUPPER")
	g.f("\tRET")
	return name
}

var panelCounts = [...]int{4, 1} // streamGroup panels, and one for the tail

// generate returns the assembly and the Go declarations.
func generate() (asm, decl []byte, err error) {
	var s gen
	s.f("// Code generated by kernels/internal/genstream; DO NOT EDIT.")
	s.f("")
	s.f("//go:build amd64 && !purego")
	s.f("")
	s.f(`#include "textflag.h"`)
	s.f("")
	s.f("// VEX-encoded VPDPBUSD (AVX-VNNI) used below; the Go assembler encodes")
	s.f("// VPDPBUSD as EVEX only. Encoding: VEX.256.66.0F38.W0 50 /r (Intel SDM")
	s.f("// vol. 2C, VPDPBUSD), checked against GNU as ({vex} vpdpbusd):")
	for dst := 0; dst < 8; dst++ {
		for src2 := 10; src2 < 12; src2++ {
			s.f("//   %s", vexDPBUSD(dst, 8, src2))
		}
	}
	var z [len(allBits)][4][len(panelCounts)]string
	var v, a [len(allBits)][len(panelCounts)]string
	var pair [len(allBits)]string
	for bi, bits := range allBits {
		for pi, p := range panelCounts {
			for r := 1; r <= 4; r++ {
				z[bi][r-1][pi] = s.zmm(bits, r, p)
			}
			v[bi][pi] = s.ymm(bits, p, true)
			a[bi][pi] = s.ymm(bits, p, false)
		}
		pair[bi] = s.zmmPair(bits)
	}
	quad8 := s.zmmQuad8()

	var d gen
	d.f("// Code generated by kernels/internal/genstream; DO NOT EDIT.")
	d.f("")
	d.f("//go:build amd64 && !purego")
	d.f("")
	d.f("package kernels")
	var names []string
	for bi := range allBits {
		for pi := range panelCounts {
			for r := 0; r < 4; r++ {
				names = append(names, z[bi][r][pi])
			}
			names = append(names, v[bi][pi], a[bi][pi])
		}
		names = append(names, pair[bi])
	}
	names = append(names, quad8)
	for _, n := range names {
		d.f("")
		d.f("//go:noescape")
		d.f("func %s(a *uint8, astride int, w *uint8, c *int32, blocks int)", n)
	}
	table := func(doc, name string, cell func(bi, pi int) string) {
		d.f("")
		d.f("// %s", doc)
		d.f("var %s = [%d][%d]streamKernel{", name, len(allBits), len(panelCounts))
		for bi := range allBits {
			var cells []string
			for pi := range panelCounts {
				cells = append(cells, cell(bi, pi))
			}
			d.f("\t{%s},", strings.Join(cells, ", "))
		}
		d.f("}")
	}
	d.f("")
	d.f("// streamZKernels[bits index][rows-1][panels index] are the AVX-512 VNNI kernels.")
	d.f("var streamZKernels = [%d][4][%d]streamKernel{", len(allBits), len(panelCounts))
	for bi := range allBits {
		d.f("\t{")
		for r := 0; r < 4; r++ {
			d.f("\t\t{%s},", strings.Join(z[bi][r][:], ", "))
		}
		d.f("\t},")
	}
	d.f("}")
	d.f("")
	d.f("// streamZPairKernels[bits index] are the AVX-512 VNNI kernels of one row against two groups.")
	d.f("var streamZPairKernels = [%d]streamKernel{%s}", len(allBits), strings.Join(pair[:], ", "))
	table("streamVKernels[bits index][panels index] are the AVX-VNNI kernels (one row).", "streamVKernels", func(bi, pi int) string { return v[bi][pi] })
	table("streamAKernels[bits index][panels index] are the AVX2 kernels (one row).", "streamAKernels", func(bi, pi int) string { return a[bi][pi] })
	src, err := format.Source(d.b.Bytes())
	if err != nil {
		return nil, nil, err
	}
	return s.b.Bytes(), src, nil
}

// Output files, relative to the kernels directory.
const (
	asmFile  = "stream_amd64.s"
	declFile = "stream_decl_amd64.go"
)

func main() {
	asm, decl, err := generate()
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(asmFile, asm, 0o644); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(declFile, decl, 0o644); err != nil {
		log.Fatal(err)
	}
}
