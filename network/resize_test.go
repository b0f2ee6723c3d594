package network

import (
	"math/rand/v2"
	"testing"

	"mpsearch/tensor"
)

func init() {
	conformanceSkips["test_resize_tf_crop_and_resize"] = "coordinate_transformation_mode tf_crop_and_resize is not supported"
}

// Not copied from libonnx-testdata: test_resize_downsample_scales_linear_align_corners
// and test_resize_downsample_scales_cubic_align_corners. ONNX 1.12 computed
// their expected outputs with the unrounded output length scale·in in the
// align_corners transform; onnxruntime 1.30 (and mpsearch) use the integer
// output length. TestResizeORT checks both models' inputs against
// onnxruntime instead.

// resizeORTTol covers onnxruntime's float32 arithmetic on values up to 16:
// a few float32 ulps.
const resizeORTTol = 1e-6

// TestResizeORT checks Resize against outputs of onnxruntime-node 1.30 on
// X = 1.5·arange(12) - 2 of shape [1, 1, 3, 4] (models made with onnx's
// helper; the numbers are ORT's printed outputs).
func TestResizeORT(t *testing.T) {
	x := tensor.FromData([]float64{-2, -0.5, 1, 2.5, 4, 5.5, 7, 8.5, 10, 11.5, 13, 14.5}, 1, 1, 3, 4)
	for _, c := range []struct {
		name   string
		opset  int64
		kv     []any
		scales []float64
		sizes  []float64
		x      *tensor.Tensor
		shape  []int
		want   []float64
	}{
		{"nearest asymmetric floor up", 13, []any{"coordinate_transformation_mode", "asymmetric", "nearest_mode", "floor"}, []float64{1, 1, 2, 1.5}, nil, x, []int{1, 1, 6, 6},
			[]float64{-2, -2, -0.5, 1, 1, 2.5, -2, -2, -0.5, 1, 1, 2.5, 4, 4, 5.5, 7, 7, 8.5, 4, 4, 5.5, 7, 7, 8.5, 10, 10, 11.5, 13, 13, 14.5, 10, 10, 11.5, 13, 13, 14.5}},
		{"nearest half_pixel round_prefer_ceil down", 13, []any{"nearest_mode", "round_prefer_ceil"}, nil, []float64{1, 1, 2, 2}, x, []int{1, 1, 2, 2},
			[]float64{-0.5, 2.5, 11.5, 14.5}},
		{"nearest pytorch_half_pixel floor", 13, []any{"coordinate_transformation_mode", "pytorch_half_pixel", "nearest_mode", "floor"}, nil, []float64{1, 1, 5, 1}, x, []int{1, 1, 5, 1},
			[]float64{-2, -2, 4, 4, 10}},
		{"nearest align_corners round_prefer_floor", 13, []any{"coordinate_transformation_mode", "align_corners"}, nil, []float64{1, 1, 4, 5}, x, []int{1, 1, 4, 5},
			[]float64{-2, -0.5, -0.5, 1, 2.5, 4, 5.5, 5.5, 7, 8.5, 4, 5.5, 5.5, 7, 8.5, 10, 11.5, 11.5, 13, 14.5}},
		{"linear pytorch_half_pixel sizes", 13, []any{"mode", "linear", "coordinate_transformation_mode", "pytorch_half_pixel"}, nil, []float64{1, 1, 5, 2}, x, []int{1, 1, 5, 2},
			[]float64{-1.25, 1.75, 1.15, 4.15, 4.75, 7.75, 8.35, 11.35, 10.75, 13.75}},
		{"linear half_pixel up", 13, []any{"mode", "linear"}, []float64{1, 1, 1.5, 2}, nil, x, []int{1, 1, 4, 8},
			[]float64{-2, -1.625, -0.875, -0.125, 0.625, 1.375, 2.125, 2.5, 1, 1.375, 2.125, 2.875, 3.625, 4.375, 5.125, 5.5, 5, 5.375, 6.125, 6.875, 7.625, 8.375, 9.125, 9.5, 9, 9.375, 10.125, 10.875, 11.625, 12.375, 13.125, 13.5}},
		{"opset 10 nearest down", 10, []any{"mode", "nearest"}, []float64{1, 1, 0.6, 0.7}, nil, x, []int{1, 1, 1, 2},
			[]float64{-2, 1}},
		{"opset 10 nearest up", 10, []any{"mode", "nearest"}, []float64{1, 1, 2, 1.5}, nil, x, []int{1, 1, 6, 6},
			[]float64{-2, -2, -0.5, 1, 1, 2.5, -2, -2, -0.5, 1, 1, 2.5, 4, 4, 5.5, 7, 7, 8.5, 4, 4, 5.5, 7, 7, 8.5, 10, 10, 11.5, 13, 13, 14.5, 10, 10, 11.5, 13, 13, 14.5}},
		{"opset 10 linear up", 10, []any{"mode", "linear"}, []float64{1, 1, 1.5, 2}, nil, x, []int{1, 1, 4, 8},
			[]float64{-2, -1.25, -0.5, 0.25, 1, 1.75, 2.5, 2.5, 2, 2.75, 3.5, 4.25, 5, 5.75, 6.5, 6.5, 6, 6.75, 7.5, 8.25, 9, 9.75, 10.5, 10.5, 10, 10.75, 11.5, 12.25, 13, 13.75, 14.5, 14.5}},
		// The libonnx-testdata align_corners downsampling inputs (see above).
		{"linear align_corners down", 13, []any{"mode", "linear", "coordinate_transformation_mode", "align_corners"}, []float64{1, 1, 0.6, 0.6}, nil,
			tensor.FromData([]float64{1, 2, 3, 4, 5, 6, 7, 8}, 1, 1, 2, 4), []int{1, 1, 1, 2}, []float64{1, 4}},
		{"cubic align_corners down", 13, []any{"mode", "cubic", "coordinate_transformation_mode", "align_corners"}, []float64{1, 1, 0.8, 0.8}, nil,
			tensor.FromData([]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, 1, 1, 4, 4), []int{1, 1, 3, 3}, []float64{1, 2.5, 4, 7, 8.5, 10, 13, 14.5, 16}},
	} {
		t.Run(c.name, func(t *testing.T) {
			consts := map[string]*tensor.Tensor{}
			names := []string{"x", "", "sc"}
			var in []*tensor.Tensor
			if c.scales != nil {
				consts["sc"] = tensor.FromData(c.scales, len(c.scales))
				in = []*tensor.Tensor{c.x, nil, consts["sc"]}
			} else {
				consts["sz"] = tensor.FromData(c.sizes, len(c.sizes))
				names = []string{"x", "", "", "sz"}
				in = []*tensor.Tensor{c.x, nil, nil, consts["sz"]}
			}
			if c.opset == 10 {
				names, in = []string{"x", "sc"}, []*tensor.Tensor{c.x, consts["sc"]}
			}
			op := ewBuild(t, opsNode("Resize", names, c.kv...), consts, c.opset)
			ewCompare(t, "forward", ewForward(t, op, in...), tensor.FromData(c.want, c.shape...), resizeORTTol)
			// The same with scales or sizes given at run time.
			op = ewBuild(t, opsNode("Resize", names, c.kv...), nil, c.opset)
			ewCompare(t, "forward, run-time sizes", ewForward(t, op, in...), tensor.FromData(c.want, c.shape...), resizeORTTol)
		})
	}
}

// TestResizeDerivatives checks Resize's adjoint and tangents against
// finite differences for each mode (the map is linear in X).
func TestResizeDerivatives(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 1))
	x := randTensor(rng, 2, 2, 3, 4)
	for _, c := range []struct {
		name   string
		kv     []any
		scales []float64
		axes   []int64
	}{
		{"nearest up", []any{"coordinate_transformation_mode", "asymmetric", "nearest_mode", "floor"}, []float64{1, 1, 2, 1.5}, nil},
		{"nearest down", nil, []float64{1, 1, 0.7, 0.5}, nil},
		{"linear", []any{"mode", "linear"}, []float64{1, 1, 1.7, 0.8}, nil},
		{"cubic exclude_outside", []any{"mode", "cubic", "exclude_outside", 1}, []float64{1, 1, 1.5, 2}, nil},
		{"linear opset 18 axes", []any{"mode", "linear", "axes", []int64{3, 2}}, []float64{2, 1.5}, []int64{3, 2}},
		{"channel axis", []any{"mode", "linear"}, []float64{1, 2, 1, 1}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			sc := tensor.FromData(c.scales, len(c.scales))
			op := ewBuild(t, opsNode("Resize", []string{"x", "", "sc"}, c.kv...), map[string]*tensor.Tensor{"sc": sc}, 18)
			checkOp(t, op, []*tensor.Tensor{x, nil, sc}, []int{0})
		})
	}
}
