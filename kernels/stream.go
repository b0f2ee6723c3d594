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

// streamPool recycles the state of GEMMStream calls made without a
// Scratch.
var streamPool sync.Pool // *streamJob

// streamJob is the state of one GEMMStream or GEMMStreamRequant call: the
// output (dst32, or dst8 and the requantization panels, or fn), the padded
// activation rows and their sums, and the accumulators. Its methods are
// the call's steps, so that a call on one thread creates no closure and,
// with a Scratch, allocates nothing.
type streamJob struct {
	w      *Stream
	m      int
	aZero  uint8
	path   streamPath
	kpad   int
	scale  int32
	off    int32
	full   int // groups of streamGroup panels
	units  int // full groups, then single tail panels
	dst32  []int32
	dst8   []uint8
	panels []rqParams                  // the call state's own epilogue constants (buffer)
	rqp    []rqParams                  // the epilogue constants of this call: panels or frozen
	fn     func(p0, gp int, c []int32) // tests: receives the results instead
	ap     []uint8                     // m padded rows of kpad bytes
	rowSum []int32
	c      []int32 // the one-thread accumulators
	sums   []int32 // the K-split partial sums: parts x panels*16
	parts  int
}

// streamJobFor returns the state of a call: the Scratch's own, or one from
// streamPool (put back by release).
func streamJobFor(s *Scratch) *streamJob {
	if s != nil {
		return &s.st
	}
	j, _ := streamPool.Get().(*streamJob)
	if j == nil {
		j = &streamJob{}
	}
	return j
}

// release drops the references the call holds to its caller's memory and
// returns a pooled state to streamPool.
func (j *streamJob) release(s *Scratch) {
	j.w, j.dst32, j.dst8, j.fn, j.rqp = nil, nil, nil, nil, nil
	if s == nil {
		streamPool.Put(j)
	}
}

// GEMMStream computes dst[i][n] = sum_j (a[i][j] - aZero) * W[n][j] like
// GEMM, with the streaming kernels of w. It suits small m (any m is
// correct); with m = 1 its time follows w.PackedBytes(). Measured on the
// development machine (BenchmarkGEMMStream, 4096 x 4096), it beats GEMM up
// to 16 rows at least for 4-, 2- and 1-bit weights, and for 8-bit ones up
// to about 4 rows. The result is exact (see MaxK). Work is split over
// opt.Threads goroutines by groups of 64 output channels, and for one row
// with few groups by ranges of K (splitK); results do not depend on the
// thread count. With opt.Scratch and one thread a call allocates nothing
// once the Scratch has grown.
func GEMMStream(dst []int32, a []uint8, m, k int, aZero uint8, w *Stream, opt Options) error {
	if w == nil {
		return fmt.Errorf("%w: nil weights; pack them with PackStream", ErrShape)
	}
	if err := checkStream(len(dst), a, m, k, w.K, w.N); err != nil {
		return err
	}
	j := streamJobFor(opt.Scratch)
	j.dst32 = dst
	j.run(a, m, aZero, w, opt.Threads, streamDispatch())
	j.release(opt.Scratch)
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
	j := streamJobFor(opt.Scratch)
	panels, err := rq.epilogue(&j.panels, w.N)
	if err != nil {
		j.release(opt.Scratch)
		return err
	}
	j.dst8 = dst
	j.rqp = panels
	j.run(a, m, aZero, w, opt.Threads, streamDispatch())
	j.release(opt.Scratch)
	return nil
}

// epi hands the results of the group of gp panels starting at panel p0
// (m rows of gp*16, row-major) to the call's output.
func (j *streamJob) epi(p0, gp int, c []int32) {
	n, m := j.w.N, j.m
	switch {
	case j.fn != nil:
		j.fn(p0, gp, c)
	case j.dst32 != nil:
		cols := min(gp*tileN, n-p0*tileN)
		for i := 0; i < m; i++ {
			copy(j.dst32[i*n+p0*tileN:i*n+p0*tileN+cols], c[i*gp*tileN:])
		}
	default:
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
				requantTile(j.dst8[r0*n+n0:], n, &t, rows, cols, &j.rqp[p0+jp])
			}
		}
	}
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

// splitKMinBlocks is the fewest blocks of K a thread takes when one row is
// split over K.
const splitKMinBlocks = 16

// runStream runs a product on path with the results handed to epi (tests
// and benchmarks: a chosen kernel family; see streamJob.run).
func runStream(a []uint8, m int, aZero uint8, w *Stream, threads int, path streamPath, epi func(p0, gp int, c []int32)) {
	j := &streamJob{fn: epi}
	j.run(a, m, aZero, w, threads, path)
}

// run pads the activation rows to whole blocks (zeros past K), runs path
// over every group of panels (starting at panel p0, gp panels) and hands
// epi the m x gp*16 row-major results
//
//	c[i][n] = scale*S[i][n] - off*sum_j a[i][j] - z*sum_j W[n][j]
//
// where S is the kernels' sum of a*v. The arithmetic is int32 and wraps:
// every step is exact modulo 2^32 and the true result fits in int32
// (K <= MaxK), so the result is exact even where S alone exceeds int32
// (the AVX2 8-bit sum of a*(w+128) for K near MaxK), and however the sum
// over K is split. Different calls of epi never share outputs; channels
// past N in c are garbage.
//
// Work goes to threads goroutines by groups of panels; with one row and
// fewer than 4 groups per thread, by ranges of K instead (splitK).
func (j *streamJob) run(a []uint8, m int, aZero uint8, w *Stream, threads int, path streamPath) {
	threads = max(threads, 1)
	q, _, scale, _ := streamFormat(w.Bits)
	j.w, j.m, j.aZero, j.path = w, m, aZero, path
	j.scale, j.off = scale, streamOffset(w.Bits, path)
	k := w.K
	j.kpad = w.blocks * 4 * q
	ap := growSlice(&j.ap, m*j.kpad)
	rowSum := growSlice(&j.rowSum, m)
	for i := 0; i < m; i++ {
		row := ap[i*j.kpad : (i+1)*j.kpad]
		copy(row, a[i*k:(i+1)*k])
		clear(row[k:])
		var s int32
		for _, v := range row[:k] {
			s += int32(v)
		}
		rowSum[i] = s
	}
	panels := (w.N + tileN - 1) / tileN
	j.full = panels / streamGroup
	j.units = j.full + panels%streamGroup
	cLen := max(m, 4) * streamGroup * tileN // up to four groups at once for one row
	if threads == 1 {
		j.runUnits(0, j.units, growSlice(&j.c, cLen))
		return
	}
	if m == 1 && j.units < 4*threads && w.blocks >= 2*splitKMinBlocks {
		j.splitK(threads)
		return
	}
	perThread := (j.units + threads - 1) / threads
	parallel(threads, (j.units+perThread-1)/perThread, func(t0, t1 int) {
		j.runUnits(t0*perThread, min(t1*perThread, j.units), make([]int32, cLen))
	})
}

// unit returns the first panel and the panel count of unit u.
func (j *streamJob) unit(u int) (p0, gp int) {
	if u < j.full {
		return u * streamGroup, streamGroup
	}
	return j.full*streamGroup + (u - j.full), 1
}

// runUnits computes units [u0, u1) with the accumulators c (at least
// m*streamGroup*16) and hands each to epi.
func (j *streamJob) runUnits(u0, u1 int, c []int32) {
	for u := u0; u < u1; u++ {
		p0, gp := j.unit(u)
		if ng := j.groupsPerPass(u, u1); ng > 1 {
			cu := c[:ng*streamGroup*tileN]
			clear(cu)
			streamGroupsRun(ng, cu, j.ap, j.w, p0, 0, j.w.blocks)
			for g := 0; g < ng; g++ {
				j.finish(p0+g*gp, gp, cu[g*gp*tileN:(g+1)*gp*tileN])
			}
			u += ng - 1
			continue
		}
		cu := c[:j.m*gp*tileN]
		clear(cu)
		streamGroupRun(cu, j.ap, j.m, j.kpad, j.w, p0, gp, 0, j.w.blocks, j.path)
		j.finish(p0, gp, cu)
	}
}

// useStreamPairs lets one row on the AVX-512 kernels take two groups per
// pass, and useStreamQuads four groups of 8-bit weights
// (streamGroupsRun). Four streams are off: against two, in the same
// repetitions of BenchmarkStreamBandwidth (8192 x 8192, Zen 5, load 3-5),
// they read 0.98-1.05x as fast cold (median 1.04) and 0.96-1.04x hot
// (median 0.98), no clear gain. Benchmarks and tests switch them.
var useStreamPairs, useStreamQuads = true, false

// groupsPerPass returns how many units from u on (all before u1) are run
// in one pass: four or two with one row on the AVX-512 kernels if that
// many full groups remain (four for 8-bit weights only), else one.
func (j *streamJob) groupsPerPass(u, u1 int) int {
	if j.m != 1 || j.path != streamAVX512 {
		return 1
	}
	last := min(u1, j.full)
	switch {
	case useStreamQuads && j.w.Bits == 8 && u+3 < last:
		return 4
	case useStreamPairs && u+1 < last:
		return 2
	}
	return 1
}

// finish turns the sums S of a unit into the products (the formula of
// run) and hands them to epi.
func (j *streamJob) finish(p0, gp int, cu []int32) {
	zc := int32(j.aZero)
	cs := j.w.colSum[p0*tileN : (p0+gp)*tileN]
	for i := 0; i < j.m; i++ {
		ci := cu[i*gp*tileN : (i+1)*gp*tileN]
		ro := j.off * j.rowSum[i]
		for x := range ci {
			ci[x] = j.scale*ci[x] - ro - zc*cs[x]
		}
	}
	j.epi(p0, gp, cu)
}

// splitK computes one row with the blocks of K cut into one range per
// thread (at least splitKMinBlocks blocks each): each range sums S over
// every unit into its own row of j.sums, the rows are added (wrapping
// int32, so the total is the same for any cut) and every unit finished.
func (j *streamJob) splitK(threads int) {
	blocks := j.w.blocks
	j.parts = min(threads, blocks/splitKMinBlocks)
	width := ((j.w.N + tileN - 1) / tileN) * tileN
	sums := growSlice(&j.sums, j.parts*width)
	clear(sums)
	parallel(threads, j.parts, func(p0, p1 int) {
		for p := p0; p < p1; p++ {
			b0, b1 := p*blocks/j.parts, (p+1)*blocks/j.parts
			row := sums[p*width : (p+1)*width]
			for u := 0; u < j.units; u++ {
				q0, gp := j.unit(u)
				if ng := j.groupsPerPass(u, j.units); ng > 1 {
					streamGroupsRun(ng, row[q0*tileN:(q0+ng*gp)*tileN], j.ap, j.w, q0, b0, b1)
					u += ng - 1
					continue
				}
				streamGroupRun(row[q0*tileN:(q0+gp)*tileN], j.ap, 1, j.kpad, j.w, q0, gp, b0, b1, j.path)
			}
		}
	})
	total := sums[:width]
	for p := 1; p < j.parts; p++ {
		for x, v := range sums[p*width : (p+1)*width] {
			total[x] += v
		}
	}
	for u := 0; u < j.units; u++ {
		p0, gp := j.unit(u)
		j.finish(p0, gp, total[p0*tileN:(p0+gp)*tileN])
	}
}

// streamGroupRun adds to c (m rows of gp*16) the sums S, over blocks
// [b0, b1) of K, of the m padded activation rows at a (stride kpad) with
// the gp panels starting at panel p0. With more rows than one kernel call
// takes, K is cut into chunks of about streamChunkBytes of weights, each
// run for every block of rows.
func streamGroupRun(c []int32, a []uint8, m, kpad int, w *Stream, p0, gp, b0, b1 int, path streamPath) {
	q, _, _, _ := streamFormat(w.Bits)
	base, _ := w.panelAt(p0)
	bb := w.blockBytes() * gp
	rows := 1
	if path == streamAVX512 {
		rows = streamRows
	}
	chunk := b1 - b0
	if m > rows {
		chunk = max(1, streamChunkBytes/bb)
	}
	for c0 := b0; c0 < b1; c0 += chunk {
		nb := min(chunk, b1-c0)
		wd := w.data[base+c0*bb : base+(c0+nb)*bb]
		for r0 := 0; r0 < m; r0 += rows {
			r := min(rows, m-r0)
			ar := a[r0*kpad+c0*4*q:]
			cr := c[r0*gp*tileN : (r0+r)*gp*tileN]
			streamCall(path, w.Bits, r, gp, ar, kpad, wd, cr, nb)
		}
	}
}

// streamGroupsRun adds to c (ng*64 int32: the 64 channels of the group
// of four panels starting at panel p0, then those of the next groups) the
// sums S of one padded activation row a with ng = 2 or 4 groups (4 for
// 8-bit weights only) over blocks [b0, b1) of K, reading the groups'
// weights as ng streams in one pass (streamPairCall, streamQuadCall; on
// Zen 5 two streams come from memory 1.2-1.3x faster than one). The
// groups must be full.
func streamGroupsRun(ng int, c []int32, a []uint8, w *Stream, p0, b0, b1 int) {
	q, _, _, _ := streamFormat(w.Bits)
	base, gp := w.panelAt(p0)
	next, gp2 := w.panelAt(p0 + streamGroup)
	lastBase, gpl := w.panelAt(p0 + (ng-1)*streamGroup)
	if gp != streamGroup || gp2 != streamGroup || gpl != streamGroup || b1 <= b0 || (ng == 4 && w.Bits != 8) || (ng != 2 && ng != 4) {
		panic("kernels: stream group pass out of range")
	}
	bb := w.blockBytes() * streamGroup
	gstride := next - base
	if lastBase-base != (ng-1)*gstride {
		panic("kernels: stream groups not evenly spaced")
	}
	wd := w.data[base+b0*bb : lastBase+b1*bb]
	if ng == 4 {
		streamQuadCall(a[b0*4*q:], gstride, wd, c, b1-b0)
		return
	}
	streamPairCall(w.Bits, a[b0*4*q:], gstride, wd, c, b1-b0)
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
