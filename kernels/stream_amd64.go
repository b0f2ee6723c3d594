//go:build amd64 && !purego

//go:generate go run ./internal/genstream

package kernels

import "golang.org/x/sys/cpu"

// useAVXVNNI selects the VEX-encoded 256-bit VPDPBUSD stream kernels
// (AVX-VNNI) when the AVX-512 ones are off. Tests set it to false to run
// the AVX2 kernels and the Go twins.
var useAVXVNNI = cpu.X86.HasAVXVNNI && cpu.X86.HasAVX2

// streamDispatch returns the stream kernels the flags select.
func streamDispatch() streamPath {
	switch {
	case useVNNI:
		return streamAVX512
	case useAVXVNNI && useAVX2:
		return streamAVXVNNI
	case useAVX2:
		return streamAVX2
	}
	return streamGo
}

// streamBitsIndex is the first index of the generated kernel tables.
func streamBitsIndex(bits int) int {
	switch bits {
	case 8:
		return 0
	case 4:
		return 1
	case 2, Ternary:
		return 2
	}
	return 3
}

// streamCall runs one stream kernel call: rows activation rows (rows <=
// streamRows for streamAVX512, 1 otherwise), gp panels (streamGroup or 1),
// blocks >= 1 blocks.
func streamCall(path streamPath, bits, rows, gp int, a []uint8, astride int, w []uint8, c []int32, blocks int) {
	q, _, _, _ := streamFormat(bits)
	pi := 0
	if gp == 1 {
		pi = 1
	}
	var k streamKernel
	switch path {
	case streamAVX512:
		k = streamZKernels[streamBitsIndex(bits)][rows-1][pi]
	case streamAVXVNNI:
		k = streamVKernels[streamBitsIndex(bits)][pi]
	case streamAVX2:
		k = streamAVX2Kernel(bits, pi)
	case streamGoAVX2:
		streamGoAVX2Run(bits, rows, gp, a, astride, w, c, blocks)
		return
	default:
		streamGoRun(bits, rows, gp, a, astride, w, c, blocks)
		return
	}
	if rows < 1 || blocks < 1 || (path != streamAVX512 && rows != 1) {
		panic("kernels: stream kernel call out of range")
	}
	_ = a[(rows-1)*astride+blocks*4*q-1]
	_ = w[blocks*gp*streamBlockBytes(bits)-1]
	_ = c[rows*gp*tileN-1]
	k(&a[0], astride, &w[0], &c[0], blocks)
}

func streamAVX2Kernel(bits, pi int) streamKernel { return streamAKernels[streamBitsIndex(bits)][pi] }

// streamPairCall runs the AVX-512 kernel of one row against two full
// groups of four panels, the second gstride bytes after the first in w,
// over blocks blocks: it adds to c[0:64] and c[64:128] what two
// streamCall(streamAVX512, bits, 1, streamGroup, ...) calls on w and
// w[gstride:] would (streamGoRun is the reference of both).
func streamPairCall(bits int, a []uint8, gstride int, w []uint8, c []int32, blocks int) {
	q, _, _, _ := streamFormat(bits)
	if blocks < 1 || gstride < blocks*streamGroup*streamBlockBytes(bits) {
		panic("kernels: stream pair call out of range")
	}
	_ = a[blocks*4*q-1]
	_ = w[gstride+blocks*streamGroup*streamBlockBytes(bits)-1]
	_ = c[2*streamGroup*tileN-1]
	streamZPairKernels[streamBitsIndex(bits)](&a[0], gstride, &w[0], &c[0], blocks)
}

// streamQuadCall runs the AVX-512 kernel of one row of 8-bit weights
// against four full groups of four panels, gstride bytes apart in w, over
// blocks blocks: it adds to c[64g:64g+64] (g = 0..3) what
// streamCall(streamAVX512, 8, 1, streamGroup, ...) on w[g*gstride:] would
// (streamGoRun is the reference).
func streamQuadCall(a []uint8, gstride int, w []uint8, c []int32, blocks int) {
	q, _, _, _ := streamFormat(8)
	if blocks < 1 || gstride < blocks*streamGroup*streamBlockBytes(8) {
		panic("kernels: stream quad call out of range")
	}
	_ = a[blocks*4*q-1]
	_ = w[3*gstride+blocks*streamGroup*streamBlockBytes(8)-1]
	_ = c[4*streamGroup*tileN-1]
	streamZ8R1G4(&a[0], gstride, &w[0], &c[0], blocks)
}
