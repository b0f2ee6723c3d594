package quant

import (
	"math"
	"math/rand/v2"
	"testing"

	"mpsearch/tensor"
)

func TestQuantizeWeightsPerChannel(t *testing.T) {
	// Two channels along axis 0 of a [2,3] tensor; 3 bits: qmax = 3.
	w := []float64{0.3, -0.6, 0.15, 2, -1, 0.5}
	wq, err := QuantizeWeights(w, []int{2, 3}, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	wantScales := []float64{0.2, 2.0 / 3}
	// 0.15/0.2 = 0.75 -> 1; 0.5/(2/3) = 0.75 -> 1; -1/(2/3) = -1.5 -> -2 (half to even).
	wantQ := []int8{2, -3, 1, 3, -2, 1}
	for c, s := range wantScales {
		if math.Abs(wq.Scales[c]-s) > 1e-15 {
			t.Errorf("scale[%d]: got %g; want %g", c, wq.Scales[c], s)
		}
	}
	for i, q := range wantQ {
		if wq.Q[i] != q {
			t.Errorf("q[%d]: got %d; want %d", i, wq.Q[i], q)
		}
	}
	// Axis 1 of the same tensor: three channels of two values.
	wq, err = QuantizeWeights(w, []int{2, 3}, 1, 8)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := wq.Scales[0], 2.0/127; math.Abs(got-want) > 1e-15 {
		t.Errorf("axis 1 scale[0]: got %g; want %g", got, want)
	}
}

func TestBinaryAndZeroChannel(t *testing.T) {
	w := []float64{1, -3, 0, 0}
	q, err := FakeQuantWeights(w, []int{2, 2}, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{2, -2, 1, 1} // mean |w| = 2; zero channel: scale 1, sign +
	for i := range want {
		if q[i] != want[i] {
			t.Errorf("binary q[%d]: got %g; want %g", i, q[i], want[i])
		}
	}
	if _, err := QuantizeWeights(w, []int{2, 2}, 0, 9); err == nil {
		t.Error("9 bits: got no error")
	}
}

func TestSquaredErrorDecreasesWithBits(t *testing.T) {
	w := make([]float64, 64)
	for i := range w {
		w[i] = math.Sin(float64(i)*1.7) * float64(1+i%5)
	}
	prev := math.Inf(1)
	for _, b := range []int{2, 3, 4, 6, 8} {
		e, err := SquaredError(w, []int{4, 16}, 0, b)
		if err != nil {
			t.Fatal(err)
		}
		if e >= prev {
			t.Errorf("%d bits: error %g not below %g", b, e, prev)
		}
		prev = e
	}
}

func TestActQuant(t *testing.T) {
	a := ActFromRange(-1, 3) // scale 4/255, zp = round(63.75) = 64
	if a.ZeroPoint != 64 || math.Abs(a.Scale-4.0/255) > 1e-15 {
		t.Fatalf("got %+v; want scale 4/255, zero point 64", a)
	}
	for _, c := range []struct {
		x    float64
		want uint8
	}{{0, 64}, {-5, 0}, {10, 255}, {2 / 255.0, 64}, {6 / 255.0, 66}} {
		if got := a.Quantize(c.x); got != c.want {
			t.Errorf("Quantize(%g): got %d; want %d", c.x, got, c.want)
		}
	}
	if got := ActFromRange(0.5, 2); got.ZeroPoint != 0 {
		t.Errorf("positive range: zero point %d; want 0 (range widened to include 0)", got.ZeroPoint)
	}
}

func TestDyadic(t *testing.T) {
	for _, M := range []float64{1e-9, 0.000123, 0.5, 0.75, 0.999999999, 1, 3.5, 1000} {
		m, c, err := Dyadic(M)
		if err != nil {
			t.Fatalf("Dyadic(%g): %v", M, err)
		}
		got := float64(m) * math.Pow(2, -float64(c))
		if rel := math.Abs(got-M) / M; rel > 1e-9 {
			t.Errorf("Dyadic(%g) = %d·2^-%d = %g; relative error %g", M, m, c, got, rel)
		}
		if c < 0 || c > 62 {
			t.Errorf("Dyadic(%g): shift %d outside [0, 62]", M, c)
		}
	}
	if _, _, err := Dyadic(-1); err == nil {
		t.Error("Dyadic(-1): got no error")
	}
}

// TestQuantizeClampMatchesMathMinMax: the clamp by comparisons equals
// math.Max(0, math.Min(255, q)) (the earlier form) on edge values.
func TestQuantizeClampMatchesMathMinMax(t *testing.T) {
	a := ActQuant{Scale: 0.25, ZeroPoint: 7}
	for _, x := range []float64{math.NaN(), math.Inf(1), math.Inf(-1), 0, math.Copysign(0, -1), -1.75, -1.875, -2, 61.9, 62, 62.125, 1e300, -1e300, 5e-324} {
		q := math.RoundToEven(x/a.Scale) + float64(a.ZeroPoint)
		want := uint8(math.Max(0, math.Min(255, q)))
		if got := a.Quantize(x); got != want {
			t.Errorf("Quantize(%g): got %d; want %d", x, got, want)
		}
	}
}

// TestFakeAllMatchesFake: the loop the activation hooks run (fakeAll, on
// kernels.FakeQuantize's vectors) gives Fake's value bit for bit, at the clamps,
// at rounding ties, for ±0, ±Inf and NaN; ActAllocHook gives ActHook's
// tensor.
func TestFakeAllMatchesFake(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	xs := []float64{math.NaN(), math.Inf(1), math.Inf(-1), 0, math.Copysign(0, -1), -1.75, -1.875, -2, 61.9, 62, 62.125, 1e300, -1e300, 5e-324, 0.125, -0.125, 0.375}
	for range 4096 {
		xs = append(xs, rng.NormFloat64()*math.Pow(10, float64(rng.IntN(5)-2)))
	}
	for _, a := range []ActQuant{{Scale: 0.25, ZeroPoint: 7}, ActFromRange(0, 6), ActFromRange(-3.1, 2.7), ActFromRange(-1e-3, 0)} {
		got := make([]float64, len(xs))
		a.fakeAll(got, xs)
		for i, x := range xs {
			if want := a.Fake(x); math.Float64bits(got[i]) != math.Float64bits(want) {
				t.Errorf("%+v: fakeAll(%g) = %v; want Fake's %v", a, x, got[i], want)
			}
		}
	}
	q := map[string]ActQuant{"conv": ActFromRange(-2, 5)}
	v := tensor.FromData(xs, len(xs))
	want := ActHook(q)("conv", 0, v)
	buf := make([]float64, len(xs))
	for i := range buf {
		buf[i] = math.NaN() // memory the hook must overwrite
	}
	got := ActAllocHook(q)("conv", 0, v, func(n int) []float64 { return buf[:n] })
	for i := range want.Data {
		if math.Float64bits(got.Data[i]) != math.Float64bits(want.Data[i]) {
			t.Fatalf("ActAllocHook[%d] = %v; want ActHook's %v", i, got.Data[i], want.Data[i])
		}
	}
	if ActAllocHook(q)("conv", 1, v, nil) != v || ActAllocHook(q)("other", 0, v, nil) != v {
		t.Errorf("ActAllocHook replaced an input that is not a quantized layer's first: want it unchanged")
	}
}
