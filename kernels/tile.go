package kernels

// tile is one micro-kernel result: tileM rows of tileN int32, row-major.
type tile = [tileM * tileN]int32

// tile16Go is the reference for the 8-bit micro-kernel (VPMADDWD). a holds kp
// pairs of a 6-row tile, a[p*12 + r*2 + j] = A[r][2p+j] - z as int16; w holds
// kp pairs of a 16-channel panel, w[p*32 + c*2 + j] = W[c][2p+j]. It
// overwrites c (adds to c if acc) with
//
//	c[r*16+c] = sum_p a[p*12+r*2]*w[p*32+c*2] + a[p*12+r*2+1]*w[p*32+c*2+1]
//
// Each pair sum is at most 2*255*128 in magnitude, as in VPMADDWD, and the
// int32 sum is exact for K <= MaxK.
func tile16Go(a, w []int16, c *tile, kp int, acc bool) {
	a = a[:kp*2*tileM]
	w = w[:kp*2*tileN]
	if !acc {
		*c = tile{}
	}
	for p := 0; p < kp; p++ {
		ap := a[p*2*tileM : (p+1)*2*tileM]
		wp := w[p*2*tileN : (p+1)*2*tileN]
		for r := 0; r < tileM; r++ {
			a0, a1 := int32(ap[2*r]), int32(ap[2*r+1])
			cr := c[r*tileN : (r+1)*tileN]
			for j := range cr {
				cr[j] += a0*int32(wp[2*j]) + a1*int32(wp[2*j+1])
			}
		}
	}
}

// tile8Go is the reference for the low-bit micro-kernel (VPMADDUBSW with
// int16 accumulation). a holds kq quads of a 6-row tile of raw activations,
// a[q*24 + r*4 + j] = A[r][4q+j]; w holds kq quads of a 16-channel panel,
// w[q*64 + c*4 + j] = W[c][4q+j]. It overwrites c (adds to c if acc) with
// sum_k A[r][k]*W[c][k],
// computed exactly as the assembly does: each output owns two int16 lanes (k
// mod 4 in {0,1} and {2,3}); every quad adds one saturated pair sum to each
// lane (VPMADDUBSW, then VPADDW, which wraps); after g quads the two lanes are
// summed into int32 (VPMADDWD by ones) and the lanes restart from zero. With
// the group sizes of weightRange neither the saturation nor the wrap-around
// can happen, which the tests verify against an int64 reference.
func tile8Go(a []uint8, w []int8, c *tile, kq, g int, acc bool) {
	a = a[:kq*4*tileM]
	w = w[:kq*4*tileN]
	if !acc {
		*c = tile{}
	}
	var lanes [tileM * tileN * 2]int16
	for q0 := 0; q0 < kq; q0 += g {
		q1 := min(q0+g, kq)
		lanes = [tileM * tileN * 2]int16{}
		for q := q0; q < q1; q++ {
			aq := a[q*4*tileM : (q+1)*4*tileM]
			wq := w[q*4*tileN : (q+1)*4*tileN]
			for r := 0; r < tileM; r++ {
				ar := aq[4*r : 4*r+4]
				for j := 0; j < tileN; j++ {
					wj := wq[4*j : 4*j+4]
					lo := sat16(int32(ar[0])*int32(wj[0]) + int32(ar[1])*int32(wj[1]))
					hi := sat16(int32(ar[2])*int32(wj[2]) + int32(ar[3])*int32(wj[3]))
					l := 2 * (r*tileN + j)
					lanes[l] += lo // wraps, like VPADDW
					lanes[l+1] += hi
				}
			}
		}
		for i := range c {
			c[i] += int32(lanes[2*i]) + int32(lanes[2*i+1])
		}
	}
}

// sat16 saturates to int16, as VPMADDUBSW does.
func sat16(v int32) int16 {
	if v > 32767 {
		return 32767
	}
	if v < -32768 {
		return -32768
	}
	return int16(v)
}

// tileDotGo is the reference for the VNNI micro-kernel (VPDPBUSD) and the
// portable kernel of 8-bit weights packed as quads. a holds kq quads of a
// 6-row tile of raw activations, a[q*24 + r*4 + j] = A[r][4q+j]; w holds kq
// quads of a 16-channel panel, w[q*64 + c*4 + j] = W[c][4q+j]. It adds to c
//
//	c[r*16+c] += sum_q sum_j a[q*24+r*4+j] * w[q*64+c*4+j]
//
// in int32, as VPDPBUSD does: each instruction adds a sum of four products
// (|sum| <= 4*255*128) to an int32 lane, so no intermediate saturates and the
// result is exact for K <= MaxK.
func tileDotGo(a []uint8, w []int8, c *tile, kq int) {
	a = a[:kq*4*tileM]
	w = w[:kq*4*tileN]
	for q := 0; q < kq; q++ {
		aq := a[q*4*tileM : (q+1)*4*tileM]
		wq := w[q*4*tileN : (q+1)*4*tileN]
		for r := 0; r < tileM; r++ {
			ar := aq[4*r : 4*r+4]
			a0, a1, a2, a3 := int32(ar[0]), int32(ar[1]), int32(ar[2]), int32(ar[3])
			cr := c[r*tileN : (r+1)*tileN]
			for j := range cr {
				wj := wq[4*j : 4*j+4]
				cr[j] += a0*int32(wj[0]) + a1*int32(wj[1]) + a2*int32(wj[2]) + a3*int32(wj[3])
			}
		}
	}
}

// copyTilesOut copies the tiles c (6 x 16 each, consecutive panels) to the
// 6 x 16*len(c) block of the row-major dst with row stride ldd.
func copyTilesOut(dst []int32, ldd int, c []tile) {
	for j := range c {
		for r := 0; r < tileM; r++ {
			copy(dst[r*ldd+j*tileN:r*ldd+(j+1)*tileN], c[j][r*tileN:(r+1)*tileN])
		}
	}
}

// setRows sets every row of c[j] to start[j*16:(j+1)*16]; nil start leaves c
// unchanged.
func setRows(c []tile, start []int32) {
	if start == nil {
		return
	}
	for j := range c {
		row := start[j*tileN : (j+1)*tileN]
		for r := 0; r < tileM; r++ {
			copy(c[j][r*tileN:(r+1)*tileN], row)
		}
	}
}

// tilesQuadGo runs the portable quad kernels over the len(c) consecutive
// panels at w, wstride apart: the int16-grouped tile8Go for low-bit weights
// (g > 0), tileDotGo for 8-bit ones (g == 0). It adds to c, after setting
// its rows to start when start is not nil (see tilesQuad).
func tilesQuadGo(a []uint8, w []int8, wstride int, c []tile, kq, g int, start []int32) {
	setRows(c, start)
	for j := range c {
		wj := w[j*wstride:]
		if g > 0 {
			tile8Go(a, wj, &c[j], kq, g, true)
		} else {
			tileDotGo(a, wj, &c[j], kq)
		}
	}
}
