package kernels

import (
	"math/rand/v2"
	"testing"
)

// TestDepthwiseNHWC checks DepthwiseNHWC against the definition (int64
// sums over the taps inside the image, Requantize) for padded, strided and
// dilated windows and channel counts in and out of whole blocks of 8, with
// every path this CPU has (AVX-512 with dwRowAVX512, AVX2, the Go twins).
func TestDepthwiseNHWC(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	shapes := []ConvShape{
		{C: 32, H: 12, W: 12, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{C: 20, H: 9, W: 11, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{C: 7, H: 8, W: 8, KH: 5, KW: 5, PadTop: 2, PadLeft: 2, PadBottom: 2, PadRight: 2},
		{C: 16, H: 10, W: 9, KH: 3, KW: 3, DilationH: 2, DilationW: 2, PadTop: 2, PadLeft: 2, PadBottom: 2, PadRight: 2},
		{C: 48, H: 2, W: 3, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{C: 8, H: 7, W: 7, KH: 3, KW: 3},
		{C: 24, H: 6, W: 13, KH: 3, KW: 5, StrideH: 1, StrideW: 3, PadTop: 0, PadLeft: 4, PadBottom: 2, PadRight: 1},
		{C: 40, H: 14, W: 14, KH: 5, KW: 5, StrideH: 2, StrideW: 2, PadTop: 2, PadLeft: 2, PadBottom: 2, PadRight: 2},
		{C: 33, H: 9, W: 20, KH: 1, KW: 3, DilationW: 3, PadLeft: 1, PadRight: 3},
		{C: 16, H: 4, W: 4, KH: 3, KW: 7, PadLeft: 3, PadRight: 3, PadTop: 1, PadBottom: 1},
	}
	for _, path := range availablePaths() {
		restore := setPath(path)
		asm := path.name
		var sc DWScratch
		for i, s := range shapes {
			oh, ow, err := s.Out()
			if err != nil {
				t.Fatal(err)
			}
			n := s.norm()
			c := s.C
			w := make([]int8, c*s.KH*s.KW)
			for j := range w {
				w[j] = int8(rng.IntN(255) - 127)
			}
			src := make([]uint8, s.H*s.W*c)
			for j := range src {
				src[j] = uint8(rng.IntN(256))
			}
			z := uint8(rng.IntN(256))
			rq := Requant{Bias: make([]int32, c), Mult: make([]int32, c), Shift: make([]int, c), Zero: int32(rng.IntN(256)), Lo: 2, Hi: 253}
			for ch := 0; ch < c; ch++ {
				rq.Bias[ch] = int32(rng.IntN(4001) - 2000)
				rq.Mult[ch] = int32(1<<30 + rng.IntN(1<<30))
				rq.Shift[ch] = 36 + rng.IntN(4)
			}
			d, err := PackDepthwise(w, c, s.KH, s.KW)
			if err != nil {
				t.Fatal(err)
			}
			if i%2 == 1 { // every other shape with the epilogue constants frozen
				if err := rq.Freeze(c); err != nil {
					t.Fatal(err)
				}
			}
			got := make([]uint8, oh*ow*c)
			if err := DepthwiseNHWC(got, src, s, z, d, &rq, &sc); err != nil {
				t.Fatal(err)
			}
			bad := 0
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					for ch := 0; ch < c; ch++ {
						var acc int64
						for ky := 0; ky < s.KH; ky++ {
							for kx := 0; kx < s.KW; kx++ {
								y := oy*n.StrideH - s.PadTop + ky*n.DilationH
								x := ox*n.StrideW - s.PadLeft + kx*n.DilationW
								if y < 0 || y >= s.H || x < 0 || x >= s.W {
									continue
								}
								acc += (int64(src[(y*s.W+x)*c+ch]) - int64(z)) * int64(w[(ch*s.KH+ky)*s.KW+kx])
							}
						}
						want := Requantize(acc+int64(rq.Bias[ch]), rq.Mult[ch], rq.Shift[ch], rq.Zero, rq.Lo, rq.Hi)
						if g := got[(oy*ow+ox)*c+ch]; g != want {
							if bad == 0 {
								t.Errorf("path %s, shape %d: output (%d, %d, %d) = %d; want %d", asm, i, oy, ox, ch, g, want)
							}
							bad++
						}
					}
				}
			}
			if bad > 0 {
				t.Errorf("path %s, shape %d: %d of %d outputs differ", asm, i, bad, len(got))
			}
		}
		restore()
	}
}

// BenchmarkDepthwiseNHWC times DepthwiseNHWC on the depthwise layers of
// MobileNetV2 at 224² (one of each shape), one thread, per image.
func BenchmarkDepthwiseNHWC(b *testing.B) {
	shapes := []ConvShape{
		{C: 32, H: 112, W: 112, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{C: 96, H: 112, W: 112, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{C: 144, H: 56, W: 56, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{C: 192, H: 28, W: 28, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{C: 384, H: 14, W: 14, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{C: 960, H: 7, W: 7, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
	}
	rng := rand.New(rand.NewPCG(33, 34))
	type job struct {
		dst, src []uint8
		s        ConvShape
		d        *Depthwise
		rq       Requant
	}
	var jobs []job
	for _, s := range shapes {
		oh, ow, _ := s.Out()
		w := make([]int8, s.C*9)
		for j := range w {
			w[j] = int8(rng.IntN(255) - 127)
		}
		d, err := PackDepthwise(w, s.C, 3, 3)
		if err != nil {
			b.Fatal(err)
		}
		src := make([]uint8, s.H*s.W*s.C)
		for j := range src {
			src[j] = uint8(rng.IntN(256))
		}
		rq := Requant{Mult: []int32{1 << 30}, Shift: []int{40}, Zero: 128, Lo: 0, Hi: 255}
		jobs = append(jobs, job{make([]uint8, oh*ow*s.C), src, s, d, rq})
	}
	var sc DWScratch
	for b.Loop() {
		for i := range jobs {
			j := &jobs[i]
			if err := DepthwiseNHWC(j.dst, j.src, j.s, 3, j.d, &j.rq, &sc); err != nil {
				b.Fatal(err)
			}
		}
	}
}
