package network

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

// bnParams returns scale, B, mean and a positive var for c channels.
func bnParams(rng *rand.Rand, c int) []*tensor.Tensor {
	v := randTensor(rng, c)
	for i := range v.Data {
		v.Data[i] = math.Abs(v.Data[i]) + 0.5
	}
	return []*tensor.Tensor{randTensor(rng, c), randTensor(rng, c), randTensor(rng, c), v}
}

func TestBatchNormalization(t *testing.T) {
	for _, tc := range []struct {
		name string
		x    []int
		eps  float32
	}{
		{"NCHW", []int{2, 3, 4, 5}, 1e-3},
		{"NC", []int{4, 3}, 0.1},
		{"NCL", []int{2, 2, 5}, 1e-5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(31, 32))
			c := tc.x[1]
			in := append([]*tensor.Tensor{randTensor(rng, tc.x...)}, bnParams(rng, c)...)
			op := buildLayer(t, "BatchNormalization", 5, map[string]onnx.Attribute{"epsilon": laFloat(tc.eps)}, nil, 15)
			y, _, err := op.Forward(in)
			if err != nil {
				t.Fatalf("Forward: %v", err)
			}
			size := in[0].Size() / (tc.x[0] * c)
			eps := float64(tc.eps)
			for i, v := range in[0].Data {
				ch := (i / size) % c
				want := in[1].Data[ch]*(v-in[3].Data[ch])/math.Sqrt(in[4].Data[ch]+eps) + in[2].Data[ch]
				if math.Abs(y.Data[i]-want) > refTol*math.Max(1, math.Abs(want)) {
					t.Fatalf("y[%d]: got %g; want %g", i, y.Data[i], want)
				}
			}
			checkOp(t, op, in, []int{0, 1, 2, 3, 4})
		})
	}
}

func TestBatchNormalizationErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		attrs   map[string]onnx.Attribute
		outputs []string
	}{
		{"training_mode", map[string]onnx.Attribute{"training_mode": laInt(1)}, []string{"y"}},
		{"running mean output", nil, []string{"y", "mean"}},
		{"spatial 0", map[string]onnx.Attribute{"spatial": laInt(0)}, []string{"y"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &onnx.Node{Name: "bn", OpType: "BatchNormalization", Inputs: []string{"x", "s", "b", "m", "v"}, Outputs: tc.outputs, Attrs: tc.attrs}
			if _, err := buildBatchNorm(n, nil, 15); !errors.Is(err, ErrUnsupported) {
				t.Errorf("got %v; want an error wrapping ErrUnsupported", err)
			}
		})
	}
	t.Run("parameter size", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 1))
		op := buildLayer(t, "BatchNormalization", 5, nil, nil, 15)
		in := append([]*tensor.Tensor{randTensor(rng, 2, 3, 2, 2)}, bnParams(rng, 4)...)
		if _, _, err := op.Forward(in); !errors.Is(err, ErrShape) {
			t.Errorf("got %v; want an error wrapping ErrShape", err)
		}
	})
}

// TestFoldBatchNorm checks that Conv or Gemm followed by
// BatchNormalization equals the folded layer.
func TestFoldBatchNorm(t *testing.T) {
	const eps = 1e-3
	rng := rand.New(rand.NewPCG(41, 42))
	bnOp := buildLayer(t, "BatchNormalization", 5, map[string]onnx.Attribute{"epsilon": laFloat(eps)}, nil, 15)
	run := func(op Op, in ...*tensor.Tensor) *tensor.Tensor {
		t.Helper()
		y, _, err := op.Forward(in)
		if err != nil {
			t.Fatalf("Forward: %v", err)
		}
		return y
	}
	// eps as the float32 attribute the op read.
	epsOp := float64(float32(eps))
	cases := []struct {
		name string
		op   Op
		x, w *tensor.Tensor
		bias bool
		cols bool // weight [in, out]
	}{
		{name: "conv with bias", op: buildLayer(t, "Conv", 3, map[string]onnx.Attribute{"group": laInt(2), "pads": laInts(1, 1, 1, 1)}, nil, 13),
			x: randTensor(rng, 2, 4, 5, 5), w: randTensor(rng, 6, 2, 3, 3), bias: true},
		{name: "conv without bias", op: buildLayer(t, "Conv", 2, nil, nil, 13),
			x: randTensor(rng, 2, 3, 4, 4), w: randTensor(rng, 5, 3, 2, 2)},
		{name: "gemm transB", op: buildLayer(t, "Gemm", 3, map[string]onnx.Attribute{"transB": laInt(1)}, nil, 13),
			x: randTensor(rng, 4, 6), w: randTensor(rng, 3, 6), bias: true},
		{name: "gemm columns", op: buildLayer(t, "Gemm", 3, nil, nil, 13),
			x: randTensor(rng, 4, 6), w: randTensor(rng, 6, 3), bias: true, cols: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cout := tc.w.Shape[0]
			if tc.cols {
				cout = tc.w.Shape[1]
			}
			p := bnParams(rng, cout)
			var b *tensor.Tensor
			in := []*tensor.Tensor{tc.x, tc.w}
			if tc.bias {
				b = randTensor(rng, cout)
				in = append(in, b)
			}
			y := run(tc.op, in...)
			// BatchNormalization over channel axis 1 of the layer output.
			want := run(bnOp, append([]*tensor.Tensor{y}, p...)...)
			fold := FoldBatchNorm
			if tc.cols {
				fold = FoldBatchNormColumns
			}
			w0, b0 := tc.w.Clone(), (*tensor.Tensor)(nil)
			if b != nil {
				b0 = b.Clone()
			}
			fw, fb := fold(tc.w, b, p[0], p[1], p[2], p[3], epsOp)
			if maxRelDiff(tc.w.Data, w0.Data) != 0 || (b != nil && maxRelDiff(b.Data, b0.Data) != 0) {
				t.Fatalf("FoldBatchNorm modified its inputs")
			}
			got := run(tc.op, tc.x, fw, fb)
			if d := maxRelDiff(got.Data, want.Data); d > refTol {
				t.Errorf("folded layer vs layer+BatchNormalization: max relative difference %g; want <= %g", d, refTol)
			}
		})
	}
}
