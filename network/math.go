package network

import (
	"math"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

// Elementwise functions of one input (HardSigmoid, HardSwish, Erf, Gelu,
// Sqrt, Exp, Log, Reciprocal, Softplus), run by unaryOp with their first
// two derivatives.

func init() {
	unary := func(opType string, mk func(n *onnx.Node) (unaryFunc, error)) {
		register(opType, func(n *onnx.Node, _ map[string]*tensor.Tensor, _ int64) (Op, error) {
			if err := wantInputs(n, 1, 1); err != nil {
				return nil, err
			}
			f, err := mk(n)
			if err != nil {
				return nil, err
			}
			return &unaryOp{f: f}, nil
		})
	}
	fixed := func(f unaryFunc) func(*onnx.Node) (unaryFunc, error) {
		return func(*onnx.Node) (unaryFunc, error) { return f, nil }
	}
	unary("HardSigmoid", func(n *onnx.Node) (unaryFunc, error) {
		return hardSigmoidFunc{alpha: attrFloat(n, "alpha", 0.2), beta: attrFloat(n, "beta", 0.5)}, nil
	})
	unary("HardSwish", fixed(hardSwishFunc{}))
	unary("Erf", fixed(erfFunc{}))
	unary("Gelu", func(n *onnx.Node) (unaryFunc, error) {
		a, ok := n.Attrs["approximate"]
		switch {
		case !ok || a.S == "none":
			return geluFunc{}, nil
		case a.S == "tanh":
			return geluTanhFunc{}, nil
		}
		return nil, nodeErrWrap(n, ErrUnsupported, "approximate %q; want \"none\" or \"tanh\"", a.S)
	})
	unary("Sqrt", fixed(sqrtFunc{}))
	unary("Exp", fixed(expFunc{}))
	unary("Log", fixed(logFunc{}))
	unary("Reciprocal", fixed(reciprocalFunc{}))
	unary("Softplus", fixed(softplusFunc{}))
	unary("Abs", fixed(absFunc{}))
	unary("Softsign", fixed(softsignFunc{}))
	unary("Mish", fixed(mishFunc{}))
	unary("Elu", func(n *onnx.Node) (unaryFunc, error) {
		return eluFunc{alpha: attrFloat(n, "alpha", 1), gamma: 1}, nil
	})
	// Selu's defaults are float32 values (the ONNX spec's).
	unary("Selu", func(n *onnx.Node) (unaryFunc, error) {
		return eluFunc{alpha: attrFloat(n, "alpha", 1.67326319217681884765625), gamma: attrFloat(n, "gamma", 1.05070102214813232421875)}, nil
	})
	unary("Celu", func(n *onnx.Node) (unaryFunc, error) {
		a := attrFloat(n, "alpha", 1)
		if a == 0 {
			return nil, nodeErr(n, "alpha = 0; want nonzero")
		}
		return eluFunc{alpha: a, gamma: 1, celu: true}, nil
	})
	unary("ThresholdedRelu", func(n *onnx.Node) (unaryFunc, error) {
		return thresholdFunc{alpha: attrFloat(n, "alpha", 1)}, nil
	})
}

// absFunc is |x|; f'(0) is taken as 0 (as PyTorch does).
type absFunc struct{}

func (absFunc) linear() bool { return true }
func (absFunc) eval(y, x []float64) {
	for i, v := range x {
		y[i] = math.Abs(v)
	}
}
func (absFunc) deriv(d1, _, x, _ []float64) {
	for i, v := range x {
		d1[i] = 0
		if v > 0 {
			d1[i] = 1
		} else if v < 0 {
			d1[i] = -1
		}
	}
}

// thresholdFunc is x for x > alpha, else 0 (ThresholdedRelu).
type thresholdFunc struct{ alpha float64 }

func (thresholdFunc) linear() bool { return true }
func (f thresholdFunc) eval(y, x []float64) {
	for i, v := range x {
		y[i] = 0
		if v > f.alpha {
			y[i] = v
		}
	}
}
func (f thresholdFunc) deriv(d1, _, x, _ []float64) {
	for i, v := range x {
		d1[i] = 0
		if v > f.alpha {
			d1[i] = 1
		}
	}
}

// eluFunc is gamma·x for x > 0, else gamma·alpha·(exp(x/c) - 1) with c = 1
// (Elu, Selu) or c = alpha (Celu): f' = gamma·(alpha/c)·exp(x/c) and
// f” = f'/c below 0.
type eluFunc struct {
	alpha, gamma float64
	celu         bool
}

func (eluFunc) linear() bool { return false }
func (f eluFunc) scale() float64 {
	if f.celu {
		return f.alpha
	}
	return 1
}
func (f eluFunc) eval(y, x []float64) {
	c := f.scale()
	for i, v := range x {
		if v > 0 {
			y[i] = f.gamma * v
		} else {
			y[i] = f.gamma * f.alpha * math.Expm1(v/c)
		}
	}
}
func (f eluFunc) deriv(d1, d2, x, _ []float64) {
	c := f.scale()
	var eb [expBlock]float64
	for lo := 0; lo < len(x); lo += len(eb) {
		xs := x[lo:min(lo+len(eb), len(x))]
		es := eb[:len(xs)]
		for i, v := range xs {
			es[i] = 0 // exp(v/c) is used only where v <= 0
			if v <= 0 {
				es[i] = v / c
			}
		}
		expSlice(es, es)
		for i, v := range xs {
			a, b := f.gamma, 0.0
			if v <= 0 {
				a = f.gamma * f.alpha / c * es[i]
				b = a / c
			}
			d1[lo+i] = a
			if d2 != nil {
				d2[lo+i] = b
			}
		}
	}
}

// softsignFunc is x/(1+|x|): f' = 1/(1+|x|)², f” = -2·sign(x)/(1+|x|)³.
type softsignFunc struct{}

func (softsignFunc) linear() bool { return false }
func (softsignFunc) eval(y, x []float64) {
	for i, v := range x {
		y[i] = v / (1 + math.Abs(v))
	}
}
func (softsignFunc) deriv(d1, d2, x, _ []float64) {
	for i, v := range x {
		r := 1 / (1 + math.Abs(v))
		d1[i] = r * r
		if d2 != nil {
			d2[i] = -2 * math.Copysign(r*r*r, v)
			if v == 0 {
				d2[i] = 0
			}
		}
	}
}

// mishFunc is x·tanh(softplus(x)). With t = tanh(softplus(x)), u = 1 - t²
// and s = sigmoid(x): f' = t + x·u·s, f” = 2u·s + x·u·s·(1 - s - 2t·s).
type mishFunc struct{}

func (mishFunc) linear() bool { return false }
func (mishFunc) eval(y, x []float64) {
	var eb [expBlock]float64
	for lo := 0; lo < len(x); lo += len(eb) {
		xs := x[lo:min(lo+len(eb), len(x))]
		es := eb[:len(xs)]
		expNegAbs(es, xs)
		for i, v := range xs {
			y[lo+i] = v * math.Tanh(math.Max(v, 0)+math.Log1p(es[i]))
		}
	}
}
func (mishFunc) deriv(d1, d2, x, _ []float64) {
	var eb [expBlock]float64
	for lo := 0; lo < len(x); lo += len(eb) {
		xs := x[lo:min(lo+len(eb), len(x))]
		es := eb[:len(xs)]
		expNegAbs(es, xs)
		for i, v := range xs {
			e := es[i] // exp(-|v|)
			t := math.Tanh(math.Max(v, 0) + math.Log1p(e))
			s, c := sigmoidPairExp(v, e)
			u := 1 - t*t
			d1[lo+i] = t + v*u*s
			if d2 != nil {
				d2[lo+i] = 2*u*s + v*u*s*(c-2*t*s)
			}
		}
	}
}

// hardSigmoidFunc is max(0, min(1, alpha·x + beta)): piecewise linear with
// slopes 0 and alpha; f' is alpha on the closed ramp (as clipFunc).
type hardSigmoidFunc struct{ alpha, beta float64 }

func (hardSigmoidFunc) linear() bool { return true }
func (f hardSigmoidFunc) eval(y, x []float64) {
	for i, v := range x {
		y[i] = math.Max(0, math.Min(1, f.alpha*v+f.beta))
	}
}
func (f hardSigmoidFunc) slopes() [2]float64 { return [2]float64{0, f.alpha} }
func (f hardSigmoidFunc) evalSlope(y []float64, s []uint8, x []float64) {
	s = s[:len(x)]
	for i, v := range x {
		u := f.alpha*v + f.beta
		y[i] = math.Max(0, math.Min(1, u))
		s[i] = b2u8(u >= 0) & b2u8(u <= 1)
	}
}
func (f hardSigmoidFunc) deriv(d1, _, x, _ []float64) {
	for i, v := range x {
		u := f.alpha*v + f.beta
		d1[i] = 0
		if u >= 0 && u <= 1 {
			d1[i] = f.alpha
		}
	}
}

// hardSwishFunc is x·max(0, min(1, x/6 + 1/2)): 0 below -3, x above 3,
// x(x+3)/6 between (f' = x/3 + 1/2, f” = 1/3).
type hardSwishFunc struct{}

func (hardSwishFunc) linear() bool { return false }
func (hardSwishFunc) eval(y, x []float64) {
	for i, v := range x {
		y[i] = v * math.Max(0, math.Min(1, v/6+0.5))
	}
}
func (hardSwishFunc) deriv(d1, d2, x, _ []float64) {
	for i, v := range x {
		a, b := 0.0, 0.0
		switch {
		case v > 3:
			a = 1
		case v >= -3:
			a, b = v/3+0.5, 1.0/3
		}
		d1[i] = a
		if d2 != nil {
			d2[i] = b
		}
	}
}

// twoOverSqrtPi is 2/√π, erf's derivative at 0.
const twoOverSqrtPi = 1.1283791670955126

// erfFunc is the error function: f' = 2/√π·exp(-x²), f” = -2x·f'.
type erfFunc struct{}

func (erfFunc) linear() bool { return false }
func (erfFunc) eval(y, x []float64) {
	for i, v := range x {
		y[i] = math.Erf(v)
	}
}
func (erfFunc) deriv(d1, d2, x, _ []float64) {
	var eb [expBlock]float64
	for lo := 0; lo < len(x); lo += len(eb) {
		xs := x[lo:min(lo+len(eb), len(x))]
		es := eb[:len(xs)]
		for i, v := range xs {
			es[i] = -v * v
		}
		expSlice(es, es)
		for i, v := range xs {
			d := twoOverSqrtPi * es[i]
			d1[lo+i] = d
			if d2 != nil {
				d2[lo+i] = -2 * v * d
			}
		}
	}
}

// invSqrt2Pi is 1/√(2π), the standard normal density at 0.
const invSqrt2Pi = 0.3989422804014327

// geluFunc is x·Φ(x), Φ the standard normal CDF (Gelu approximate=none):
// f' = Φ + x·φ, f” = φ·(2 - x²), φ the standard normal density.
type geluFunc struct{}

func (geluFunc) linear() bool { return false }
func (geluFunc) eval(y, x []float64) {
	for i, v := range x {
		y[i] = v * 0.5 * math.Erfc(-v/math.Sqrt2)
	}
}
func (geluFunc) deriv(d1, d2, x, _ []float64) {
	var eb [expBlock]float64
	for lo := 0; lo < len(x); lo += len(eb) {
		xs := x[lo:min(lo+len(eb), len(x))]
		es := eb[:len(xs)]
		for i, v := range xs {
			es[i] = -v * v / 2
		}
		expSlice(es, es)
		for i, v := range xs {
			phi := invSqrt2Pi * es[i]
			d1[lo+i] = 0.5*math.Erfc(-v/math.Sqrt2) + v*phi
			if d2 != nil {
				d2[lo+i] = phi * (2 - v*v)
			}
		}
	}
}

// Constants of Gelu's tanh approximation: u = √(2/π)·(x + 0.044715·x³).
const (
	geluC = 0.7978845608028654 // √(2/π)
	geluA = 0.044715
)

// geluTanhFunc is x/2·(1 + tanh(u)) (Gelu approximate=tanh). With
// t = tanh(u), s = 1 - t², u' = c(1 + 3a·x²), u” = 6ca·x:
// f' = (1+t)/2 + x·s·u'/2 and f” = s·(u' + x·(u” - 2t·u'²)/2).
type geluTanhFunc struct{}

func (geluTanhFunc) linear() bool { return false }
func (geluTanhFunc) eval(y, x []float64) {
	for i, v := range x {
		y[i] = 0.5 * v * (1 + math.Tanh(geluC*(v+geluA*v*v*v)))
	}
}
func (geluTanhFunc) deriv(d1, d2, x, _ []float64) {
	for i, v := range x {
		t := math.Tanh(geluC * (v + geluA*v*v*v))
		s := 1 - t*t
		u1 := geluC * (1 + 3*geluA*v*v)
		d1[i] = 0.5*(1+t) + 0.5*v*s*u1
		if d2 != nil {
			u2 := 6 * geluC * geluA * v
			d2[i] = s * (u1 + 0.5*v*(u2-2*t*u1*u1))
		}
	}
}

// sqrtFunc is √x: f' = 1/(2y), f” = -1/(4y³).
type sqrtFunc struct{}

func (sqrtFunc) linear() bool { return false }
func (sqrtFunc) eval(y, x []float64) {
	for i, v := range x {
		y[i] = math.Sqrt(v)
	}
}
func (sqrtFunc) deriv(d1, d2, _, y []float64) {
	for i := range d1 {
		d1[i] = 0.5 / y[i]
		if d2 != nil {
			d2[i] = -0.25 / (y[i] * y[i] * y[i])
		}
	}
}

// expFunc is eˣ: f' = f” = y.
type expFunc struct{}

func (expFunc) linear() bool        { return false }
func (expFunc) eval(y, x []float64) { expSlice(y[:len(x)], x) }
func (expFunc) deriv(d1, d2, _, y []float64) {
	copy(d1, y)
	if d2 != nil {
		copy(d2, y)
	}
}

// logFunc is ln x: f' = 1/x, f” = -1/x².
type logFunc struct{}

func (logFunc) linear() bool { return false }
func (logFunc) eval(y, x []float64) {
	for i, v := range x {
		y[i] = math.Log(v)
	}
}
func (logFunc) deriv(d1, d2, x, _ []float64) {
	for i, v := range x {
		r := 1 / v
		d1[i] = r
		if d2 != nil {
			d2[i] = -r * r
		}
	}
}

// reciprocalFunc is 1/x: f' = -y², f” = 2y³.
type reciprocalFunc struct{}

func (reciprocalFunc) linear() bool { return false }
func (reciprocalFunc) eval(y, x []float64) {
	for i, v := range x {
		y[i] = 1 / v
	}
}
func (reciprocalFunc) deriv(d1, d2, _, y []float64) {
	for i, v := range y {
		d1[i] = -v * v
		if d2 != nil {
			d2[i] = 2 * v * v * v
		}
	}
}

// softplusFunc is ln(1 + eˣ), computed as max(x, 0) + ln(1 + e^-|x|) so it
// neither overflows nor loses the tail: f' = sigmoid(x), f” = s(1-s).
type softplusFunc struct{}

func (softplusFunc) linear() bool { return false }
func (softplusFunc) eval(y, x []float64) {
	var eb [expBlock]float64
	for lo := 0; lo < len(x); lo += len(eb) {
		xs := x[lo:min(lo+len(eb), len(x))]
		es := eb[:len(xs)]
		expNegAbs(es, xs)
		for i, v := range xs {
			y[lo+i] = math.Max(v, 0) + math.Log1p(es[i])
		}
	}
}
func (softplusFunc) deriv(d1, d2, x, _ []float64) {
	var sb, cb [expBlock]float64
	for lo := 0; lo < len(x); lo += len(sb) {
		xs := x[lo:min(lo+len(sb), len(x))]
		ss, cs := sb[:len(xs)], cb[:len(xs)]
		sigmoidPairs(ss, cs, xs)
		for i, s := range ss {
			d1[lo+i] = s
			if d2 != nil {
				d2[lo+i] = s * cs[i]
			}
		}
	}
}
