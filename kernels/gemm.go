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
	n := w.N
	run(w, a, m, aZero, opt.Threads, func(m0, n0, rows, cols int, c *tile) {
		if cols == tileN {
			for r := 0; r < rows; r++ {
				o := (m0+r)*n + n0
				*(*[tileN]int32)(dst[o : o+tileN]) = *(*[tileN]int32)(c[r*tileN:])
			}
			return
		}
		for r := 0; r < rows; r++ {
			copy(dst[(m0+r)*n+n0:(m0+r)*n+n0+cols], c[r*tileN:r*tileN+cols])
		}
	})
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
	if err := rq.check(w.N); err != nil {
		return err
	}
	n := w.N
	panels := rqPanels(rq, n)
	run(w, a, m, aZero, opt.Threads, func(m0, n0, rows, cols int, c *tile) {
		requantTile(dst[m0*n+n0:], n, c, rows, cols, &panels[n0/tileN])
	})
	return nil
}

// rqPanels returns the epilogue parameters of rq for n output channels,
// one rqParams per 16-channel panel.
func rqPanels(rq *Requant, n int) []rqParams {
	panels := make([]rqParams, (n+tileN-1)/tileN)
	for ch := 0; ch < n; ch++ {
		q := 0
		if len(rq.Mult) != 1 {
			q = ch
		}
		var bias int32
		if rq.Bias != nil {
			bias = rq.Bias[ch]
		}
		panels[ch/tileN].set(ch%tileN, bias, rq.Mult[q], rq.Shift[q])
	}
	for i := range panels {
		for j := 0; j < 4; j++ {
			panels[i].lo[j], panels[i].hi[j], panels[i].zero[j] = int64(rq.Lo), int64(rq.Hi), int64(rq.Zero)
		}
	}
	return panels
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

// scratch recycles packed-activation buffers between calls.
var (
	scratch8  sync.Pool // *[]uint8
	scratch16 sync.Pool // *[]int16
	scratchC  sync.Pool // *[]tile, accumulators of one job
)

// run packs a, computes every 6 x 16 output tile and hands it to epi.
func run(w *Weights, a []uint8, m int, aZero uint8, threads int, epi epilogue) {
	threads = max(threads, 1)
	if w.pb != nil {
		runLUT(w, a, m, aZero, threads, epi)
		return
	}
	k, kpad := w.K, w.kpad
	mTiles := (m + tileM - 1) / tileM
	nPanels := (w.N + tileN - 1) / tileN
	tileLen := kpad * tileM // elements of one packed activation tile

	var a8 []uint8
	var a16 []int16
	elem := 1
	group := 1 // panels per kernel call: quadGroup for tileVNNI64
	if w.p16 != nil {
		elem = 2
		bp, _ := scratch16.Get().(*[]int16)
		if bp == nil || cap(*bp) < mTiles*tileLen {
			s := make([]int16, mTiles*tileLen)
			bp = &s
		}
		a16 = (*bp)[:mTiles*tileLen]
		defer scratch16.Put(bp)
	} else {
		if useVNNI {
			group = quadGroup
		}
		bp, _ := scratch8.Get().(*[]uint8)
		if bp == nil || cap(*bp) < mTiles*tileLen {
			s := make([]uint8, mTiles*tileLen)
			bp = &s
		}
		a8 = (*bp)[:mTiles*tileLen]
		defer scratch8.Put(bp)
	}
	packTiles := func(t0, t1 int) {
		for t := t0; t < t1; t++ {
			if a16 != nil {
				packA16(a16[t*tileLen:(t+1)*tileLen], a, m, k, t*tileM, aZero)
			} else {
				packA8(a8[t*tileLen:(t+1)*tileLen], a, m, k, t*tileM)
			}
		}
	}
	parallel(threads, mTiles, packTiles)

	// Blocks of tiles whose packed activations fit in aBlockBytes.
	blockTiles := max(1, aBlockBytes/(tileLen*elem))
	mBlocks := (mTiles + blockTiles - 1) / blockTiles
	// Panels are visited in groups of one kernel call each. Split the groups
	// over threads too when there are fewer row blocks than needed to keep
	// every thread busy.
	nGroups := (nPanels + group - 1) / group
	nChunks := 1
	if threads > 1 {
		nChunks = min(nGroups, (2*threads+mBlocks-1)/mBlocks)
	}
	chunk := (nGroups + nChunks - 1) / nChunks
	nChunks = (nGroups + chunk - 1) / chunk
	panelLen := kpad * tileN
	// The weight panels of a group are consumed in chunks of kc reduction
	// steps small enough to stay in L1 while every tile of the block uses
	// them.
	chunkBytes := wChunkBytes
	if a8 != nil && useVNNI {
		chunkBytes = wChunkVNNIBytes
	}
	kc := max(4, chunkBytes/(group*tileN*elem)) &^ 3

	job := func(j int) {
		mb, nc := j/nChunks, j%nChunks
		t0, t1 := mb*blockTiles, min((mb+1)*blockTiles, mTiles)
		g0, g1 := nc*chunk, min((nc+1)*chunk, nGroups)
		bp, _ := scratchC.Get().(*[]tile)
		if bp == nil || cap(*bp) < (t1-t0)*group {
			s := make([]tile, (t1-t0)*group)
			bp = &s
		}
		defer scratchC.Put(bp)
		acc := (*bp)[:(t1-t0)*group]
		for g := g0; g < g1; g++ {
			p0 := g * group
			np := min(group, nPanels-p0)
			// Fold the zero point: quad tiles start at -z * sum_k W[n][k].
			var start [quadGroup * tileN]int32
			if a8 != nil {
				for j := range start[:np*tileN] {
					start[j] = -int32(aZero) * w.colSum[p0*tileN+j]
				}
			}
			wp := p0 * panelLen
			for k0 := 0; k0 < kpad; k0 += kc {
				k1 := min(k0+kc, kpad)
				for t := t0; t < t1; t++ {
					at := t*tileLen + k0*tileM
					if a16 != nil {
						tile16(a16[at:at+(k1-k0)*tileM], w.p16[wp+k0*tileN:wp+k1*tileN], &acc[t-t0], (k1-k0)/2, k0 > 0)
					} else {
						c := acc[(t-t0)*group : (t-t0)*group+np]
						var in []int32
						if k0 == 0 {
							in = start[:np*tileN]
						}
						tilesQuad(a8[at:at+(k1-k0)*tileM], w.p8[wp+k0*tileN:], panelLen, c, (k1-k0)/4, w.group, in)
					}
				}
			}
			for jp := 0; jp < np; jp++ {
				n0 := (p0 + jp) * tileN
				cols := min(tileN, w.N-n0)
				for t := t0; t < t1; t++ {
					m0 := t * tileM
					epi(m0, n0, min(tileM, m-m0), cols, &acc[(t-t0)*group+jp])
				}
			}
		}
	}
	parallel(threads, mBlocks*nChunks, func(j0, j1 int) {
		for j := j0; j < j1; j++ {
			job(j)
		}
	})
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
