package costmodel

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"mpsearch/kernels"
)

// TestIm2ColFeatures checks the counts of the im2col model on a shape worked
// out by hand, and on random shapes that every patch element is counted
// exactly once: KW per 8-byte run plus the bytes written one at a time make
// M*K.
func TestIm2ColFeatures(t *testing.T) {
	// 1 x 4 x 4 image, 3x3 kernel, no padding: 2x2 outputs, K = 9. The
	// 8-byte move serves kernel row 0 (columns 0..7 fit K); rows 1 and 2
	// would write past K, so 4 lines of 2 runs go byte by byte.
	g := kernels.ConvShape{C: 1, H: 4, W: 4, KH: 3, KW: 3}
	got := im2colFeatures(g)
	want := [nIm2ColFeatures]float64{1, 4, 6, 4, 24}
	if got != want {
		t.Errorf("im2colFeatures(%+v) = %v; want %v", g, got, want)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for i := 0; i < 300; i++ {
		g := kernels.ConvShape{
			C: 1 + rng.IntN(8), H: 1 + rng.IntN(20), W: 1 + rng.IntN(20), KH: 1 + rng.IntN(5), KW: 1 + rng.IntN(11),
			StrideH: 1 + rng.IntN(3), StrideW: 1 + rng.IntN(3), DilationH: 1 + rng.IntN(2), DilationW: 1 + rng.IntN(2),
			PadTop: rng.IntN(3), PadLeft: rng.IntN(3), PadBottom: rng.IntN(3), PadRight: rng.IntN(3),
		}
		oh, ow, err := g.Out()
		if err != nil {
			continue
		}
		f := im2colFeatures(g)
		m, k := oh*ow, g.C*g.KH*g.KW
		if f[1] != float64(m) || f[2] != float64(oh*g.C*g.KH) {
			t.Errorf("%+v: pixels %v, lines %v; want %d, %d", g, f[1], f[2], m, oh*g.C*g.KH)
		}
		if written := f[3]*float64(g.KW) + f[4]; written != float64(m*k) {
			t.Errorf("%+v: runs*KW + bytes = %v; want M*K = %d", g, written, m*k)
		}
		if (g.KW > 8 || g.DilationW > 1) && f[3] != 0 {
			t.Errorf("%+v: %v 8-byte runs; want 0 (the move needs KW <= 8 and no dilation)", g, f[3])
		}
	}
}

// TestPoolTapCount checks the tap counts of the timed pools against closed
// forms: 2x2 windows with stride 1 take 4 taps at each of (S-1)^2 outputs;
// 3x3 windows with stride 1 and padding 1 take 3S-2 taps along each axis
// in total, so (3S-2)^2 over S^2 outputs.
func TestPoolTapCount(t *testing.T) {
	for _, side := range []int{2, 5, 8, 32} {
		if outs, taps := poolTapCount(side, 2, 1, 0); outs != (side-1)*(side-1) || taps != 4*outs {
			t.Errorf("2x2/1 over %d: got %d outputs, %d taps; want %d and %d", side, outs, taps, (side-1)*(side-1), 4*(side-1)*(side-1))
		}
		if outs, taps := poolTapCount(side, 3, 1, 1); outs != side*side || taps != (3*side-2)*(3*side-2) {
			t.Errorf("3x3/1 pad 1 over %d: got %d outputs, %d taps; want %d and %d", side, outs, taps, side*side, (3*side-2)*(3*side-2))
		}
	}
}

// TestPredictOps checks PredictOps against the profile's coefficients
// applied by hand (testProfile: call 20 ns, quantize 1.2, dequantize 0.6,
// 2x2 max pool 1, pool 1.5 per output and 0.4 per tap, add 1.6, clamp 0.3
// ns per element) and PredictNetwork against the sum of its parts.
func TestPredictOps(t *testing.T) {
	p := testProfile()
	tests := []struct {
		op    OpShape
		batch int
		want  time.Duration
	}{
		{OpShape{Op: OpQuantize, Elements: 784}, 1, 20 + 941},
		{OpShape{Op: OpDequantize, Elements: 10}, 0, 20 + 6},
		{OpShape{Op: OpMaxPool, Elements: 1176, Taps: 4, Max2x2: true}, 2, 20 + 2352},
		{OpShape{Op: OpMaxPool, Elements: 100, Taps: 9}, 2, 20 + 200*(1.5+9*0.4)},
		{OpShape{Op: OpAvgPool, Elements: 10, Taps: 49, Max2x2: true}, 1, 20 + 10*(1.5+49*0.4)},
		{OpShape{Op: OpAdd, Elements: 50}, 1, 20 + 80},
		{OpShape{Op: OpClamp, Elements: 10}, 1, 20 + 3},
	}
	for _, tc := range tests {
		got, err := PredictOps(p, []OpShape{tc.op}, tc.batch)
		if err != nil {
			t.Fatalf("PredictOps(%+v): %v", tc.op, err)
		}
		if got != tc.want {
			t.Errorf("PredictOps(%+v, batch %d) = %v; want %v", tc.op, tc.batch, got, tc.want)
		}
	}
	conv, err := ConvLayer("conv", kernels.ConvShape{C: 3, H: 8, W: 8, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}, 8, 1)
	if err != nil {
		t.Fatal(err)
	}
	shapes := []LayerShape{conv, GemmLayer("fc", "Gemm", 1, 512, 10)}
	ops := []OpShape{{Op: OpQuantize, Elements: 192}, {Op: OpMaxPool, Elements: 128, Taps: 4, Max2x2: true}, {Op: OpDequantize, Elements: 10}}
	layers, err1 := PredictModel(p, shapes, []int{8, 4}, 3)
	between, err2 := PredictOps(p, ops, 3)
	all, err3 := PredictNetwork(p, shapes, []int{8, 4}, ops, 3)
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	if d := all - layers - between; d < -1 || d > 1 {
		t.Errorf("PredictNetwork = %v; want PredictModel + PredictOps = %v + %v (within 1 ns of rounding)", all, layers, between)
	}

	bad := []struct {
		op   OpShape
		want string
	}{
		{OpShape{Name: "x", Op: "Softmax", Elements: 10}, `operation "Softmax"`},
		{OpShape{Name: "x", Op: OpAdd}, "0 elements"},
		{OpShape{Name: "x", Op: OpAvgPool, Elements: 4}, "0 taps"},
	}
	for _, tc := range bad {
		_, err := PredictOps(p, []OpShape{tc.op}, 1)
		if !errors.Is(err, ErrShape) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("PredictOps(%+v) error = %v; want ErrShape containing %q", tc.op, err, tc.want)
		}
	}
	if _, err := PredictNetwork(p, shapes, []int{8}, ops, 1); !errors.Is(err, ErrBits) {
		t.Errorf("PredictNetwork with 1 bit width for 2 layers: error %v; want ErrBits", err)
	}
}

// TestMeasureOps runs the measurement of the operations between layers
// on the integer engine's steps with few samples: every step it reads must
// be in the programs it compiles (else measureOps fails), the result must
// be a valid part of a profile, and the per-element costs of quantization,
// addition and the 2x2 max pool, timed at 1024 and 16384 elements,
// positive.
func TestMeasureOps(t *testing.T) {
	mo, err := MeasureOptions{Repeats: 3, MinSample: 50 * time.Microsecond}.norm()
	if err != nil {
		t.Fatal(err)
	}
	m, err := measureOps(context.Background(), mo, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	p := testProfile()
	p.Ops = m
	if err := p.Validate(); err != nil {
		t.Errorf("profile with measured ops %+v: %v", m, err)
	}
	if !(m.QuantizeNsPerElement > 0) || !(m.AddNsPerElement > 0) || !(m.MaxPool2x2NsPerOutput > 0) {
		t.Errorf("measured ops %+v; want positive quantize, add and 2x2 max-pool costs", m)
	}
}
