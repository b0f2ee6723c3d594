package network

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

// refPool pools x [N,C,H,W] by direct loops over every window tap with
// explicit pads (t, l, b, r) and output size; avg selects averaging
// (dividing by the taps inside the input, or with includePad inside the
// padded input), otherwise the maximum over taps inside the input.
func refPool(x *tensor.Tensor, k, s, d [2]int, pads [4]int, oh, ow int, avg, includePad bool) *tensor.Tensor {
	n, c, h, w := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	y := tensor.New(n, c, oh, ow)
	for p := 0; p < n*c; p++ {
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				sum, cnt, cntPad, best := 0.0, 0, 0, math.Inf(-1)
				for i := 0; i < k[0]; i++ {
					for j := 0; j < k[1]; j++ {
						iy, ix := oy*s[0]-pads[0]+i*d[0], ox*s[1]-pads[1]+j*d[1]
						if iy >= -pads[0] && iy < h+pads[2] && ix >= -pads[1] && ix < w+pads[3] {
							cntPad++
						}
						if iy < 0 || iy >= h || ix < 0 || ix >= w {
							continue
						}
						v := x.Data[(p*h+iy)*w+ix]
						sum += v
						cnt++
						best = math.Max(best, v)
					}
				}
				o := (p*oh+oy)*ow + ox
				switch {
				case !avg:
					y.Data[o] = best
				case includePad:
					y.Data[o] = sum / float64(cntPad)
				default:
					y.Data[o] = sum / float64(cnt)
				}
			}
		}
	}
	return y
}

func TestPools(t *testing.T) {
	tests := []struct {
		name       string
		op         string
		x          []int
		attrs      map[string]onnx.Attribute
		k, s, d    [2]int
		pads       [4]int // resolved
		oh, ow     int
		includePad bool
	}{
		{name: "max 2x2 s2", op: "MaxPool", x: []int{2, 3, 4, 6},
			attrs: map[string]onnx.Attribute{"kernel_shape": laInts(2, 2), "strides": laInts(2, 2)},
			k:     [2]int{2, 2}, s: [2]int{2, 2}, d: [2]int{1, 1}, oh: 2, ow: 3},
		{name: "max 3x2 dilation 2x1 no pads", op: "MaxPool", x: []int{2, 2, 7, 6},
			attrs: map[string]onnx.Attribute{"kernel_shape": laInts(3, 2), "dilations": laInts(2, 1)},
			k:     [2]int{3, 2}, s: [2]int{1, 1}, d: [2]int{2, 1}, oh: 3, ow: 5},
		{name: "max 2x2 s1 pads on the far side only", op: "MaxPool", x: []int{1, 2, 4, 5},
			attrs: map[string]onnx.Attribute{"kernel_shape": laInts(2, 2), "strides": laInts(1, 1), "pads": laInts(0, 0, 1, 1)},
			k:     [2]int{2, 2}, s: [2]int{1, 1}, d: [2]int{1, 1}, pads: [4]int{0, 0, 1, 1}, oh: 4, ow: 5},
		{name: "max pads stride dilation", op: "MaxPool", x: []int{1, 2, 7, 6},
			attrs: map[string]onnx.Attribute{"kernel_shape": laInts(3, 2), "strides": laInts(2, 1), "dilations": laInts(2, 2), "pads": laInts(1, 1, 2, 0)},
			k:     [2]int{3, 2}, s: [2]int{2, 1}, d: [2]int{2, 2}, pads: [4]int{1, 1, 2, 0}, oh: 3, ow: 5},
		{name: "max ceil_mode", op: "MaxPool", x: []int{1, 2, 6, 5},
			attrs: map[string]onnx.Attribute{"kernel_shape": laInts(3, 3), "strides": laInts(2, 2), "ceil_mode": laInt(1)},
			k:     [2]int{3, 3}, s: [2]int{2, 2}, d: [2]int{1, 1}, oh: 3, ow: 2},
		{name: "max SAME_UPPER", op: "MaxPool", x: []int{1, 2, 5, 5},
			attrs: map[string]onnx.Attribute{"kernel_shape": laInts(2, 2), "strides": laInts(2, 2), "auto_pad": laStr("SAME_UPPER")},
			k:     [2]int{2, 2}, s: [2]int{2, 2}, d: [2]int{1, 1}, pads: [4]int{0, 0, 1, 1}, oh: 3, ow: 3},
		{name: "max SAME_LOWER", op: "MaxPool", x: []int{1, 2, 5, 5},
			attrs: map[string]onnx.Attribute{"kernel_shape": laInts(2, 2), "strides": laInts(2, 2), "auto_pad": laStr("SAME_LOWER")},
			k:     [2]int{2, 2}, s: [2]int{2, 2}, d: [2]int{1, 1}, pads: [4]int{1, 1, 0, 0}, oh: 3, ow: 3},
		{name: "avg exclude pad", op: "AveragePool", x: []int{2, 2, 5, 5},
			attrs: map[string]onnx.Attribute{"kernel_shape": laInts(3, 3), "strides": laInts(2, 2), "pads": laInts(1, 1, 1, 1)},
			k:     [2]int{3, 3}, s: [2]int{2, 2}, d: [2]int{1, 1}, pads: [4]int{1, 1, 1, 1}, oh: 3, ow: 3},
		{name: "avg include pad asymmetric", op: "AveragePool", x: []int{2, 2, 5, 6},
			attrs: map[string]onnx.Attribute{"kernel_shape": laInts(3, 2), "strides": laInts(2, 2), "pads": laInts(2, 0, 1, 1), "count_include_pad": laInt(1)},
			k:     [2]int{3, 2}, s: [2]int{2, 2}, d: [2]int{1, 1}, pads: [4]int{2, 0, 1, 1}, oh: 3, ow: 3, includePad: true},
		{name: "avg ceil include pad", op: "AveragePool", x: []int{1, 2, 6, 5},
			attrs: map[string]onnx.Attribute{"kernel_shape": laInts(3, 3), "strides": laInts(2, 2), "pads": laInts(1, 1, 1, 1), "ceil_mode": laInt(1), "count_include_pad": laInt(1)},
			k:     [2]int{3, 3}, s: [2]int{2, 2}, d: [2]int{1, 1}, pads: [4]int{1, 1, 1, 1}, oh: 4, ow: 3, includePad: true},
		{name: "avg ceil exclude pad", op: "AveragePool", x: []int{1, 2, 6, 5},
			attrs: map[string]onnx.Attribute{"kernel_shape": laInts(3, 3), "strides": laInts(2, 2), "ceil_mode": laInt(1)},
			k:     [2]int{3, 3}, s: [2]int{2, 2}, d: [2]int{1, 1}, oh: 3, ow: 2},
		{name: "avg dilation", op: "AveragePool", x: []int{1, 1, 6, 6},
			attrs: map[string]onnx.Attribute{"kernel_shape": laInts(2, 2), "dilations": laInts(2, 3), "pads": laInts(1, 1, 1, 1), "count_include_pad": laInt(1)},
			k:     [2]int{2, 2}, s: [2]int{1, 1}, d: [2]int{2, 3}, pads: [4]int{1, 1, 1, 1}, oh: 6, ow: 5, includePad: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(21, 22))
			in := []*tensor.Tensor{randTensor(rng, tc.x...)}
			op := buildLayer(t, tc.op, 1, tc.attrs, nil, 13)
			y, _, err := op.Forward(in)
			if err != nil {
				t.Fatalf("Forward: %v", err)
			}
			want := refPool(in[0], tc.k, tc.s, tc.d, tc.pads, tc.oh, tc.ow, tc.op == "AveragePool", tc.includePad)
			if !tensor.SameShape(y.Shape, want.Shape) {
				t.Fatalf("shape: got %v; want %v", y.Shape, want.Shape)
			}
			if d := maxRelDiff(y.Data, want.Data); d > refTol {
				t.Errorf("Forward vs direct loops: max relative difference %g; want <= %g", d, refTol)
			}
			if ao, ok := op.(allocOp); ok {
				// Infer's form, in memory holding NaN (a fillOp's is not
				// zeroed): Forward's values bit for bit.
				yi, err := ao.inferAlloc(in, func(n int) []float64 {
					d := make([]float64, n)
					for i := range d {
						d[i] = math.NaN()
					}
					return d
				})
				if err != nil {
					t.Fatalf("inferAlloc: %v", err)
				}
				if i := sameBits(yi, y); i >= 0 {
					t.Errorf("inferAlloc[%d] = %v; want Forward's %v bit for bit", i, yi.Data[i], y.Data[i])
				}
			}
			checkOp(t, op, in, []int{0})
		})
	}
}

// TestPoolKnownValues checks hand-computed outputs on x = 1..9 (3x3).
func TestPoolKnownValues(t *testing.T) {
	x := tensor.FromData([]float64{1, 2, 3, 4, 5, 6, 7, 8, 9}, 1, 1, 3, 3)
	tests := []struct {
		name  string
		op    string
		x     *tensor.Tensor
		attrs map[string]onnx.Attribute
		want  []float64
		shape []int
	}{
		{"avg ceil partial windows", "AveragePool", x, map[string]onnx.Attribute{"kernel_shape": laInts(2, 2), "strides": laInts(2, 2), "ceil_mode": laInt(1)},
			[]float64{3, 4.5, 7.5, 9}, []int{1, 1, 2, 2}},
		{"avg pads include", "AveragePool", x, map[string]onnx.Attribute{"kernel_shape": laInts(3, 3), "strides": laInts(2, 2), "pads": laInts(1, 1, 1, 1), "count_include_pad": laInt(1)},
			[]float64{12.0 / 9, 16.0 / 9, 24.0 / 9, 28.0 / 9}, []int{1, 1, 2, 2}},
		{"avg pads exclude", "AveragePool", x, map[string]onnx.Attribute{"kernel_shape": laInts(3, 3), "strides": laInts(2, 2), "pads": laInts(1, 1, 1, 1)},
			[]float64{3, 4, 6, 7}, []int{1, 1, 2, 2}},
		{"max ceil partial windows", "MaxPool", x, map[string]onnx.Attribute{"kernel_shape": laInts(2, 2), "strides": laInts(2, 2), "ceil_mode": laInt(1)},
			[]float64{5, 6, 8, 9}, []int{1, 1, 2, 2}},
		// ONNX backend case maxpool_2d_ceil_output_size_reduce_by_one: the
		// last window would start past the input, so it is dropped.
		{"max ceil reduce by one", "MaxPool", tensor.FromData([]float64{1, 2, 3, 4}, 1, 1, 2, 2), map[string]onnx.Attribute{"kernel_shape": laInts(1, 1), "strides": laInts(2, 2), "ceil_mode": laInt(1)},
			[]float64{1}, []int{1, 1, 1, 1}},
		{"global average", "GlobalAveragePool", x, nil, []float64{5}, []int{1, 1, 1, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			op := buildLayer(t, tc.op, 1, tc.attrs, nil, 13)
			y, _, err := op.Forward([]*tensor.Tensor{tc.x})
			if err != nil {
				t.Fatalf("Forward: %v", err)
			}
			if !tensor.SameShape(y.Shape, tc.shape) {
				t.Fatalf("shape: got %v; want %v", y.Shape, tc.shape)
			}
			if d := maxRelDiff(y.Data, tc.want); d > refTol {
				t.Errorf("got %v; want %v", y.Data, tc.want)
			}
		})
	}
}

// TestPool1D checks 1-D pooling against 2-D pooling of height 1.
func TestPool1D(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	x := randTensor(rng, 2, 3, 11)
	for _, opType := range []string{"MaxPool", "AveragePool"} {
		op1 := buildLayer(t, opType, 1, map[string]onnx.Attribute{"kernel_shape": laInts(3), "strides": laInts(2), "pads": laInts(1, 2), "ceil_mode": laInt(1), "count_include_pad": laInt(1)}, nil, 13)
		op2 := buildLayer(t, opType, 1, map[string]onnx.Attribute{"kernel_shape": laInts(1, 3), "strides": laInts(1, 2), "pads": laInts(0, 1, 0, 2), "ceil_mode": laInt(1), "count_include_pad": laInt(1)}, nil, 13)
		y1, _, err := op1.Forward([]*tensor.Tensor{x})
		if err != nil {
			t.Fatalf("%s 1-D: %v", opType, err)
		}
		y2, _, err := op2.Forward([]*tensor.Tensor{x.Reshape(2, 3, 1, 11)})
		if err != nil {
			t.Fatalf("%s 2-D: %v", opType, err)
		}
		if want := []int{2, 3, y2.Shape[3]}; !tensor.SameShape(y1.Shape, want) {
			t.Fatalf("%s shape: got %v; want %v", opType, y1.Shape, want)
		}
		if d := maxRelDiff(y1.Data, y2.Data); d != 0 {
			t.Errorf("%s 1-D vs 2-D of height 1: max relative difference %g; want 0", opType, d)
		}
		checkOp(t, op1, []*tensor.Tensor{x}, []int{0})
	}
}

func TestGlobalAveragePool(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	for _, shape := range [][]int{{2, 3, 4, 5}, {2, 3, 7}} {
		in := []*tensor.Tensor{randTensor(rng, shape...)}
		op := buildLayer(t, "GlobalAveragePool", 1, nil, nil, 13)
		y, _, err := op.Forward(in)
		if err != nil {
			t.Fatalf("Forward %v: %v", shape, err)
		}
		planes := shape[0] * shape[1]
		s := in[0].Size() / planes
		for p := 0; p < planes; p++ {
			sum := 0.0
			for _, v := range in[0].Data[p*s : (p+1)*s] {
				sum += v
			}
			if want := sum / float64(s); math.Abs(y.Data[p]-want) > refTol {
				t.Errorf("%v plane %d: got %g; want %g", shape, p, y.Data[p], want)
			}
		}
		checkOp(t, op, in, []int{0})
	}
}

func TestPoolErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	t.Run("Indices output", func(t *testing.T) {
		n := &onnx.Node{Name: "mp", OpType: "MaxPool", Inputs: []string{"x"}, Outputs: []string{"y", "idx"},
			Attrs: map[string]onnx.Attribute{"kernel_shape": laInts(2, 2)}}
		if _, err := buildMaxPool(n, nil, 13); !errors.Is(err, ErrUnsupported) {
			t.Errorf("got %v; want an error wrapping ErrUnsupported", err)
		}
		n.Outputs = []string{"y", ""}
		if _, err := buildMaxPool(n, nil, 13); err != nil {
			t.Errorf("empty Indices output: got %v; want no error", err)
		}
	})
	for _, tc := range []struct {
		name  string
		op    string
		attrs map[string]onnx.Attribute
		x     []int
		want  error
	}{
		{"missing kernel_shape", "MaxPool", nil, nil, nil},
		{"3-D kernel", "AveragePool", map[string]onnx.Attribute{"kernel_shape": laInts(2, 2, 2)}, nil, ErrUnsupported},
		{"3-D input", "MaxPool", map[string]onnx.Attribute{"kernel_shape": laInts(2, 2)}, []int{1, 1, 4, 4, 4}, ErrUnsupported},
		{"1-D kernel, 2-D input", "MaxPool", map[string]onnx.Attribute{"kernel_shape": laInts(2)}, []int{1, 1, 4, 4}, ErrShape},
		{"window in padding", "MaxPool", map[string]onnx.Attribute{"kernel_shape": laInts(2, 2), "pads": laInts(2, 0, 0, 0)}, []int{1, 1, 4, 4}, ErrShape},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op, err := tryBuildLayer(tc.op, 1, tc.attrs, nil, 13)
			if err == nil && tc.x != nil {
				_, _, err = op.Forward([]*tensor.Tensor{randTensor(rng, tc.x...)})
			}
			if err == nil {
				t.Fatalf("got no error; want one")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %q does not wrap %v", err, tc.want)
			}
		})
	}
}
