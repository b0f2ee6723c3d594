package costmodel

import (
	"testing"

	"mpsearch/kernels"
)

// TestPathFeatures checks the counted terms of the channels-last im2col
// and the depthwise models against brute force over every output and tap:
// the bytes copied and written by byte loops sum to the patch matrix
// (OH*OW*KH*KW*C), runs of more than 16 bytes are copy calls, and the
// depthwise lanes are the in-image (output, tap) pairs times the channels
// padded to 16.
func TestPathFeatures(t *testing.T) {
	geoms := []kernels.ConvShape{
		{C: 3, H: 7, W: 9, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{C: 24, H: 8, W: 8, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{C: 16, H: 6, W: 5, KH: 5, KW: 5, PadTop: 2, PadLeft: 2, PadBottom: 2, PadRight: 2},
		{C: 32, H: 5, W: 5, KH: 1, KW: 1},
		{C: 8, H: 9, W: 9, KH: 3, KW: 3, DilationH: 2, DilationW: 2, PadTop: 2, PadLeft: 2, PadBottom: 2, PadRight: 2},
	}
	for _, g := range geoms {
		n := normConv(g)
		oh, ow, err := n.Out()
		if err != nil {
			t.Fatal(err)
		}
		f := im2colNHWCFeatures(g, g.C)
		if total := f[4] + f[5]; total != float64(oh*ow*g.KH*g.KW*g.C) {
			t.Errorf("%+v: copied %v + loop %v bytes = %v; want OH*OW*KH*KW*C = %d", g, f[4], f[5], total, oh*ow*g.KH*g.KW*g.C)
		}
		// Brute force: every (output, kernel row) inside the image copies
		// either one run of KW*C bytes (all taps inside, no dilation) or
		// C bytes per tap inside; runs over 16 bytes are calls.
		var calls, moved float64
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				for ky := 0; ky < g.KH; ky++ {
					if y := oy*n.StrideH - n.PadTop + ky*n.DilationH; y < 0 || y >= g.H {
						continue
					}
					x0 := ox*n.StrideW - n.PadLeft
					if n.DilationW == 1 && x0 >= 0 && x0+g.KW-1 < g.W {
						if g.KW*g.C > 16 {
							calls++
							moved += float64(g.KW * g.C)
						}
						continue
					}
					for kx := 0; kx < g.KW; kx++ {
						if x := x0 + kx*n.DilationW; x >= 0 && x < g.W && g.C > 16 {
							calls++
							moved += float64(g.C)
						}
					}
				}
			}
		}
		if f[3] != calls || f[4] != moved || f[1] != float64(oh*ow) || f[2] != float64(oh*ow*g.KH) {
			t.Errorf("%+v: features %v; want %d rows, %d segments, %v calls moving %v bytes", g, f, oh*ow, oh*ow*g.KH, calls, moved)
		}

		d := depthwiseFeatures(g)
		cpad := float64((g.C + 15) &^ 15)
		var pairs float64
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				for ky := 0; ky < g.KH; ky++ {
					for kx := 0; kx < g.KW; kx++ {
						y, x := oy*n.StrideH-n.PadTop+ky*n.DilationH, ox*n.StrideW-n.PadLeft+kx*n.DilationW
						if y >= 0 && y < g.H && x >= 0 && x < g.W {
							pairs++
						}
					}
				}
			}
		}
		if d[3] != pairs*cpad || d[1] != float64(oh) || d[4] != float64(oh*ow*g.C) {
			t.Errorf("%+v: depthwise features %v; want %v lanes, %d rows, %d outputs", g, d, pairs*cpad, oh, oh*ow*g.C)
		}
	}
}
