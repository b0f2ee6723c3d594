package costmodel

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"mpsearch/kernels"
	"mpsearch/quant"
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

// TestOpReplicas checks the replicas of the engine's loops against
// independent definitions: quant.ActQuant.Quantize, a brute-force 2x2
// maximum, kernels.Requantize and a plain clamp.
func TestOpReplicas(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 9))
	q := quant.ActQuant{Scale: 0.03, ZeroPoint: 117}
	x := make([]float64, 999)
	for i := range x {
		x[i] = 5 * rng.NormFloat64()
	}
	x[0], x[1] = 1.5*q.Scale-117*q.Scale, 2.5*q.Scale-117*q.Scale // ties
	codes := make([]uint8, len(x))
	quantizeInput(codes, x, q.Scale, q.ZeroPoint)
	for i, v := range x {
		if want := q.Quantize(v); codes[i] != want {
			t.Fatalf("quantizeInput(%v) = %d; want %d", v, codes[i], want)
		}
	}

	const ch, h, w = 3, 9, 8 // odd height: the last row is dropped
	oh, ow := h/2, w/2
	src := randBytes(rng, ch*h*w)
	got := make([]uint8, ch*oh*ow)
	maxPool2x2(got, src, h, w, oh, ow)
	for c := 0; c < ch; c++ {
		for y := 0; y < oh; y++ {
			for x := 0; x < ow; x++ {
				var m uint8
				for _, d := range [][2]int{{0, 0}, {0, 1}, {1, 0}, {1, 1}} {
					m = max(m, src[c*h*w+(2*y+d[0])*w+2*x+d[1]])
				}
				if g := got[(c*oh+y)*ow+x]; g != m {
					t.Fatalf("maxPool2x2 channel %d (%d, %d) = %d; want %d", c, y, x, g, m)
				}
			}
		}
	}
	sq := randBytes(rng, ch*8*8)
	offs, first, side := poolTaps(8, 2, 2, 0)
	viaTaps, direct := make([]uint8, ch*side*side), make([]uint8, ch*side*side)
	maxPoolTaps(viaTaps, sq, 64, offs, first)
	maxPool2x2(direct, sq, 8, 8, 4, 4)
	if side != 4 || string(viaTaps) != string(direct) {
		t.Errorf("maxPoolTaps with 2x2 taps (side %d) = %v; want maxPool2x2's %v", side, viaTaps, direct)
	}
	if _, f3, s3 := poolTaps(5, 3, 1, 1); s3 != 5 || f3[len(f3)-1] != 4*4+12*6+9*9 {
		t.Errorf("poolTaps(5, 3, 1, 1): side %d, %d taps; want 5 and %d", s3, f3[len(f3)-1], 4*4+12*6+9*9)
	}

	a, b, y := randBytes(rng, 500), randBytes(rng, 500), make([]uint8, 500)
	const ma, mb, za, zb, shift, zy = 1 << 30, 3 << 28, 3, 7, 31, 5
	addCodes(y, a, b, ma, mb, za, zb, shift, zy)
	for i := range y {
		acc := ma*(int64(a[i])-za) + mb*(int64(b[i])-zb)
		r := math.Round(float64(acc)/(1<<shift)) + zy // half away from zero
		if want := uint8(min(max(r, 0), 255)); y[i] != want {
			t.Fatalf("addCodes(%d, %d) = %d; want %d", a[i], b[i], y[i], want)
		}
	}
	clampCodes(y, a, 20, 240)
	for i, v := range a {
		if want := min(max(v, 20), 240); y[i] != want {
			t.Fatalf("clampCodes(%d) = %d; want %d", v, y[i], want)
		}
	}
	acc := []int32{-3, 5, 7, 1 << 20}
	out := make([]float64, 4)
	dequantizeAcc(out, acc, []float64{0.5, 0.25})
	if want := []float64{-1.5, 1.25, 3.5, 1 << 18}; out[0] != want[0] || out[1] != want[1] || out[2] != want[2] || out[3] != want[3] {
		t.Errorf("dequantizeAcc = %v; want %v", out, want)
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
// with short samples: the result must be a valid part of a profile, and the
// per-element costs of quantization and addition, timed at 1024 and 16384
// elements, positive.
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
