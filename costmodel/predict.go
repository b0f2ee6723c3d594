package costmodel

import (
	"fmt"
	"math"
	"time"

	"mpsearch/intengine"
	"mpsearch/kernels"
)

// Tile geometry and blocking of package kernels, which the model mirrors:
// 6 x 16 output tiles, K padded to a multiple of 4, and blocks of row tiles
// whose packed activations fit aBlockBytes.
const (
	tileM       = 6
	tileN       = 16
	aBlockBytes = 192 << 10
)

// nGEMMFeatures is the number of terms of the GEMM model.
const nGEMMFeatures = 12

// gemmFeatures returns the terms of the GEMM model for a GEMMRequant call
// with rows rows at kernel width kb, in the order of GEMMModel.coef, for
// the kernels of instruction set isa (kernels.ISA: the vector packers and
// epilogue unless it is kernels.ISAGo; 8-bit weights as int16 pairs, two
// bytes per packed element, unless it is kernels.ISAVNNI, whose 8-bit
// kernel reads bytes like the narrower ones):
//   - a constant;
//   - output channels (the per-call setup of each channel's requantization
//     parameters);
//   - padded MACs (whole 6 x 16 tiles over K rounded up to 4);
//   - tiles (micro-kernel calls) and row tiles (packing calls, per-tile
//     accumulators);
//   - rows of full 16-channel panels requantized by the vector epilogue,
//     outputs of partial panels requantized by the scalar one, and the rows
//     those span;
//   - activation elements packed by the vector packer (whole 6-row tiles, K
//     rounded down to 8 for 8-bit or 16 for narrower kernels) and elements
//     left to the scalar packer;
//   - weight-panel bytes streamed (every block of row tiles that fits the
//     kernels' L2 block reads all panels once);
//   - packed activation bytes when they exceed the L2 cache of l2 bytes:
//     the kernels pack all of A before using it block by block, so a larger
//     A is written to and read back from L3 or memory.
func gemmFeatures(kb, rows, k, n, l2 int, isa string) [nGEMMFeatures]float64 {
	mt := (rows + tileM - 1) / tileM
	np := (n + tileN - 1) / tileN
	kp := (k + 3) &^ 3
	vector := isa != kernels.ISAGo
	elem, vecBlock := 1, 16
	if kb == 8 && isa != kernels.ISAVNNI {
		elem, vecBlock = 2, 8
	}
	vecCols := 0
	if vector {
		vecCols = k / vecBlock * vecBlock
	}
	full := rows / tileM
	vecRows := rows
	if !vector {
		vecRows = 0
	}
	packedA := float64(mt) * float64(tileM*kp*elem)
	bigA := 0.0
	if l2 > 0 && packedA > float64(l2) {
		bigA = packedA
	}
	scalarRows := 0.0
	if n%tileN != 0 || !vector {
		scalarRows = float64(rows)
	}
	blockTiles := max(1, aBlockBytes/(kp*tileM*elem))
	mBlocks := (mt + blockTiles - 1) / blockTiles
	return [nGEMMFeatures]float64{
		1,
		float64(n),
		float64(tileM*tileN) * float64(mt) * float64(np) * float64(kp),
		float64(mt) * float64(np),
		float64(mt),
		float64(vecRows) * float64(n/tileN),
		float64(rows)*float64(n%tileN) + float64(rows-vecRows)*float64(n/tileN*tileN),
		scalarRows,
		float64(tileM) * float64(full) * float64(vecCols),
		float64(rows)*float64(k) - float64(tileM)*float64(full)*float64(vecCols),
		float64(mBlocks) * float64(np*tileN) * float64(kp) * float64(elem),
		bigA,
	}
}

func (g *GEMMModel) coef() [nGEMMFeatures]float64 {
	return [nGEMMFeatures]float64{g.OverheadNs, g.NsPerChannel, g.NsPerMAC, g.NsPerTile, g.NsPerRowTile, g.NsPerRequantRow, g.NsPerRequantScalar, g.NsPerScalarRow, g.NsPerPack, g.NsPerPackScalar, g.NsPerWeightByte, g.NsPerSpilledByte}
}

func dotN(a, b [nGEMMFeatures]float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// nIm2ColFeatures is the number of terms of the im2col model.
const nIm2ColFeatures = 5

// im2colFeatures are the terms of the im2col model for one image of the
// normalized geometry g, counted by walking the loops of kernels.Im2Col:
// a constant, output pixels (patch rows), lines (one per output row, input
// channel and kernel row), segments of KW taps copied with one 8-byte move,
// and bytes written one at a time (rows of padding, border segments and the
// segments the 8-byte move cannot take).
func im2colFeatures(g kernels.ConvShape) [nIm2ColFeatures]float64 {
	g.StrideH, g.StrideW = max(g.StrideH, 1), max(g.StrideW, 1)
	g.DilationH, g.DilationW = max(g.DilationH, 1), max(g.DilationW, 1)
	oh, ow, err := g.Out()
	if err != nil {
		return [nIm2ColFeatures]float64{}
	}
	kw, dw, sw, pl := g.KW, g.DilationW, g.StrideW, g.PadLeft
	kk := g.C * g.KH * kw
	span := (kw-1)*dw + 1
	oxLo := min(ow, (pl+sw-1)/sw)
	oxHi := oxLo
	if g.W-span+pl >= 0 {
		oxHi = max(oxLo, min(ow, (g.W-span+pl)/sw+1))
	}
	srcLen := g.C * g.H * g.W
	hw := g.H * g.W
	var moves, bytes float64
	for oy := 0; oy < oh; oy++ {
		for ky := 0; ky < g.KH; ky++ {
			y := oy*g.StrideH - g.PadTop + ky*g.DilationH
			if y < 0 || y >= g.H {
				bytes += float64(g.C * ow * kw)
				continue
			}
			for c := 0; c < g.C; c++ {
				col := (c*g.KH + ky) * kw
				border := oxLo + ow - oxHi
				fast := 0
				if dw == 1 && kw <= 8 && col+8 <= kk {
					base := c*hw + y*g.W - pl
					if r := srcLen - 8 - base; r >= 0 {
						fast = max(oxLo, min(oxHi, r/sw+1)) - oxLo
					}
				}
				moves += float64(fast)
				bytes += float64((border + oxHi - oxLo - fast) * kw)
			}
		}
	}
	return [nIm2ColFeatures]float64{1, float64(oh * ow), float64(oh * g.C * g.KH), moves, bytes}
}

// transposeFeatures are the terms of the transpose model for one image:
// constant, rows, elements moved, elements moved while their cache lines
// conflict in L1, and the same when the stride is a multiple of 4 KiB
// and n >= 32.
//
// The transpose writes each output row's n values m bytes apart. When m is
// a multiple of the line size those n lines fall into sets/gcd(sets, m/line)
// L1 sets; if n exceeds their capacity (that many sets times the ways) every
// write misses. A stride that is a multiple of 4 KiB adds store/load address
// aliasing (the n >= 32 threshold is empirical). Measured on Zen 5 (48 KiB, 12 ways): 0.5 ns per element for
// m = 1000 or 1048; for m = 1024 0.5 ns with n = 48 and 2.2 to 2.6 ns with
// n >= 64; for m = 4096 1.9 ns with n = 16 and 6 to 8 ns with n >= 48.
func transposeFeatures(m, n int, l1 CacheInfo) [5]float64 {
	e := float64(m) * float64(n)
	var conflict, conflict4k float64
	if l1.Line > 0 && l1.Sets > 0 && l1.Ways > 0 && m%l1.Line == 0 {
		sets := l1.Sets / gcd(l1.Sets, m/l1.Line)
		if n > sets*l1.Ways {
			conflict = e
			if m%4096 == 0 && n >= 32 {
				conflict4k = e
			}
		}
	}
	return [5]float64{1, float64(m), e, conflict, conflict4k}
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func dot5(a, b [5]float64) float64 {
	return a[0]*b[0] + a[1]*b[1] + a[2]*b[2] + a[3]*b[3] + a[4]*b[4]
}

// gemmNs predicts one GEMMRequant call in nanoseconds.
func (p *Profile) gemmNs(kb, rows, k, n int) (float64, error) {
	g, err := p.gemmModel(kb)
	if err != nil {
		return 0, err
	}
	return dotN(g.coef(), gemmFeatures(kb, rows, k, n, p.CPU.L2Bytes, p.CPU.KernelISA)), nil
}

// Predict returns the predicted latency of layer s at bits-bit weights for
// a batch of batch samples (0 means 1), run as Measure runs it, on the
// profile's CPU and thread count. Predictions grow with M, K, N, the batch
// and the groups in steps of whole tiles; within a tile a fuller one can be
// predicted slightly faster, as the kernels' vector packer only handles
// whole 6-row tiles and 8- or 16-column blocks.
func Predict(p *Profile, s LayerShape, bits, batch int) (time.Duration, error) {
	ns, err := predictNs(p, s, bits, batch)
	if err != nil {
		return 0, err
	}
	return time.Duration(math.Round(ns)), nil
}

func predictNs(p *Profile, s LayerShape, bits, batch int) (float64, error) {
	if err := s.Validate(); err != nil {
		return 0, err
	}
	kb, err := KernelBits(bits)
	if err != nil {
		return 0, fmt.Errorf("layer %q: %w", s.Name, err)
	}
	batch = max(batch, 1)
	switch {
	case s.Conv == nil && s.Stream && batch*s.M <= intengine.StreamMaxRows(kb):
		return p.streamNs(kb, batch*s.M, s.K, s.N)
	case s.Conv == nil:
		return p.gemmNs(kb, batch*s.M, s.K, s.N)
	case s.Depthwise:
		dw := *s.Conv
		dw.C *= max(s.Groups, 1)
		return float64(batch) * dotS(p.Depthwise.coef(), depthwiseFeatures(dw)), nil
	}
	return p.convNs(s, kb, batch)
}

// PredictModel returns the predicted latency of the layers run one after
// another, layer i at bits[i]: the sum of Predict.
func PredictModel(p *Profile, shapes []LayerShape, bits []int, batch int) (time.Duration, error) {
	if len(bits) != len(shapes) {
		return 0, fmt.Errorf("%w: %d bit widths for %d layers", ErrBits, len(bits), len(shapes))
	}
	var total float64
	for i, s := range shapes {
		t, err := predictNs(p, s, bits[i], batch)
		if err != nil {
			return 0, err
		}
		total += t
	}
	return time.Duration(math.Round(total)), nil
}

func (m *Im2ColModel) coef() [nIm2ColFeatures]float64 {
	return [nIm2ColFeatures]float64{m.CallNs, m.NsPerPixel, m.NsPerLine, m.NsPerRun, m.NsPerElement}
}

func (m *TransposeModel) coef() [5]float64 {
	return [5]float64{m.CallNs, m.NsPerRow, m.NsPerElement, m.NsPerConflict, m.NsPerConflict4K}
}
