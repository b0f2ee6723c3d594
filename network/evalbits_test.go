package network

import (
	"math"
	"math/rand/v2"
	"testing"
)

// evalInputs are values of both signs and many magnitudes plus the cases
// where selecting bits could differ from comparing floats: ±0, ±Inf, NaN,
// the bounds themselves and their neighbours.
func evalInputs() []float64 {
	rng := rand.New(rand.NewPCG(21, 22))
	xs := []float64{0, math.Copysign(0, -1), math.NaN(), math.Inf(1), math.Inf(-1), 6, -6, 1, -1,
		math.Nextafter(6, 7), math.Nextafter(6, 5), math.Nextafter(0, 1), math.Nextafter(0, -1), 1e-310, -1e-310, 800, -800, 40, -40}
	for range 4096 {
		xs = append(xs, rng.NormFloat64()*math.Pow(10, float64(rng.IntN(9)-4)))
	}
	return xs
}

// TestEvalBitsMatchDefinitions: the branch-free Relu, Clip and Sigmoid
// loops give, bit for bit, what their definitions written with float
// comparisons give (the loops they replaced), signed zeros and NaN
// included.
func TestEvalBitsMatchDefinitions(t *testing.T) {
	relu := func(v float64) float64 {
		if v < 0 {
			v = 0
		}
		return v
	}
	clip := func(lo, hi float64) func(float64) float64 {
		return func(v float64) float64 {
			if v < lo {
				v = lo
			}
			if v > hi {
				v = hi
			}
			return v
		}
	}
	sigmoid := func(v float64) float64 {
		s, _ := sigmoidPair(v)
		return s
	}
	cases := []struct {
		name string
		f    unaryFunc
		want func(float64) float64
	}{
		{"Relu", reluFunc{}, relu},
		{"Clip(0,6)", clipFunc{0, 6}, clip(0, 6)},
		{"Clip(-0,6)", clipFunc{math.Copysign(0, -1), 6}, clip(math.Copysign(0, -1), 6)},
		{"Clip(-1,1)", clipFunc{-1, 1}, clip(-1, 1)},
		{"Clip(2,-2)", clipFunc{2, -2}, clip(2, -2)},
		{"Clip(-Inf,Inf)", clipFunc{math.Inf(-1), math.Inf(1)}, clip(math.Inf(-1), math.Inf(1))},
		{"Sigmoid", sigmoidFunc{}, sigmoid},
	}
	xs := evalInputs()
	for _, c := range cases {
		y := make([]float64, len(xs))
		c.f.eval(y, xs)
		for i, x := range xs {
			if w := c.want(x); math.Float64bits(y[i]) != math.Float64bits(w) {
				t.Errorf("%s(%v): got %v (%#x); want %v (%#x)", c.name, x, y[i], math.Float64bits(y[i]), w, math.Float64bits(w))
			}
		}
	}
}
