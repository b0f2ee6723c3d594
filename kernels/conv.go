package kernels

import (
	"encoding/binary"
	"fmt"
)

// ConvShape describes a 2-D convolution of one C x H x W image (NCHW without
// the batch) with KH x KW kernels, in ONNX terms. Zero strides and dilations
// mean 1.
type ConvShape struct {
	C, H, W                              int
	KH, KW                               int
	StrideH, StrideW                     int
	DilationH, DilationW                 int
	PadTop, PadLeft, PadBottom, PadRight int
}

func (s ConvShape) norm() ConvShape {
	s.StrideH, s.StrideW = max(s.StrideH, 1), max(s.StrideW, 1)
	s.DilationH, s.DilationW = max(s.DilationH, 1), max(s.DilationW, 1)
	return s
}

// Out returns the output height and width, or an error if the shape is
// invalid or the output would be empty.
func (s ConvShape) Out() (oh, ow int, err error) {
	s = s.norm()
	if s.C < 1 || s.H < 1 || s.W < 1 || s.KH < 1 || s.KW < 1 ||
		s.PadTop < 0 || s.PadLeft < 0 || s.PadBottom < 0 || s.PadRight < 0 {
		return 0, 0, fmt.Errorf("%w: convolution %+v needs positive sizes and non-negative pads", ErrShape, s)
	}
	oh = (s.H+s.PadTop+s.PadBottom-s.DilationH*(s.KH-1)-1)/s.StrideH + 1
	ow = (s.W+s.PadLeft+s.PadRight-s.DilationW*(s.KW-1)-1)/s.StrideW + 1
	if s.H+s.PadTop+s.PadBottom < s.DilationH*(s.KH-1)+1 || s.W+s.PadLeft+s.PadRight < s.DilationW*(s.KW-1)+1 {
		return 0, 0, fmt.Errorf("%w: %dx%d kernel (dilation %d,%d) is larger than the padded %dx%d input", ErrShape, s.KH, s.KW, s.DilationH, s.DilationW, s.H+s.PadTop+s.PadBottom, s.W+s.PadLeft+s.PadRight)
	}
	return oh, ow, nil
}

// Im2Col writes the (OH*OW) x (C*KH*KW) row-major patch matrix of the
// C x H x W image src into dst: row oy*OW+ox, column (c*KH+ky)*KW+kx holds
// src[c][oy*StrideH-PadTop+ky*DilationH][ox*StrideW-PadLeft+kx*DilationW], or
// pad where that falls outside the image. Pass the activation zero point as
// pad so padding contributes exactly zero. The column order matches ONNX
// weights [N][C][KH][KW] flattened to N x (C*KH*KW).
func Im2Col(dst, src []uint8, s ConvShape, pad uint8) error {
	oh, ow, err := s.Out()
	if err != nil {
		return err
	}
	s = s.norm()
	if len(src) != s.C*s.H*s.W {
		return fmt.Errorf("%w: image holds %d values; want C*H*W = %d", ErrShape, len(src), s.C*s.H*s.W)
	}
	kk := s.C * s.KH * s.KW
	if len(dst) != oh*ow*kk {
		return fmt.Errorf("%w: im2col buffer holds %d values; want OH*OW*C*KH*KW = %d", ErrShape, len(dst), oh*ow*kk)
	}
	im2col(dst, src, s, oh, ow, pad)
	return nil
}

// im2col fills dst for the normalized shape s. For every output row oy and
// input row (c, ky) it writes one KW-segment per output column ox: a fill of
// pad when the input row is outside the image, a copy for the interior
// columns ox in [oxLo, oxHi) whose taps are all inside the row (one 8-byte
// load and store when KW <= 8 and undilated, else a byte or strided copy),
// and a checked per-tap loop only at the left and right borders. The loop
// order keeps src reads sequential: a pixel-major order reads C*KH rows per
// pixel and thrashes cache sets when H*W is a power of two.
func im2col(dst, src []uint8, s ConvShape, oh, ow int, pad uint8) {
	kw, dw, sw, pl := s.KW, s.DilationW, s.StrideW, s.PadLeft
	kk := s.C * s.KH * kw
	span := (kw-1)*dw + 1 // input columns one segment covers
	// Interior: x0 = ox*sw - pl >= 0 and x0 + span <= W.
	oxLo := min(ow, (pl+sw-1)/sw)
	oxHi := oxLo
	if s.W-span+pl >= 0 {
		oxHi = max(oxLo, min(ow, (s.W-span+pl)/sw+1))
	}
	border := func(seg []uint8, line []uint8, x0 int) {
		for kx := range seg {
			if x := x0 + kx*dw; x >= 0 && x < len(line) {
				seg[kx] = line[x]
			} else {
				seg[kx] = pad
			}
		}
	}
	hw := s.H * s.W
	for oy := 0; oy < oh; oy++ {
		rows := dst[oy*ow*kk : (oy+1)*ow*kk]
		for c := 0; c < s.C; c++ {
			img := src[c*hw : (c+1)*hw]
			for ky := 0; ky < s.KH; ky++ {
				col := (c*s.KH + ky) * kw
				y := oy*s.StrideH - s.PadTop + ky*s.DilationH
				if y < 0 || y >= s.H {
					for o := col; o < len(rows); o += kk {
						seg := rows[o : o+kw : o+kw]
						for kx := range seg {
							seg[kx] = pad
						}
					}
					continue
				}
				line := img[y*s.W : (y+1)*s.W : (y+1)*s.W]
				for ox := 0; ox < oxLo; ox++ {
					o := ox*kk + col
					border(rows[o:o+kw:o+kw], line, ox*sw-pl)
				}
				ox := oxLo
				if dw == 1 && kw <= 8 && col+8 <= kk {
					// Copy 8 bytes per segment: the kw <= 8 wanted ones and
					// a spill into the next segment of the same output row,
					// which a later (c, ky) overwrites. Stop where the
					// 8-byte load would leave src.
					base := c*hw + y*s.W - pl
					end := oxHi
					if r := len(src) - 8 - base; r < 0 {
						end = oxLo
					} else {
						end = max(oxLo, min(oxHi, r/sw+1))
					}
					for o := ox*kk + col; ox < end; ox, o = ox+1, o+kk {
						x := base + ox*sw
						binary.LittleEndian.PutUint64(rows[o:o+8], binary.LittleEndian.Uint64(src[x:x+8]))
					}
				}
				switch {
				case dw == 1 && kw <= 8:
					for o := ox*kk + col; ox < oxHi; ox, o = ox+1, o+kk {
						x0 := ox*sw - pl
						seg, in := rows[o:o+kw:o+kw], line[x0:x0+kw:x0+kw]
						for kx := range seg {
							seg[kx] = in[kx]
						}
					}
				case dw == 1:
					for o := ox*kk + col; ox < oxHi; ox, o = ox+1, o+kk {
						x0 := ox*sw - pl
						copy(rows[o:o+kw], line[x0:x0+kw])
					}
				default:
					for o := ox*kk + col; ox < oxHi; ox, o = ox+1, o+kk {
						x0 := ox*sw - pl
						seg, in := rows[o:o+kw:o+kw], line[x0:x0+span:x0+span]
						for kx := range seg {
							seg[kx] = in[kx*dw]
						}
					}
				}
				for ox := oxHi; ox < ow; ox++ {
					o := ox*kk + col
					border(rows[o:o+kw:o+kw], line, ox*sw-pl)
				}
			}
		}
	}
}

// Conv2D convolves the C x H x W uint8 image src (zero point aZero) with the
// packed weights w (N x C*KH*KW) and requantizes with rq, writing the
// N x OH x OW output (NCHW without the batch) into dst. It is Im2Col followed
// by GEMMRequant and a transpose; grouped convolutions call it once per group.
func Conv2D(dst, src []uint8, s ConvShape, aZero uint8, w *Weights, rq *Requant, opt Options) error {
	oh, ow, err := s.Out()
	if err != nil {
		return err
	}
	kk := s.C * s.KH * s.KW
	if w == nil || w.K != kk {
		return fmt.Errorf("%w: weights must have K = C*KH*KW = %d", ErrShape, kk)
	}
	if len(dst) != w.N*oh*ow {
		return fmt.Errorf("%w: output holds %d values; want N*OH*OW = %d", ErrShape, len(dst), w.N*oh*ow)
	}
	cols := make([]uint8, oh*ow*kk)
	if err := Im2Col(cols, src, s, aZero); err != nil {
		return err
	}
	out := make([]uint8, oh*ow*w.N)
	if err := GEMMRequant(out, cols, oh*ow, kk, aZero, w, rq, opt); err != nil {
		return err
	}
	transpose(dst, out, oh*ow, w.N)
	return nil
}

// Transpose writes the cols x rows transpose of the rows x cols row-major
// src into dst (dst[c*rows+r] = src[r*cols+c]): the move of a
// convolution's output from the GEMM's position-major rows to NCHW. It is
// transpose below, the one implementation that Conv2D, the integer
// engine's convolutions and the cost model's measurement of them share.
func Transpose(dst, src []uint8, rows, cols int) { transpose(dst, src, rows, cols) }

// transpose writes the cols x rows transpose of the rows x cols row-major
// src into dst: dst[c*rows+r] = src[r*cols+c]. It moves 8 x 8 byte blocks
// through registers (eight 8-byte loads, three butterfly stages of swap8,
// eight 8-byte stores), visiting blocks along a band of 64 source rows so that each
// destination line is completed while it is in L1. A byte-wise loop over a
// source row writes one byte per destination line and is 4-12x slower when
// rows is a multiple of 1024, where all those lines share a cache set.
func transpose(dst, src []uint8, rows, cols int) {
	const band = 64
	r8, c8 := rows&^7, cols&^7
	for rb := 0; rb < r8; rb += band {
		re := min(rb+band, r8)
		for c0 := 0; c0 < c8; c0 += 8 {
			for r0 := rb; r0 < re; r0 += 8 {
				in := src[r0*cols+c0 : (r0+7)*cols+c0+8]
				x0 := binary.LittleEndian.Uint64(in[0*cols:])
				x1 := binary.LittleEndian.Uint64(in[1*cols:])
				x2 := binary.LittleEndian.Uint64(in[2*cols:])
				x3 := binary.LittleEndian.Uint64(in[3*cols:])
				x4 := binary.LittleEndian.Uint64(in[4*cols:])
				x5 := binary.LittleEndian.Uint64(in[5*cols:])
				x6 := binary.LittleEndian.Uint64(in[6*cols:])
				x7 := binary.LittleEndian.Uint64(in[7*cols:])
				x0, x1 = swap8(x0, x1, 8, 0x00ff00ff00ff00ff)
				x2, x3 = swap8(x2, x3, 8, 0x00ff00ff00ff00ff)
				x4, x5 = swap8(x4, x5, 8, 0x00ff00ff00ff00ff)
				x6, x7 = swap8(x6, x7, 8, 0x00ff00ff00ff00ff)
				x0, x2 = swap8(x0, x2, 16, 0x0000ffff0000ffff)
				x1, x3 = swap8(x1, x3, 16, 0x0000ffff0000ffff)
				x4, x6 = swap8(x4, x6, 16, 0x0000ffff0000ffff)
				x5, x7 = swap8(x5, x7, 16, 0x0000ffff0000ffff)
				x0, x4 = swap8(x0, x4, 32, 0x00000000ffffffff)
				x1, x5 = swap8(x1, x5, 32, 0x00000000ffffffff)
				x2, x6 = swap8(x2, x6, 32, 0x00000000ffffffff)
				x3, x7 = swap8(x3, x7, 32, 0x00000000ffffffff)
				out := dst[c0*rows+r0 : (c0+7)*rows+r0+8]
				binary.LittleEndian.PutUint64(out[0*rows:], x0)
				binary.LittleEndian.PutUint64(out[1*rows:], x1)
				binary.LittleEndian.PutUint64(out[2*rows:], x2)
				binary.LittleEndian.PutUint64(out[3*rows:], x3)
				binary.LittleEndian.PutUint64(out[4*rows:], x4)
				binary.LittleEndian.PutUint64(out[5*rows:], x5)
				binary.LittleEndian.PutUint64(out[6*rows:], x6)
				binary.LittleEndian.PutUint64(out[7*rows:], x7)
			}
		}
	}
	// The ragged right columns of the first r8 rows, then the last rows.
	for c := c8; c < cols; c++ {
		d := dst[c*rows : c*rows+r8]
		for r := range d {
			d[r] = src[r*cols+c]
		}
	}
	for r := r8; r < rows; r++ {
		for c, v := range src[r*cols : (r+1)*cols] {
			dst[c*rows+r] = v
		}
	}
}

// swap8 is one butterfly stage of an 8 x 8 byte transpose whose row i is
// the little-endian uint64 x_i: it exchanges the units (bytes, 2-byte pairs
// or 4-byte halves, as shift is 8, 16 or 32) of a at odd positions with
// those of b at even positions, mask selecting the even units. Applied to
// rows (i, i+1), then (i, i+2), then (i, i+4), it transposes the matrix.
func swap8(a, b uint64, shift uint, mask uint64) (uint64, uint64) {
	t := (a>>shift ^ b) & mask
	return a ^ t<<shift, b ^ t
}
