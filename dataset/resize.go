package dataset

import (
	"mpsearch/tensor"
)

// Luminance weights of ITU-R BT.601, the ones image/color.GrayModel uses.
const (
	lumR = 0.299
	lumG = 0.587
	lumB = 0.114
)

// grayCheck reports a shape that cannot be converted to one channel: not
// NCHW, or neither 1 nor 3 channels.
func grayCheck(shape []int) error {
	if len(shape) != 4 {
		return optionErr("gray needs images [N,C,H,W]; got shape %v", shape)
	}
	if c := shape[1]; c != 1 && c != 3 {
		return optionErr("gray needs 1 or 3 channels; got %d", c)
	}
	return nil
}

// toGray returns NCHW x (which passed grayCheck) with one channel: x
// itself when it has one channel, the BT.601 luminance when it has three.
func toGray(x *tensor.Tensor) *tensor.Tensor {
	n, c, h, w := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	if c == 1 {
		return x
	}
	hw := h * w
	out := tensor.New(n, 1, h, w)
	for i := 0; i < n; i++ {
		src := x.Data[i*3*hw : (i+1)*3*hw]
		dst := out.Data[i*hw : (i+1)*hw]
		for p := range dst {
			dst[p] = lumR*src[p] + lumG*src[hw+p] + lumB*src[2*hw+p]
		}
	}
	return out
}

// resizeBilinear resizes every channel of NCHW x to oh×ow by bilinear
// interpolation with half-pixel centres and no antialiasing, the convention
// of PyTorch's interpolate(mode="bilinear", align_corners=False) and of ONNX
// Resize (coordinate_transformation_mode="half_pixel"): output pixel (i, j)
// samples the input at ((i+0.5)·h/oh - 0.5, (j+0.5)·w/ow - 0.5), clamped to
// the image.
func resizeBilinear(x *tensor.Tensor, oh, ow int) *tensor.Tensor {
	n, c, h, w := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	ys := axisWeights(h, oh)
	xs := axisWeights(w, ow)
	out := tensor.New(n, c, oh, ow)
	for p := 0; p < n*c; p++ {
		src := x.Data[p*h*w : (p+1)*h*w]
		dst := out.Data[p*oh*ow : (p+1)*oh*ow]
		for i, yw := range ys {
			r0 := src[yw.lo*w : (yw.lo+1)*w]
			r1 := src[yw.hi*w : (yw.hi+1)*w]
			for j, xw := range xs {
				top := r0[xw.lo] + xw.frac*(r0[xw.hi]-r0[xw.lo])
				bot := r1[xw.lo] + xw.frac*(r1[xw.hi]-r1[xw.lo])
				dst[i*ow+j] = top + yw.frac*(bot-top)
			}
		}
	}
	return out
}

// tap is the pair of input indices and the interpolation fraction of one
// output coordinate.
type tap struct {
	lo, hi int
	frac   float64
}

func axisWeights(in, out int) []tap {
	taps := make([]tap, out)
	scale := float64(in) / float64(out)
	for i := range taps {
		s := (float64(i)+0.5)*scale - 0.5
		if s < 0 {
			s = 0
		}
		lo := int(s)
		if lo > in-1 {
			lo = in - 1
		}
		hi := min(lo+1, in-1)
		taps[i] = tap{lo: lo, hi: hi, frac: s - float64(lo)}
		if hi == lo {
			taps[i].frac = 0
		}
	}
	return taps
}
