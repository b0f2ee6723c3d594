package intengine

// Layouts (chosen once, at Compile, by chooseLayouts).
//
// A uint8 tensor of per-sample shape [C, H, W] is stored either
// channels-first (NCHW, the ONNX order) or channels-last (NHWC: pixel
// after pixel, the C channels of a pixel adjacent). Channels-last is the
// layout of the convolution GEMM: the patch rows of a convolution are
// runs of whole pixels (kernels.Im2ColNHWC, a few copies per row), a 1x1
// convolution with stride 1 reads its input as the GEMM's activation
// matrix directly, and the GEMM's [position][channel] output is the
// next tensor, without a transpose. Everything else keeps NCHW.
//
// Steps that read and write either layout: convolutions (input and output
// independently), pools, Adds, ReLU/Clip clamps and tabulated elementwise
// float steps (in and out in the same layout: they are tied), a float
// channel Mul (its [C, H, W] input tied to its output; the [C, 1, 1] gate
// has one pixel) and the input quantization. A tensor is
// NHWC when every tensor tied to it is a [C, H, W] tensor that only such
// steps read and write, is not aliased by a view (Flatten, Reshape...:
// the view's consumer reads the ONNX order) and is not the graph output.
// Tensors with H*W = 1 (and tensors of another rank) have one byte order
// in both layouts; they never force a group to NCHW. Serial plans keep
// NCHW. Layouts change where codes are stored, never their values:
// RunInt reports every tensor in NCHW order.

// chooseLayouts sets p.nhwc.
func (p *plan) chooseLayouts() {
	nb := len(p.bufs)
	p.nhwc = make([]bool, nb)
	if p.serial {
		return
	}
	spatial := func(b int) bool { // [C, H, W] with H*W > 1
		s := p.shapes[p.bufs[b].name]
		return len(s) == 3 && s[1]*s[2] > 1
	}
	forced := make([]bool, nb) // must stay NCHW
	for name, b := range p.valBuf {
		if name != p.bufs[b].name {
			forced[b] = true
		}
	}
	if p.outBuf >= 0 {
		forced[p.outBuf] = true
	}
	root := make([]int, nb)
	for b := range root {
		root[b] = b
	}
	var find func(int) int
	find = func(b int) int {
		for root[b] != b {
			root[b] = root[root[b]]
			b = root[b]
		}
		return b
	}
	tie := func(a, b int) { root[find(a)] = find(b) }
	for _, st := range p.steps {
		switch s := st.(type) {
		case *layerStep:
			if !s.conv {
				forced[s.in] = true
			}
		case *poolStep:
			tie(s.in, s.out)
		case *addStep:
			tie(s.a, s.out)
			tie(s.b, s.out)
		case *clampStep:
			tie(s.in, s.out)
		case *quantizeStep:
		case *floatStep:
			switch {
			case s.elementwise: // tabulated: same position in and out
				for _, b := range s.ins {
					tie(b, s.out)
				}
			case s.chanMul: // the gate has one pixel: one byte order
				tie(s.ins[s.xIn], s.out)
			default:
				for _, b := range s.ins {
					forced[b] = true
				}
				forced[s.out] = true
			}
		default:
			ins, out := st.buffers()
			for _, b := range ins {
				forced[b] = true
			}
			if out >= 0 {
				forced[out] = true
			}
		}
	}
	// A group is NHWC when it holds a spatial tensor and no forced one.
	has, bad := make([]bool, nb), make([]bool, nb)
	for b := 0; b < nb; b++ {
		r := find(b)
		if spatial(b) {
			has[r] = true
			bad[r] = bad[r] || forced[b]
		}
	}
	for b := 0; b < nb; b++ {
		r := find(b)
		p.nhwc[b] = has[r] && !bad[r]
	}
}

// toNCHW writes n samples of the [c, hw] tensor src, stored channels-last,
// into dst in channels-first order.
func toNCHW(dst, src []uint8, n, c, hw int) {
	for i := 0; i < n; i++ {
		d, s := dst[i*c*hw:(i+1)*c*hw], src[i*c*hw:(i+1)*c*hw]
		for p := 0; p < hw; p++ {
			px := s[p*c : (p+1)*c]
			for ch, v := range px {
				d[ch*hw+p] = v
			}
		}
	}
}
