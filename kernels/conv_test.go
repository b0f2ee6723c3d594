package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// refIm2Col is the definition of Im2Col, element by element.
func refIm2Col(src []uint8, s ConvShape, pad uint8) []uint8 {
	oh, ow, _ := s.Out()
	s = s.norm()
	kk := s.C * s.KH * s.KW
	out := make([]uint8, oh*ow*kk)
	for oy := 0; oy < oh; oy++ {
		for ox := 0; ox < ow; ox++ {
			for c := 0; c < s.C; c++ {
				for ky := 0; ky < s.KH; ky++ {
					for kx := 0; kx < s.KW; kx++ {
						y := oy*s.StrideH - s.PadTop + ky*s.DilationH
						x := ox*s.StrideW - s.PadLeft + kx*s.DilationW
						v := pad
						if y >= 0 && y < s.H && x >= 0 && x < s.W {
							v = src[(c*s.H+y)*s.W+x]
						}
						out[(oy*ow+ox)*kk+(c*s.KH+ky)*s.KW+kx] = v
					}
				}
			}
		}
	}
	return out
}

// TestIm2Col compares Im2Col with the element-wise definition on shapes
// covering strides, dilations, asymmetric and oversized pads, kernels wider
// than 8 (the copy path), images narrower than 8 (where the 8-byte loads
// must stop before the end of src) and random shapes.
func TestIm2Col(t *testing.T) {
	shapes := []ConvShape{
		{C: 1, H: 1, W: 1, KH: 1, KW: 1},
		{C: 1, H: 28, W: 28, KH: 5, KW: 5, PadTop: 2, PadLeft: 2, PadBottom: 2, PadRight: 2},
		{C: 3, H: 5, W: 3, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{C: 2, H: 4, W: 4, KH: 2, KW: 2},
		{C: 2, H: 11, W: 10, KH: 5, KW: 3, StrideH: 2, StrideW: 3, PadTop: 2, PadBottom: 1, PadRight: 2},
		{C: 4, H: 8, W: 8, KH: 3, KW: 2, DilationH: 2, DilationW: 3, PadTop: 1, PadRight: 1},
		{C: 2, H: 7, W: 20, KH: 2, KW: 11, StrideW: 2, PadLeft: 4, PadRight: 3},
		{C: 1, H: 3, W: 3, KH: 3, KW: 3, PadTop: 4, PadLeft: 5, PadBottom: 4, PadRight: 5},
		{C: 5, H: 6, W: 2, KH: 1, KW: 2, StrideH: 3},
		{C: 1, H: 4, W: 9, KH: 1, KW: 9},
	}
	rng := rand.New(rand.NewPCG(25, 26))
	for i := 0; i < 40; i++ {
		s := ConvShape{C: 1 + rng.IntN(4), H: 1 + rng.IntN(12), W: 1 + rng.IntN(12), KH: 1 + rng.IntN(4), KW: 1 + rng.IntN(10),
			StrideH: rng.IntN(3), StrideW: rng.IntN(4), DilationH: rng.IntN(3), DilationW: rng.IntN(3),
			PadTop: rng.IntN(3), PadLeft: rng.IntN(4), PadBottom: rng.IntN(3), PadRight: rng.IntN(4)}
		if _, _, err := s.Out(); err == nil {
			shapes = append(shapes, s)
		}
	}
	for _, s := range shapes {
		oh, ow, err := s.Out()
		if err != nil {
			t.Fatalf("%+v: %v", s, err)
		}
		src := make([]uint8, s.C*s.H*s.W)
		for i := range src {
			src[i] = uint8(1 + rng.IntN(255)) // never the pad value 0
		}
		want := refIm2Col(src, s, 0)
		got := make([]uint8, oh*ow*s.C*s.KH*s.KW)
		for i := range got {
			got[i] = 0xAA // Im2Col must write every element
		}
		if err := Im2Col(got, src, s, 0); err != nil {
			t.Fatalf("%+v: %v", s, err)
		}
		for i := range want {
			if got[i] != want[i] {
				kk := s.C * s.KH * s.KW
				t.Fatalf("%+v: dst[%d][%d] = %d; want %d", s, i/kk, i%kk, got[i], want[i])
			}
		}
	}
}

// TestTranspose compares the tiled transpose with the plain loop on sizes
// around and across the 8 x 8 tile and 64-row band, including row lengths that are multiples
// of 1024.
func TestTranspose(t *testing.T) {
	rng := rand.New(rand.NewPCG(27, 28))
	for _, sz := range [][2]int{{1, 1}, {1, 70}, {70, 1}, {31, 33}, {32, 32}, {64, 96}, {1024, 6}, {100, 2048}, {133, 67}, {8, 8}, {9, 7}} {
		rows, cols := sz[0], sz[1]
		src := make([]uint8, rows*cols)
		for i := range src {
			src[i] = uint8(rng.IntN(256))
		}
		got := make([]uint8, rows*cols)
		transpose(got, src, rows, cols)
		for r := 0; r < rows; r++ {
			for c := 0; c < cols; c++ {
				if got[c*rows+r] != src[r*cols+c] {
					t.Fatalf("%dx%d: dst[%d][%d] = %d; want %d", rows, cols, c, r, got[c*rows+r], src[r*cols+c])
				}
			}
		}
	}
}

// BenchmarkTranspose compares the 8 x 8-tiled transpose with the plain loop
// Conv2D used before, on output shapes (OH*OW x N) with and without OH*OW a
// multiple of 1024.
func BenchmarkTranspose(b *testing.B) {
	naive := func(dst, src []uint8, rows, cols int) {
		for p := 0; p < rows; p++ {
			for n := 0; n < cols; n++ {
				dst[n*rows+p] = src[p*cols+n]
			}
		}
	}
	for _, sz := range [][2]int{{1024, 64}, {4096, 64}, {1000, 64}, {784, 6}} {
		src := make([]uint8, sz[0]*sz[1])
		dst := make([]uint8, len(src))
		for _, impl := range []struct {
			name string
			f    func(dst, src []uint8, rows, cols int)
		}{{"tiled", transpose}, {"plain", naive}} {
			b.Run(fmt.Sprintf("%dx%d/%s", sz[0], sz[1], impl.name), func(b *testing.B) {
				b.SetBytes(int64(len(src)))
				for i := 0; i < b.N; i++ {
					impl.f(dst, src, sz[0], sz[1])
				}
			})
		}
	}
}
