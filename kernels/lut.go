package kernels

// Binary weights without VNNI run a table-lookup kernel instead of
// VPMADDUBSW. With b = (w+1)/2 in {0,1},
//
//	sum_k (a_k - z) w_k = 2 * sum_k a_k b_k - sum_k a_k - z * sum_k w_k,
//
// so only sums of selected activations are needed. For every row and quad
// of K (a_4q..a_4q+3) the activation packer writes two 16-entry byte tables
// indexed by the 4-bit weight pattern p (bit j = b_4q+j):
//
//	lo[p] = sum_{j in p} (a_4q+j & 15)    hi[p] = sum_{j in p} (a_4q+j >> 4)
//
// each at most 4*15 = 60, and a_k = 16*hi + lo recombines them. One VPSHUFB
// then looks up 16 channels x 4 reduction steps in both tables at once (64
// multiply-accumulates per instruction, against 32 for VPMADDUBSW). The
// lookups are added in bytes for 4 quads (at most 240), widened into uint16
// lanes (at most lutMaxQuads*60 = 30720 < 65536), and the lanes are flushed
// into the int32 tile as 2*(lo + 16*hi) every lutMaxQuads quads. The tile
// starts at -z*colSum[n] - rowSum[r], which folds the zero point and the
// -sum_k a_k term in.

// lutMaxQuads is the largest number of quads one table-kernel call
// accumulates in uint16 lanes: lutMaxQuads*60 = 30720 < 65536.
const lutMaxQuads = 512

// lutPatternBytes and lutTableBytes are the bytes per quad of one weight panel
// (16 patterns, repeated for the high-nibble lane) and of one activation row
// (the lo and hi tables).
const (
	lutPatternBytes = 32
	lutTableBytes   = 32
)

// packLUT packs binary weights w (n x k, values +-1) for the table kernel:
// pb[(panel*kq + q)*32 + c] = pb[... + 16 + c] = the pattern of channel
// panel*16+c over quad q, bit j set when W[c][4q+j] = +1. K is padded to a
// multiple of 16 (whole groups of 4 quads) with zero bits.
func packLUT(pw *Weights, w []int8) {
	n, k := pw.N, pw.K
	pw.kpad = (k + 15) &^ 15
	kq := pw.kpad / 4
	panels := (n + tileN - 1) / tileN
	pw.pb = make([]uint8, panels*kq*lutPatternBytes)
	for c := 0; c < n; c++ {
		base := (c/tileN)*kq*lutPatternBytes + c%tileN
		for j, v := range w[c*k : (c+1)*k] {
			if v > 0 {
				o := base + (j/4)*lutPatternBytes
				pw.pb[o] |= 1 << (j % 4)
				pw.pb[o+16] |= 1 << (j % 4)
			}
		}
	}
}

// lutRowGo writes the tables of quads q0 <= q < kq of one activation row to
// dst[(q-q0)*96:], reading zeros past the end of row, and returns the sum of
// the bytes it read. It is the twin of lutRowAVX2.
func lutRowGo(dst, row []uint8, q0, kq int) int32 {
	var s int32
	for q := q0; q < kq; q++ {
		var x [4]uint8
		for j := range x {
			if i := 4*q + j; i < len(row) {
				x[j] = row[i]
				s += int32(x[j])
			}
		}
		d := dst[(q-q0)*3*lutTableBytes:][:lutTableBytes]
		for p := 0; p < 16; p++ {
			var lo, hi uint8
			for j := range x {
				if p>>j&1 == 1 {
					lo += x[j] & 15
					hi += x[j] >> 4
				}
			}
			d[p], d[16+p] = lo, hi
		}
	}
	return s
}

// packLUTTile writes the tables of the 6-row tile at row r0 (kq quads) to
// dst, laid out as [2 halves][kq][3 rows][32] (rows 3h..3h+2 in half h), and
// the row sums sum_k a[r0+r][k] to sums; rows past m get zero tables.
func packLUTTile(dst []uint8, sums []int32, a []uint8, m, k, r0, kq int) {
	half := kq * 3 * lutTableBytes
	for r := 0; r < tileM; r++ {
		d := dst[(r/3)*half+(r%3)*lutTableBytes:]
		if r0+r >= m {
			for q := 0; q < kq; q++ {
				clear(d[q*3*lutTableBytes : q*3*lutTableBytes+lutTableBytes])
			}
			sums[r] = 0
			continue
		}
		sums[r] = lutRow(d, a[(r0+r)*k:(r0+r+1)*k], kq)
	}
}

// lutTileGo is the twin of lutTileAVX2 for any kq multiple of 4: with
//
//	s = 2 * sum_q (t[96q+32r+w[32q+n]] + 16*t[96q+32r+16+w[32q+16+n]])
//
// it sets c[r*16+n] (r < 3, n < 16) to start[n] - rsum[r] + s, computing s
// with the byte, uint16 and int32 stages of the assembly (bytes would wrap
// after 4 quads of lookups above 63, uint16 lanes after lutMaxQuads quads of
// lookups above 127; the tables never exceed 60).
func lutTileGo(t, w []uint8, c, start, rsum []int32, kq int) {
	c = c[:3*tileN]
	for r := 0; r < 3; r++ {
		for n := 0; n < tileN; n++ {
			c[r*tileN+n] = start[n] - rsum[r]
		}
	}
	for q0 := 0; q0 < kq; q0 += lutMaxQuads {
		q1 := min(q0+lutMaxQuads, kq)
		for r := 0; r < 3; r++ {
			for n := 0; n < tileN; n++ {
				var lo, hi uint16
				for g := q0; g < q1; g += 4 {
					var blo, bhi uint8
					for q := g; q < g+4; q++ {
						tq := t[q*3*lutTableBytes+r*lutTableBytes:][:lutTableBytes]
						wq := w[q*lutPatternBytes:][:lutPatternBytes]
						blo += tq[wq[n]&15]
						bhi += tq[16+wq[16+n]&15]
					}
					lo += uint16(blo)
					hi += uint16(bhi)
				}
				c[r*tileN+n] += 2 * (int32(lo) + 16*int32(hi))
			}
		}
	}
}

// runLUT is run for weights packed by packLUT: it builds the tables of every
// 6-row tile, then computes each tile against every panel (the tile's tables
// stay in L1/L2 while the patterns stream) and hands it to epi.
func runLUT(w *Weights, a []uint8, m int, aZero uint8, threads int, epi epilogue) {
	k := w.K
	kq := w.kpad / 4
	mTiles := (m + tileM - 1) / tileM
	nPanels := (w.N + tileN - 1) / tileN
	tileBytes := 2 * kq * 3 * lutTableBytes
	bp, _ := scratch8.Get().(*[]uint8)
	if bp == nil || cap(*bp) < mTiles*tileBytes {
		s := make([]uint8, mTiles*tileBytes)
		bp = &s
	}
	defer scratch8.Put(bp)
	tb := (*bp)[:mTiles*tileBytes]
	sums := make([]int32, mTiles*tileM)
	parallel(threads, mTiles, func(t0, t1 int) {
		for t := t0; t < t1; t++ {
			packLUTTile(tb[t*tileBytes:(t+1)*tileBytes], sums[t*tileM:(t+1)*tileM], a, m, k, t*tileM, kq)
		}
	})
	panelBytes := kq * lutPatternBytes
	start := make([]int32, nPanels*tileN)
	for n := range start {
		start[n] = -int32(aZero) * w.colSum[n]
	}
	parallel(threads, mTiles, func(t0, t1 int) {
		var c [lutPanelGroup]tile
		for t := t0; t < t1; t++ {
			at := tb[t*tileBytes : (t+1)*tileBytes]
			rs := sums[t*tileM : (t+1)*tileM]
			m0 := t * tileM
			for p0 := 0; p0 < nPanels; p0 += lutPanelGroup {
				np := min(lutPanelGroup, nPanels-p0)
				lutPanels(at, w.pb[p0*panelBytes:(p0+np)*panelBytes], c[:np], start[p0*tileN:(p0+np)*tileN], rs, kq)
				for j := 0; j < np; j++ {
					n0 := (p0 + j) * tileN
					epi(m0, n0, min(tileM, m-m0), min(tileN, w.N-n0), &c[j])
				}
			}
		}
	})
}

// lutPanelGroup is the number of panels one lutPanels call covers (1.5 KiB of
// int32 tiles, kept in L1 for the epilogue).
const lutPanelGroup = 4

// lutPanelsGo is the portable form of lutPanels (and its fallback when
// kq > lutMaxQuads): lutTile on both halves of the tile for every panel.
func lutPanelsGo(t, w []uint8, c []tile, start, rsum []int32, kq int) {
	half := kq * 3 * lutTableBytes
	panelBytes := kq * lutPatternBytes
	for p := range c {
		wp := w[p*panelBytes : (p+1)*panelBytes]
		st := start[p*tileN : (p+1)*tileN]
		lutTile(t[:half], wp, c[p][:3*tileN], st, rsum[:3], kq)
		lutTile(t[half:2*half], wp, c[p][3*tileN:], st, rsum[3:], kq)
	}
}
