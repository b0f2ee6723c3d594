package kernels

import "fmt"

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
	for oy := 0; oy < oh; oy++ {
		for ox := 0; ox < ow; ox++ {
			row := dst[(oy*ow+ox)*kk : (oy*ow+ox+1)*kk]
			i := 0
			for c := 0; c < s.C; c++ {
				img := src[c*s.H*s.W : (c+1)*s.H*s.W]
				for ky := 0; ky < s.KH; ky++ {
					y := oy*s.StrideH - s.PadTop + ky*s.DilationH
					for kx := 0; kx < s.KW; kx++ {
						x := ox*s.StrideW - s.PadLeft + kx*s.DilationW
						if y < 0 || y >= s.H || x < 0 || x >= s.W {
							row[i] = pad
						} else {
							row[i] = img[y*s.W+x]
						}
						i++
					}
				}
			}
		}
	}
	return nil
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
	for p := 0; p < oh*ow; p++ {
		for n := 0; n < w.N; n++ {
			dst[n*oh*ow+p] = out[p*w.N+n]
		}
	}
	return nil
}
