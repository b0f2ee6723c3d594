package network

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// The loops that computed each exponential with math.Exp before they took
// blocks from expSlice (kernels.Exp): the references of TestExpBlocksBits.

func sigmoidDerivRef(d1, d2, x, _ []float64) {
	for i, v := range x {
		s, c := sigmoidPair(v)
		d1[i] = s * c
		d2[i] = s * c * (c - s)
	}
}

func tanhDerivRef(d1, d2, x, y []float64) {
	for i, v := range x {
		e := math.Exp(-2 * math.Abs(v))
		d := 4 * e / ((1 + e) * (1 + e))
		d1[i] = d
		d2[i] = -2 * y[i] * d
	}
}

func eluDerivRef(f eluFunc) func(d1, d2, x, _ []float64) {
	return func(d1, d2, x, _ []float64) {
		c := f.scale()
		for i, v := range x {
			a, b := f.gamma, 0.0
			if v <= 0 {
				a = f.gamma * f.alpha / c * math.Exp(v/c)
				b = a / c
			}
			d1[i], d2[i] = a, b
		}
	}
}

func mishDerivRef(d1, d2, x, _ []float64) {
	for i, v := range x {
		t := math.Tanh(math.Max(v, 0) + math.Log1p(math.Exp(-math.Abs(v))))
		s, c := sigmoidPair(v)
		u := 1 - t*t
		d1[i] = t + v*u*s
		d2[i] = 2*u*s + v*u*s*(c-2*t*s)
	}
}

func erfDerivRef(d1, d2, x, _ []float64) {
	for i, v := range x {
		d := twoOverSqrtPi * math.Exp(-v*v)
		d1[i] = d
		d2[i] = -2 * v * d
	}
}

func geluDerivRef(d1, d2, x, _ []float64) {
	for i, v := range x {
		phi := invSqrt2Pi * math.Exp(-v*v/2)
		d1[i] = 0.5*math.Erfc(-v/math.Sqrt2) + v*phi
		d2[i] = phi * (2 - v*v)
	}
}

func softplusDerivRef(d1, d2, x, _ []float64) {
	for i, v := range x {
		s, c := sigmoidPair(v)
		d1[i] = s
		d2[i] = s * c
	}
}

func softmaxRef(y, x []float64, outer, l, inner int) {
	for o := 0; o < outer; o++ {
		for i := 0; i < inner; i++ {
			base := o*l*inner + i
			m := math.Inf(-1)
			for j := 0; j < l; j++ {
				m = math.Max(m, x[base+j*inner])
			}
			s := 0.0
			for j := 0; j < l; j++ {
				e := math.Exp(x[base+j*inner] - m)
				y[base+j*inner] = e
				s += e
			}
			for j := 0; j < l; j++ {
				y[base+j*inner] /= s
			}
		}
	}
}

// bitDiff is the first index where got and want differ in any bit, or -1.
func bitDiff(got, want []float64) int {
	for i := range want {
		if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
			return i
		}
	}
	return -1
}

// TestExpBlocksBits: every function whose exponentials now come from
// expSlice in blocks gives, bit for bit, what its math.Exp loop gave, on
// evalInputs (both signs, many magnitudes, ±0, ±Inf, NaN, ±800: more than
// 16 blocks), with kernels.Exp and with the math.Exp loop (vecExp off).
func TestExpBlocksBits(t *testing.T) {
	xs := evalInputs()
	n := len(xs)
	tanhY := make([]float64, n)
	tanhFunc{}.eval(tanhY, xs)
	derivs := []struct {
		name string
		f    unaryFunc
		ref  func(d1, d2, x, y []float64)
	}{
		{"Sigmoid", sigmoidFunc{}, sigmoidDerivRef},
		{"Tanh", tanhFunc{}, tanhDerivRef},
		{"Elu", eluFunc{alpha: 1, gamma: 1}, eluDerivRef(eluFunc{alpha: 1, gamma: 1})},
		{"Selu", eluFunc{alpha: 1.6732632423543772, gamma: 1.0507009873554805}, eluDerivRef(eluFunc{alpha: 1.6732632423543772, gamma: 1.0507009873554805})},
		{"Celu(0.5)", eluFunc{alpha: 0.5, gamma: 1, celu: true}, eluDerivRef(eluFunc{alpha: 0.5, gamma: 1, celu: true})},
		{"Mish", mishFunc{}, mishDerivRef},
		{"Erf", erfFunc{}, erfDerivRef},
		{"Gelu", geluFunc{}, geluDerivRef},
		{"Softplus", softplusFunc{}, softplusDerivRef},
	}
	evals := []struct {
		name string
		f    unaryFunc
		ref  func(float64) float64
	}{
		{"Exp", expFunc{}, math.Exp},
		{"Sigmoid", sigmoidFunc{}, func(v float64) float64 { s, _ := sigmoidPair(v); return s }},
		{"Softplus", softplusFunc{}, func(v float64) float64 { return math.Max(v, 0) + math.Log1p(math.Exp(-math.Abs(v))) }},
		{"Mish", mishFunc{}, func(v float64) float64 {
			return v * math.Tanh(math.Max(v, 0)+math.Log1p(math.Exp(-math.Abs(v))))
		}},
	}
	defer func(v bool) { vecExp = v }(vecExp)
	for _, vec := range []bool{true, false} {
		vecExp = vec
		for _, c := range derivs {
			d1, d2, w1, w2 := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
			c.ref(w1, w2, xs, tanhY)
			c.f.deriv(d1, d2, xs, tanhY)
			if i := bitDiff(d1, w1); i >= 0 {
				t.Errorf("vecExp %v: %s'(%v) = %v; want %v", vec, c.name, xs[i], d1[i], w1[i])
			}
			if i := bitDiff(d2, w2); i >= 0 {
				t.Errorf("vecExp %v: %s''(%v) = %v; want %v", vec, c.name, xs[i], d2[i], w2[i])
			}
			c.f.deriv(d1, nil, xs, tanhY) // without d2
			if i := bitDiff(d1, w1); i >= 0 {
				t.Errorf("vecExp %v, no d2: %s'(%v) = %v; want %v", vec, c.name, xs[i], d1[i], w1[i])
			}
		}
		for _, c := range evals {
			y, w := make([]float64, n), make([]float64, n)
			c.f.eval(y, xs)
			for i, v := range xs {
				w[i] = c.ref(v)
			}
			if i := bitDiff(y, w); i >= 0 {
				t.Errorf("vecExp %v: %s(%v) = %v; want %v", vec, c.name, xs[i], y[i], w[i])
			}
		}
	}
}

// TestSoftmaxBits: softmax (contiguous blocks and strided ones, into new
// memory and in place) and softmaxRows give, bit for bit, the one-block
// math.Exp loop's values (any NaN for a NaN), including blocks with -Inf,
// +Inf, NaN and values far below the maximum (exponentials that
// underflow).
func TestSoftmaxBits(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	defer func(v bool) { vecExp = v }(vecExp)
	for _, vec := range []bool{true, false} {
		vecExp = vec
		for _, sh := range [][3]int{{1, 1, 1}, {3, 10, 1}, {2, 1000, 1}, {4, 7, 3}, {2, 5, 300}, {1, 37, 17}} {
			outer, l, inner := sh[0], sh[1], sh[2]
			x := make([]float64, outer*l*inner)
			for i := range x {
				x[i] = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(4)))
			}
			if len(x) > 20 {
				x[3], x[7], x[11], x[19] = math.Inf(-1), -800, math.Inf(1), math.NaN()
			}
			want := make([]float64, len(x))
			softmaxRef(want, x, outer, l, inner)
			// A block's sum adds NaNs of different payloads when it holds
			// NaN and +Inf (Inf - Inf is the default NaN); which one an x86
			// addition returns depends on the operand order the compiler
			// picked, not on the exponentials, so NaN matches any NaN.
			bitDiff := func(got, want []float64) int {
				for i := range want {
					g, w := got[i], want[i]
					if math.Float64bits(g) != math.Float64bits(w) && !(math.IsNaN(g) && math.IsNaN(w)) {
						return i
					}
				}
				return -1
			}
			name := fmt.Sprintf("vecExp %v, %dx%dx%d", vec, outer, l, inner)
			y := make([]float64, len(x))
			softmax(y, x, outer, l, inner)
			if i := bitDiff(y, want); i >= 0 {
				t.Errorf("%s: softmax[%d] = %v (%#x); want %v (%#x)", name, i, y[i], math.Float64bits(y[i]), want[i], math.Float64bits(want[i]))
			}
			in := append([]float64(nil), x...)
			softmax(in, in, outer, l, inner)
			if i := bitDiff(in, want); i >= 0 {
				t.Errorf("%s, in place: softmax[%d] = %v; want %v", name, i, in[i], want[i])
			}
			if inner == 1 {
				p := make([]float64, len(x))
				lse := softmaxRows(x, p, outer, l)
				if i := bitDiff(p, want); i >= 0 {
					t.Errorf("%s: softmaxRows[%d] = %v; want %v", name, i, p[i], want[i])
				}
				for o := range outer {
					m, s := math.Inf(-1), 0.0
					for _, v := range x[o*l : (o+1)*l] {
						m = math.Max(m, v)
					}
					for _, v := range x[o*l : (o+1)*l] {
						s += math.Exp(v - m)
					}
					if w := m + math.Log(s); bitDiff([]float64{lse[o]}, []float64{w}) >= 0 {
						t.Errorf("%s: lse[%d] = %v; want %v", name, o, lse[o], w)
					}
				}
			}
		}
	}
}
