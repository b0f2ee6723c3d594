package network

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

// refDepthwiseBits is a depthwise convolution computed value by value in
// the order that defines the float engine's sums: 0, plus the bias, plus
// w·x for every kernel tap (i, j) in row-major order whose input is inside
// the plane and whose weight is not 0 (the order of the earlier one-pass-
// per-tap kernel). The engine's kernel must give these bits exactly.
func refDepthwiseBits(x, w, b *tensor.Tensor, s, d [2]int, p [2]int, oh, ow int) *tensor.Tensor {
	n, c, h, wd := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	m, kh, kw := w.Shape[0], w.Shape[2], w.Shape[3]
	mult := m / c
	y := tensor.New(n, m, oh, ow)
	for bi := 0; bi < n; bi++ {
		for mi := 0; mi < m; mi++ {
			ci := mi / mult
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					v := 0.0
					if b != nil {
						v += b.Data[mi]
					}
					for i := 0; i < kh; i++ {
						for j := 0; j < kw; j++ {
							iy, ix := oy*s[0]-p[0]+i*d[0], ox*s[1]-p[1]+j*d[1]
							wv := w.Data[(mi*kh+i)*kw+j]
							if iy < 0 || iy >= h || ix < 0 || ix >= wd || wv == 0 {
								continue
							}
							v += wv * x.Data[((bi*c+ci)*h+iy)*wd+ix]
						}
					}
					y.Data[((bi*m+mi)*oh+oy)*ow+ox] = v
				}
			}
		}
	}
	return y
}

// sameBitsOrNaN is sameBits with any two NaNs equal: which NaN a sum of
// two NaNs returns depends on the operand order the compiler picks for a
// commutative add (the engine's kernel before this one differed from the
// reference there too), and nothing downstream reads NaN payloads.
func sameBitsOrNaN(got, want *tensor.Tensor) int {
	for i := range want.Data {
		g, w := got.Data[i], want.Data[i]
		if math.Float64bits(g) != math.Float64bits(w) && !(math.IsNaN(g) && math.IsNaN(w)) {
			return i
		}
	}
	return -1
}

// TestDepthwiseBits: the depthwise kernel (rows outer, 3- and 5-tap rows in
// one pass) gives refDepthwiseBits's values bit for bit, in Forward and in
// Infer's inferAlloc, for 3×3 and 5×5 kernels at strides 1 and 2
// (MobileNet, EfficientNet), 3×1, dilation 2, asymmetric pads, channel
// multiplier 2, with zero weights, signed zeros, infinities and NaN among
// the inputs.
func TestDepthwiseBits(t *testing.T) {
	cases := []struct {
		x, w   []int
		s, d   [2]int
		p      [4]int // top, left, bottom, right
		bias   bool
		oh, ow int
	}{
		{x: []int{2, 3, 9, 10}, w: []int{3, 1, 3, 3}, s: [2]int{1, 1}, d: [2]int{1, 1}, p: [4]int{1, 1, 1, 1}, bias: true, oh: 9, ow: 10},
		{x: []int{2, 3, 9, 10}, w: []int{3, 1, 3, 3}, s: [2]int{2, 2}, d: [2]int{1, 1}, p: [4]int{1, 1, 1, 1}, bias: true, oh: 5, ow: 5},
		{x: []int{1, 2, 8, 8}, w: []int{2, 1, 3, 3}, s: [2]int{2, 2}, d: [2]int{1, 1}, p: [4]int{0, 0, 1, 1}, oh: 4, ow: 4},
		{x: []int{1, 2, 11, 12}, w: []int{2, 1, 5, 5}, s: [2]int{1, 1}, d: [2]int{1, 1}, p: [4]int{2, 2, 2, 2}, bias: true, oh: 11, ow: 12},
		{x: []int{1, 2, 11, 12}, w: []int{2, 1, 5, 5}, s: [2]int{2, 2}, d: [2]int{1, 1}, p: [4]int{2, 2, 2, 2}, bias: true, oh: 6, ow: 6},
		{x: []int{1, 2, 7, 9}, w: []int{4, 1, 3, 1}, s: [2]int{1, 1}, d: [2]int{1, 1}, p: [4]int{1, 0, 1, 0}, bias: true, oh: 7, ow: 9},
		{x: []int{1, 2, 9, 9}, w: []int{2, 1, 3, 3}, s: [2]int{1, 1}, d: [2]int{2, 2}, p: [4]int{2, 2, 2, 2}, bias: true, oh: 9, ow: 9},
		{x: []int{1, 2, 6, 7}, w: []int{2, 1, 3, 3}, s: [2]int{1, 2}, d: [2]int{1, 1}, p: [4]int{0, 2, 1, 0}, bias: true, oh: 5, ow: 4},
		{x: []int{1, 2, 2, 2}, w: []int{2, 1, 3, 3}, s: [2]int{1, 1}, d: [2]int{1, 1}, p: [4]int{1, 1, 1, 1}, bias: true, oh: 2, ow: 2},
	}
	rng := rand.New(rand.NewPCG(41, 42))
	special := []float64{0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1), math.NaN(), 1e300, -1e-310}
	for ci, tc := range cases {
		x, w := randTensor(rng, tc.x...), randTensor(rng, tc.w...)
		for i := range x.Data {
			if rng.IntN(25) == 0 {
				x.Data[i] = special[rng.IntN(len(special))]
			}
		}
		for i := range w.Data {
			if rng.IntN(6) == 0 {
				w.Data[i] = []float64{0, math.Copysign(0, -1)}[rng.IntN(2)]
			}
		}
		in := []*tensor.Tensor{x, w}
		var b *tensor.Tensor
		if tc.bias {
			b = randTensor(rng, tc.w[0])
			in = append(in, b)
		}
		attrs := map[string]onnx.Attribute{"group": laInt(int64(tc.x[1])), "strides": laInts(int64(tc.s[0]), int64(tc.s[1])),
			"dilations": laInts(int64(tc.d[0]), int64(tc.d[1])), "pads": laInts(int64(tc.p[0]), int64(tc.p[1]), int64(tc.p[2]), int64(tc.p[3]))}
		op := buildLayer(t, "Conv", len(in), attrs, nil, 13)
		want := refDepthwiseBits(x, w, b, tc.s, tc.d, [2]int{tc.p[0], tc.p[1]}, tc.oh, tc.ow)
		got, _, err := op.Forward(in)
		if err != nil {
			t.Fatal(err)
		}
		zeros := func(n int) []float64 { return make([]float64, n) } // as the arena's alloc gives
		inf, err := op.(allocOp).inferAlloc(in, zeros)
		if err != nil {
			t.Fatal(err)
		}
		for name, y := range map[string]*tensor.Tensor{"Forward": got, "inferAlloc": inf} {
			if !tensor.SameShape(y.Shape, want.Shape) {
				t.Fatalf("case %d %s: shape %v; want %v", ci, name, y.Shape, want.Shape)
			}
			if i := sameBitsOrNaN(y, want); i >= 0 {
				t.Errorf("case %d (%v): %s[%d] = %v; want %v bit for bit", ci, fmt.Sprint(tc.w, tc.s, tc.d, tc.p), name, i, y.Data[i], want.Data[i])
			}
		}
	}
}
