package kernels

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// ErrShape is wrapped by the errors GEMM, GEMMRequant and the convolution
// helpers return for inconsistent shapes or buffer lengths.
var ErrShape = errors.New("kernels: shape mismatch")

// Options tunes a GEMM call. The zero value runs on one goroutine.
type Options struct {
	// Threads is the number of goroutines sharing the output tiles; values
	// below 1 mean 1. Results are identical for every value.
	Threads int
	// Scratch, when not nil, holds the call's working memory (packed
	// activations, accumulators, requantization constants) from call to
	// call: with one thread a call then allocates nothing once the Scratch
	// has grown to the largest call. A Scratch serves one call at a time.
	// Nil recycles working memory through sync.Pools, which a garbage
	// collection empties.
	Scratch *Scratch
}

// aBlockBytes is the size of the packed activation block kept in L2 while a
// weight panel is reused from L1 over its tiles.
const aBlockBytes = 192 << 10

// wChunkBytes is the size of the weight-panel chunk reused from L1 by the
// AVX2 kernels; wChunkVNNIBytes that of the four panels a VNNI call reads
// (measured on Zen 5, 48 KiB L1: 32 KiB beats 16 KiB by about 8% at 1024^3).
const (
	wChunkBytes     = 16 << 10
	wChunkVNNIBytes = 32 << 10
)

// GEMM computes dst[i][n] = sum_j (a[i][j] - aZero) * W[n][j] for the m x k
// row-major activations a and the packed weights w (k must equal w.K), into
// the m x w.N row-major dst. The result is exact (see MaxK).
func GEMM(dst []int32, a []uint8, m, k int, aZero uint8, w *Weights, opt Options) error {
	if err := checkGEMM(len(dst), a, m, k, w); err != nil {
		return err
	}
	g := opt.Scratch.job()
	g.dst32 = dst
	g.run(w, a, m, aZero, opt.Threads)
	opt.Scratch.done(g)
	return nil
}

// GEMMRequant computes the same sums as GEMM, adds rq.Bias and requantizes
// every value to uint8 with the per-channel (or per-tensor) parameters of rq,
// writing the m x w.N row-major dst. Each output equals
// Requantize(acc+Bias[n], Mult[n], Shift[n], Zero, Lo, Hi) exactly whenever
// |acc+Bias[n]| <= 2^31.
func GEMMRequant(dst []uint8, a []uint8, m, k int, aZero uint8, w *Weights, rq *Requant, opt Options) error {
	if err := checkGEMM(len(dst), a, m, k, w); err != nil {
		return err
	}
	g := opt.Scratch.job()
	panels, err := rq.epilogue(&g.panels, w.N)
	if err != nil {
		opt.Scratch.done(g)
		return err
	}
	g.dst8 = dst
	g.rqp = panels
	g.run(w, a, m, aZero, opt.Threads)
	opt.Scratch.done(g)
	return nil
}

func checkGEMM(dstLen int, a []uint8, m, k int, w *Weights) error {
	switch {
	case w == nil:
		return fmt.Errorf("%w: nil weights; pack them with PackWeights", ErrShape)
	case m < 1:
		return fmt.Errorf("%w: m = %d rows; want at least 1", ErrShape, m)
	case k != w.K:
		return fmt.Errorf("%w: activations have k = %d columns but the weights have K = %d", ErrShape, k, w.K)
	case len(a) != m*k:
		return fmt.Errorf("%w: activations hold %d values; want m*k = %d*%d = %d", ErrShape, len(a), m, k, m*k)
	case dstLen != m*w.N:
		return fmt.Errorf("%w: dst holds %d values; want m*N = %d*%d = %d", ErrShape, dstLen, m, w.N, m*w.N)
	}
	return nil
}

// epilogue consumes one computed tile: rows x cols valid results starting at
// output row m0 and channel n0, already equal to sum_k (a-z)*w. Different
// calls never share outputs.
type epilogue func(m0, n0, rows, cols int, c *tile)

// scratch recycles packed-activation buffers between calls without a
// Scratch.
var (
	scratch8  sync.Pool // *[]uint8
	scratch16 sync.Pool // *[]int16
	scratchC  sync.Pool // *[]tile, accumulators of one job
)

// gemmJob is the state of one GEMM or GEMMRequant call: the output (dst32
// for GEMM; dst8 and the requantization panels for GEMMRequant), the
// packed activations and the blocking. Its methods are the call's steps,
// so that a call on one thread creates no closure and, with a Scratch,
// allocates nothing.
type gemmJob struct {
	dst32  []int32
	dst8   []uint8
	panels []rqParams // the job's own epilogue constants (buffer)
	rqp    []rqParams // the epilogue constants of this call: panels or frozen

	w         *Weights
	a         []uint8
	m         int
	aZero     uint8
	a8        []uint8
	a16       []int16
	group     int // panels per kernel call: quadGroup for tileVNNI64
	tileLen   int // elements of one packed activation tile
	mTiles    int
	nPanels   int
	blockRows int // tiles per block of packed activations kept in L2
	nChunks   int
	chunk     int // panel groups per chunk
	nGroups   int
	kc        int      // reduction steps per weight chunk kept in L1
	owner     *Scratch // the Scratch holding the buffers, or nil (sync.Pools)
	single    bool     // one thread: jobs may share the Scratch's accumulators
}

// epi hands one tile to the call's output.
func (g *gemmJob) epi(m0, n0, rows, cols int, c *tile) {
	n := g.w.N
	if g.dst8 != nil {
		requantTile(g.dst8[m0*n+n0:], n, c, rows, cols, &g.rqp[n0/tileN])
		return
	}
	if cols == tileN {
		for r := 0; r < rows; r++ {
			o := (m0+r)*n + n0
			*(*[tileN]int32)(g.dst32[o : o+tileN]) = *(*[tileN]int32)(c[r*tileN:])
		}
		return
	}
	for r := 0; r < rows; r++ {
		copy(g.dst32[(m0+r)*n+n0:(m0+r)*n+n0+cols], c[r*tileN:r*tileN+cols])
	}
}

// run packs a, computes every 6 x 16 output tile and hands it to epi.
func (g *gemmJob) run(w *Weights, a []uint8, m int, aZero uint8, threads int) {
	threads = max(threads, 1)
	g.w, g.a, g.m, g.aZero = w, a, m, aZero
	if w.pb != nil {
		runLUT(w, a, m, aZero, threads, g.epi)
		return
	}
	kpad := w.kpad
	g.mTiles = (m + tileM - 1) / tileM
	g.nPanels = (w.N + tileN - 1) / tileN
	g.tileLen = kpad * tileM
	need := g.mTiles * g.tileLen

	elem := 1
	g.group = 1
	g.a8, g.a16 = nil, nil
	if w.p16 != nil {
		elem = 2
		if g.owner != nil {
			g.a16 = growSlice(&g.owner.a16, need)
		} else {
			bp, _ := scratch16.Get().(*[]int16)
			if bp == nil || cap(*bp) < need {
				s := make([]int16, need)
				bp = &s
			}
			g.a16 = (*bp)[:need]
			defer scratch16.Put(bp)
		}
	} else {
		if useVNNI {
			g.group = quadGroup
		}
		if g.owner != nil {
			g.a8 = growSlice(&g.owner.a8, need)
		} else {
			bp, _ := scratch8.Get().(*[]uint8)
			if bp == nil || cap(*bp) < need {
				s := make([]uint8, need)
				bp = &s
			}
			g.a8 = (*bp)[:need]
			defer scratch8.Put(bp)
		}
	}
	// Blocks of tiles whose packed activations fit in aBlockBytes.
	g.blockRows = max(1, aBlockBytes/(g.tileLen*elem))
	mBlocks := (g.mTiles + g.blockRows - 1) / g.blockRows
	// Panels are visited in groups of one kernel call each. Split the groups
	// over threads too when there are fewer row blocks than needed to keep
	// every thread busy.
	g.nGroups = (g.nPanels + g.group - 1) / g.group
	g.nChunks = 1
	if threads > 1 {
		g.nChunks = min(g.nGroups, (2*threads+mBlocks-1)/mBlocks)
	}
	g.chunk = (g.nGroups + g.nChunks - 1) / g.nChunks
	g.nChunks = (g.nGroups + g.chunk - 1) / g.chunk
	// The weight panels of a group are consumed in chunks of kc reduction
	// steps small enough to stay in L1 while every tile of the block uses
	// them.
	chunkBytes := wChunkBytes
	if g.a8 != nil && useVNNI {
		chunkBytes = wChunkVNNIBytes
	}
	g.kc = max(4, chunkBytes/(g.group*tileN*elem)) &^ 3

	g.single = threads == 1
	if g.single {
		g.pack(0, g.mTiles)
		for j := 0; j < mBlocks*g.nChunks; j++ {
			g.job(j)
		}
		return
	}
	parallel(threads, g.mTiles, g.pack)
	parallel(threads, mBlocks*g.nChunks, func(j0, j1 int) {
		for j := j0; j < j1; j++ {
			g.job(j)
		}
	})
}

// pack packs the activation tiles [t0, t1).
func (g *gemmJob) pack(t0, t1 int) {
	for t := t0; t < t1; t++ {
		if g.a16 != nil {
			packA16(g.a16[t*g.tileLen:(t+1)*g.tileLen], g.a, g.m, g.w.K, t*tileM, g.aZero)
		} else {
			packA8(g.a8[t*g.tileLen:(t+1)*g.tileLen], g.a, g.m, g.w.K, t*tileM)
		}
	}
}

// job computes block j: a block of row tiles against a chunk of panel
// groups, and hands its tiles to epi. Jobs never share outputs.
func (g *gemmJob) job(j int) {
	w := g.w
	kpad := w.kpad
	mb, nc := j/g.nChunks, j%g.nChunks
	t0, t1 := mb*g.blockRows, min((mb+1)*g.blockRows, g.mTiles)
	g0, g1 := nc*g.chunk, min((nc+1)*g.chunk, g.nGroups)
	need := (t1 - t0) * g.group
	var acc []tile
	if g.owner != nil && g.single {
		acc = growSlice(&g.owner.acc, need)
	} else {
		bp, _ := scratchC.Get().(*[]tile)
		if bp == nil || cap(*bp) < need {
			s := make([]tile, need)
			bp = &s
		}
		defer scratchC.Put(bp)
		acc = (*bp)[:need]
	}
	panelLen := kpad * tileN
	for gr := g0; gr < g1; gr++ {
		p0 := gr * g.group
		np := min(g.group, g.nPanels-p0)
		// Fold the zero point: quad tiles start at -z * sum_k W[n][k].
		var start [quadGroup * tileN]int32
		if g.a8 != nil {
			for j := range start[:np*tileN] {
				start[j] = -int32(g.aZero) * w.colSum[p0*tileN+j]
			}
		}
		wp := p0 * panelLen
		// With int32 output, full tiles of four full panels of quads are
		// written to dst by the kernel's last call (tilesQuadOut)
		// instead of through epi.
		direct := g.dst32 != nil && g.a8 != nil && np == quadGroup && (p0+np)*tileN <= w.N
		for k0 := 0; k0 < kpad; k0 += g.kc {
			k1 := min(k0+g.kc, kpad)
			for t := t0; t < t1; t++ {
				at := t*g.tileLen + k0*tileM
				if g.a16 != nil {
					tile16(g.a16[at:at+(k1-k0)*tileM], w.p16[wp+k0*tileN:wp+k1*tileN], &acc[t-t0], (k1-k0)/2, k0 > 0)
					continue
				}
				c := acc[(t-t0)*g.group : (t-t0)*g.group+np]
				var in []int32
				if k0 == 0 {
					in = start[:np*tileN]
				}
				if direct && k1 == kpad && (t+1)*tileM <= g.m {
					m0, n := t*tileM, w.N
					tilesQuadOut(g.a8[at:at+(k1-k0)*tileM], w.p8[wp+k0*tileN:], panelLen, c, (k1-k0)/4, w.group, in, g.dst32[m0*n+p0*tileN:], n)
					continue
				}
				tilesQuad(g.a8[at:at+(k1-k0)*tileM], w.p8[wp+k0*tileN:], panelLen, c, (k1-k0)/4, w.group, in)
			}
		}
		for jp := 0; jp < np; jp++ {
			n0 := (p0 + jp) * tileN
			cols := min(tileN, w.N-n0)
			for t := t0; t < t1; t++ {
				m0 := t * tileM
				if direct && (t+1)*tileM <= g.m {
					continue // written by tilesQuadOut
				}
				g.epi(m0, n0, min(tileM, g.m-m0), cols, &acc[(t-t0)*g.group+jp])
			}
		}
	}
}

// parallel runs f over [0, n) split into contiguous ranges handed out to at
// most threads goroutines, and returns when all are done.
func parallel(threads, n int, f func(i0, i1 int)) {
	if threads <= 1 || n <= 1 {
		f(0, n)
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < min(threads, n); g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				f(i, i+1)
			}
		}()
	}
	wg.Wait()
}

// packA16 writes the 6-row tile starting at row r0 as int16 pairs
// dst[p*12 + r*2 + j] = a[r0+r][2p+j] - z, zero outside the matrix.
func packA16(dst []int16, a []uint8, m, k, r0 int, z uint8) {
	rows := min(tileM, m-r0)
	if rows < tileM || k%4 != 0 {
		clear(dst)
	}
	zz := int16(z)
	j0 := 0
	if rows == tileM {
		j0 = packA16Full(dst, a, k, r0, z)
	}
	for r := 0; r < rows; r++ {
		row := a[(r0+r)*k : (r0+r+1)*k]
		j := j0
		for o := j0*tileM + 2*r; j+1 < k; j, o = j+2, o+2*tileM {
			d := dst[o : o+2 : o+2]
			x := row[j : j+2 : j+2]
			d[0] = int16(x[0]) - zz
			d[1] = int16(x[1]) - zz
		}
		if j < k {
			dst[j/2*2*tileM+2*r] = int16(row[j]) - zz
		}
	}
}

// packA8 writes the 6-row tile starting at row r0 as quads
// dst[q*24 + r*4 + j] = a[r0+r][4q+j], zero outside the matrix.
func packA8(dst []uint8, a []uint8, m, k, r0 int) {
	rows := min(tileM, m-r0)
	if rows < tileM || k%4 != 0 {
		clear(dst)
	}
	j0 := 0
	if rows == tileM {
		j0 = packA8Full(dst, a, k, r0)
	}
	for r := 0; r < rows; r++ {
		row := a[(r0+r)*k : (r0+r+1)*k]
		j := j0
		for o := j0*tileM + 4*r; j+3 < k; j, o = j+4, o+4*tileM {
			binary.LittleEndian.PutUint32(dst[o:o+4], binary.LittleEndian.Uint32(row[j:j+4]))
		}
		if j < k {
			copy(dst[j*tileM+4*r:], row[j:])
		}
	}
}
