//go:build !amd64 || purego

package kernels

// useAVXVNNI is always false without the assembly; it exists so tests can set it.
var useAVXVNNI = false

func streamDispatch() streamPath { return streamGo }

func streamCall(path streamPath, bits, rows, gp int, a []uint8, astride int, w []uint8, c []int32, blocks int) {
	if path == streamGoAVX2 {
		streamGoAVX2Run(bits, rows, gp, a, astride, w, c, blocks)
		return
	}
	streamGoRun(bits, rows, gp, a, astride, w, c, blocks)
}

// streamPairCall is never reached without the assembly (no path pairs
// groups); it computes what the AVX-512 pair kernel would.
func streamPairCall(bits int, a []uint8, gstride int, w []uint8, c []int32, blocks int) {
	streamGoRun(bits, 1, streamGroup, a, 0, w, c[:streamGroup*tileN], blocks)
	streamGoRun(bits, 1, streamGroup, a, 0, w[gstride:], c[streamGroup*tileN:2*streamGroup*tileN], blocks)
}

// streamQuadCall is never reached without the assembly; it computes what
// the AVX-512 four-group kernel of 8-bit weights would.
func streamQuadCall(a []uint8, gstride int, w []uint8, c []int32, blocks int) {
	for g := 0; g < 4; g++ {
		streamGoRun(8, 1, streamGroup, a, 0, w[g*gstride:], c[g*streamGroup*tileN:(g+1)*streamGroup*tileN], blocks)
	}
}
