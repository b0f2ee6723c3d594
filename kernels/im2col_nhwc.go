package kernels

import "fmt"

// Im2ColNHWC writes the (OH*OW) x (KH*KW*C) row-major patch matrix of one
// image stored channels-last (H x W pixels of ld bytes each, the C
// channels of s starting at byte c0 of every pixel) into dst: row
// oy*OW+ox, column (ky*KW+kx)*C+c holds
// src[(y*W+x)*ld + c0 + c] with y = oy*StrideH-PadTop+ky*DilationH and
// x = ox*StrideW-PadLeft+kx*DilationW, or pad where (y, x) falls outside
// the image. Pass the activation zero point as pad so padding contributes
// exactly zero. The column order matches weights [N][KH][KW][C] flattened
// to N x (KH*KW*C) (PermuteHWC); ld > C with c0 selects one group of a
// grouped convolution. Each row is a few copies: KW*C contiguous bytes per
// kernel row when the taps of the row are adjacent pixels inside the
// image (ld == C, no dilation), else C bytes per tap.
func Im2ColNHWC(dst, src []uint8, s ConvShape, ld, c0 int, pad uint8) error {
	oh, ow, err := s.Out()
	if err != nil {
		return err
	}
	s = s.norm()
	if ld < 1 || c0 < 0 || c0+s.C > ld {
		return fmt.Errorf("%w: channels [%d, %d) of %d-byte pixels", ErrShape, c0, c0+s.C, ld)
	}
	if len(src) != s.H*s.W*ld {
		return fmt.Errorf("%w: image holds %d values; want H*W*ld = %d", ErrShape, len(src), s.H*s.W*ld)
	}
	kk := s.KH * s.KW * s.C
	if len(dst) != oh*ow*kk {
		return fmt.Errorf("%w: im2col buffer holds %d values; want OH*OW*KH*KW*C = %d", ErrShape, len(dst), oh*ow*kk)
	}
	im2colNHWC(dst, src, s, oh, ow, ld, c0, pad)
	return nil
}

func im2colNHWC(dst, src []uint8, s ConvShape, oh, ow, ld, c0 int, pad uint8) {
	c, kw := s.C, s.KW
	seg := kw * c // bytes of one kernel row
	kk := s.KH * seg
	whole := ld == c && s.DilationW == 1 // a kernel row inside the image is one run
	for oy := 0; oy < oh; oy++ {
		for ox := 0; ox < ow; ox++ {
			row := dst[(oy*ow+ox)*kk : (oy*ow+ox+1)*kk]
			x0 := ox*s.StrideW - s.PadLeft
			inside := x0 >= 0 && x0+(kw-1)*s.DilationW < s.W
			for ky := 0; ky < s.KH; ky++ {
				r := row[ky*seg : (ky+1)*seg]
				y := oy*s.StrideH - s.PadTop + ky*s.DilationH
				if y < 0 || y >= s.H {
					fill(r, pad)
					continue
				}
				line := src[y*s.W*ld : (y+1)*s.W*ld]
				if whole && inside {
					copySmall(r, line[x0*c:x0*c+seg])
					continue
				}
				for kx := 0; kx < kw; kx++ {
					t := r[kx*c : (kx+1)*c]
					if x := x0 + kx*s.DilationW; x >= 0 && x < s.W {
						copySmall(t, line[x*ld+c0:x*ld+c0+c])
					} else {
						fill(t, pad)
					}
				}
			}
		}
	}
}

// copySmall is copy(dst, src) for len(dst) == len(src), with a byte loop
// for runs of up to 16 bytes, where a call of memmove costs more than the
// copy (one- to six-channel images: LeNet's first convolution copies 5
// bytes per kernel row).
func copySmall(dst, src []uint8) {
	if len(dst) > 16 {
		copy(dst, src)
		return
	}
	src = src[:len(dst)]
	for i := range dst {
		dst[i] = src[i]
	}
}

func fill(b []uint8, v uint8) {
	for i := range b {
		b[i] = v
	}
}

// PermuteHWC reorders the rows of n x (C*KH*KW) weights in the ONNX order
// [N][C][KH][KW] to the order of Im2ColNHWC's columns, [N][KH][KW][C].
func PermuteHWC(w []int8, n, c, kh, kw int) []int8 {
	out := make([]int8, len(w))
	k := c * kh * kw
	for o := 0; o < n; o++ {
		for ci := 0; ci < c; ci++ {
			for y := 0; y < kh; y++ {
				for x := 0; x < kw; x++ {
					out[o*k+(y*kw+x)*c+ci] = w[o*k+(ci*kh+y)*kw+x]
				}
			}
		}
	}
	return out
}
