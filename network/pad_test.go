package network

import (
	"errors"
	"math/rand/v2"
	"testing"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

// refPadCoord maps output coordinate o of an axis of size d padded by b
// in front to the input coordinate, or -1 for the constant, by repeated
// reflection / clamping / wrapping.
func refPadCoord(mode string, o, d, b int) int {
	i := o - b
	for i < 0 || i >= d {
		switch mode {
		case "constant":
			return -1
		case "edge":
			if i < 0 {
				i = 0
			} else {
				i = d - 1
			}
		case "wrap":
			if i < 0 {
				i += d
			} else {
				i -= d
			}
		case "reflect":
			if d == 1 {
				return 0
			}
			if i < 0 {
				i = -i
			} else {
				i = 2*(d-1) - i
			}
		}
	}
	return i
}

// refPad pads x (rank 3) by direct loops.
func refPad(x *tensor.Tensor, mode string, begin, end []int, value float64) *tensor.Tensor {
	s := x.Shape
	out := []int{s[0] + begin[0] + end[0], s[1] + begin[1] + end[1], s[2] + begin[2] + end[2]}
	y := tensor.New(out...)
	for a := 0; a < out[0]; a++ {
		for b := 0; b < out[1]; b++ {
			for c := 0; c < out[2]; c++ {
				i, j, k := refPadCoord(mode, a, s[0], begin[0]), refPadCoord(mode, b, s[1], begin[1]), refPadCoord(mode, c, s[2], begin[2])
				v := value
				if i >= 0 && j >= 0 && k >= 0 {
					v = x.Data[(i*s[1]+j)*s[2]+k]
				}
				y.Data[(a*out[1]+b)*out[2]+c] = v
			}
		}
	}
	return y
}

func padConsts(pads []float64, value *float64, axes []float64) (map[string]*tensor.Tensor, []*tensor.Tensor, int) {
	consts := map[string]*tensor.Tensor{"in1": tensor.FromData(pads, len(pads))}
	extra := []*tensor.Tensor{consts["in1"]}
	nIn := 2
	if value != nil || axes != nil {
		v := 0.0
		if value != nil {
			v = *value
		}
		consts["in2"] = tensor.FromData([]float64{v})
		extra = append(extra, consts["in2"])
		nIn = 3
	}
	if axes != nil {
		consts["in3"] = tensor.FromData(axes, len(axes))
		extra = append(extra, consts["in3"])
		nIn = 4
	}
	return consts, extra, nIn
}

func TestPad(t *testing.T) {
	val := 1.5
	tests := []struct {
		name       string
		mode       string
		opset      int64
		pads       []float64 // attribute (opset < 11) or input
		value      *float64
		axes       []float64
		begin, end []int // resolved, for the reference
	}{
		{name: "constant attribute opset 2", mode: "constant", opset: 2, pads: []float64{0, 1, 2, 1, 0, 1}, value: &val,
			begin: []int{0, 1, 2}, end: []int{1, 0, 1}},
		{name: "constant input with crop", mode: "constant", opset: 13, pads: []float64{1, -1, 0, 0, 2, -2}, value: &val,
			begin: []int{1, -1, 0}, end: []int{0, 2, -2}},
		{name: "constant axes", mode: "constant", opset: 18, pads: []float64{2, -1, 1, 1}, axes: []float64{-1, 1},
			begin: []int{0, -1, 2}, end: []int{0, 1, 1}},
		{name: "reflect", mode: "reflect", opset: 13, pads: []float64{1, 2, 3, 1, 2, 4},
			begin: []int{1, 2, 3}, end: []int{1, 2, 4}},
		{name: "edge with crop", mode: "edge", opset: 13, pads: []float64{0, 3, -1, 2, 0, 2},
			begin: []int{0, 3, -1}, end: []int{2, 0, 2}},
		{name: "wrap", mode: "wrap", opset: 19, pads: []float64{1, 2, 5, 0, 1, 4},
			begin: []int{1, 2, 5}, end: []int{0, 1, 4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(51, 52))
			x := randTensor(rng, 2, 3, 4)
			attrs := map[string]onnx.Attribute{"mode": laStr(tc.mode)}
			in := []*tensor.Tensor{x}
			var op Op
			if tc.opset < 11 {
				p := make([]int64, len(tc.pads))
				for i, v := range tc.pads {
					p[i] = int64(v)
				}
				attrs["pads"] = laInts(p...)
				attrs["value"] = laFloat(float32(*tc.value))
				op = buildLayer(t, "Pad", 1, attrs, nil, tc.opset)
			} else {
				consts, extra, nIn := padConsts(tc.pads, tc.value, tc.axes)
				in = append(in, extra...)
				op = buildLayer(t, "Pad", nIn, attrs, consts, tc.opset)
				ci := op.(ConstInputs).ConstInputs()
				if len(ci) != nIn-1 {
					t.Errorf("ConstInputs: got %v; want 1..%d", ci, nIn-1)
				}
			}
			y, _, err := op.Forward(in)
			if err != nil {
				t.Fatalf("Forward: %v", err)
			}
			value := 0.0
			if tc.value != nil {
				value = *tc.value
			}
			want := refPad(x, tc.mode, tc.begin, tc.end, value)
			if !tensor.SameShape(y.Shape, want.Shape) {
				t.Fatalf("shape: got %v; want %v", y.Shape, want.Shape)
			}
			if d := maxRelDiff(y.Data, want.Data); d != 0 {
				t.Errorf("Forward vs direct loops: max relative difference %g; want 0 (copies)", d)
			}
			checkOp(t, op, in, []int{0})
		})
	}
}

// TestPadKnownValues pads [1 2 3] by 2 on each side (numpy.pad's modes).
func TestPadKnownValues(t *testing.T) {
	for _, tc := range []struct {
		mode string
		want []float64
	}{
		{"constant", []float64{0, 0, 1, 2, 3, 0, 0}},
		{"reflect", []float64{3, 2, 1, 2, 3, 2, 1}},
		{"edge", []float64{1, 1, 1, 2, 3, 3, 3}},
		{"wrap", []float64{2, 3, 1, 2, 3, 1, 2}},
	} {
		op := buildLayer(t, "Pad", 1, map[string]onnx.Attribute{"mode": laStr(tc.mode), "pads": laInts(2, 2)}, nil, 2)
		y, _, err := op.Forward([]*tensor.Tensor{tensor.FromData([]float64{1, 2, 3}, 3)})
		if err != nil {
			t.Fatalf("%s: %v", tc.mode, err)
		}
		if maxRelDiff(y.Data, tc.want) != 0 {
			t.Errorf("%s: got %v; want %v", tc.mode, y.Data, tc.want)
		}
	}
}

func TestPadErrors(t *testing.T) {
	x := tensor.New(2, 3)
	t.Run("pads not constant", func(t *testing.T) {
		_, err := tryBuildLayer("Pad", 2, nil, nil, 13)
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("got %v; want an error wrapping ErrUnsupported", err)
		}
	})
	t.Run("unknown mode", func(t *testing.T) {
		_, err := tryBuildLayer("Pad", 1, map[string]onnx.Attribute{"mode": laStr("mirror"), "pads": laInts(0, 0, 0, 0)}, nil, 2)
		if err == nil {
			t.Errorf("got no error; want one")
		}
	})
	for _, tc := range []struct {
		name string
		pads []float64
	}{
		{"wrong pad count", []float64{1, 1}},
		{"crop beyond size", []float64{0, -2, 0, -2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			consts, extra, nIn := padConsts(tc.pads, nil, nil)
			op := buildLayer(t, "Pad", nIn, nil, consts, 13)
			if _, _, err := op.Forward(append([]*tensor.Tensor{x}, extra...)); !errors.Is(err, ErrShape) {
				t.Errorf("got %v; want an error wrapping ErrShape", err)
			}
		})
	}
}
