package dataset

import (
	"math/rand/v2"
	"testing"

	"mpsearch/tensor"
)

// resizeTol bounds the difference to PyTorch's bilinear resize: both
// compute a few float64 products and sums of values in [0, 1] in different
// orders, a few ulp of 1.
const resizeTol = 1e-15

// TestResizeBilinearTorch compares with PyTorch 1.13, computed by
//
//	a = [[(y*4 + x)*20 for x in range(4)] for y in range(3)]
//	F.interpolate(torch.tensor(a, dtype=float64).view(1,1,3,4)/255,
//	              size=(oh, ow), mode="bilinear", align_corners=False)
func TestResizeBilinearTorch(t *testing.T) {
	in := tensor.New(1, 1, 3, 4)
	for y, row := range pattern(0) {
		for x, p := range row {
			in.Data[y*4+x] = float64(p) / 255
		}
	}
	for _, c := range []struct {
		oh, ow int
		want   []float64
	}{
		{5, 7, []float64{
			0.0, 0.02801120448179271, 0.07282913165266106, 0.11764705882352941, 0.16246498599439774, 0.20728291316526612, 0.23529411764705882,
			0.12549019607843137, 0.15350140056022407, 0.19831932773109243, 0.24313725490196078, 0.2879551820728291, 0.3327731092436975, 0.36078431372549025,
			0.3137254901960784, 0.34173669467787116, 0.3865546218487395, 0.43137254901960786, 0.47619047619047616, 0.5210084033613446, 0.5490196078431373,
			0.5019607843137255, 0.5299719887955181, 0.5747899159663865, 0.6196078431372549, 0.6644257703081232, 0.7092436974789916, 0.7372549019607844,
			0.6274509803921569, 0.6554621848739496, 0.700280112044818, 0.7450980392156863, 0.7899159663865546, 0.834733893557423, 0.8627450980392156,
		}},
		{2, 3, []float64{
			0.0915032679738562, 0.196078431372549, 0.3006535947712418,
			0.5620915032679739, 0.6666666666666666, 0.7712418300653595,
		}},
		{3, 4, []float64{
			0.0, 0.0784313725490196, 0.1568627450980392, 0.23529411764705882,
			0.3137254901960784, 0.39215686274509803, 0.47058823529411764, 0.5490196078431373,
			0.6274509803921569, 0.7058823529411765, 0.7843137254901961, 0.8627450980392157,
		}},
		{1, 1, []float64{0.43137254901960786}},
	} {
		got := resizeBilinear(in, c.oh, c.ow)
		if !equalInts(got.Shape, []int{1, 1, c.oh, c.ow}) {
			t.Errorf("%dx%d: shape %v", c.oh, c.ow, got.Shape)
			continue
		}
		if d := maxAbsDiff(got.Data, c.want); d > resizeTol {
			t.Errorf("%dx%d: max diff to PyTorch %g > %g: got %v", c.oh, c.ow, d, resizeTol, got.Data)
		}
	}
}

// TestResizeProperties checks identities that hold for any image: the same
// size is the identity, a constant image stays constant, halving averages
// 2x2 blocks (half-pixel centres fall between the two source pixels), and
// channels and images are resized independently.
func TestResizeProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	in := tensor.New(2, 3, 6, 8)
	for i := range in.Data {
		in.Data[i] = rng.Float64()
	}
	if got := resizeBilinear(in, 6, 8); maxAbsDiff(got.Data, in.Data) != 0 {
		t.Errorf("same-size resize changed the image")
	}

	half := resizeBilinear(in, 3, 4)
	for p := range 6 {
		for i := range 3 {
			for j := range 4 {
				src := in.Data[p*48:]
				want := (src[(2*i)*8+2*j] + src[(2*i)*8+2*j+1] + src[(2*i+1)*8+2*j] + src[(2*i+1)*8+2*j+1]) / 4
				if got := half.Data[p*12+i*4+j]; abs(got-want) > resizeTol {
					t.Errorf("plane %d halved (%d,%d) = %v; want block mean %v", p, i, j, got, want)
				}
			}
		}
	}

	one := tensor.New(1, 1, 6, 8)
	copy(one.Data, in.Data[5*48:])
	a := resizeBilinear(in, 5, 11)
	b := resizeBilinear(one, 5, 11)
	if maxAbsDiff(a.Data[5*55:], b.Data) != 0 {
		t.Errorf("resizing plane 5 alone differs from resizing it in a batch")
	}

	flat := tensor.New(1, 1, 3, 5)
	for i := range flat.Data {
		flat.Data[i] = 0.3
	}
	for _, s := range [][2]int{{1, 1}, {7, 2}, {10, 13}} {
		for i, v := range resizeBilinear(flat, s[0], s[1]).Data {
			if abs(v-0.3) > resizeTol {
				t.Errorf("constant 0.3 resized to %v: value %d = %v", s, i, v)
			}
		}
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
