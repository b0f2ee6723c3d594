//go:build amd64 && !purego

package kernels

// lutRowAVX2 writes the lo/hi tables of quads 0 <= q < quads >= 1 of one
// activation row (all within src) to dst[96q:96q+32] and returns the sum of
// the 4*quads bytes read. See lutRowGo.
//
//go:noescape
func lutRowAVX2(dst, src *uint8, quads int) uint64

// lutTileAVX2 is lutTileGo for 4 <= kq <= lutMaxQuads, kq a multiple of 4.
// start (16 values) and rsum (3 values) may be nil together.
//
//go:noescape
func lutTileAVX2(t, w *uint8, c *int32, kq int, start, rsum *int32)

// lutRow writes the tables of kq quads of row to dst (stride 96) and returns
// the row's byte sum.
func lutRow(dst, row []uint8, kq int) int32 {
	full := min(len(row)/4, kq)
	if !useAVX2 || full == 0 {
		return lutRowGo(dst, row, 0, kq)
	}
	_ = dst[(full-1)*3*lutTableBytes+lutTableBytes-1]
	s := int32(lutRowAVX2(&dst[0], &row[0], full))
	if full < kq {
		s += lutRowGo(dst[full*3*lutTableBytes:], row, full, kq)
	}
	return s
}

// lutTile sets c[:48] to the table-kernel results of three rows (tables t,
// row sums rsum) and one panel (patterns w, tile start values start) over kq
// >= 4 quads, a multiple of 4. See lutTileGo.
func lutTile(t, w []uint8, c, start, rsum []int32, kq int) {
	if !useAVX2 {
		lutTileGo(t, w, c, start, rsum, kq)
		return
	}
	_ = t[kq*3*lutTableBytes-1]
	_ = w[kq*lutPatternBytes-1]
	_ = c[3*tileN-1]
	_ = start[tileN-1]
	_ = rsum[2]
	sp, rp := &start[0], &rsum[0]
	for q0 := 0; q0 < kq; q0 += lutMaxQuads {
		n := min(lutMaxQuads, kq-q0)
		lutTileAVX2(&t[q0*3*lutTableBytes], &w[q0*lutPatternBytes], &c[0], n, sp, rp)
		sp, rp = nil, nil
	}
}

// lutPanelsAVX2 runs lutTileAVX2 (with start values) for both halves of a
// 6-row tile against np consecutive panels in one call.
//
//go:noescape
func lutPanelsAVX2(t, w *uint8, c *int32, kq, np int, start, rsum *int32)

// lutPanels sets c[p] (p < len(c)) to the table-kernel tile of the 6-row
// tables t against the panel at w[p*kq*32:], starting from start[p*16:] and
// rsum[:6]; kq >= 4 is a multiple of 4.
func lutPanels(t, w []uint8, c []tile, start, rsum []int32, kq int) {
	np := len(c)
	if !useAVX2 || kq > lutMaxQuads || np == 0 {
		lutPanelsGo(t, w, c, start, rsum, kq)
		return
	}
	_ = t[2*kq*3*lutTableBytes-1]
	_ = w[np*kq*lutPatternBytes-1]
	_ = start[np*tileN-1]
	_ = rsum[tileM-1]
	lutPanelsAVX2(&t[0], &w[0], &c[0][0], kq, np, &start[0], &rsum[0])
}
