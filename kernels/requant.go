package kernels

import (
	"errors"
	"fmt"
)

// ErrRequant is wrapped by the errors returned for invalid requantization
// parameters.
var ErrRequant = errors.New("kernels: invalid requantization parameters")

// MaxShift is the largest right shift Requantize accepts.
const MaxShift = 62

// Requantize is the one definition of dyadic requantization used by every
// kernel: with p = acc * mult (exact, int64),
//
//	y = clamp(round(p / 2^shift) + zero, lo, hi)
//
// where round is to the nearest integer with ties away from zero:
// round(p/2^s) = sign(p) * floor((|p| + 2^(s-1)) / 2^s) for s > 0 and p for
// s == 0. The result is exact when |acc*mult| + 2^(shift-1) < 2^63, which
// holds for every |acc| <= 2^31 (an int32 accumulator plus a bias of
// realistic size); mult is the 31-bit
// dyadic mantissa m of M = m * 2^-shift (M = S_x*S_w/S_y), and shift is in
// [0, MaxShift].
func Requantize(acc int64, mult int32, shift int, zero int32, lo, hi uint8) uint8 {
	p := acc * int64(mult)
	var q int64
	if shift == 0 {
		q = p
	} else {
		half := int64(1) << (shift - 1)
		if p >= 0 {
			q = (p + half) >> shift
		} else {
			q = -((-p + half) >> shift)
		}
	}
	q += int64(zero)
	if q < int64(lo) {
		return lo
	}
	if q > int64(hi) {
		return hi
	}
	return uint8(q)
}

// Requant holds the requantization of GEMMRequant: for output channel n,
// dst = Requantize(acc + Bias[n], Mult[n], Shift[n], Zero, Lo, Hi).
// Mult and Shift have either one entry (per tensor) or one per channel.
// A fused ReLU is Lo = Zero; a fused Clip sets Lo and Hi to the quantized
// bounds.
type Requant struct {
	Bias  []int32 // nil or one per output channel
	Mult  []int32 // 1 or N entries, each >= 0
	Shift []int   // same length as Mult, each in [0, MaxShift]
	Zero  int32   // output zero point
	Lo    uint8   // lowest output value
	Hi    uint8   // highest output value

	frozen *frozenRequant // set by Freeze
}

// frozenRequant is the epilogue form of a Requant for n channels, with
// what it was computed from.
type frozenRequant struct {
	n          int
	bias, mult []int32
	shift      []int
	zero       int32
	lo, hi     uint8
	panels     []rqParams
}

// Freeze checks rq for n output channels and computes once the per-panel
// constants the requantization epilogue uses, which GEMMRequant,
// GEMMStreamRequant and DepthwiseNHWC otherwise compute on every call
// (about 3 ns per channel on Zen 5: a third of a one-row product on the
// stream kernels at 1024 x 1024). Later calls with n channels use them
// while Bias, Mult and Shift are the same slices and Zero, Lo and Hi are
// unchanged; a change to an element of those slices is not seen: call
// Freeze again after one. Freeze before sharing rq between goroutines;
// the calls only read the frozen constants.
func (rq *Requant) Freeze(n int) error {
	rq.frozen = nil
	if err := rq.check(n); err != nil {
		return err
	}
	rq.frozen = &frozenRequant{n: n, bias: rq.Bias, mult: rq.Mult, shift: rq.Shift,
		zero: rq.Zero, lo: rq.Lo, hi: rq.Hi, panels: rq.panels(nil, n)}
	return nil
}

// epilogue returns the per-panel constants of rq for n channels: the
// frozen ones when they were computed for n channels from the current
// fields, else, after checking rq, ones computed into *buf (grown as
// needed). The caller must not write to the result.
func (rq *Requant) epilogue(buf *[]rqParams, n int) ([]rqParams, error) {
	if rq != nil {
		if f := rq.frozen; f != nil && f.n == n && sameSlice(f.bias, rq.Bias) && sameSlice(f.mult, rq.Mult) &&
			sameSlice(f.shift, rq.Shift) && f.zero == rq.Zero && f.lo == rq.Lo && f.hi == rq.Hi {
			return f.panels, nil
		}
	}
	if err := rq.check(n); err != nil {
		return nil, err
	}
	*buf = rq.panels(*buf, n)
	return *buf, nil
}

// sameSlice reports whether x and y are the same slice: same length and,
// when not empty, same first element.
func sameSlice[T any](x, y []T) bool {
	return len(x) == len(y) && (len(x) == 0 || &x[0] == &y[0])
}

func (rq *Requant) check(n int) error {
	switch {
	case rq == nil:
		return fmt.Errorf("%w: nil Requant", ErrRequant)
	case rq.Bias != nil && len(rq.Bias) != n:
		return fmt.Errorf("%w: %d biases for %d output channels; want %d or nil", ErrRequant, len(rq.Bias), n, n)
	case len(rq.Mult) != 1 && len(rq.Mult) != n:
		return fmt.Errorf("%w: %d multipliers for %d output channels; want 1 or %d", ErrRequant, len(rq.Mult), n, n)
	case len(rq.Shift) != len(rq.Mult):
		return fmt.Errorf("%w: %d shifts but %d multipliers; want equal lengths", ErrRequant, len(rq.Shift), len(rq.Mult))
	case rq.Lo > rq.Hi:
		return fmt.Errorf("%w: clamp range [%d, %d] is empty; want Lo <= Hi", ErrRequant, rq.Lo, rq.Hi)
	}
	for i, m := range rq.Mult {
		if m < 0 {
			return fmt.Errorf("%w: Mult[%d] = %d is negative; want a non-negative dyadic mantissa", ErrRequant, i, m)
		}
		if s := rq.Shift[i]; s < 0 || s > MaxShift {
			return fmt.Errorf("%w: Shift[%d] = %d outside [0, %d]", ErrRequant, i, s, MaxShift)
		}
	}
	return nil
}
