package kernels

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

var allBits = []int{8, 4, 2, 1, Ternary}

func bitsName(bits int) string {
	if bits == Ternary {
		return "ternary"
	}
	return fmt.Sprint(bits)
}

// refGEMM is the independent int64 reference: sum_k (a-z)*w, no packing.
func refGEMM(a []uint8, m, k int, z uint8, w []int8, n int) []int64 {
	out := make([]int64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s int64
			for l := 0; l < k; l++ {
				s += (int64(a[i*k+l]) - int64(z)) * int64(w[j*k+l])
			}
			out[i*n+j] = s
		}
	}
	return out
}

// randWeights draws n*k weights from the full accepted range of bits.
func randWeights(rng *rand.Rand, n, k, bits int) []int8 {
	lo, hi, _, _ := weightRange(bits)
	w := make([]int8, n*k)
	for i := range w {
		if bits == 1 {
			w[i] = int8(2*rng.IntN(2) - 1)
		} else {
			w[i] = int8(int(lo) + rng.IntN(int(hi)-int(lo)+1))
		}
	}
	return w
}

func packAny(w []int8, n, k, bits int) (*Weights, error) {
	if bits == Ternary {
		return PackTernary(w, n, k)
	}
	return PackWeights(w, n, k, bits)
}

// kernelPath is one setting of the dispatch flags.
type kernelPath struct {
	name       string
	avx2, vnni bool
}

// availablePaths lists the flag settings this build and CPU can run: VNNI
// (AVX-512) kernels, AVX2 kernels, and the pure-Go twins.
func availablePaths() []kernelPath {
	var ps []kernelPath
	if useVNNI {
		ps = append(ps, kernelPath{"vnni", useAVX2, true})
	}
	if useAVX2 {
		ps = append(ps, kernelPath{"avx2", true, false})
	}
	return append(ps, kernelPath{"go", false, false})
}

// setPath sets the dispatch flags and returns a function restoring them.
func setPath(p kernelPath) (restore func()) {
	a, v := useAVX2, useVNNI
	useAVX2, useVNNI = p.avx2, p.vnni
	return func() { useAVX2, useVNNI = a, v }
}

// withPaths runs f once per micro-kernel implementation available. f must
// pack its weights itself: the 8-bit layout depends on the flags.
func withPaths(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	for _, p := range availablePaths() {
		restore := setPath(p)
		t.Run(p.name, f)
		restore()
	}
}

func checkAgainstRef(t *testing.T, a []uint8, m, k int, z uint8, w []int8, n, bits, threads int) {
	t.Helper()
	pw, err := packAny(w, n, k, bits)
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]int32, m*n)
	if err := GEMM(dst, a, m, k, z, pw, Options{Threads: threads}); err != nil {
		t.Fatal(err)
	}
	want := refGEMM(a, m, k, z, w, n)
	for i, v := range dst {
		if int64(v) != want[i] {
			t.Fatalf("bits=%s m=%d n=%d k=%d z=%d threads=%d: dst[%d][%d] = %d; want %d",
				bitsName(bits), m, n, k, z, threads, i/n, i%n, v, want[i])
		}
	}
}

func TestGEMMRandomShapes(t *testing.T) {
	withPaths(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		// {13, 70, 1100} and {12, 128, 600}: full tiles of four full panels
		// over several weight chunks, written straight to dst
		// (tilesQuadOut), next to a partial tile and a tail panel.
		shapes := [][3]int{{1, 1, 1}, {1, 17, 3}, {7, 15, 5}, {6, 16, 4}, {13, 33, 130}, {5, 1, 257}, {97, 31, 9}, {8, 19, 1301}, {13, 70, 1100}, {12, 128, 600}}
		for i := 0; i < 12; i++ {
			shapes = append(shapes, [3]int{1 + rng.IntN(300), 1 + rng.IntN(300), 1 + rng.IntN(400)})
		}
		for _, bits := range allBits {
			for _, s := range shapes {
				m, n, k := s[0], s[1], s[2]
				a := make([]uint8, m*k)
				for i := range a {
					a[i] = uint8(rng.IntN(256))
				}
				w := randWeights(rng, n, k, bits)
				z := uint8(rng.IntN(256))
				checkAgainstRef(t, a, m, k, z, w, n, bits, 1+rng.IntN(3))
			}
		}
	})
}

// TestGEMMExtremes covers the saturation cases: every activation 255 (or 0
// with zero point 255) against all-minimum and all-maximum weights, for K
// spanning several int16 groups and K = MaxK, where |result| = MaxK*255*128
// is within 2^23 of the int32 limit.
// extremeCases calls check with the extreme inputs of an m x k by k x n
// product with weights in [lo, hi]: every activation at 255, 0 or 128 with
// zero points 0 or 255 against every weight at lo or at hi (one thread),
// then alternating extremes, pairs with opposite signs (two threads).
func extremeCases(lo, hi int8, m, n, k int, check func(a []uint8, z uint8, w []int8, threads int)) {
	for _, wv := range []int8{lo, hi} {
		for _, az := range [][2]uint8{{255, 0}, {0, 255}, {255, 255}, {128, 0}} {
			a := make([]uint8, m*k)
			for i := range a {
				a[i] = az[0]
			}
			w := make([]int8, n*k)
			for i := range w {
				w[i] = wv
			}
			check(a, az[1], w, 1)
		}
	}
	a := make([]uint8, m*k)
	w := make([]int8, n*k)
	for i := range a {
		a[i] = uint8(255 * (i % 2))
	}
	for i := range w {
		w[i] = []int8{lo, hi}[(i/2)%2]
	}
	check(a, 3, w, 2)
}

func TestGEMMExtremes(t *testing.T) {
	withPaths(t, func(t *testing.T) {
		for _, bits := range allBits {
			lo, hi, _, _ := weightRange(bits)
			for _, k := range []int{1, 4, 31, 257, 4099, MaxK} {
				m, n := 7, 67 // a full tile and a partial one; four full panels and a tail
				if k == MaxK {
					m, n = 2, 3
				}
				extremeCases(lo, hi, m, n, k, func(a []uint8, z uint8, w []int8, threads int) {
					checkAgainstRef(t, a, m, k, z, w, n, bits, threads)
				})
			}
		}
	})
}

// TestTile8Saturates shows the Go twin models the int16 stage: one group more
// than the bound allows must give a wrong sum on extreme inputs, while the
// group of weightRange gives the exact one.
func TestTile8Saturates(t *testing.T) {
	for _, bits := range []int{4, 2, 1} {
		lo, _, g, _ := weightRange(bits)
		kq := 4 * g
		a := make([]uint8, kq*4*tileM)
		w := make([]int8, kq*4*tileN)
		for i := range a {
			a[i] = 255
		}
		for i := range w {
			w[i] = lo
		}
		want := int32(kq * 4 * 255 * int(lo))
		var c tile
		tile8Go(a, w, &c, kq, g, false)
		if c[0] != want {
			t.Errorf("bits=%d group=%d: c[0] = %d; want %d", bits, g, c[0], want)
		}
		tile8Go(a, w, &c, kq, g+1, false)
		if c[0] == want {
			t.Errorf("bits=%d group=%d: c[0] = %d; want the int16 lanes to wrap", bits, g+1, c[0])
		}
	}
}

// TestTilesAsmVsGo compares the assembly micro-kernels with their Go twins
// on random tiles with values drawn from the extremes and the interior.
func TestTilesAsmVsGo(t *testing.T) {
	if !useAVX2 {
		t.Skip("assembly kernels not in use (purego build or no AVX2)")
	}
	defer func(s bool) { useAVX2 = s }(useAVX2)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, kq := range []int{1, 2, 7, 8, 9, 63, 64, 65, 200} {
		a8 := make([]uint8, kq*4*tileM)
		a16 := make([]int16, kq*4*tileM)
		for i := range a8 {
			a8[i] = uint8([]int{0, 255, rng.IntN(256)}[rng.IntN(3)])
			a16[i] = int16(a8[i]) - int16(rng.IntN(256))
		}
		w16 := make([]int16, kq*4*tileN)
		for i := range w16 {
			w16[i] = int16([]int{-128, 127, rng.IntN(256) - 128}[rng.IntN(3)])
		}
		useAVX2 = true
		for _, acc := range []bool{false, true} {
			var got, want tile
			if acc {
				for i := range got {
					got[i] = int32(rng.Uint32())
				}
				want = got
			}
			tile16(a16, w16, &got, 2*kq, acc)
			tile16Go(a16, w16, &want, 2*kq, acc)
			if got != want {
				t.Errorf("tile16 kp=%d acc=%v: asm %v; want %v", 2*kq, acc, got, want)
			}
			for _, bits := range []int{4, 2, 1} {
				w := randWeights(rng, tileN, kq*4, bits)
				_, _, g, _ := weightRange(bits)
				before := got
				want = got
				tile8(a8, w, &got, kq, g, acc)
				tile8Go(a8, w, &want, kq, g, acc)
				if got != want {
					t.Errorf("tile8 bits=%d kq=%d acc=%v (initial %v): asm %v; want %v", bits, kq, acc, before, got, want)
				}
			}
		}
	}
}

func TestThreadsIdentical(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	m, n, k := 301, 157, 211
	a := make([]uint8, m*k)
	for i := range a {
		a[i] = uint8(rng.IntN(256))
	}
	for _, bits := range allBits {
		pw, err := packAny(randWeights(rng, n, k, bits), n, k, bits)
		if err != nil {
			t.Fatal(err)
		}
		one := make([]int32, m*n)
		if err := GEMM(one, a, m, k, 9, pw, Options{}); err != nil {
			t.Fatal(err)
		}
		for _, th := range []int{2, 3, 8} {
			many := make([]int32, m*n)
			if err := GEMM(many, a, m, k, 9, pw, Options{Threads: th}); err != nil {
				t.Fatal(err)
			}
			for i := range one {
				if one[i] != many[i] {
					t.Fatalf("bits=%s threads=%d: dst[%d] = %d; want %d (one thread)", bitsName(bits), th, i, many[i], one[i])
				}
			}
		}
	}
}

func TestRequantize(t *testing.T) {
	tests := []struct {
		acc    int64
		mult   int32
		shift  int
		zero   int32
		lo, hi uint8
		want   uint8
	}{
		{acc: 5, mult: 1, shift: 1, lo: 0, hi: 255, want: 3},            // 2.5 -> 3
		{acc: 3, mult: 1, shift: 1, lo: 0, hi: 255, want: 2},            // 1.5 -> 2
		{acc: -5, mult: 1, shift: 1, zero: 10, lo: 0, hi: 255, want: 7}, // -2.5 -> -3
		{acc: -3, mult: 1, shift: 1, zero: 10, lo: 0, hi: 255, want: 8}, // -1.5 -> -2
		{acc: -4, mult: 3, shift: 3, zero: 10, lo: 0, hi: 255, want: 8}, // -1.5 -> -2
		{acc: 7, mult: 1, shift: 2, lo: 0, hi: 255, want: 2},            // 1.75 -> 2
		{acc: -7, mult: 1, shift: 2, zero: 5, lo: 0, hi: 255, want: 3},  // -1.75 -> -2
		{acc: 9, mult: 1, shift: 2, lo: 0, hi: 255, want: 2},            // 2.25 -> 2
		{acc: 200, mult: 1, shift: 0, zero: 3, lo: 0, hi: 255, want: 203},
		{acc: 200, mult: 2, shift: 0, lo: 0, hi: 255, want: 255},          // clamp high
		{acc: -1, mult: 1, shift: 0, lo: 0, hi: 255, want: 0},             // clamp low
		{acc: -1, mult: 1, shift: 0, zero: 50, lo: 60, hi: 255, want: 60}, // fused ReLU-like bound
		{acc: 1 << 30, mult: 1 << 30, shift: 31, lo: 0, hi: 255, want: 255},
		{acc: 3 << 30, mult: 1, shift: 31, lo: 0, hi: 255, want: 2}, // 1.5 -> 2
		{acc: -3 << 30, mult: 1, shift: 31, zero: 9, lo: 0, hi: 255, want: 7},
		{acc: 1<<30 - 1, mult: 1, shift: 31, lo: 0, hi: 255, want: 0}, // just below 0.5
		{acc: 1 << 30, mult: 1, shift: 31, lo: 0, hi: 255, want: 1},   // exactly 0.5
		{acc: -(1 << 30), mult: 1, shift: 31, zero: 1, lo: 0, hi: 255, want: 0},
		{acc: 1<<31 - 1, mult: 1<<31 - 1, shift: 62, zero: 100, lo: 0, hi: 255, want: 101}, // (2^31-1)^2/2^62 ~ 1
		{acc: -(1 << 31), mult: 1<<31 - 1, shift: 62, zero: 100, lo: 0, hi: 255, want: 99},
		{acc: 12345, mult: 0, shift: 7, zero: 42, lo: 0, hi: 255, want: 42},
	}
	for _, tt := range tests {
		got := Requantize(tt.acc, tt.mult, tt.shift, tt.zero, tt.lo, tt.hi)
		if got != tt.want {
			t.Errorf("Requantize(%d, %d, %d, %d, %d, %d) = %d; want %d", tt.acc, tt.mult, tt.shift, tt.zero, tt.lo, tt.hi, got, tt.want)
		}
	}
}

// refRound is round-half-away-from-zero of p/2^s through exact rationals on
// big-enough integers: compare 2*|p| mod 2^(s+1) with 2^s.
func refRound(p int64, s int) int64 {
	if s == 0 {
		return p
	}
	neg := p < 0
	if neg {
		p = -p
	}
	q, r := p>>s, p&(1<<s-1)
	if 2*uint64(r) >= uint64(1)<<s {
		q++
	}
	if neg {
		return -q
	}
	return q
}

// randRequant returns random requantization parameters for n channels,
// one multiplier per channel or (perTensor) one for all.
func randRequant(rng *rand.Rand, n int, perTensor bool) *Requant {
	nq := n
	if perTensor {
		nq = 1
	}
	rq := &Requant{Bias: make([]int32, n), Mult: make([]int32, nq), Shift: make([]int, nq), Zero: int32(rng.IntN(256)), Lo: uint8(rng.IntN(60)), Hi: uint8(200 + rng.IntN(56))}
	for i := range rq.Bias {
		rq.Bias[i] = int32(rng.IntN(20001) - 10000)
	}
	for i := range rq.Mult {
		rq.Mult[i] = int32(1<<30 + rng.IntN(1<<30))
		rq.Shift[i] = 38 + rng.IntN(6)
	}
	return rq
}

// refRequant is the requantization of the exact accumulators ref ([m][n],
// row-major) by rq, from its definition: round((acc+bias)·mult / 2^shift)
// + zero, clamped to [Lo, Hi].
func refRequant(ref []int64, n int, rq *Requant) []uint8 {
	out := make([]uint8, len(ref))
	for i, acc := range ref {
		c := i % n
		qi := c
		if len(rq.Mult) == 1 {
			qi = 0
		}
		y := refRound((acc+int64(rq.Bias[c]))*int64(rq.Mult[qi]), rq.Shift[qi]) + int64(rq.Zero)
		out[i] = uint8(min(max(y, int64(rq.Lo)), int64(rq.Hi)))
	}
	return out
}

func TestGEMMRequant(t *testing.T) {
	withPaths(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(7, 8))
		for _, bits := range allBits {
			for _, perTensor := range []bool{true, false} {
				m, n, k := 1+rng.IntN(40), 1+rng.IntN(40), 1+rng.IntN(150)
				a := make([]uint8, m*k)
				for i := range a {
					a[i] = uint8(rng.IntN(256))
				}
				w := randWeights(rng, n, k, bits)
				z := uint8(rng.IntN(256))
				rq := randRequant(rng, n, perTensor)
				pw, err := packAny(w, n, k, bits)
				if err != nil {
					t.Fatal(err)
				}
				dst := make([]uint8, m*n)
				if err := GEMMRequant(dst, a, m, k, z, pw, rq, Options{Threads: 2}); err != nil {
					t.Fatal(err)
				}
				want := refRequant(refGEMM(a, m, k, z, w, n), n, rq)
				for i, got := range dst {
					if got != want[i] {
						t.Fatalf("bits=%s dst[%d][%d] = %d; want %d", bitsName(bits), i/n, i%n, got, want[i])
					}
				}
			}
		}
	})
}

func TestPackWeightsErrors(t *testing.T) {
	tests := []struct {
		name    string
		w       []int8
		n, k    int
		bits    int
		ternary bool
	}{
		{name: "bits 3", w: []int8{1}, n: 1, k: 1, bits: 3},
		{name: "bits 0 via PackWeights", w: []int8{1}, n: 1, k: 1, bits: Ternary},
		{name: "4-bit too large", w: []int8{8}, n: 1, k: 1, bits: 4},
		{name: "4-bit too small", w: []int8{-9}, n: 1, k: 1, bits: 4},
		{name: "2-bit too large", w: []int8{0, 2}, n: 1, k: 2, bits: 2},
		{name: "binary zero", w: []int8{1, 0}, n: 2, k: 1, bits: 1},
		{name: "ternary 2", w: []int8{2}, n: 1, k: 1, ternary: true},
		{name: "length", w: []int8{1, 1, 1}, n: 2, k: 2, bits: 8},
		{name: "empty", w: nil, n: 0, k: 3, bits: 8},
		{name: "K too large", w: make([]int8, MaxK+1), n: 1, k: MaxK + 1, bits: 8},
	}
	for _, tt := range tests {
		var err error
		if tt.ternary {
			_, err = PackTernary(tt.w, tt.n, tt.k)
		} else {
			_, err = PackWeights(tt.w, tt.n, tt.k, tt.bits)
		}
		if !errors.Is(err, ErrWeights) {
			t.Errorf("%s: error %v; want ErrWeights", tt.name, err)
		}
	}
}

func TestGEMMErrors(t *testing.T) {
	pw, err := PackWeights([]int8{1, 2, 3, 4, 5, 6}, 2, 3, 8)
	if err != nil {
		t.Fatal(err)
	}
	a := make([]uint8, 6)
	if err := GEMM(make([]int32, 4), a, 2, 3, 0, pw, Options{}); err != nil {
		t.Fatalf("valid call: %v", err)
	}
	bad := []struct {
		name string
		dst  int
		a    int
		m, k int
		w    *Weights
	}{
		{"dst length", 3, 6, 2, 3, pw},
		{"a length", 4, 5, 2, 3, pw},
		{"k mismatch", 4, 6, 3, 2, pw},
		{"m zero", 0, 0, 0, 3, pw},
		{"nil weights", 4, 6, 2, 3, nil},
	}
	for _, tt := range bad {
		if err := GEMM(make([]int32, tt.dst), make([]uint8, tt.a), tt.m, tt.k, 0, tt.w, Options{}); !errors.Is(err, ErrShape) {
			t.Errorf("%s: error %v; want ErrShape", tt.name, err)
		}
	}
	rqBad := []*Requant{
		nil,
		{Mult: []int32{1, 1, 1}, Shift: []int{0, 0, 0}, Hi: 255},
		{Mult: []int32{1}, Shift: []int{63}, Hi: 255},
		{Mult: []int32{-1}, Shift: []int{0}, Hi: 255},
		{Mult: []int32{1}, Shift: []int{0}, Lo: 3, Hi: 2},
		{Bias: []int32{1}, Mult: []int32{1}, Shift: []int{0}, Hi: 255},
	}
	for i, rq := range rqBad {
		if err := GEMMRequant(make([]uint8, 4), a, 2, 3, 0, pw, rq, Options{}); !errors.Is(err, ErrRequant) {
			t.Errorf("requant case %d: error %v; want ErrRequant", i, err)
		}
	}
}

// TestConv2D compares Im2Col + GEMMRequant with a direct convolution loop.
func TestConv2D(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	shapes := []ConvShape{
		{C: 3, H: 9, W: 7, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{C: 2, H: 11, W: 10, KH: 5, KW: 3, StrideH: 2, StrideW: 3, PadTop: 2, PadLeft: 0, PadBottom: 1, PadRight: 2},
		{C: 4, H: 8, W: 8, KH: 3, KW: 2, DilationH: 2, DilationW: 3, PadTop: 1, PadRight: 1},
		{C: 1, H: 5, W: 5, KH: 5, KW: 5},
		{C: 2, H: 32, W: 32, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}, // OH*OW = 1024
	}
	for si, s := range shapes {
		for _, bits := range allBits {
			oh, ow, err := s.Out()
			if err != nil {
				t.Fatal(err)
			}
			n, kk := 5+7*si, s.C*s.KH*s.KW // 5 to 33 channels: ragged and full 8-column transpose tiles
			src := make([]uint8, s.C*s.H*s.W)
			for i := range src {
				src[i] = uint8(rng.IntN(256))
			}
			w := randWeights(rng, n, kk, bits)
			pw, err := packAny(w, n, kk, bits)
			if err != nil {
				t.Fatal(err)
			}
			z := uint8(rng.IntN(256))
			rq := &Requant{Mult: []int32{1 << 30}, Shift: []int{36}, Zero: 128, Hi: 255}
			dst := make([]uint8, n*oh*ow)
			if err := Conv2D(dst, src, s, z, pw, rq, Options{}); err != nil {
				t.Fatal(err)
			}
			sn := s.norm()
			for o := 0; o < n; o++ {
				for oy := 0; oy < oh; oy++ {
					for ox := 0; ox < ow; ox++ {
						var acc int64
						for c := 0; c < s.C; c++ {
							for ky := 0; ky < s.KH; ky++ {
								for kx := 0; kx < s.KW; kx++ {
									y := oy*sn.StrideH - s.PadTop + ky*sn.DilationH
									x := ox*sn.StrideW - s.PadLeft + kx*sn.DilationW
									if y < 0 || y >= s.H || x < 0 || x >= s.W {
										continue // padding equals the zero point: contributes 0
									}
									acc += (int64(src[(c*s.H+y)*s.W+x]) - int64(z)) * int64(w[o*kk+(c*s.KH+ky)*s.KW+kx])
								}
							}
						}
						want := Requantize(acc, 1<<30, 36, 128, 0, 255)
						if got := dst[(o*oh+oy)*ow+ox]; got != want {
							t.Fatalf("shape %d bits=%s out[%d][%d][%d] = %d; want %d", si, bitsName(bits), o, oy, ox, got, want)
						}
					}
				}
			}
		}
	}
	if _, _, err := (ConvShape{C: 1, H: 2, W: 2, KH: 3, KW: 3}).Out(); !errors.Is(err, ErrShape) {
		t.Errorf("kernel larger than input: error %v; want ErrShape", err)
	}
}

// fuzzOperands derives an m x k activation matrix and n x k weights in
// bits' range from fuzzer bytes (a fixed pattern when data is empty).
func fuzzOperands(data []byte, m, n, k, bits int) ([]uint8, []int8) {
	lo, hi, _, _ := weightRange(bits)
	at := func(i int) byte {
		if len(data) == 0 {
			return byte(i * 37)
		}
		return data[i%len(data)] ^ byte(i/len(data))
	}
	a := make([]uint8, m*k)
	for i := range a {
		a[i] = at(i)
	}
	w := make([]int8, n*k)
	span := int(hi) - int(lo) + 1
	for i := range w {
		v := int(at(i + len(a)))
		if bits == 1 {
			w[i] = int8(2*(v&1) - 1)
		} else {
			w[i] = int8(int(lo) + v%span)
		}
	}
	return a, w
}

// FuzzGEMM compares every kernel path (VNNI, AVX2, the Go twins, and 8-bit
// weights packed for VNNI but run on the Go twin) with the int64 reference on
// fuzzer-chosen shapes, bit widths and values.
func FuzzGEMM(f *testing.F) {
	f.Add(uint8(5), uint8(17), uint16(33), uint8(0), uint8(7), []byte{255, 0, 128, 1})
	f.Add(uint8(1), uint8(1), uint16(1), uint8(1), uint8(0), []byte{255})
	f.Add(uint8(13), uint8(40), uint16(300), uint8(2), uint8(255), []byte{0, 255, 255, 0, 7})
	f.Fuzz(func(t *testing.T, m8, n8 uint8, k16 uint16, bsel, z uint8, data []byte) {
		m, n, k := 1+int(m8)%64, 1+int(n8)%64, 1+int(k16)%700
		bits := allBits[int(bsel)%len(allBits)]
		a, w := fuzzOperands(data, m, n, k, bits)
		ref := refGEMM(a, m, k, z, w, n)
		// Every available path, plus weights packed under VNNI (quad layout
		// for 8 bits) but run with the flags off, which takes tileDotGo.
		type run struct {
			name       string
			pack, exec kernelPath
		}
		var runs []run
		for _, p := range availablePaths() {
			runs = append(runs, run{p.name, p, p})
		}
		runs = append(runs, run{"quads-go", kernelPath{vnni: true}, kernelPath{}})
		for _, r := range runs {
			restore := setPath(r.pack)
			pw, err := packAny(w, n, k, bits)
			restore()
			if err != nil {
				t.Fatal(err)
			}
			restore = setPath(r.exec)
			got := make([]int32, m*n)
			err = GEMM(got, a, m, k, z, pw, Options{})
			restore()
			if err != nil {
				t.Fatal(err)
			}
			for i := range ref {
				if int64(got[i]) != ref[i] {
					t.Fatalf("%s bits=%s m=%d n=%d k=%d z=%d: dst[%d][%d] = %d; want %d", r.name, bitsName(bits), m, n, k, z, i/n, i%n, got[i], ref[i])
				}
			}
		}
	})
}

// TestRequantTile compares the requantization epilogue (AVX-512, AVX2 and
// the Go twin, one path per subtest, each next to the Go twin) with Requantize on full tiles of random and edge
// accumulators, biases, multipliers and shifts.
func TestRequantTile(t *testing.T) {
	withPaths(t, testRequantTile)
}

func testRequantTile(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	edges := []int32{0, 1, -1, 2, -2, 3, -3, 1 << 30, -(1 << 30), 1<<31 - 1, -(1 << 31), 1 << 20, -(1 << 20)}
	for trial := 0; trial < 300; trial++ {
		var c tile
		for i := range c {
			if rng.IntN(3) == 0 {
				c[i] = edges[rng.IntN(len(edges))]
			} else {
				c[i] = int32(rng.Uint32()) >> rng.IntN(31)
			}
		}
		var prm rqParams
		bias := make([]int32, tileN)
		mult := make([]int32, tileN)
		shift := make([]int, tileN)
		for j := range bias {
			if trial%2 == 0 {
				bias[j] = int32(rng.IntN(1<<16)) - 1<<15
			}
			mult[j] = []int32{0, 1, 3, 1 << 30, 1<<31 - 1, int32(rng.IntN(1 << 31))}[rng.IntN(6)]
			shift[j] = []int{0, 1, 2, 31, 32, 45, MaxShift, rng.IntN(MaxShift + 1)}[rng.IntN(8)]
			prm.set(j, bias[j], mult[j], shift[j])
		}
		zero, lo, hi := int32(rng.IntN(256)), uint8(rng.IntN(100)), uint8(150+rng.IntN(106))
		for j := range 4 {
			prm.lo[j], prm.hi[j], prm.zero[j] = int64(lo), int64(hi), int64(zero)
		}
		rows, ldd := 1+rng.IntN(tileM), tileN+rng.IntN(5)
		got := make([]uint8, (rows-1)*ldd+tileN)
		requantTile(got, ldd, &c, rows, tileN, &prm)
		twin := make([]uint8, len(got))
		requantTileGo(twin, ldd, &c, rows, tileN, &prm)
		for r := 0; r < rows; r++ {
			for j := 0; j < tileN; j++ {
				acc := int64(c[r*tileN+j]) + int64(bias[j])
				want := Requantize(acc, mult[j], shift[j], zero, lo, hi)
				if g, tw := got[r*ldd+j], twin[r*ldd+j]; g != want || tw != want {
					t.Fatalf("acc=%d mult=%d shift=%d zero=%d [%d,%d]: epilogue %d, Go twin %d; want %d",
						acc, mult[j], shift[j], zero, lo, hi, g, tw, want)
				}
			}
		}
	}
}

// TestISAFollowsFlags: ISA names the path the dispatch flags select.
func TestISAFollowsFlags(t *testing.T) {
	want := map[string]string{"vnni": ISAVNNI, "avx2": ISAAVX2, "go": ISAGo}
	for _, p := range availablePaths() {
		restore := setPath(p)
		if got := ISA(); got != want[p.name] {
			t.Errorf("path %s: ISA() = %q; want %q", p.name, got, want[p.name])
		}
		restore()
	}
}
