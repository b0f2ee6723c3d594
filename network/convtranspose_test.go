package network

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"mpsearch/tensor"
)

func init() {
	conformanceSkips["test_convtranspose_3d"] = "3-D transposed convolution: only 1-D and 2-D are supported"
}

// naiveConvTranspose evaluates the definition of a 2-D ConvTranspose
// directly: Y[n, g·mg+o, y·s-pt+i·d, x·s-pl+j·d] += X[n, g·cg+c, y, x]·W[g·cg+c, o, i, j],
// on an output of size oh×ow.
func naiveConvTranspose(x, w, b *tensor.Tensor, group, sh, sw, dh, dw, pt, pl, oh, ow int) *tensor.Tensor {
	n, c, ih, iw := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	mg, kh, kw := w.Shape[1], w.Shape[2], w.Shape[3]
	m, cg := mg*group, c/group
	y := tensor.New(n, m, oh, ow)
	for s := 0; s < n; s++ {
		for ci := 0; ci < c; ci++ {
			g := ci / cg
			for o := 0; o < mg; o++ {
				for a := 0; a < ih; a++ {
					for bb := 0; bb < iw; bb++ {
						for i := 0; i < kh; i++ {
							for j := 0; j < kw; j++ {
								yy, xx := a*sh-pt+i*dh, bb*sw-pl+j*dw
								if yy < 0 || yy >= oh || xx < 0 || xx >= ow {
									continue
								}
								y.Data[((s*m+g*mg+o)*oh+yy)*ow+xx] += x.Data[((s*c+ci)*ih+a)*iw+bb] * w.Data[((ci*mg+o)*kh+i)*kw+j]
							}
						}
					}
				}
			}
		}
	}
	if b != nil {
		for s := 0; s < n; s++ {
			for o := 0; o < m; o++ {
				for p := 0; p < oh*ow; p++ {
					y.Data[(s*m+o)*oh*ow+p] += b.Data[o]
				}
			}
		}
	}
	return y
}

// convTTol bounds the difference of two summation orders of a few dozen
// N(0,1) products: a few ulps.
const convTTol = 1e-13

// TestConvTranspose checks ConvTranspose against the direct definition and
// finite differences over groups, strides, pads, output padding, dilations,
// output_shape and auto_pad, on the per-sample and the chunked paths of
// the conv machinery.
func TestConvTranspose(t *testing.T) {
	rng := rand.New(rand.NewPCG(22, 1))
	for _, c := range []struct {
		name                  string
		x, w                  []int
		kv                    []any
		group, sh, sw, dh, dw int
		pt, pl, oh, ow        int
		bias                  bool
	}{
		{"plain", []int{2, 3, 3, 4}, []int{3, 2, 3, 3}, nil, 1, 1, 1, 1, 1, 0, 0, 5, 6, true},
		{"strides pads output_padding", []int{2, 2, 3, 3}, []int{2, 3, 3, 2}, []any{"strides", []int64{2, 3}, "pads", []int64{1, 0, 0, 1}, "output_padding", []int64{1, 2}}, 1, 2, 3, 1, 1, 1, 0, 7, 9, true},
		{"groups dilations", []int{1, 4, 3, 3}, []int{4, 1, 2, 3}, []any{"group", 2, "dilations", []int64{2, 1}}, 2, 1, 1, 2, 1, 0, 0, 5, 5, false},
		{"depthwise stride 2", []int{2, 3, 4, 4}, []int{3, 1, 4, 4}, []any{"group", 3, "strides", []int64{2, 2}, "pads", []int64{1, 1, 1, 1}}, 3, 2, 2, 1, 1, 1, 1, 8, 8, true},
		{"output_shape", []int{1, 2, 3, 3}, []int{2, 1, 3, 3}, []any{"strides", []int64{2, 2}, "output_shape", []int64{6, 5}}, 1, 2, 2, 1, 1, 1, 1, 6, 5, false},
		{"auto_pad SAME_UPPER", []int{1, 2, 3, 3}, []int{2, 2, 3, 3}, []any{"strides", []int64{2, 2}, "auto_pad", "SAME_UPPER"}, 1, 2, 2, 1, 1, 0, 0, 6, 6, true},
		{"auto_pad SAME_LOWER", []int{1, 2, 3, 3}, []int{2, 2, 3, 3}, []any{"strides", []int64{2, 2}, "auto_pad", "SAME_LOWER"}, 1, 2, 2, 1, 1, 1, 1, 6, 6, false},
		{"pointwise", []int{2, 3, 2, 2}, []int{3, 2, 1, 1}, nil, 1, 1, 1, 1, 1, 0, 0, 2, 2, true},
	} {
		for _, path := range []string{"per-sample", "chunked"} {
			t.Run(c.name+" "+path, func(t *testing.T) {
				old := [3]int{perSampleMinP, colsChunk, colsKeepLimit}
				defer func() { perSampleMinP, colsChunk, colsKeepLimit = old[0], old[1], old[2] }()
				if path == "per-sample" {
					perSampleMinP = 1
				} else {
					perSampleMinP, colsChunk = 1<<30, 40 // chunks of one or two samples
				}
				x, w := randTensor(rng, c.x...), randTensor(rng, c.w...)
				in := []*tensor.Tensor{x, w}
				names := []string{"x", "w"}
				var b *tensor.Tensor
				if c.bias {
					b = randTensor(rng, c.w[1]*c.group)
					in, names = append(in, b), append(names, "b")
				}
				op := ewBuild(t, opsNode("ConvTranspose", names, c.kv...), nil, 11)
				want := naiveConvTranspose(x, w, b, c.group, c.sh, c.sw, c.dh, c.dw, c.pt, c.pl, c.oh, c.ow)
				ewCompare(t, "forward", ewForward(t, op, in...), want, convTTol)
				diff := []int{0, 1}
				if c.bias {
					diff = append(diff, 2)
				}
				checkOp(t, op, in, diff)
			})
		}
	}
}

// TestConvTransposeOutputShapeSplit checks how an odd total padding from
// output_shape is split, against onnxruntime 1.30: X = 0..8 (3×3), W = 1
// ([1, 2, 3, 3]), strides 2, output_shape 6×6 (total padding 1). The first
// output row from onnxruntime is 0 1 1 3 2 2 for NOTSET and SAME_LOWER
// (begin pad 1) and 0 0 1 1 3 2 for SAME_UPPER (begin pad 0).
func TestConvTransposeOutputShapeSplit(t *testing.T) {
	x := tensor.New(1, 1, 3, 3)
	for i := range x.Data {
		x.Data[i] = float64(i)
	}
	w := tensor.New(1, 2, 3, 3)
	for i := range w.Data {
		w.Data[i] = 1
	}
	for _, c := range []struct {
		autoPad string
		row     []float64
	}{
		{"NOTSET", []float64{0, 1, 1, 3, 2, 2}},
		{"SAME_LOWER", []float64{0, 1, 1, 3, 2, 2}},
		{"SAME_UPPER", []float64{0, 0, 1, 1, 3, 2}},
	} {
		op := ewBuild(t, opsNode("ConvTranspose", []string{"x", "w"}, "strides", []int64{2, 2}, "output_shape", []int64{6, 6}, "auto_pad", c.autoPad), nil, 11)
		y := ewForward(t, op, x, w)
		ewCompare(t, fmt.Sprint("ConvTranspose ", c.autoPad, " first row"), tensor.FromData(y.Data[:6], 6), tensor.FromData(c.row, 6), 0)
	}
}

// TestConvTranspose1D checks a 1-D ConvTranspose against the 2-D one on a
// height-1 input.
func TestConvTranspose1D(t *testing.T) {
	rng := rand.New(rand.NewPCG(22, 2))
	x, w, b := randTensor(rng, 2, 3, 5), randTensor(rng, 3, 2, 3), randTensor(rng, 2)
	op := ewBuild(t, opsNode("ConvTranspose", []string{"x", "w", "b"}, "strides", []int64{2}, "pads", []int64{1, 0}, "output_padding", []int64{1}), nil, 11)
	want := naiveConvTranspose(x.Reshape(2, 3, 1, 5), w.Reshape(3, 2, 1, 3), b, 1, 1, 2, 1, 1, 0, 1, 1, 11)
	ewCompare(t, "forward", ewForward(t, op, x, w, b), want.Reshape(2, 2, 11), convTTol)
	checkOp(t, op, []*tensor.Tensor{x, w, b}, []int{0, 1, 2})
}
