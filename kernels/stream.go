package kernels

import (
	"fmt"
	"sync"
)

// Stream is a weight matrix of N output channels by K inputs packed for
// products with few activation rows (M = 1..16: batch-1 fully connected
// layers, 1x1 convolutions on small feature maps), where the time is set by
// the weight bytes read rather than by the multiply-accumulates. Weights
// are stored at their bit width (8, 4, 2 or 1 bits per weight; ternary
// weights take 2) and widened in registers. It is immutable after packing
// and safe for concurrent use.
//
// Layout: 16-channel panels, interleaved in groups of streamGroup panels
// (the last N/16 mod streamGroup panels stand alone), visited in blocks of
// Q quads of K (Q = 2, 2, 4, 8 for 8, 4, 2, 1 bits). Within a block each
// panel holds 64 bytes, byte 4c+j (channel c, K offset j of the quad)
// carrying the fields of the block's Q quads, quad i at bit i*f (f = field
// width); 8-bit blocks are instead the Q quads one after the other, each
// the 64 raw bytes of every panel of the group. Fields hold v = w+8 (4
// bits), w+2 (2 bits and ternary) or (w+1)/2 (binary): non-negative, so
// they are valid signed operands of VPDPBUSD and VPMADDUBSW.
type Stream struct {
	N, K int
	// Bits is 8, 4, 2, 1 (binary) or Ternary.
	Bits int

	blocks int     // blocks of Q quads covering K
	data   []uint8 // the layout above
	colSum []int32 // sum_k W[n][k], zero past N
}

// streamGroup is the number of panels a stream kernel reads per block.
const streamGroup = 4

// streamRows is the number of activation rows the AVX-512 stream kernels
// take per call.
const streamRows = 4

// streamKernel is the signature of every stream kernel (see
// kernels/internal/genstream): it adds to rows x (16*panels) int32 at c
// (row stride 16*panels) the products of rows activation rows, astride
// bytes apart, with the panels at w over blocks blocks.
type streamKernel func(a *uint8, astride int, w *uint8, c *int32, blocks int)

// streamFormat returns the quads per block, the field width in bits and the
// offset and scale of the stored value v: w = scale*v - off.
func streamFormat(bits int) (q, field int, scale, off int32) {
	switch bits {
	case 8:
		return 2, 8, 1, 0 // raw int8
	case 4:
		return 2, 4, 1, 8
	case 2, Ternary:
		return 4, 2, 1, 2
	case 1:
		return 8, 1, 2, 1
	}
	panic("kernels: stream bit width")
}

// PackStream validates and packs w, an n x k row-major matrix, for the
// streaming small-M kernels (GEMMStream). The accepted values are those of
// PackWeights for bits 8, 4, 2 and 1, and {-1, 0, +1} for Ternary.
func PackStream(w []int8, n, k, bits int) (*Stream, error) {
	if bits == Ternary {
		if err := checkShape(w, n, k); err != nil {
			return nil, err
		}
		for i, v := range w {
			if v < -1 || v > 1 {
				return nil, fmt.Errorf("%w: W[%d][%d] = %d is not ternary; values must be -1, 0 or +1", ErrWeights, i/k, i%k, v)
			}
		}
		return packStream(w, n, k, bits), nil
	}
	// PackWeights' checks, without its packing.
	lo, hi, _, ok := weightRange(bits)
	if !ok {
		return nil, fmt.Errorf("%w: bit width %d not supported; use 8, 4, 2, 1 or Ternary", ErrWeights, bits)
	}
	if err := checkShape(w, n, k); err != nil {
		return nil, err
	}
	for i, v := range w {
		if v < lo || v > hi || (bits == 1 && v == 0) {
			return nil, fmt.Errorf("%w: W[%d][%d] = %d is outside the %d-bit range %s", ErrWeights, i/k, i%k, v, bits, rangeText(bits))
		}
	}
	return packStream(w, n, k, bits), nil
}

func packStream(w []int8, n, k, bits int) *Stream {
	q, field, scale, off := streamFormat(bits)
	blocks := (k + 4*q - 1) / (4 * q)
	panels := (n + tileN - 1) / tileN
	s := &Stream{N: n, K: k, Bits: bits, blocks: blocks, data: make([]uint8, panels*blocks*q*field*tileN*4/8), colSum: make([]int32, panels*tileN)}
	for c := 0; c < n; c++ {
		var sum int32
		for _, v := range w[c*k : (c+1)*k] {
			sum += int32(v)
		}
		s.colSum[c] = sum
	}
	for c := 0; c < n; c++ {
		base, gp := s.panelAt(c / tileN)
		pp := (c / tileN) % streamGroup
		if gp == 1 {
			pp = 0
		}
		for kk, wv := range w[c*k : (c+1)*k] {
			b, i, j := kk/(4*q), (kk/4)%q, kk%4
			byteIdx := (c%tileN)*4 + j
			if bits == 8 {
				s.data[base+((b*q+i)*gp+pp)*64+byteIdx] = uint8(wv)
				continue
			}
			v := (int32(wv) + off) / scale
			s.data[base+(b*gp+pp)*64+byteIdx] |= uint8(v) << (i * field)
		}
	}
	return s
}

// streamBlockBytes is the size of one block of one panel.
func streamBlockBytes(bits int) int {
	q, field, _, _ := streamFormat(bits)
	return q * field * tileN * 4 / 8
}

func (s *Stream) blockBytes() int { return streamBlockBytes(s.Bits) }

// panelAt returns the offset in s.data of the group holding panel p and the
// number of panels in that group (streamGroup, or 1 for the tail).
func (s *Stream) panelAt(p int) (off, groupPanels int) {
	full := (s.N + tileN - 1) / tileN / streamGroup
	per := s.blocks * s.blockBytes() // bytes of one panel
	if p < full*streamGroup {
		return (p / streamGroup) * streamGroup * per, streamGroup
	}
	return p * per, 1
}

// PackedBytes is the memory the packed weights occupy (N padded to 16, K to
// a whole block): about N*K*b/8 for b = 8, 4, 2, 1 (2 for ternary).
func (s *Stream) PackedBytes() int { return len(s.data) }

// streamPath is the kernel family a stream product runs.
type streamPath int

const (
	streamGo      streamPath = iota // pure-Go twin of the VPDPBUSD arithmetic
	streamGoAVX2                    // pure-Go twin of the AVX2 arithmetic
	streamAVX2                      // AVX2 assembly
	streamAVXVNNI                   // AVX-VNNI (VEX, 256-bit) assembly
	streamAVX512                    // AVX-512 VNNI assembly
)

// streamOffset is the offset of the stored value a path's sums use: the
// AVX2 kernels (and their twin) sum 8-bit weights as w XOR 0x80 = w + 128.
func streamOffset(bits int, p streamPath) int32 {
	_, _, _, off := streamFormat(bits)
	if bits == 8 && (p == streamAVX2 || p == streamGoAVX2) {
		return 128
	}
	return off
}

// scratchStream recycles the padded activations of GEMMStream.
var scratchStream sync.Pool // *streamScratch

type streamScratch struct{ a []uint8 }

// GEMMStream computes dst[i][n] = sum_j (a[i][j] - aZero) * W[n][j] like
// GEMM, with the streaming kernels of w. It suits small m (any m is
// correct); with m = 1 its time follows w.PackedBytes(). Measured on the
// development machine (BenchmarkGEMMStream, 4096 x 4096), it beats GEMM up
// to 16 rows at least for 4-, 2- and 1-bit weights, and for 8-bit ones up
// to about 4 rows. The result is exact (see MaxK). Output channels are
// split over opt.Threads goroutines by groups of 64; results do not depend
// on the thread count.
func GEMMStream(dst []int32, a []uint8, m, k int, aZero uint8, w *Stream, opt Options) error {
	if w == nil {
		return fmt.Errorf("%w: nil weights; pack them with PackStream", ErrShape)
	}
	if err := checkStream(len(dst), a, m, k, w.K, w.N); err != nil {
		return err
	}
	n := w.N
	runStream(a, m, aZero, w, opt.Threads, streamDispatch(), func(p0, gp int, c []int32) {
		cols := min(gp*tileN, n-p0*tileN)
		for i := 0; i < m; i++ {
			copy(dst[i*n+p0*tileN:i*n+p0*tileN+cols], c[i*gp*tileN:])
		}
	})
	return nil
}

// GEMMStreamRequant computes the sums of GEMMStream, adds rq.Bias and
// requantizes every value to uint8 exactly as GEMMRequant does (same
// formula, same epilogue), writing the m x w.N row-major dst.
func GEMMStreamRequant(dst []uint8, a []uint8, m, k int, aZero uint8, w *Stream, rq *Requant, opt Options) error {
	if w == nil {
		return fmt.Errorf("%w: nil weights; pack them with PackStream", ErrShape)
	}
	if err := checkStream(len(dst), a, m, k, w.K, w.N); err != nil {
		return err
	}
	if err := rq.check(w.N); err != nil {
		return err
	}
	n := w.N
	panels := rqPanels(rq, n)
	runStream(a, m, aZero, w, opt.Threads, streamDispatch(), func(p0, gp int, c []int32) {
		var t tile
		for jp := 0; jp < gp; jp++ {
			n0 := (p0 + jp) * tileN
			cols := min(tileN, n-n0)
			if cols <= 0 {
				return
			}
			for r0 := 0; r0 < m; r0 += tileM {
				rows := min(tileM, m-r0)
				for r := 0; r < rows; r++ {
					copy(t[r*tileN:(r+1)*tileN], c[(r0+r)*gp*tileN+jp*tileN:])
				}
				requantTile(dst[r0*n+n0:], n, &t, rows, cols, &panels[p0+jp])
			}
		}
	})
	return nil
}

func checkStream(dstLen int, a []uint8, m, k, wk, n int) error {
	switch {
	case m < 1:
		return fmt.Errorf("%w: m = %d rows; want at least 1", ErrShape, m)
	case k != wk:
		return fmt.Errorf("%w: activations have k = %d columns but the weights have K = %d", ErrShape, k, wk)
	case len(a) != m*k:
		return fmt.Errorf("%w: activations hold %d values; want m*k = %d*%d = %d", ErrShape, len(a), m, k, m*k)
	case dstLen != m*n:
		return fmt.Errorf("%w: dst holds %d values; want m*N = %d*%d = %d", ErrShape, dstLen, m, n, m*n)
	}
	return nil
}

// streamChunkBytes bounds the weight bytes of one group a row block
// streams before the next row block reuses them from L1.
const streamChunkBytes = 16 << 10

// runStream pads the activation rows to whole blocks (zeros past K), runs
// path over every group of panels (starting at panel p0, gp panels) and
// hands epi the m x gp*16 row-major results
//
//	c[i][n] = scale*S[i][n] - off*sum_j a[i][j] - z*sum_j W[n][j]
//
// where S is the kernels' sum of a*v. The arithmetic is int32 and wraps:
// every step is exact modulo 2^32 and the true result fits in int32
// (K <= MaxK), so the result is exact even where S alone exceeds int32
// (the AVX2 8-bit sum of a*(w+128) for K near MaxK). Different calls of
// epi never share outputs; channels past N in c are garbage.
func runStream(a []uint8, m int, aZero uint8, w *Stream, threads int, path streamPath, epi func(p0, gp int, c []int32)) {
	q, _, scale, _ := streamFormat(w.Bits)
	off := streamOffset(w.Bits, path)
	k, kpad := w.K, w.blocks*4*q
	panels := (w.N + tileN - 1) / tileN
	sp, _ := scratchStream.Get().(*streamScratch)
	if sp == nil {
		sp = &streamScratch{}
	}
	defer scratchStream.Put(sp)
	if cap(sp.a) < m*kpad {
		sp.a = make([]uint8, m*kpad)
	}
	ap := sp.a[:m*kpad]
	rowSum := make([]int32, m)
	for i := 0; i < m; i++ {
		row := ap[i*kpad : (i+1)*kpad]
		copy(row, a[i*k:(i+1)*k])
		clear(row[k:])
		var s int32
		for _, v := range row[:k] {
			s += int32(v)
		}
		rowSum[i] = s
	}
	full := panels / streamGroup
	units := full + panels%streamGroup // full groups, then single tail panels
	perThread := (units + max(threads, 1) - 1) / max(threads, 1)
	cLen := m * streamGroup * tileN
	parallel(threads, (units+perThread-1)/perThread, func(u0, u1 int) {
		c := make([]int32, cLen)
		for u := u0 * perThread; u < min(u1*perThread, units); u++ {
			p0, gp := u*streamGroup, streamGroup
			if u >= full {
				p0, gp = full*streamGroup+(u-full), 1
			}
			base, _ := w.panelAt(p0)
			cu := c[:m*gp*tileN]
			clear(cu)
			streamGroupRun(cu, ap, m, kpad, w, base, gp, path)
			zc := int32(aZero)
			cs := w.colSum[p0*tileN : (p0+gp)*tileN]
			for i := 0; i < m; i++ {
				ci := cu[i*gp*tileN : (i+1)*gp*tileN]
				ro := off * rowSum[i]
				for j := range ci {
					ci[j] = scale*ci[j] - ro - zc*cs[j]
				}
			}
			epi(p0, gp, cu)
		}
	})
}

// streamGroupRun adds to c (m rows of gp*16) the sums S of the m padded
// activation rows at a (stride kpad) with the gp panels at w.data[base:].
// With more rows than one kernel call takes, K is cut into chunks of about
// streamChunkBytes of weights, each run for every block of rows.
func streamGroupRun(c []int32, a []uint8, m, kpad int, w *Stream, base, gp int, path streamPath) {
	q, _, _, _ := streamFormat(w.Bits)
	bb := w.blockBytes() * gp
	rows := 1
	if path == streamAVX512 {
		rows = streamRows
	}
	chunk := w.blocks
	if m > rows {
		chunk = max(1, streamChunkBytes/bb)
	}
	for b0 := 0; b0 < w.blocks; b0 += chunk {
		nb := min(chunk, w.blocks-b0)
		wd := w.data[base+b0*bb : base+(b0+nb)*bb]
		for r0 := 0; r0 < m; r0 += rows {
			r := min(rows, m-r0)
			ar := a[r0*kpad+b0*4*q:]
			cr := c[r0*gp*tileN : (r0+r)*gp*tileN]
			streamCall(path, w.Bits, r, gp, ar, kpad, wd, cr, nb)
		}
	}
}

// streamGoRun is the pure-Go twin of the VPDPBUSD stream kernels: it adds
// to c (rows x gp*16, row-major) sum_k a[r][k] * v[n][k] over blocks blocks
// of the panels at w, four products at a time into int32 (wrapping, as
// VPDPBUSD does), reading the fields exactly as the kernels unpack them
// (shift, mask). a holds the rows astride apart from the block's start.
func streamGoRun(bits, rows, gp int, a []uint8, astride int, w []uint8, c []int32, blocks int) {
	q, field, _, _ := streamFormat(bits)
	mask := uint8(1<<field - 1)
	for b := 0; b < blocks; b++ {
		for i := 0; i < q; i++ {
			for p := 0; p < gp; p++ {
				var vec []uint8
				if bits == 8 {
					vec = w[((b*q+i)*gp+p)*64:][:64]
				} else {
					vec = w[(b*gp+p)*64:][:64]
				}
				for r := 0; r < rows; r++ {
					aq := a[r*astride+(b*q+i)*4:][:4]
					cr := c[r*gp*tileN+p*tileN:][:tileN]
					for ch := range cr {
						var d int32
						for j := 0; j < 4; j++ {
							var wv int32
							if bits == 8 {
								wv = int32(int8(vec[ch*4+j]))
							} else {
								wv = int32((vec[ch*4+j] >> (i * field)) & mask)
							}
							d += int32(aq[j]) * wv
						}
						cr[ch] += d
					}
				}
			}
		}
	}
}

// streamGoAVX2Run is the pure-Go twin of the AVX2 stream kernels (one row
// at a time): per 8-channel half, VPMADDUBSW pair sums saturated to int16
// (never reached: pairs are at most 2*255*15 = 7650), widened by VPMADDWD
// with ones (or sixteens, for the high nibble of 8-bit weights, which are
// summed as w XOR 0x80 = 16*h + l), then added in int32 (wrapping).
func streamGoAVX2Run(bits, rows, gp int, a []uint8, astride int, w []uint8, c []int32, blocks int) {
	q, field, _, _ := streamFormat(bits)
	mask := uint8(1<<field - 1)
	pair := func(a0, a1 uint8, w0, w1 uint8) int32 {
		return int32(sat16(int32(a0)*int32(int8(w0)) + int32(a1)*int32(int8(w1))))
	}
	for b := 0; b < blocks; b++ {
		for i := 0; i < q; i++ {
			for p := 0; p < gp; p++ {
				for r := 0; r < rows; r++ {
					aq := a[r*astride+(b*q+i)*4:][:4]
					cr := c[r*gp*tileN+p*tileN:][:tileN]
					for ch := range cr {
						var u [4]uint8 // the four weight bytes as the kernel holds them
						var hi [4]uint8
						for j := range u {
							if bits == 8 {
								x := w[((b*q+i)*gp+p)*64+ch*4+j] ^ 0x80
								u[j], hi[j] = x&15, x>>4
							} else {
								u[j] = (w[(b*gp+p)*64+ch*4+j] >> (i * field)) & mask
							}
						}
						d := pair(aq[0], aq[1], u[0], u[1]) + pair(aq[2], aq[3], u[2], u[3])
						if bits == 8 {
							d += 16*pair(aq[0], aq[1], hi[0], hi[1]) + 16*pair(aq[2], aq[3], hi[2], hi[3])
						}
						cr[ch] += d
					}
				}
			}
		}
	}
}
