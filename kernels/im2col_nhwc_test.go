package kernels

import (
	"math/rand/v2"
	"testing"
)

// TestIm2ColNHWCMatchesIm2Col checks Im2ColNHWC against Im2Col on the same
// image stored channels-first: column (ky*KW+kx)*C+c of the channels-last
// patch matrix must equal column (c*KH+ky)*KW+kx of Im2Col's, for padded,
// strided and dilated windows and for a channel group of wider pixels.
func TestIm2ColNHWCMatchesIm2Col(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	cases := []struct {
		s      ConvShape
		ld, c0 int
	}{
		{ConvShape{C: 3, H: 7, W: 9, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}, 3, 0},
		{ConvShape{C: 16, H: 8, W: 8, KH: 1, KW: 1}, 16, 0},
		{ConvShape{C: 8, H: 9, W: 7, KH: 1, KW: 1, StrideH: 2, StrideW: 2}, 8, 0},
		{ConvShape{C: 5, H: 10, W: 11, KH: 3, KW: 5, StrideH: 2, StrideW: 3, PadTop: 2, PadLeft: 1, PadBottom: 0, PadRight: 3}, 5, 0},
		{ConvShape{C: 4, H: 12, W: 12, KH: 3, KW: 3, DilationH: 2, DilationW: 2, PadTop: 2, PadLeft: 2, PadBottom: 2, PadRight: 2}, 4, 0},
		{ConvShape{C: 1, H: 6, W: 6, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}, 6, 4},
		{ConvShape{C: 3, H: 5, W: 7, KH: 7, KW: 7, StrideH: 2, StrideW: 2, PadTop: 3, PadLeft: 3, PadBottom: 3, PadRight: 3}, 9, 3},
	}
	for i, tc := range cases {
		s := tc.s
		oh, ow, err := s.Out()
		if err != nil {
			t.Fatal(err)
		}
		hwc := make([]uint8, s.H*s.W*tc.ld)
		for j := range hwc {
			hwc[j] = uint8(rng.IntN(256))
		}
		chw := make([]uint8, s.C*s.H*s.W)
		for c := 0; c < s.C; c++ {
			for p := 0; p < s.H*s.W; p++ {
				chw[c*s.H*s.W+p] = hwc[p*tc.ld+tc.c0+c]
			}
		}
		const pad = 77
		kk := s.C * s.KH * s.KW
		want := make([]uint8, oh*ow*kk)
		if err := Im2Col(want, chw, s, pad); err != nil {
			t.Fatal(err)
		}
		got := make([]uint8, oh*ow*kk)
		for j := range got {
			got[j] = 0xAB
		}
		if err := Im2ColNHWC(got, hwc, s, tc.ld, tc.c0, pad); err != nil {
			t.Fatal(err)
		}
		bad := 0
		for r := 0; r < oh*ow; r++ {
			for c := 0; c < s.C; c++ {
				for ky := 0; ky < s.KH; ky++ {
					for kx := 0; kx < s.KW; kx++ {
						g := got[r*kk+(ky*s.KW+kx)*s.C+c]
						w := want[r*kk+(c*s.KH+ky)*s.KW+kx]
						if g != w {
							if bad == 0 {
								t.Errorf("case %d: row %d c %d ky %d kx %d: got %d; want %d", i, r, c, ky, kx, g, w)
							}
							bad++
						}
					}
				}
			}
		}
		if bad > 0 {
			t.Errorf("case %d: %d of %d values differ", i, bad, len(got))
		}
	}
}

// TestPermuteHWC checks the weight reordering on distinct values.
func TestPermuteHWC(t *testing.T) {
	const n, c, kh, kw = 2, 3, 2, 4
	w := make([]int8, n*c*kh*kw)
	for i := range w {
		w[i] = int8(i)
	}
	p := PermuteHWC(w, n, c, kh, kw)
	for o := 0; o < n; o++ {
		for ci := 0; ci < c; ci++ {
			for y := 0; y < kh; y++ {
				for x := 0; x < kw; x++ {
					if got, want := p[((o*kh+y)*kw+x)*c+ci], w[((o*c+ci)*kh+y)*kw+x]; got != want {
						t.Errorf("n %d c %d y %d x %d: got %d; want %d", o, ci, y, x, got, want)
					}
				}
			}
		}
	}
}
