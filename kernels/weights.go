package kernels

import (
	"errors"
	"fmt"
)

// Tile geometry of the micro-kernels: each call computes tileM rows by tileN
// output channels of int32 results.
const (
	tileM = 6
	tileN = 16
)

// MaxK is the largest reduction length accepted. It guarantees that every
// exact result fits in int32: |sum_k (a-z)*w| <= K*255*128 <= 2^31-1 for
// K <= 65793; MaxK is rounded down to a power of two.
const MaxK = 1 << 16

// Ternary is the Bits value of weights packed by PackTernary ({-1,0,+1}).
// They use the binary kernel (its bound only needs |w| <= 1) and cost two bits
// of storage in a deployed model.
const Ternary = 0

// ErrWeights is wrapped by every error PackWeights and PackTernary return.
var ErrWeights = errors.New("kernels: invalid weights")

// Weights is a weight matrix of N output channels by K inputs, packed once
// into panels for the micro-kernels. It is immutable after packing and safe
// for concurrent use by any number of GEMM calls.
type Weights struct {
	N, K int
	// Bits is 8, 4, 2, 1 (binary) or Ternary.
	Bits int

	kpad   int     // K rounded up to a multiple of 4 (of 16 for pb)
	group  int     // int16 accumulation steps of the AVX2 low-bit kernel (0 for 8-bit)
	p8     []int8  // quad panels:  [N/16 panels][kpad/4 quads][16 channels][4]
	p16    []int16 // pair panels:  [N/16 panels][kpad/2 pairs][16 channels][2]
	pb     []uint8 // binary pattern panels: [N/16 panels][kpad/4 quads][2][16 channels] (see packLUT)
	colSum []int32 // sum_k W[n][k] (zero past N), folds the activation zero point
}

// weightRange returns the accepted value range of a weight bit width and the
// int16 accumulation group of its kernel (see the package comment for the
// bound |pair| <= 2*255*max(|lo|,|hi|) and group*|pair| <= 32767).
func weightRange(bits int) (lo, hi int8, group int, ok bool) {
	switch bits {
	case 8:
		return -128, 127, 0, true
	case 4:
		return -8, 7, 8, true // 8 * 2*255*8 = 32640
	case 2:
		return -2, 1, 32, true // 32 * 2*255*2 = 32640
	case 1, Ternary:
		return -1, 1, 64, true // 64 * 2*255*1 = 32640
	}
	return 0, 0, 0, false
}

// PackWeights validates and packs w, an n x k row-major matrix (n output
// channels), for bit width bits. Accepted values:
//
//	bits 8: [-128, 127]
//	bits 4: [-8, 7]
//	bits 2: [-2, 1]   (ternary {-1,0,1} also fits; PackTernary is faster)
//	bits 1: {-1, +1}  (binary)
//
// Symmetric quantizers use the narrower ranges [-127,127], [-7,7], [-1,1];
// those are accepted too.
func PackWeights(w []int8, n, k, bits int) (*Weights, error) {
	lo, hi, group, ok := weightRange(bits)
	if !ok || bits == Ternary {
		return nil, fmt.Errorf("%w: bit width %d not supported; use 8, 4, 2 or 1 (PackTernary for ternary)", ErrWeights, bits)
	}
	if err := checkShape(w, n, k); err != nil {
		return nil, err
	}
	for i, v := range w {
		if v < lo || v > hi || (bits == 1 && v == 0) {
			return nil, fmt.Errorf("%w: W[%d][%d] = %d is outside the %d-bit range %s", ErrWeights, i/k, i%k, v, bits, rangeText(bits))
		}
	}
	return pack(w, n, k, bits, group), nil
}

// PackTernary packs an n x k matrix of weights in {-1, 0, +1}. The result has
// Bits == Ternary and runs on the binary kernel.
func PackTernary(w []int8, n, k int) (*Weights, error) {
	if err := checkShape(w, n, k); err != nil {
		return nil, err
	}
	for i, v := range w {
		if v < -1 || v > 1 {
			return nil, fmt.Errorf("%w: W[%d][%d] = %d is not ternary; values must be -1, 0 or +1", ErrWeights, i/k, i%k, v)
		}
	}
	_, _, group, _ := weightRange(Ternary)
	return pack(w, n, k, Ternary, group), nil
}

func rangeText(bits int) string {
	if bits == 1 {
		return "{-1, +1}"
	}
	lo, hi, _, _ := weightRange(bits)
	return fmt.Sprintf("[%d, %d]", lo, hi)
}

func checkShape(w []int8, n, k int) error {
	if n < 1 || k < 1 {
		return fmt.Errorf("%w: shape %d x %d; both dimensions must be positive", ErrWeights, n, k)
	}
	if k > MaxK {
		return fmt.Errorf("%w: K = %d exceeds MaxK = %d (int32 accumulators could overflow); split the reduction", ErrWeights, k, MaxK)
	}
	if len(w) != n*k {
		return fmt.Errorf("%w: got %d values for a %d x %d matrix; want %d", ErrWeights, len(w), n, k, n*k)
	}
	return nil
}

func pack(w []int8, n, k, bits, group int) *Weights {
	kpad := (k + 3) &^ 3
	panels := (n + tileN - 1) / tileN
	pw := &Weights{N: n, K: k, Bits: bits, kpad: kpad, group: group, colSum: make([]int32, panels*tileN)}
	for c := 0; c < n; c++ {
		var s int32
		for _, v := range w[c*k : (c+1)*k] {
			s += int32(v)
		}
		pw.colSum[c] = s
	}
	// 8-bit weights use the quad layout of the VNNI kernel when it is
	// available at packing time, else int16 pairs for VPMADDWD. Binary
	// weights packed while VNNI is off use the 4-bit patterns of the table
	// kernel (lut.go); the other low-bit weights use quads. Exactly one of
	// p8, p16 and pb is set, and run picks the kernel from the layout, so a
	// Weights stays valid if the dispatch flags change later (tests flip
	// them).
	if bits == 1 && !useVNNI {
		packLUT(pw, w)
		return pw
	}
	if bits == 8 && !useVNNI {
		pw.p16 = make([]int16, panels*kpad*tileN)
		for c := 0; c < n; c++ {
			base := (c/tileN)*kpad*tileN + (c%tileN)*2
			for j, v := range w[c*k : (c+1)*k] {
				pw.p16[base+(j/2)*2*tileN+j%2] = int16(v)
			}
		}
		return pw
	}
	pw.p8 = make([]int8, panels*kpad*tileN)
	for c := 0; c < n; c++ {
		base := (c/tileN)*kpad*tileN + (c%tileN)*4
		for j, v := range w[c*k : (c+1)*k] {
			pw.p8[base+(j/4)*4*tileN+j%4] = v
		}
	}
	return pw
}

// PanelBytes is the memory the packed panels occupy (one byte per weight,
// or two per 8-bit weight when the CPU lacks VNNI and the int16 VPMADDWD
// kernel runs, or half a byte per binary weight for the table kernel; K is
// padded to a multiple of 4, or 16 for binary weights without VNNI, and N to
// a multiple of 16), not the deployed model size, which is N*K*bits/8.
func (w *Weights) PanelBytes() int { return len(w.p8) + 2*len(w.p16) + len(w.pb) }
