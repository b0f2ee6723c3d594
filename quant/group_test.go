package quant

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestMatrixViewRoundTrip: ToMatrix puts channel c's elements in row c in
// the order of the other axes, and FromMatrix inverts it.
func TestMatrixViewRoundTrip(t *testing.T) {
	// MatMul weight [in=3, out=2], channel axis 1: the matrix is its transpose.
	m, rows, cols := ToMatrix([]float64{1, 2, 3, 4, 5, 6}, []int{3, 2}, 1)
	want := []float64{1, 3, 5, 2, 4, 6}
	if rows != 2 || cols != 3 {
		t.Fatalf("[3,2] axis 1: got %d×%d; want 2×3", rows, cols)
	}
	for i := range want {
		if m[i] != want[i] {
			t.Fatalf("[3,2] axis 1: got %v; want %v", m, want)
		}
	}
	rng := rand.New(rand.NewPCG(21, 1))
	for _, c := range []struct {
		shape []int
		axis  int
	}{{[]int{4, 3, 2, 2}, 0}, {[]int{5, 7}, 1}, {[]int{5, 7}, 0}, {[]int{2, 3, 4}, 1}} {
		n := 1
		for _, d := range c.shape {
			n *= d
		}
		w := randMatrix(rng, 1, n)
		m, rows, cols := ToMatrix(w, c.shape, c.axis)
		if rows != c.shape[c.axis] || rows*cols != n {
			t.Errorf("%v axis %d: got %d×%d", c.shape, c.axis, rows, cols)
		}
		back := FromMatrix(m, c.shape, c.axis)
		for i := range w {
			if back[i] != w[i] {
				t.Fatalf("%v axis %d: round trip element %d: got %g; want %g", c.shape, c.axis, i, back[i], w[i])
			}
		}
	}
}

// TestGroupEqualsPerChannel: one group of all columns (or group size 0)
// is the project's per-channel quantizer (QuantizeWeights), at every width,
// for a Conv-layout and a MatMul-layout weight.
func TestGroupEqualsPerChannel(t *testing.T) {
	rng := rand.New(rand.NewPCG(22, 1))
	for _, c := range []struct {
		shape []int
		axis  int
	}{{[]int{6, 4, 3, 3}, 0}, {[]int{40, 10}, 1}} {
		n := 1
		for _, d := range c.shape {
			n *= d
		}
		w := randMatrix(rng, 1, n)
		w[5] = 0
		m, rows, cols := ToMatrix(w, c.shape, c.axis)
		for bits := 1; bits <= 8; bits++ {
			want, err := QuantizeWeights(w, c.shape, c.axis, bits)
			if err != nil {
				t.Fatal(err)
			}
			wantQ := make([]float64, n)
			for i, q := range want.Q {
				wantQ[i] = float64(q)
			}
			wantM, _, _ := ToMatrix(wantQ, c.shape, c.axis)
			for _, gs := range []int{0, cols, cols + 5} {
				got, err := QuantizeMatrix(m, rows, cols, bits, gs, false)
				if err != nil {
					t.Fatal(err)
				}
				if got.Groups() != 1 || len(got.Scales) != rows {
					t.Fatalf("%v W%d group %d: got %d groups; want 1", c.shape, bits, gs, got.Groups())
				}
				for r, s := range want.Scales {
					if got.Scales[r] != s {
						t.Errorf("%v W%d group %d: scale %d: got %g; want %g", c.shape, bits, gs, r, got.Scales[r], s)
					}
				}
				for i, q := range got.Q {
					if float64(q) != wantM[i] {
						t.Fatalf("%v W%d group %d: code %d: got %d; want %g", c.shape, bits, gs, i, q, wantM[i])
					}
				}
				back, err := got.WeightQuant(c.shape, c.axis)
				if err != nil {
					t.Fatal(err)
				}
				for i, q := range want.Q {
					if back.Q[i] != q {
						t.Fatalf("%v W%d group %d: WeightQuant code %d: got %d; want %d", c.shape, bits, gs, i, back.Q[i], q)
					}
				}
			}
		}
	}
}

// TestGroupScales: each group of a row has its own max|w|/qmax scale
// (a shorter last group included), checked by hand on a small row.
func TestGroupScales(t *testing.T) {
	w := []float64{0.3, -0.6, 3, 1.5, -9, 0.9, 0.45} // groups {0.3,-0.6}, {3,1.5}, {-9,0.9}, {0.45}
	g, err := QuantizeMatrix(w, 1, 7, 3, 2, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.WeightQuant([]int{1, 7}, 0); err == nil {
		t.Error("WeightQuant of 4 groups per channel: got no error")
	}
	wantS := []float64{0.2, 1, 3, 0.15}
	wantQ := []int8{2, -3, 3, 2, -3, 0, 3} // 1.5/1 = 1.5 -> 2 (half to even); 0.9/3 = 0.3 -> 0
	for i, s := range wantS {
		if math.Abs(g.Scales[i]-s) > 1e-15 {
			t.Errorf("scale %d: got %g; want %g", i, g.Scales[i], s)
		}
	}
	for i, q := range wantQ {
		if g.Q[i] != q {
			t.Errorf("code %d: got %d; want %d", i, g.Q[i], q)
		}
	}
}

// TestMSEScaleNeverWorse: the clipping search never gives a larger
// squared weight error than max|w| in any channel or group, and on
// Gaussian weights at 2 to 4 bits it is strictly better overall.
func TestMSEScaleNeverWorse(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 1))
	const rows, cols = 64, 256
	w := randMatrix(rng, rows, cols)
	for bits := 1; bits <= 8; bits++ {
		for _, gs := range []int{0, 32, 64, 128} {
			plain, err := QuantizeMatrix(w, rows, cols, bits, gs, false)
			if err != nil {
				t.Fatal(err)
			}
			mse, err := QuantizeMatrix(w, rows, cols, bits, gs, true)
			if err != nil {
				t.Fatal(err)
			}
			dp, dm := plain.Dequantize(), mse.Dequantize()
			size := gs
			if size == 0 {
				size = cols
			}
			totP, totM := 0.0, 0.0
			for r := 0; r < rows; r++ {
				for lo := 0; lo < cols; lo += size {
					ep, em := 0.0, 0.0
					for j := lo; j < lo+size; j++ {
						i := r*cols + j
						ep += (w[i] - dp[i]) * (w[i] - dp[i])
						em += (w[i] - dm[i]) * (w[i] - dm[i])
					}
					if em > ep {
						t.Errorf("W%d group %d row %d cols %d: clipping search error %g; want at most max|w|'s %g", bits, gs, r, lo, em, ep)
					}
					totP, totM = totP+ep, totM+em
				}
			}
			if bits >= 2 && bits <= 4 && !(totM < totP) {
				t.Errorf("W%d group %d: clipping search total error %g; want below max|w|'s %g", bits, gs, totM, totP)
			}
		}
	}
}

// TestSizeBits: codes plus one fp16 scale per row and group.
func TestSizeBits(t *testing.T) {
	for _, c := range []struct {
		rows, cols, bits, gs int
		want                 int64
	}{
		{512, 4608, 4, 128, 512*4608*4 + 512*36*16},
		{512, 4608, 4, 0, 512*4608*4 + 512*16},
		{10, 84, 2, 32, 10*84*2 + 10*3*16}, // groups of 32, 32, 20
		{10, 84, 8, 200, 10*84*8 + 10*16},  // a group larger than the row is per channel
	} {
		if got := SizeBits(c.rows, c.cols, c.bits, c.gs); got != c.want {
			t.Errorf("SizeBits(%d, %d, %d, %d): got %d; want %d", c.rows, c.cols, c.bits, c.gs, got, c.want)
		}
	}
}

// TestBlockOrder: ONNX blocks of a Conv weight (B channels at one kernel
// tap) become consecutive columns, block by block then tap by tap; matrix
// weights keep their order.
func TestBlockOrder(t *testing.T) {
	order, gs, err := BlockOrder([]int{2, 4, 1, 2}, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	// Columns (c, tap) = c*2 + tap: block 0 = c 0,1 at tap 0, then tap 1; block 1 likewise.
	want := []int{0, 2, 1, 3, 4, 6, 5, 7}
	if gs != 2 || fmt.Sprint(order) != fmt.Sprint(want) {
		t.Errorf("[2,4,1,2] block 2: got %v, group %d; want %v, 2", order, gs, want)
	}
	if order, gs, err = BlockOrder([]int{2, 4, 1, 2}, 0, 8); err != nil || gs != 4 || fmt.Sprint(order) != "[0 2 4 6 1 3 5 7]" {
		t.Errorf("[2,4,1,2] block 8: got %v, group %d, %v; want [0 2 4 6 1 3 5 7], 4", order, gs, err)
	}
	if order, gs, err = BlockOrder([]int{10, 84}, 0, 32); err != nil || gs != 32 || order[83] != 83 {
		t.Errorf("[10,84] block 32: got group %d, %v; want the identity and 32", gs, err)
	}
	if _, _, err := BlockOrder([]int{4, 6, 3, 3}, 0, 4); err == nil {
		t.Error("block 4 of 6 channels: got no error")
	}
	m := []float64{1, 2, 3, 4, 5, 6}
	back := PermuteColumns(PermuteColumns(m, 2, 3, []int{2, 0, 1}), 2, 3, InverseOrder([]int{2, 0, 1}))
	if fmt.Sprint(back) != fmt.Sprint(m) {
		t.Errorf("permute and inverse: got %v; want %v", back, m)
	}
}

// TestGPTQWeightsONNXBlocks: with blocks, every ONNX block of a Conv
// weight (4 channels at one tap) is a multiple of one scale, read from the
// returned scales in DequantizeLinear's [M, C/B, kh, kw] layout.
func TestGPTQWeightsONNXBlocks(t *testing.T) {
	rng := rand.New(rand.NewPCG(24, 1))
	const m, c, kh, kw, b = 3, 8, 3, 3, 4
	shape := []int{m, c, kh, kw}
	w := randMatrix(rng, 1, m*c*kh*kw)
	cols := c * kh * kw
	x := correlated(rng, cols, 200, 20)
	h := &LayerHessian{Node: "conv", Cols: cols, Groups: 1, h: [][]float64{gram(x, cols, 200)}}
	for _, bits := range []int{2, 4} {
		fake, gq, err := GPTQWeights(w, shape, 0, h, GPTQOptions{Bits: bits, GroupSize: b}, true)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(gq.Scales), m*(c/b)*kh*kw; got != want {
			t.Fatalf("W%d: got %d scales; want %d", bits, got, want)
		}
		qmax := float64(QMax(bits))
		for i, v := range fake {
			mm, ci, tap := i/(c*kh*kw), i/(kh*kw)%c, i%(kh*kw)
			s := gq.Scales[(mm*(c/b)+ci/b)*kh*kw+tap]
			q := v / s
			if math.Abs(q-math.Round(q)) > 1e-9 || math.Abs(q) > qmax+1e-9 {
				t.Fatalf("W%d: weight (%d, %d, tap %d) = %g is not a code of its block's scale %g", bits, mm, ci, tap, v, s)
			}
		}
	}
}
